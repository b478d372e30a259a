"""Hand tracker: MediaPipe-structured results -> keypoints in the camera frame (MediaPipe itself is optional)."""

import subprocess
import sys
from types import SimpleNamespace as NS

import numpy as np
import pytest

from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.pixel_convention import k_to_ros
from worldscape_ros.ros.hand_tracker import MEDIAPIPE_HINT, detections_from_mediapipe, place_hand
from worldscape_ros.tools.hand_plans import HandState, hand_keypoints

W, H = 640, 480
K = intrinsics_from_fov(W, H, 60.0)


def _landmarks(rows):
    return NS(landmark=[NS(x=float(x), y=float(y), z=float(z), visibility=0.0, presence=0.0) for x, y, z in rows])


def _results(points_cam, label='Left', score=0.97, with_world=True):
    """What mediapipe.solutions.hands returns for a hand whose 21 landmarks are `points_cam` (camera frame)."""
    uvw = points_cam @ K.T
    uv = uvw[:, :2] / uvw[:, 2:]
    centre = points_cam.mean(axis=0)
    norm = np.column_stack([uv[:, 0] / W, uv[:, 1] / H, (points_cam[:, 2] - points_cam[0, 2]) * K[0, 0] / W
                            / points_cam[0, 2]])
    return NS(multi_hand_landmarks=[_landmarks(norm)],
              multi_hand_world_landmarks=[_landmarks(points_cam - centre)] if with_world else None,
              multi_handedness=[NS(classification=[NS(index=0, label=label, score=score)])])


@pytest.mark.parametrize('wrist', [(0.0, 0.05, 0.5), (0.12, -0.06, 0.8), (-0.2, 0.1, 1.2)])
def test_world_landmarks_are_placed_where_the_image_sees_them(wrist):
    truth = hand_keypoints(HandState(np.array(wrist), curl=0.4))
    (det,) = detections_from_mediapipe(_results(truth), K, W, H)
    np.testing.assert_allclose(det.points, truth, atol=1e-6)
    assert det.points.shape == (21, 3) and det.scores.shape == (21,)
    assert det.scores == pytest.approx(0.97)


def test_handedness_is_swapped_unless_the_input_is_mirrored():
    truth = hand_keypoints(HandState(np.array([0.0, 0.0, 0.6]), curl=0.0))
    assert detections_from_mediapipe(_results(truth, 'Left'), K, W, H)[0].handedness == 'right'
    assert detections_from_mediapipe(_results(truth, 'Left'), K, W, H, mirrored_input=True)[0].handedness == 'left'
    with pytest.raises(ValueError, match='handedness must be'):
        detections_from_mediapipe(_results(truth, 'Both'), K, W, H)


def test_without_world_landmarks_points_lie_on_the_image_rays():
    truth = hand_keypoints(HandState(np.array([0.05, 0.02, 0.5]), curl=0.2))
    (det,) = detections_from_mediapipe(_results(truth, with_world=False), K, W, H, assumed_depth=0.5)
    proj = det.points @ K.T
    true_proj = truth @ K.T
    np.testing.assert_allclose(proj[:, :2] / proj[:, 2:], true_proj[:, :2] / true_proj[:, 2:], atol=1e-6)
    assert det.points[0, 2] == pytest.approx(0.5)


def test_landmarks_outside_the_image_score_zero_and_no_hand_gives_nothing():
    truth = hand_keypoints(HandState(np.array([0.0, 0.0, 0.6]), curl=0.0))
    res = _results(truth)
    res.multi_hand_landmarks[0].landmark[8].x = 1.2
    assert detections_from_mediapipe(res, K, W, H)[0].scores[8] == 0.0
    assert detections_from_mediapipe(NS(multi_hand_landmarks=None, multi_hand_world_landmarks=None,
                                        multi_handedness=None), K, W, H) == []


def test_bad_inputs_are_named():
    truth = hand_keypoints(HandState(np.array([0.0, 0.0, 0.6]), curl=0.0))
    with pytest.raises(ValueError, match='K must be'):
        detections_from_mediapipe(_results(truth), np.eye(2), W, H)
    res = _results(truth)
    res.multi_hand_landmarks[0].landmark.pop()
    with pytest.raises(ValueError, match='21 landmarks'):
        detections_from_mediapipe(res, K, W, H)


def test_place_hand_recovers_a_known_translation():
    rng = np.random.default_rng(1)
    world = rng.normal(scale=0.05, size=(21, 3))
    t = np.array([0.1, -0.05, 0.7])
    p = (world + t) @ K.T
    np.testing.assert_allclose(place_hand(world, p[:, :2] / p[:, 2:], K), t, atol=1e-9)


