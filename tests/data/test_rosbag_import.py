"""import-bag on bags the project writes itself: synthetic episodes with their true poses (rosbags' writer through
tools.bag), `worldscape rollout` bags and, live, the recorder's bag of the running simulator. Poses and
intrinsics must round-trip; every refusal names its cause and leaves nothing behind."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from node_output import wait_for_output

from worldscape_ros.data.bag_transforms import (
    TransformBuffer,
    matrix_to_quat,
    mount_transform,
    quat_wxyz_to_matrix,
    rpy_matrix,
    slerp,
)
from worldscape_ros.data.episode import read_episode
from worldscape_ros.data.rosbag_import import ImportOptions, actions_from_poses, import_bag
from worldscape_ros.errors import BagImportError
from worldscape_ros.model.kinematics import R_LINK_OPTICAL, BaseState, base_to_camera_link, camera_pose, integrate
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.synthetic.starts import start_from_scene
from worldscape_ros.tools import messages as M
from worldscape_ros.tools.bag import BagWriter

FPS = 10.0
SEC = 1_000_000_000


def rotation_error_deg(A: np.ndarray, B: np.ndarray) -> float:
    # from the chord ||Ra - Rb|| = 2 sqrt(2) sin(angle / 2): precise near zero, where acos of the trace is not
    chord = float(np.linalg.norm(A[:3, :3] - B[:3, :3]))
    return math.degrees(2 * math.asin(min(1.0, chord / (2 * math.sqrt(2)))))


def pose_errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(max translation error m, max rotation error deg) over (T, 4, 4) poses."""
    trans = float(np.max(np.linalg.norm(got[:, :3, 3] - want[:, :3, 3], axis=1)))
    rot = max(rotation_error_deg(a, b) for a, b in zip(got, want))
    return trans, rot


def _T(name: str):
    return M.typestore().types[name]


