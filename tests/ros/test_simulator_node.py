"""The simulator node through real rclpy: in-process (executor spun in a thread) and as a console-script process.

The engine is a randomly initialised ws-tiny (checkpoint='random'): the real model, untrained. Pacing is off
and the node runs paused, so frames come only from ~/step and every figure is deterministic.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from lifecycle_msgs.msg import State
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from sim_harness import FPS, REPO, Collector, Harness
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from worldscape_msgs.msg import HandKeypoints
from worldscape_msgs.srv import ResetFromImage, StepFrames

from worldscape_ros.model.kinematics import BaseState, base_pose, camera_pose
from worldscape_ros.model.pixel_convention import k_to_ros
from worldscape_ros.ros import conversions as conv
from worldscape_ros.ros.simulator_node import SimulatorNode


def twist(vx: float = 0.0, wz: float = 0.0, vy: float = 0.0) -> Twist:
    t = Twist()
    t.linear.x, t.linear.y, t.angular.z = vx, vy, wz
    return t


def drive(sim: Harness, command: Twist, frames: int) -> None:
    """Send the command before every frame, as a teleop publishing at the frame rate would."""
    for _ in range(frames):
        sim.publish(Twist, 'cmd_vel', command, 'cmd_vel')
        sim.step(1)


def yaw_of(odom: Odometry) -> float:
    return float(np.arctan2(*conv.pose_to_matrix(odom.pose.pose)[[1, 0], 0]))


def xy_of(odom: Odometry) -> np.ndarray:
    return np.array([odom.pose.pose.position.x, odom.pose.pose.position.y])


@pytest.fixture(scope='module')
def sim():
    h = Harness()
    h.start()
    h.odom = h.subscribe(Odometry, 'odom')
    yield h
    h.close()


@pytest.fixture
def fresh(sim):
    """The module's simulator with no command and its odometry history cleared (tests measure relative motion)."""
    sim.publish(Twist, 'cmd_vel', twist(), 'cmd_vel')
    sim.odom.clear()
    return sim


# ---- outputs ---------------------------------------------------------------------------------------------------
def test_every_output_arrives_with_its_type_encoding_frame_and_sim_stamp(fresh):
    sim = fresh
    tf_static = sim.subscribe(TFMessage, '/tf_static', QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    topics = {name: sim.subscribe(t, name) for name, t in [
        ('camera/image_raw', Image), ('camera/camera_info', CameraInfo), ('camera/depth/image_raw', Image),
        ('camera/depth/camera_info', CameraInfo), ('/clock', Clock), ('/tf', TFMessage),
        ('/diagnostics', DiagnosticArray)]}
    first = sim.node.frames_generated + 1
    sim.step(3)
    stamps = [int(round((first + i) * 1e9 / FPS)) for i in range(3)]
    engine = sim.node.engine
    H, W = engine.config.height, engine.config.width

    rgb = topics['camera/image_raw'].wait_for(3)
    assert [conv.ns_from_stamp(m.header.stamp) for m in rgb[-3:]] == stamps
    assert all(m.encoding == 'rgb8' and m.header.frame_id == 'camera_optical_frame' for m in rgb)
    assert conv.image_to_numpy(rgb[-1]).shape == (H, W, 3)
    depth = topics['camera/depth/image_raw'].wait_for(3)
    assert [conv.ns_from_stamp(m.header.stamp) for m in depth[-3:]] == stamps
    d = conv.image_to_depth(depth[-1])
    assert depth[-1].encoding == '32FC1' and d.shape == (H, W) and np.all(np.isfinite(d)) and d.min() > 0
    for name in ('camera/camera_info', 'camera/depth/camera_info'):
        info = topics[name].wait_for(3)[-1]
        assert (info.width, info.height) == (W, H)
        assert info.header.frame_id == 'camera_optical_frame'
        assert conv.ns_from_stamp(info.header.stamp) == stamps[-1]
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), k_to_ros(engine.intrinsics))  # centres at 0, 1, ...
        np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], k_to_ros(engine.intrinsics))
    clocks = topics['/clock'].wait_for(3)
    assert [conv.ns_from_stamp(m.clock) for m in clocks[-3:]] == stamps
    odom = sim.odom.wait_for(3)[-1]
    assert (odom.header.frame_id, odom.child_frame_id) == ('odom', 'base_link')
    assert conv.ns_from_stamp(odom.header.stamp) == stamps[-1]
    tf = topics['/tf'].wait_for(3)[-1].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ('odom', 'base_link')
    static = {t.child_frame_id: t for t in tf_static.wait_for(1)[-1].transforms}
    assert static['camera_link'].header.frame_id == 'base_link'
    assert static['camera_optical_frame'].header.frame_id == 'camera_link'
    diag = topics['/diagnostics'].wait_for(1)[-1].status[0]
    values = {kv.key: kv.value for kv in diag.values}
    assert {'real_time_factor', 'frame_latency_ms', 'cache_bytes', 'device'} <= set(values)
    assert values['device'] == 'cpu' and int(values['cache_bytes']) > 0