@pytest.mark.ros
def test_node_without_mediapipe_exits_with_the_install_hint():
    try:
        import mediapipe  # noqa: F401
        pytest.skip('mediapipe is installed here')
    except ImportError:
        pass
    proc = subprocess.run([sys.executable, '-m', 'worldscape_ros.ros.hand_tracker'], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert MEDIAPIPE_HINT.split(':')[0] in proc.stderr + proc.stdout


def test_message_carries_points_scores_and_header():
    from std_msgs.msg import Header

    from worldscape_ros.ros.hand_tracker import HandDetection, to_message

    pts = np.arange(63, dtype=float).reshape(21, 3) / 100
    msg = to_message(HandDetection('left', pts, np.linspace(0, 1, 21).astype(np.float32)),
                     Header(frame_id='camera_optical_frame'))
    assert msg.handedness == 'left' and msg.header.frame_id == 'camera_optical_frame'
    assert (msg.points[20].x, msg.points[20].y, msg.points[20].z) == pytest.approx(tuple(pts[20]))
    assert list(msg.scores) == pytest.approx(list(np.linspace(0, 1, 21)))


# --- the real node, in a child process with a stand-in MediaPipe ---------------------------------------------

FAKE_MEDIAPIPE = '''"""Stand-in for MediaPipe Hands: each image shows the hand of $FAKE_HANDS_RESULTS."""
import json
import os
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np

__version__ = 'stand-in'
SPEC = json.loads(os.environ['FAKE_HANDS_RESULTS'])
LOG = Path(os.environ['FAKE_HANDS_LOG'])


def _landmarks(rows):
    return NS(landmark=[NS(x=x, y=y, z=z) for x, y, z in rows])


class Hands:
    def __init__(self, **options):
        (LOG / 'options.json').write_text(json.dumps(options))
        self.seen = 0

    def process(self, rgb):
        if self.seen == 0:
            np.save(LOG / 'first_image.npy', rgb)
            (LOG / 'contiguous').write_text(str(rgb.flags.c_contiguous))
        self.seen += 1
        return NS(multi_hand_landmarks=[_landmarks(SPEC['image'])],
                  multi_hand_world_landmarks=[_landmarks(SPEC['world'])],
                  multi_handedness=[NS(classification=[NS(index=0, label=SPEC['label'], score=SPEC['score'])])])

    def close(self):
        (LOG / 'closed').write_text('yes')


solutions = NS(hands=NS(Hands=Hands))
'''


@pytest.mark.ros
def test_node_publishes_the_hand_it_sees_in_the_camera_frame_and_closes_mediapipe(tmp_path):
    import json
    import os
    import signal
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import CameraInfo, Image
    from worldscape_msgs.msg import HandKeypoints

    truth = hand_keypoints(HandState(np.array([0.04, 0.02, 0.55]), curl=0.3))
    res = _results(truth, 'Left', 0.9)
    spec = {'image': [[p.x, p.y, p.z] for p in res.multi_hand_landmarks[0].landmark],
            'world': [[p.x, p.y, p.z] for p in res.multi_hand_world_landmarks[0].landmark],
            'label': 'Left', 'score': 0.9}
    (tmp_path / 'mediapipe').mkdir()
    (tmp_path / 'mediapipe' / '__init__.py').write_text(FAKE_MEDIAPIPE)
    domain = str(100 + os.getpid() % 120)
    env = dict(os.environ, ROS_DOMAIN_ID=domain, FAKE_HANDS_RESULTS=json.dumps(spec), FAKE_HANDS_LOG=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(domain))
    node = rclpy.create_node('tracker_probe', context=context)
    got: list = []
    node.create_subscription(HandKeypoints, 'hand_keypoints', got.append, 10)
    info_pub = node.create_publisher(CameraInfo, 'camera_info', 10)
    image_pub = node.create_publisher(Image, 'image_raw', 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    padded = np.zeros((H, W * 3 + 8), np.uint8)  # rows padded beyond width * 3: the node must cut them off
    padded[:, :W * 3] = rgb[..., ::-1].reshape(H, W * 3)
    image = Image(height=H, width=W, encoding='bgr8', step=W * 3 + 8, data=padded.tobytes())
    image.header.frame_id = 'camera_optical_frame'
    image.header.stamp.sec = 7
    proc = subprocess.Popen([sys.executable, '-m', 'worldscape_ros.ros.hand_tracker', '--ros-args', '-p',
                             'max_hands:=2', '-p', 'min_detection_confidence:=0.7'], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not got and proc.poll() is None and time.monotonic() < deadline:
            info_pub.publish(CameraInfo(height=H, width=W, k=k_to_ros(K).flatten().tolist()))
            image_pub.publish(image)
            executor.spin_once(timeout_sec=0.2)
        assert got, 'no HandKeypoints from the tracker'
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    msg = got[0]
    np.testing.assert_allclose([(p.x, p.y, p.z) for p in msg.points], truth, atol=1e-5)
    assert msg.handedness == 'right'  # MediaPipe's 'Left' in an unmirrored image is the person's right hand
    assert list(msg.scores) == pytest.approx([0.9] * 21)
    assert (msg.header.frame_id, msg.header.stamp.sec) == ('camera_optical_frame', 7)
    np.testing.assert_array_equal(np.load(tmp_path / 'first_image.npy'), rgb)  # BGR -> RGB, padding dropped
    assert (tmp_path / 'contiguous').read_text() == 'True'
    assert json.loads((tmp_path / 'options.json').read_text()) == {
        'static_image_mode': False, 'max_num_hands': 2, 'min_detection_confidence': 0.7,
        'min_tracking_confidence': 0.5}
    assert (tmp_path / 'closed').is_file()