def colour_msg(rgb: np.ndarray, ns: int, encoding: str, frame: str = M.OPTICAL_FRAME):
    if encoding in ('jpeg', 'png'):
        ok, buf = cv2.imencode('.jpg' if encoding == 'jpeg' else '.png', rgb[..., ::-1])
        assert ok
        return 'sensor_msgs/msg/CompressedImage', _T('sensor_msgs/msg/CompressedImage')(
            header=M.header(ns, frame), format=encoding, data=buf.reshape(-1))
    img = {'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'mono8': rgb[..., :1]}[encoding]
    h, w, c = img.shape
    step = w * c + 4  # padded rows, as some drivers send them
    data = np.zeros((h, step), np.uint8)
    data[:, :w * c] = np.ascontiguousarray(img).reshape(h, w * c)
    return 'sensor_msgs/msg/Image', _T('sensor_msgs/msg/Image')(
        header=M.header(ns, frame), height=h, width=w, encoding=encoding, is_bigendian=0, step=step,
        data=data.reshape(-1))


def depth_msg(depth: np.ndarray, ns: int, encoding: str):
    if encoding == '32FC1':
        return M.image_depth32(depth, ns)
    mm = np.rint(np.nan_to_num(depth, nan=0.0) * 1000).astype('<u2')
    h, w = mm.shape
    return _T('sensor_msgs/msg/Image')(header=M.header(ns, M.OPTICAL_FRAME), height=h, width=w, encoding='16UC1',
                                       is_bigendian=0, step=w * 2, data=np.frombuffer(mm.tobytes(), np.uint8))


MOUNT = base_to_camera_link(BaseState(height=1.2))  # base_link -> camera_link
LINK_OPTICAL = np.eye(4)
LINK_OPTICAL[:3, :3] = R_LINK_OPTICAL


def write_bag(path: Path, rgb: np.ndarray, poses: np.ndarray, K: np.ndarray, stamps: np.ndarray, *,
              depth: np.ndarray | None = None, encoding: str = 'rgb8', depth_encoding: str = '32FC1',
              storage: str = 'mcap', tf_stamps: np.ndarray | None = None, tf_poses: np.ndarray | None = None,
              camera_info: bool = True, odometry: bool = False, static_mount: bool = True,
              depth_topic: str = '/camera/depth/image_raw') -> Path:
    """A bag like a robot's: the camera's images and camera_info, odom -> base_link on /tf (or /odom),
    base_link -> camera_link -> camera_optical_frame on /tf_static. The base pose is the camera pose with the
    mount taken off, so the chain composes back to `poses`."""
    tf_stamps = stamps if tf_stamps is None else tf_stamps
    tf_poses = poses if tf_poses is None else tf_poses
    h, w = rgb.shape[1:3]
    with BagWriter(path, storage) as bag:
        bag.add_topic('/tf_static', 'tf2_msgs/msg/TFMessage')
        if static_mount:
            bag.write('/tf_static', 0, M.tf_message([M.transform(MOUNT, 0, M.BASE_FRAME, M.CAMERA_LINK_FRAME),
                                                     M.transform(LINK_OPTICAL, 0, M.CAMERA_LINK_FRAME,
                                                                 M.OPTICAL_FRAME)]))
        bag.add_topic('/odom' if odometry else '/tf', 'nav_msgs/msg/Odometry' if odometry else 'tf2_msgs/msg/TFMessage')
        for ns, pose in zip(tf_stamps, tf_poses):
            base = pose @ np.linalg.inv(MOUNT @ LINK_OPTICAL)
            if odometry:
                msg = _T('nav_msgs/msg/Odometry')(
                    header=M.header(int(ns), 'odom'), child_frame_id='base_link',
                    pose=_T('geometry_msgs/msg/PoseWithCovariance')(pose=_T('geometry_msgs/msg/Pose')(
                        position=_T('geometry_msgs/msg/Point')(x=base[0, 3], y=base[1, 3], z=base[2, 3]),
                        orientation=M._quaternion(base[:3, :3])), covariance=np.zeros(36)),
                    twist=_T('geometry_msgs/msg/TwistWithCovariance')(twist=M.twist(np.zeros(5)),
                                                                     covariance=np.zeros(36)))
                bag.write('/odom', int(ns), msg)
            else:
                bag.write('/tf', int(ns), M.tf_message([M.transform(base, int(ns), M.ODOM_FRAME, M.BASE_FRAME)]))
        colour_type = 'sensor_msgs/msg/CompressedImage' if encoding in ('jpeg', 'png') else 'sensor_msgs/msg/Image'
        topic = '/camera/image_raw' + ('/compressed' if encoding in ('jpeg', 'png') else '')
        bag.add_topic(topic, colour_type)
        if camera_info:
            bag.add_topic('/camera/camera_info', 'sensor_msgs/msg/CameraInfo')
        if depth is not None:
            bag.add_topic(depth_topic, 'sensor_msgs/msg/Image')
        for t, ns in enumerate(stamps):
            bag.write(topic, int(ns), colour_msg(rgb[t], int(ns), encoding)[1])
            if camera_info:
                bag.write('/camera/camera_info', int(ns), M.camera_info(K, w, h, int(ns)))
            if depth is not None:
                bag.write(depth_topic, int(ns), depth_msg(depth[t], int(ns), depth_encoding))
    return path


@pytest.fixture(scope='module')
def episode():
    from worldscape_ros.synthetic.episodes import nav_episode

    return nav_episode(5, 'loop', 12, 128, 96, FPS)


@pytest.fixture(scope='module')
def episode_large():
    from worldscape_ros.synthetic.episodes import nav_episode

    return nav_episode(5, 'loop', 12, 256, 192, FPS)  # the same trajectory at twice the resolution


def options(**kw) -> ImportOptions:
    return ImportOptions(**{'fps': FPS, 'width': 128, 'height': 96, 'min_frames': 2, **kw})


def stamps_of(n: int, fps: float = FPS, start: float = 3.0) -> np.ndarray:
    return np.array([round((start + t / fps) * SEC) for t in range(n)], dtype=np.int64)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_synthetic_episode_round_trips_poses_intrinsics_pixels_and_depth(tmp_path, episode, storage):
    bag = write_bag(tmp_path / 'bag', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12),
                    depth=episode.depth, storage=storage)
    result = import_bag(bag, tmp_path / 'out', options())
    assert result.pose_source == 'tf' and len(result.episodes) == 1 and result.frames == 12
    got = read_episode(result.episodes[0])
    trans, rot = pose_errors(got.poses, episode.poses)
    print(f'{storage}: max pose error {trans:.2e} m, {rot:.2e} deg; K error '
          f'{np.abs(got.intrinsics - episode.intrinsics).max():.1e}')
    assert trans < 1e-9 and rot < 1e-5
    np.testing.assert_allclose(got.intrinsics, episode.intrinsics, atol=1e-12)
    np.testing.assert_array_equal(got.rgb, episode.rgb)
    np.testing.assert_allclose(got.depth, episode.depth, atol=5e-4, equal_nan=True)  # episode depth is in mm
    assert got.meta['has_depth'] and got.meta['family'] == 'rosbag' and got.meta['world_frame'] == 'odom'
    # the actions the project's kinematics recover integrate back into the same camera poses
    state = BaseState(height=0.0)
    from worldscape_ros.model.kinematics import NavAction, state_from_camera_pose

    state = state_from_camera_pose(got.poses[0], 0.0)
    for t in range(1, 12):
        state = integrate(state, NavAction.from_array(got.actions[t]), 1 / FPS)
        assert np.abs(camera_pose(state)[:3, 3] - got.poses[t][:3, 3]).max() < 1e-4