def test_tf_chain_and_odometry_agree_with_the_image_pose(fresh):
    sim = fresh
    tf_msgs = sim.subscribe(TFMessage, '/tf')
    tf_static = sim.subscribe(TFMessage, '/tf_static', QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    sim.publish(Twist, 'cmd_vel', twist(vx=0.5, wz=0.3), 'cmd_vel')
    sim.step(4)
    odom = sim.odom.wait_for(4)[-1]
    by_stamp = {conv.ns_from_stamp(m.transforms[0].header.stamp): m.transforms[0] for m in tf_msgs.wait_for(4)}
    tf = by_stamp[conv.ns_from_stamp(odom.header.stamp)]
    np.testing.assert_allclose(conv.transform_to_matrix(tf.transform), conv.pose_to_matrix(odom.pose.pose),
                               atol=1e-9)
    # odom -> base_link -> camera_link -> camera_optical_frame is the camera pose the model was conditioned on
    static = {t.child_frame_id: conv.transform_to_matrix(t.transform) for t in tf_static.wait_for(1)[-1].transforms}
    chain = conv.transform_to_matrix(tf.transform) @ static['camera_link'] @ static['camera_optical_frame']
    np.testing.assert_allclose(chain, camera_pose(sim.node.engine.state), atol=1e-6)
    np.testing.assert_allclose(conv.pose_to_matrix(odom.pose.pose), base_pose(sim.node.engine.state), atol=1e-6)


# ---- motion ----------------------------------------------------------------------------------------------------
def test_one_metre_per_second_for_one_sim_second_moves_odom_one_metre(fresh):
    sim = fresh
    sim.step(1)
    start = sim.odom.wait_for(1)[-1]
    drive(sim, twist(vx=1.0), int(FPS))
    end = sim.odom.wait_for(1 + int(FPS))[-1]
    dt = (conv.ns_from_stamp(end.header.stamp) - conv.ns_from_stamp(start.header.stamp)) / 1e9
    assert dt == pytest.approx(1.0)
    heading = np.array([math.cos(yaw_of(start)), math.sin(yaw_of(start))])
    moved = xy_of(end) - xy_of(start)
    assert float(moved @ heading) == pytest.approx(1.0, abs=1e-6)
    assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-6)
    assert end.twist.twist.linear.x == pytest.approx(1.0)


def test_yaw_rate_integrates_to_the_commanded_angle(fresh):
    sim = fresh
    sim.step(1)
    start = sim.odom.wait_for(1)[-1]
    drive(sim, twist(wz=0.5), int(FPS))
    end = sim.odom.wait_for(1 + int(FPS))[-1]
    turned = math.remainder(yaw_of(end) - yaw_of(start), 2 * math.pi)
    assert turned == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_allclose(xy_of(end), xy_of(start), atol=1e-9)
    assert end.twist.twist.angular.z == pytest.approx(0.5)


def test_fps_parameter_sets_sim_time_per_frame_and_motion_per_sim_second_stays_right():
    h = Harness({'fps': 5.0})  # half the model's rate: each frame is 0.2 s of sim time
    try:
        h.start()
        odom = h.subscribe(Odometry, 'odom')
        h.step(1)
        start = odom.wait_for(1)[-1]
        drive(h, twist(vx=1.0), 5)
        end = odom.wait_for(6)[-1]
        stamps = [conv.ns_from_stamp(m.header.stamp) for m in odom.msgs]
        assert np.diff(stamps).tolist() == [200_000_000] * 5
        assert np.linalg.norm(xy_of(end) - xy_of(start)) == pytest.approx(1.0, abs=1e-6)
    finally:
        h.close()