def test_a_larger_image_is_resized_and_a_wider_one_cropped_with_intrinsics_adjusted(tmp_path, episode, episode_large):
    bag = write_bag(tmp_path / 'large', episode_large.rgb, episode_large.poses, episode_large.intrinsics,
                    stamps_of(12), depth=episode_large.depth)
    got = read_episode(import_bag(bag, tmp_path / 'out', options()).episodes[0])
    np.testing.assert_allclose(got.intrinsics, episode.intrinsics, atol=1e-12)  # the 128x96 camera exactly
    assert np.abs(got.rgb.astype(int) - episode.rgb.astype(int)).mean() < 8  # the same view, area-averaged
    # 160 columns cropped to 128: the principal point moves left by 16 px, nothing else changes
    wide_K = episode.intrinsics.copy()
    wide_K[0, 2] += 16
    wide = np.zeros((12, 96, 160, 3), np.uint8)
    wide[:, :, 16:144] = episode.rgb
    bag = write_bag(tmp_path / 'wide', wide, episode.poses, wide_K, stamps_of(12))
    got = read_episode(import_bag(bag, tmp_path / 'out2', options()).episodes[0])
    np.testing.assert_allclose(got.intrinsics, episode.intrinsics, atol=1e-12)
    np.testing.assert_array_equal(got.rgb, episode.rgb)
    assert not got.meta['has_depth'] and np.isnan(got.depth).all()
    # letterbox: the whole 160 px fit into 128, bands above and below
    got = read_episode(import_bag(bag, tmp_path / 'out3', options(fit='letterbox')).episodes[0])
    assert got.intrinsics[0, 0] == pytest.approx(wide_K[0, 0] * 0.8)
    assert (got.rgb[:, :9] == 0).all() and (got.rgb[:, -9:] == 0).all()


@pytest.mark.parametrize('encoding', ['bgr8', 'mono8', 'png', 'jpeg'])
def test_every_colour_encoding_decodes_to_the_same_frames(tmp_path, episode, encoding):
    bag = write_bag(tmp_path / 'bag', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12), encoding=encoding)
    got = read_episode(import_bag(bag, tmp_path / 'out', options()).episodes[0]).rgb
    want = episode.rgb if encoding != 'mono8' else np.repeat(episode.rgb[..., :1], 3, axis=-1)
    err = got.astype(float) - want.astype(float)
    if encoding == 'jpeg':  # lossy: OpenCV's default quality 95
        assert 10 * math.log10(255 ** 2 / np.mean(err ** 2)) > 30
    else:
        assert not err.any()


def test_the_only_depth_topic_is_found_when_it_is_not_beside_the_images(tmp_path, episode):
    bag = write_bag(tmp_path / 'bag', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12),
                    depth=episode.depth, depth_topic='/camera/aligned_depth_to_color/image_raw')
    got = read_episode(import_bag(bag, tmp_path / 'out', options()).episodes[0])
    assert got.meta['depth_topic'] == '/camera/aligned_depth_to_color/image_raw' and got.meta['has_depth']
    np.testing.assert_allclose(got.depth, episode.depth, atol=5e-4, equal_nan=True)


def test_16uc1_millimetre_depth_reads_as_metres_and_zero_as_unknown(tmp_path, episode):
    depth = episode.depth.copy()
    depth[:, :4, :4] = 0.0
    bag = write_bag(tmp_path / 'bag', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12), depth=depth,
                    depth_encoding='16UC1')
    got = read_episode(import_bag(bag, tmp_path / 'out', options()).episodes[0]).depth
    assert np.isnan(got[:, :4, :4]).all()
    np.testing.assert_allclose(got[:, 4:, 4:], episode.depth[:, 4:, 4:], atol=1e-3)


def analytic_base(t: float) -> np.ndarray:
    """A base turning at a constant 0.6 rad/s about a fixed tilted axis while moving in a straight line: slerp and
    linear interpolation of its TF link are exact."""
    axis = np.array([0.2, -0.1, 1.0]) / np.linalg.norm([0.2, -0.1, 1.0])
    angle = 0.6 * t
    K_ = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    T = np.eye(4)
    T[:3, :3] = np.eye(3) + math.sin(angle) * K_ + (1 - math.cos(angle)) * K_ @ K_
    T[:3, 3] = (0.5 * t, -0.2 * t, 0.05 * t)
    return T


def analytic_pose(t: float) -> np.ndarray:
    """The camera on that base (through the test bags' mount)."""
    return analytic_base(t) @ MOUNT @ LINK_OPTICAL


@pytest.mark.parametrize('odometry', [False, True])
def test_poses_are_interpolated_to_image_stamps_from_tf_or_odometry_at_another_rate(tmp_path, episode, odometry):
    # images at 30 Hz from t = 3 s, transforms at 20 Hz offset by 7 ms: no image has a transform at its stamp
    n = 36
    img_stamps = stamps_of(n, fps=30.0)
    tf_stamps = np.array([round((2.9 + 0.007 + k / 20) * SEC) for k in range(30)], dtype=np.int64)
    rgb = np.repeat(episode.rgb[:1], n, axis=0)
    bag = write_bag(tmp_path / 'bag', rgb, np.stack([analytic_pose(s / SEC) for s in img_stamps]),
                    episode.intrinsics, img_stamps, tf_stamps=tf_stamps,
                    tf_poses=np.stack([analytic_pose(s / SEC) for s in tf_stamps]), odometry=odometry)
    result = import_bag(bag, tmp_path / 'out', options())
    got = read_episode(result.episodes[0])
    assert result.pose_source == ('odom' if odometry else 'tf') and abs(result.image_rate - 30) < 0.01
    kept = np.array(got.meta['stamps_ns']) + got.meta['start_stamp_ns']
    assert np.allclose(np.diff(kept), SEC / FPS, atol=SEC / 60)  # every third image: 10 fps
    trans, rot = pose_errors(got.poses, np.stack([analytic_pose(s / SEC) for s in kept]))
    print(f'interpolated ({"odometry" if odometry else "tf"}): max error {trans:.2e} m, {rot:.2e} deg')
    assert trans < 1e-9 and rot < 1e-6