def test_cmd_vel_silence_longer_than_the_timeout_stops_the_base(fresh):
    sim = fresh  # cmd_vel_timeout 0.5 s of sim time
    sim.step(1)
    start = sim.odom.wait_for(1)[-1]
    sim.publish(Twist, 'cmd_vel', twist(vx=1.0), 'cmd_vel')
    sim.step(7)  # 0.7 s of sim time after one command
    msgs = sim.odom.wait_for(8)
    moved = np.linalg.norm(xy_of(msgs[-1]) - xy_of(start))
    assert moved == pytest.approx(0.5, abs=1e-6)  # the command held for 0.5 s, then the base stopped
    assert [m.twist.twist.linear.x for m in msgs[1:]] == [1.0] * 5 + [0.0] * 2
    np.testing.assert_allclose(xy_of(msgs[-1]), xy_of(msgs[-2]), atol=1e-12)


def test_camera_pose_input_moves_the_camera_to_the_given_pose(fresh):
    sim = fresh
    target = camera_pose(BaseState(x=0.3, y=-0.2, yaw=0.4, height=sim.node.engine.config.camera_height))
    msg = PoseStamped()
    msg.header.frame_id = 'odom'
    msg.pose = conv.matrix_to_pose(target)
    sim.publish(PoseStamped, 'camera_pose', msg, 'camera_pose')
    sim.step(1)
    odom = sim.odom.wait_for(1)[-1]
    assert odom.pose.pose.position.x == pytest.approx(0.3, abs=1e-6)
    assert odom.pose.pose.position.y == pytest.approx(-0.2, abs=1e-6)
    assert yaw_of(odom) == pytest.approx(0.4, abs=1e-6)
    np.testing.assert_allclose(camera_pose(sim.node.engine.state), target, atol=1e-6)


# ---- services --------------------------------------------------------------------------------------------------
def test_reset_returns_to_the_start_and_sim_time_keeps_running(fresh):
    sim = fresh
    assert sim.call(Trigger, '/simulator/reset').success
    sim.step(1)
    first = sim.odom.wait_for(1)[-1]
    sim.publish(Twist, 'cmd_vel', twist(vx=1.0, wz=0.5), 'cmd_vel')
    sim.step(3)
    assert sim.call(Trigger, '/simulator/reset').success
    sim.step(1)
    again = sim.odom.wait_for(5)[-1]
    np.testing.assert_allclose(conv.pose_to_matrix(again.pose.pose), conv.pose_to_matrix(first.pose.pose),
                               atol=1e-9)
    assert again.twist.twist.linear.x == 0.0  # the reset dropped the command
    assert conv.ns_from_stamp(again.header.stamp) > conv.ns_from_stamp(first.header.stamp)


def test_pause_holds_frames_resume_restarts_them_and_step_makes_exactly_n(fresh):
    sim = fresh
    images = sim.subscribe(Image, 'camera/image_raw')
    response = sim.step(4)
    assert response.frames_generated == 4
    assert len(images.wait_for(4)) == 4
    time.sleep(0.3)
    assert len(images.msgs) == 4  # paused: nothing more
    assert sim.call(Trigger, '/simulator/resume').success
    images.wait_for(8)
    assert sim.call(Trigger, '/simulator/pause').success
    time.sleep(0.2)
    held = len(images.msgs)
    time.sleep(0.3)
    assert len(images.msgs) == held


def test_step_is_refused_while_running(fresh):
    sim = fresh
    assert sim.call(Trigger, '/simulator/resume').success
    try:
        response = sim.call(StepFrames, '/simulator/step', StepFrames.Request(frames=2))
        assert not response.success and 'pause' in response.message
    finally:
        assert sim.call(Trigger, '/simulator/pause').success