def test_odometry_with_a_mount_given_on_the_command_line_matches_the_static_tf_mount(tmp_path, episode):
    bag = write_bag(tmp_path / 'bag', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12), odometry=True,
                    static_mount=False)
    with pytest.raises(BagImportError, match='--mount'):
        import_bag(bag, tmp_path / 'out', options())
    mount = (0.0, 0.0, 1.2, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(mount_transform(mount), MOUNT @ LINK_OPTICAL, atol=1e-12)
    got = read_episode(import_bag(bag, tmp_path / 'out', options(mount=mount)).episodes[0])
    assert max(pose_errors(got.poses, episode.poses)) < 1e-6


def test_gaps_in_the_images_split_episodes_and_short_pieces_are_dropped(tmp_path, episode):
    stamps = stamps_of(12)
    stamps[6:] += 2 * SEC  # the camera dropped out for two seconds after frame 5
    bag = write_bag(tmp_path / 'bag', episode.rgb, episode.poses, episode.intrinsics, stamps)
    result = import_bag(bag, tmp_path / 'out', options(min_frames=3))
    assert [read_episode(p).num_frames for p in result.episodes] == [6, 6]
    assert [p.name for p in result.episodes] == ['bag_000.episode.npz', 'bag_001.episode.npz']
    result = import_bag(bag, tmp_path / 'out2', options(min_frames=3, max_frames=4))
    assert [read_episode(p).num_frames for p in result.episodes] == [4, 4]  # the 2-frame rests are dropped
    assert any('dropped' in n for n in result.notes)


def no_files(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def test_refusals_name_the_cause_and_write_nothing(tmp_path, episode):
    good = write_bag(tmp_path / 'good', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12))
    out = tmp_path / 'out'
    cases = [
        (good, options(image_topic='/front/image'), 'topic /front/image is not in the bag'),
        (good, options(fps=15.0), r'10\.00 Hz, below the model\'s 15 fps'),
        (write_bag(tmp_path / 'noinfo', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12),
                   camera_info=False), options(), 'no camera_info'),
        (write_bag(tmp_path / 'gap', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12),
                   tf_stamps=np.delete(stamps_of(12), [4, 5, 6, 7, 8]),
                   tf_poses=np.delete(episode.poses, [4, 5, 6, 7, 8], axis=0)),
         options(), r'TF odom -> base_link has a gap of 0\.600 s'),
        (write_bag(tmp_path / 'nopose', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12),
                   tf_stamps=np.zeros(0, np.int64), tf_poses=np.zeros((0, 4, 4))),
         options(), 'no pose for the camera'),
        (tmp_path / 'missing', options(), 'no such bag'),
        (tmp_path, options(), 'not a rosbag2 folder'),
    ]
    for bag, opts, message in cases:
        with pytest.raises(BagImportError, match=message):
            import_bag(bag, out, opts)
        assert no_files(out), message
    import_bag(good, out, options())
    with pytest.raises(BagImportError, match='exists already'):
        import_bag(good, out, options())


def test_a_camera_without_camera_info_is_imported_from_its_field_of_view(tmp_path, episode):
    bag = write_bag(tmp_path / 'bag', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12), camera_info=False)
    got = read_episode(import_bag(bag, tmp_path / 'out', options(vfov_deg=60.0)).episodes[0])
    np.testing.assert_allclose(got.intrinsics, episode.intrinsics, atol=1e-9)  # the renderer's 60 deg camera


def test_transform_buffer_interpolates_links_and_composes_chains():
    tf = TransformBuffer(max_gap_ns=SEC)
    a, b = analytic_base(0.0), analytic_base(1.0)
    tf.add('map', 'odom', 0, np.eye(4), static=True)
    tf.add('odom', 'base', 0, a, static=False)
    tf.add('odom', 'base', SEC, b, static=False)
    tf.add('base', 'cam', 0, LINK_OPTICAL, static=True)
    mid = tf.lookup('map', 'cam', SEC // 2)
    np.testing.assert_allclose(mid, analytic_base(0.5) @ LINK_OPTICAL, atol=1e-12)
    np.testing.assert_allclose(tf.lookup('cam', 'cam', 0), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(tf.lookup('base', 'map', 0), np.linalg.inv(a), atol=1e-12)
    with pytest.raises(BagImportError, match='no sample around'):
        tf.lookup('map', 'cam', 2 * SEC)
    with pytest.raises(BagImportError, match='two parents'):
        tf.add('map', 'base', 0, np.eye(4), static=True)
    # a static link re-sent later (the simulator's mount when the camera pitches) holds from its stamp on
    pitched = base_to_camera_link(BaseState(pitch=0.3, height=1.0)) @ LINK_OPTICAL
    tf.add('base', 'cam', SEC // 2, pitched, static=True)
    np.testing.assert_allclose(tf.lookup('base', 'cam', SEC // 4), LINK_OPTICAL, atol=1e-12)
    np.testing.assert_allclose(tf.lookup('base', 'cam', SEC), pitched, atol=1e-12)


def test_quaternion_helpers_invert_each_other_and_slerp_ends_at_its_ends():
    rng = np.random.default_rng(0)
    for _ in range(50):
        R = rpy_matrix(*rng.uniform(-math.pi, math.pi, 3))
        q = matrix_to_quat(R)
        np.testing.assert_allclose(quat_wxyz_to_matrix(q), R, atol=1e-12)
        q2 = matrix_to_quat(rpy_matrix(*rng.uniform(-math.pi, math.pi, 3)))
        np.testing.assert_allclose(slerp(q, q2, 0.0), q, atol=1e-12)
        assert np.allclose(slerp(q, q2, 1.0), q2, atol=1e-9) or np.allclose(slerp(q, q2, 1.0), -q2, atol=1e-9)


def test_actions_of_a_standing_camera_are_zero():
    poses = np.repeat(camera_pose(BaseState(x=1.0, yaw=0.3, height=1.0))[None], 4, axis=0)
    assert not actions_from_poses(poses, FPS, 1.0).any()


@pytest.mark.slow
def test_a_worldscape_rollout_bag_imports_with_the_engines_poses_and_intrinsics(tmp_path):
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.kinematics import NavAction
    from worldscape_ros.tools.rollout import Start, offline_rollout
    from worldscape_ros.tools.scripts import load_script

    actions = tmp_path / 'script.csv'
    rows = [(0.5, 0.0, 0.0, 0.3, 0.0)] * 6 + [(0.3, 0.2, 0.0, -0.4, 0.0)] * 6
    actions.write_text(''.join(' '.join(map(str, r)) + '\n' for r in rows))
    engine = WorldEngine.from_pretrained('random', options=EngineOptions(seed=2))
    script = load_script(actions, engine.config.fps)
    offline_rollout(engine, Start('room', 2), script, tmp_path / 'roll', mp4=False)
    result = import_bag(tmp_path / 'roll' / 'bag', tmp_path / 'out', options())
    got = read_episode(result.episodes[0])
    # the engine's camera: the start view's pose integrated by its kinematics, frames 1..12
    start = start_from_scene(WorldEngine.from_pretrained('random', options=EngineOptions(seed=2)), 2, 'room')
    from worldscape_ros.model.kinematics import state_from_camera_pose

    state = state_from_camera_pose(start.pose, engine.config.camera_height)
    want = []
    for row in script.actions:
        state = integrate(state, NavAction.from_array(row), 1 / engine.config.fps)
        want.append(camera_pose(state))
    trans, rot = pose_errors(got.poses, np.stack(want))
    k_err = float(np.abs(got.intrinsics - engine.intrinsics).max())
    print(f'rollout bag: {got.num_frames} frames, max pose error {trans:.2e} m, {rot:.2e} deg, K {k_err:.1e}')
    assert got.num_frames == 12 and trans < 1e-6 and rot < 1e-4 and k_err < 1e-9
    assert got.meta['has_depth'] and np.isfinite(got.depth).mean() > 0.9


@pytest.mark.slow
@pytest.mark.ros
def test_a_recorder_bag_of_the_running_simulator_imports_with_its_poses_and_intrinsics(tmp_path, monkeypatch):
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.kinematics import NavAction, state_from_camera_pose
    from worldscape_ros.ros.recorder_node import IMAGE_TOPIC
    from worldscape_ros.tools.scripts import load_script

    monkeypatch.setenv('ROS_DOMAIN_ID', str(100 + os.getpid() % 120))
    actions = tmp_path / 'script.csv'
    rows = [(0.5, 0.0, 0.0, 0.3, 0.0)] * 5 + [(0.2, -0.1, 0.0, -0.5, 0.0)] * 5
    actions.write_text(''.join(' '.join(map(str, r)) + '\n' for r in rows))
    live = tmp_path / 'live'

    def spawn(module: str, *params: str) -> subprocess.Popen:
        args = [sys.executable, '-m', module, '--ros-args', *[a for p in params for a in ('-p', p)]]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    sim = spawn('worldscape_ros.ros.simulator_node', 'checkpoint:=random', 'start_seed:=2', 'start_paused:=true',
                'realtime:=false')
    rec = spawn('worldscape_ros.ros.recorder_node', f'out:={live}')
    try:
        # step the simulator only once the recorder hears every topic the import reads: a subscription in the
        # graph is not yet a match, and a frame published before both ends of it are made is not recorded
        wait_for_output(rec, [f'{t}: matched' for t in (IMAGE_TOPIC, '/camera/camera_info', '/camera/depth/image_raw',
                                                        '/odom', '/tf')], timeout=120)
        teleop = subprocess.run([sys.executable, '-m', 'worldscape_ros.ros.scripted_teleop', '--ros-args', '-p',
                                 f'actions:={actions}', '-p', 'wait:=90.0', '-p', 'listeners:=2'],
                                capture_output=True, text=True, timeout=240)
        assert teleop.returncode == 0, teleop.stderr
        time.sleep(1.0)
        rec.send_signal(signal.SIGINT)
        assert rec.wait(timeout=60) == 0
    finally:
        for proc in (rec, sim):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    result = import_bag(live, tmp_path / 'out', options())
    got = read_episode(result.episodes[0])
    engine = WorldEngine.from_pretrained('random', options=EngineOptions(seed=2))
    start = start_from_scene(engine, 2, 'room')
    state = state_from_camera_pose(start.pose, engine.config.camera_height)
    want = []
    for row in load_script(actions, engine.config.fps).actions:
        state = integrate(state, NavAction.from_array(row), 1 / engine.config.fps)
        want.append(camera_pose(state))
    trans, rot = pose_errors(got.poses, np.stack(want))
    k_err = float(np.abs(got.intrinsics - engine.intrinsics).max())
    print(f'recorder bag of the live simulator: {got.num_frames} frames, max pose error {trans:.2e} m, '
          f'{rot:.2e} deg, K {k_err:.1e}')
    assert got.num_frames == len(rows) and trans < 1e-6 and rot < 1e-4 and k_err < 1e-9


@pytest.mark.slow
def test_imported_episodes_without_depth_fine_tune_on_flow_matching_alone(tmp_path, episode, caplog):
    from worldscape_ros.train.config import load_train_config
    from worldscape_ros.train.loop import train

    bag = write_bag(tmp_path / 'bag', episode.rgb, episode.poses, episode.intrinsics, stamps_of(12),
                    depth=episode.depth)
    import_bag(bag, tmp_path / 'eps', options(depth_topic=''))  # an RGB camera
    cfg = load_train_config(str(Path(__file__).resolve().parents[2] / 'models' / 'train' / '02_causal_finetune.yaml'))
    cfg = cfg.replace_in('data', root=str(tmp_path / 'eps'), batch_size=2)
    cfg = cfg.replace_in('run', out=str(tmp_path / 'run'), steps=2, log_every=1, save_every=0, progress=False,
                         precision='fp32')
    with caplog.at_level('INFO'):
        summary = train(cfg)
    assert summary.steps == 2 and summary.final.is_file()
    assert '1 of 1 episodes have no depth' in caplog.text
    header = (tmp_path / 'run' / 'metrics.csv').read_text().splitlines()[0].split(',')
    assert 'fm' in header and 'depth' not in header and 'render' not in header