def _start_request(sim, pose: np.ndarray, rgb: np.ndarray | None = None, encoding: str = 'rgb8'):
    cfg = sim.node.engine.config
    if rgb is None:
        rgb = np.zeros((cfg.height, cfg.width, 3), np.uint8)
        rgb[:, : cfg.width // 2] = (200, 120, 40)
    request = ResetFromImage.Request()
    request.image = conv.numpy_to_image(rgb, encoding, 0, 'camera_optical_frame')
    request.pose = conv.matrix_to_pose(pose)
    return request


def test_reset_from_image_starts_at_the_given_pose(fresh):
    sim = fresh
    height = sim.node.engine.config.camera_height
    pose = camera_pose(BaseState(x=2.0, y=1.0, yaw=-0.7, height=height))
    response = sim.call(ResetFromImage, '/simulator/reset_from_image', _start_request(sim, pose))
    assert response.success, response.message
    sim.step(1)
    odom = sim.odom.wait_for(1)[-1]
    assert xy_of(odom) == pytest.approx([2.0, 1.0], abs=1e-6)
    assert yaw_of(odom) == pytest.approx(-0.7, abs=1e-6)


# ---- bad input: logged, rejected, and the node keeps publishing ------------------------------------------------
def _still_publishing(sim) -> Odometry:
    count = len(sim.odom.msgs)
    sim.step(1)
    return sim.odom.wait_for(count + 1)[-1]


def test_non_finite_cmd_vel_is_ignored_and_the_previous_command_kept(fresh):
    sim = fresh
    sim.publish(Twist, 'cmd_vel', twist(vx=0.5), 'cmd_vel')
    rejected = sim.node.rejected_inputs
    sim.publish(Twist, 'cmd_vel', twist(vx=float('nan')), 'cmd_vel')
    sim.publish(Twist, 'cmd_vel', twist(wz=float('inf')), 'cmd_vel')
    assert sim.node.rejected_inputs == rejected + 2
    odom = _still_publishing(sim)
    assert odom.twist.twist.linear.x == pytest.approx(0.5)


def test_absurd_velocity_is_clamped_to_the_limits(fresh):
    sim = fresh
    sim.step(1)
    start = sim.odom.wait_for(1)[-1]
    sim.publish(Twist, 'cmd_vel', twist(vx=1e6, wz=-1e6), 'cmd_vel')
    sim.step(1)
    odom = sim.odom.wait_for(2)[-1]
    limits = sim.node.params
    assert odom.twist.twist.linear.x == pytest.approx(limits.max_linear_velocity)
    assert odom.twist.twist.angular.z == pytest.approx(-limits.max_angular_velocity)
    moved = np.linalg.norm(xy_of(odom) - xy_of(start))
    assert moved == pytest.approx(limits.max_linear_velocity / FPS, abs=1e-6)


def test_bad_camera_poses_are_ignored(fresh):
    sim = fresh
    sim.step(1)
    before = sim.odom.wait_for(1)[-1]
    wrong_frame = PoseStamped()
    wrong_frame.header.frame_id = 'map'
    wrong_frame.pose = conv.matrix_to_pose(camera_pose(BaseState(x=5.0)))
    not_unit = PoseStamped()
    not_unit.header.frame_id = 'odom'
    not_unit.pose.orientation.w = 3.0
    rejected = sim.node.rejected_inputs
    for msg in (wrong_frame, not_unit):
        sim.publish(PoseStamped, 'camera_pose', msg, 'camera_pose')
    assert sim.node.rejected_inputs == rejected + 2
    after = _still_publishing(sim)
    np.testing.assert_allclose(xy_of(after), xy_of(before), atol=1e-12)


@pytest.mark.parametrize('mutate, reason', [
    (lambda r: setattr(r, 'image', conv.numpy_to_image(np.zeros((10, 12, 3), np.uint8), 'rgb8', 0, 'c')),
     'the model needs'),
    (lambda r: setattr(r, 'image', conv.numpy_to_image(np.zeros((96, 128), np.float32), '32FC1', 0, 'c')),
     'encoding'),
    (lambda r: setattr(r.pose.orientation, 'w', 0.2), 'orientation'),
    (lambda r: setattr(r, 'depth', conv.numpy_to_image(np.zeros((96, 128), np.uint8), 'mono8', 0, 'c')),
     'depth.encoding'),
])
def test_reset_from_a_bad_image_is_refused_and_the_session_continues(fresh, mutate, reason):
    sim = fresh
    sim.step(1)
    before = sim.odom.wait_for(1)[-1]
    request = _start_request(sim, camera_pose(BaseState(x=9.0, height=sim.node.engine.config.camera_height)))
    mutate(request)
    response = sim.call(ResetFromImage, '/simulator/reset_from_image', request)
    assert not response.success
    assert reason in response.message
    after = _still_publishing(sim)
    np.testing.assert_allclose(xy_of(after), xy_of(before), atol=1e-12)  # the session was not replaced


def _keypoints(frame_id: str = 'camera_optical_frame', z: float = 0.5) -> HandKeypoints:
    msg = HandKeypoints()
    msg.header.frame_id = frame_id
    msg.handedness = 'right'
    for i, p in enumerate(msg.points):
        p.x, p.y, p.z = 0.01 * (i % 5) - 0.02, 0.01 * (i // 5) - 0.02, z
    msg.scores = [1.0] * 21
    return msg


def test_manipulation_mode_draws_hands_and_rejects_bad_keypoints():
    h = Harness({'mode': 'manipulation'})
    try:
        h.start()
        odom = h.subscribe(Odometry, 'odom')
        pose_video = h.subscribe(Image, 'debug/pose_video')
        h.publish(HandKeypoints, 'hand_keypoints', _keypoints(), 'hand_keypoints')
        h.step(1)
        video = pose_video.wait_for(1)[-1]
        assert video.encoding == 'rgb8' and video.header.frame_id == 'camera_optical_frame'
        assert conv.image_to_numpy(video).any()  # the skeleton is drawn
        rejected = h.node.rejected_inputs
        h.publish(HandKeypoints, 'hand_keypoints', _keypoints(frame_id='world'), 'hand_keypoints')
        h.publish(HandKeypoints, 'hand_keypoints', _keypoints(z=float('nan')), 'hand_keypoints')
        assert h.node.rejected_inputs == rejected + 2
        h.step(2)
        assert len(odom.wait_for(3)) == 3
    finally:
        h.close()


# ---- lifecycle and configuration -------------------------------------------------------------------------------
def test_lifecycle_transitions_through_its_services_start_stop_and_free_the_model():
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    h = Harness({'start_paused': False})

    def change(transition: int) -> None:  # what `ros2 lifecycle set /simulator ...` calls
        request = ChangeState.Request()
        request.transition.id = transition
        assert h.call(ChangeState, '/simulator/change_state', request).success

    def state() -> int:
        return h.call(GetState, '/simulator/get_state').current_state.id

    try:
        images = h.subscribe(Image, 'camera/image_raw')
        change(Transition.TRANSITION_CONFIGURE)
        assert state() == State.PRIMARY_STATE_INACTIVE
        time.sleep(0.2)
        assert not images.msgs  # configured, not active: silent
        change(Transition.TRANSITION_ACTIVATE)
        assert state() == State.PRIMARY_STATE_ACTIVE
        images.wait_for(3)
        change(Transition.TRANSITION_DEACTIVATE)
        time.sleep(0.2)
        held = len(images.msgs)
        time.sleep(0.3)
        assert len(images.msgs) == held
        change(Transition.TRANSITION_CLEANUP)
        assert state() == State.PRIMARY_STATE_UNCONFIGURED and h.node.engine is None
        change(Transition.TRANSITION_CONFIGURE)
        change(Transition.TRANSITION_ACTIVATE)
        images.wait_for(held + 2)
        stamps = [conv.ns_from_stamp(m.header.stamp) for m in images.msgs]
        assert stamps == sorted(set(stamps))  # sim time never repeats or runs back across the transitions
    finally:
        h.close()


class ConfigureErrors(list):
    """Error lines the node logs (wraps its logger's error method)."""

    def __init__(self, node: SimulatorNode) -> None:
        super().__init__()
        logger = node.get_logger()
        original = logger.error
        logger.error = lambda msg, **kw: (self.append(msg), original(msg, **kw))[1]

    def last(self) -> str:
        return self[-1] if self else ''


def _configure_error(overrides: dict[str, Any]) -> tuple[Harness, ConfigureErrors]:
    h = Harness(overrides)
    errors = ConfigureErrors(h.node)
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert h.node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
    return h, errors


@pytest.mark.parametrize('overrides, named', [
    ({'fps': -1.0}, 'fps=-1.0'),
    ({'device': 'tpu'}, 'device='),
    ({'mode': 'flying', 'max_linear_velocity': 0.0}, 'max_linear_velocity=0.0'),
    ({'dtype': 'int8'}, 'dtype='),
    ({'camera_pitch': 3.0}, 'camera_pitch='),
    ({'cmd_vel_timeout': 'soon'}, 'cmd_vel_timeout='),
])
def test_invalid_parameters_are_rejected_at_configure_naming_them(overrides, named):
    h, errors = _configure_error(overrides)
    try:
        assert named in errors.last() and 'invalid simulator parameters' in errors.last()
    finally:
        h.close()


def test_missing_and_corrupt_checkpoints_fail_configure_naming_the_file_then_a_good_one_works(tmp_path):
    missing = tmp_path / 'nope.safetensors'
    h, errors = _configure_error({'checkpoint': str(missing)})
    try:
        assert str(missing) in errors.last() and 'does not exist' in errors.last()
        corrupt = tmp_path / 'corrupt.safetensors'
        corrupt.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a":1}garbage')
        h.node.set_parameters([rclpy.parameter.Parameter('checkpoint', value=str(corrupt))])
        assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert str(corrupt) in errors.last() and 'could not be loaded' in errors.last()
        h.node.set_parameters([rclpy.parameter.Parameter('checkpoint', value='random')])
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    finally:
        h.close()


def test_cuda_requested_without_a_gpu_refuses_to_configure():
    import torch

    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    h, errors = _configure_error({'device': 'cuda'})
    try:
        assert "device='cuda'" in errors.last() and 'CUDA is not available' in errors.last()
    finally:
        h.close()


def test_start_image_of_the_wrong_size_fails_configure_and_the_right_one_starts(tmp_path):
    wrong = tmp_path / 'small.npy'
    np.save(wrong, np.zeros((8, 8, 3), np.uint8))
    h, errors = _configure_error({'start_image': str(wrong)})
    try:
        assert 'start_image' in errors.last() and str(wrong) in errors.last() and '8x8' in errors.last()
        good = tmp_path / 'start.png'
        import imageio.v3 as iio

        iio.imwrite(good, np.full((96, 128, 3), 90, np.uint8))
        h.node.set_parameters([rclpy.parameter.Parameter('start_image', value=str(good))])
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    finally:
        h.close()


def test_memory_budget_caps_the_global_pool_in_bytes_and_says_so():
    from worldscape_ros.ros.params import DESCRIPTIONS

    assert 'global memory pool' in DESCRIPTIONS['memory_budget_mb']  # not the whole cache: sink and window aside
    budget = 8 * 2**20  # two or so ws-tiny chunks (about 3 MiB each)
    h = Harness({'memory_budget_mb': 8.0})
    try:
        h.start()
        assert h.node.engine.memory.config.pool_bytes == budget
        drive(h, twist(vx=2.0, wz=2.0), 30)  # new views: chunks leave the window for the pool
        memory = h.node.engine.memory
        assert 0 < memory.pool_nbytes <= budget
        assert memory.nbytes > memory.pool_nbytes  # the sink and the window are outside the budget
        assert h.node._pool_bytes == memory.pool_nbytes
    finally:
        h.close()


# ---- a separate process: the console script with a params file and the Fast DDS profile ------------------------
def test_console_script_process_publishes_images_to_another_process(tmp_path):
    params = tmp_path / 'sim.yaml'
    params.write_text('/**/simulator:\n  ros__parameters:\n'
                      "    checkpoint: random\n    model_config: ws-tiny\n    device: cpu\n"
                      '    realtime: true\n    fps: 10.0\n')
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(REPO / 'config' / 'fastdds.xml'),
               ROS_DOMAIN_ID=str(100 + os.getpid() % 100),  # apart from other runs on this host
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    exe = Path(sys.executable).with_name('worldscape-sim')
    proc = subprocess.Popen([str(exe), '--ros-args', '--params-file', str(params)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    node = rclpy.create_node('remote_probe', context=context)
    images, clock = Collector(), Collector()
    node.create_subscription(Image, 'camera/image_raw', images, 10)
    node.create_subscription(Clock, '/clock', clock, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 60
        # the two subscriptions are matched one after the other: wait for both, not the first
        while (len(images.msgs) < 3 or not clock.msgs) and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert len(images.msgs) >= 3, f'no images from the simulator process; its output:\n{proc.stdout}'
        msg = images.msgs[-1]
        assert (msg.encoding, msg.width, msg.height) == ('rgb8', 128, 96)
        assert len(msg.data) == 96 * 128 * 3
        assert msg.header.frame_id == 'camera_optical_frame'
        stamps = [conv.ns_from_stamp(m.header.stamp) for m in images.msgs]
        assert stamps == sorted(stamps) and all(s % 100_000_000 == 0 for s in stamps)  # sim time, 1/fps apart
        assert clock.msgs and all(conv.ns_from_stamp(c.clock) % 100_000_000 == 0 for c in clock.msgs)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out


def test_console_script_exits_with_an_error_naming_a_bad_parameter():
    env = dict(os.environ, ROS_DOMAIN_ID=str(100 + (os.getpid() + 1) % 100))
    exe = Path(sys.executable).with_name('worldscape-sim')
    proc = subprocess.run([str(exe), '--ros-args', '-p', 'device:=tpu', '-p', 'checkpoint:=random'], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "device='tpu' must be one of auto, cpu, cuda" in proc.stderr + proc.stdout
