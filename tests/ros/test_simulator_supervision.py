"""The simulator node under abuse (issue 19): a supervised generation loop, services that never block, and every
bad input refused where it enters with the field and the value named.

The engine is a randomly initialised ws-tiny run paused (frames only from ~/step), except where the shipped
checkpoint is needed to reproduce a failure the random weights do not show.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from typing import Any

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import Odometry
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image
from sim_harness import REPO, TIMEOUT, Harness
from std_srvs.srv import Trigger
from worldscape_msgs.msg import HandKeypoints
from worldscape_msgs.srv import ResetFromImage, StepFrames

from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.model.pixel_convention import k_to_ros
from worldscape_ros.ros import conversions as conv

SHIPPED = REPO / 'models' / 'ws-tiny.safetensors'


class Logged:
    """Lines the node logs at warning and error level (wraps its logger)."""

    def __init__(self, node: Any) -> None:
        self.lines: list[str] = []
        logger = node.get_logger()
        warning, error = logger.warning, logger.error

        # one call site per severity: rclpy's logger refuses a call site whose severity changes
        def log_warning(msg: str, **kwargs: Any) -> Any:
            self.lines.append(msg)
            return warning(msg, **kwargs)

        def log_error(msg: str, **kwargs: Any) -> Any:
            self.lines.append(msg)
            return error(msg, **kwargs)

        logger.warning, logger.error = log_warning, log_error

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


class FailingSteps:
    """Replaces engine.step: the first `fail` calls raise (forever with fail < 0), the rest go to the engine."""

    def __init__(self, engine: Any, fail: int) -> None:
        self.engine, self.fail, self.calls = engine, fail, 0
        self.original = engine.step
        engine.step = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.fail < 0 or self.calls <= self.fail:
            raise RuntimeError(f'injected failure {self.calls}')
        return self.original(*args, **kwargs)

    def remove(self) -> None:
        del self.engine.step


def wait_until(predicate: Any, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.01)


def call_async(sim: Harness, srv_type: Any, name: str, request: Any) -> tuple[Any, threading.Event]:
    client = sim.probe.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=TIMEOUT)
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    return future, done


def pose_msg(T: np.ndarray, frame: str = 'odom') -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose = conv.matrix_to_pose(T)
    return msg


def far_pose() -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (1e30, -1e30, 1e30)  # finding 1: an identity rotation at 1e30 m
    return T


def diagnostics_values(sim: Harness) -> dict[str, str]:
    diag = sim.subscribe(DiagnosticArray, '/diagnostics')
    status = diag.wait_for(1)[-1].status[0]
    return {kv.key: kv.value for kv in status.values} | {'level': str(int.from_bytes(status.level, 'little')
                                                                      if isinstance(status.level, bytes)
                                                                      else status.level),
                                                         'message': status.message}


@pytest.fixture(scope='module')
def sim():
    h = Harness()
    h.start()
    h.odom = h.subscribe(Odometry, 'odom')
    h.logged = Logged(h.node)
    yield h
    h.close()


# ---- finding 1: a finite but absurd pose ----------------------------------------------------------------------
def test_a_camera_pose_at_1e30_is_refused_where_it_enters_and_the_node_keeps_publishing(sim):
    rejected = sim.node.rejected_inputs
    for _ in range(3):
        sim.publish(PoseStamped, 'camera_pose', pose_msg(far_pose()), 'camera_pose')
    assert sim.node.rejected_inputs == rejected + 3
    assert sim.logged.matching('outside the working range (|x|, |y|, |z| <= max_position=1000 m)')
    count = len(sim.odom.msgs)
    sim.step(2)
    odom = sim.odom.wait_for(count + 2)[-1]
    assert abs(odom.pose.pose.position.x) < 1000


def test_the_shipped_model_failing_on_a_1e30_pose_is_recovered_and_generation_goes_on():
    """The pose reaches the engine past the entry check (as a pose the working range allows but the model cannot
    take would): its step raises, the supervisor drops it, stands still, counts it, and frames keep coming."""
    h = Harness({'checkpoint': 'default', 'denoising_steps': 0})
    try:
        h.start()
        logged = Logged(h.node)
        odom = h.subscribe(Odometry, 'odom')
        h.step(1)
        before = odom.wait_for(1)[-1]
        h.node._inbox.set_pose(far_pose(), h.node.sim_time_ns)
        response = h.step(1)  # answered with a frame: the stand-still one
        assert response.frames_generated == 1
        after = odom.wait_for(2)[-1]
        np.testing.assert_allclose(conv.pose_to_matrix(after.pose.pose), conv.pose_to_matrix(before.pose.pose),
                                   atol=1e-9)
        failures = logged.matching('step failed (ValueError: summary of chunk')
        assert len(failures) == 1 and 'dropped the inputs and stood still' in failures[0]
        assert not logged.matching('inference thread stopped')
        values = diagnostics_values(h)
        assert (values['failed_steps'], values['recovered_steps']) == ('1', '1')
        assert values['message'].startswith('recovered: step failed')
        h.step(3)
        assert len(odom.wait_for(5)) == 5
        assert h.call(Trigger, '/simulator/reset').success
        h.step(2)
        assert len(odom.wait_for(7)) == 7
    finally:
        h.close()


def test_a_step_that_raises_is_dropped_and_the_session_stands_still(sim):
    sim.step(1)
    count = len(sim.odom.msgs)
    before = sim.odom.msgs[-1]
    failures = sim.node._supervisor.failed_steps
    sim.publish(Twist, 'cmd_vel', _twist(vx=1.0), 'cmd_vel')
    patch = FailingSteps(sim.node.engine, fail=1)
    try:
        assert sim.step(2).frames_generated == 2
    finally:
        patch.remove()
    msgs = sim.odom.wait_for(count + 2)
    assert sim.node._supervisor.failed_steps == failures + 1
    assert msgs[-2].twist.twist.linear.x == 0.0  # the failed frame stood still
    assert msgs[-1].twist.twist.linear.x == 0.0  # its input was dropped: the command does not come back
    np.testing.assert_allclose(conv.pose_to_matrix(msgs[-1].pose.pose), conv.pose_to_matrix(before.pose.pose),
                               atol=1e-9)


def test_when_standing_still_fails_too_the_session_restarts_from_its_start(sim):
    assert sim.call(Trigger, '/simulator/reset').success
    sim.step(1)
    start = sim.odom.wait_for(1)[-1]
    sim.publish(Twist, 'cmd_vel', _twist(vx=1.0, wz=0.4), 'cmd_vel')
    sim.step(3)
    resets = sim.node._supervisor.resets_after_failure
    patch = FailingSteps(sim.node.engine, fail=2)  # the step and the stand-still step after it
    try:
        sim.step(1)
    finally:
        patch.remove()
    assert sim.node._supervisor.resets_after_failure == resets + 1
    latest = sim.odom.wait_for(1)[-1]
    np.testing.assert_allclose(conv.pose_to_matrix(latest.pose.pose), conv.pose_to_matrix(start.pose.pose),
                               atol=1e-9)
    assert sim.logged.matching('reset to the start')


def test_when_every_recovery_fails_the_node_goes_through_error_processing_and_can_start_again():
    h = Harness()
    try:
        h.start()
        logged = Logged(h.node)
        patch = FailingSteps(h.node.engine, fail=-1)
        h.node._reset_engine = lambda: (_ for _ in ()).throw(RuntimeError('no start either'))
        response = h.call(StepFrames, '/simulator/step', StepFrames.Request(frames=3))
        assert not response.success and 'cancelled' in response.message
        wait_until(lambda: h.node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED,
                   'the node to leave the active state')
        assert logged.matching('leaving the active state through error processing')
        assert logged.matching('error processing: step failed (RuntimeError: injected failure')
        assert h.node.engine is None
        reset = h.call(Trigger, '/simulator/reset')  # the services still answer, and say why they cannot
        assert not reset.success and reset.message == 'not configured'
        del patch, h.node._reset_engine
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert h.step(2).frames_generated == 2
    finally:
        h.close()


def test_reset_restarts_generation_when_the_inference_thread_is_gone(sim):
    sim.node._loop.stop('the test stopped it')  # as if the thread had died
    response = sim.call(StepFrames, '/simulator/step', StepFrames.Request(frames=1))
    assert not response.success and 'not active' in response.message
    reset = sim.call(Trigger, '/simulator/reset')
    assert reset.success and 'generation restarted' in reset.message
    count = len(sim.odom.msgs)
    sim.step(2)
    sim.odom.wait_for(count + 2)


# ---- finding 2: services while steps run ----------------------------------------------------------------------
def test_step_asking_for_more_than_max_step_frames_or_none_is_refused(sim):
    for frames in (4294967295, 0):
        response = sim.call(StepFrames, '/simulator/step', StepFrames.Request(frames=frames))
        assert not response.success
        assert f'frames={frames} must be in [1, max_step_frames=1000]' in response.message


def test_state_queries_and_pause_are_answered_while_a_long_step_runs_and_pause_cancels_it(sim):
    start = sim.node.frames_generated
    future, done = call_async(sim, StepFrames, '/simulator/step', StepFrames.Request(frames=1000))
    wait_until(lambda: sim.node.frames_generated >= start + 2, 'the step to start')
    state = sim.call(GetState, '/simulator/get_state')
    assert state.current_state.id == State.PRIMARY_STATE_ACTIVE
    assert not done.is_set()  # answered while the step was still running
    assert sim.call(Trigger, '/simulator/pause').success
    assert done.wait(TIMEOUT)
    response = future.result()
    made = sim.node.frames_generated - start
    assert not response.success and 'cancelled by ~/pause' in response.message
    assert 2 <= response.frames_generated == made < 1000
    time.sleep(0.2)
    assert sim.node.frames_generated - start == made  # nothing after the pause


def test_deactivating_while_a_step_runs_answers_the_step_and_activating_again_works(sim):
    start = sim.node.frames_generated
    future, done = call_async(sim, StepFrames, '/simulator/step', StepFrames.Request(frames=1000))
    wait_until(lambda: sim.node.frames_generated >= start + 1, 'the step to start')
    request = ChangeState.Request()
    request.transition.id = Transition.TRANSITION_DEACTIVATE
    assert sim.call(ChangeState, '/simulator/change_state', request).success
    assert done.wait(TIMEOUT)
    response = future.result()
    assert not response.success and 'deactivated' in response.message
    request.transition.id = Transition.TRANSITION_ACTIVATE
    assert sim.call(ChangeState, '/simulator/change_state', request).success
    assert sim.step(1).frames_generated == 1


def test_a_step_longer_than_step_timeout_answers_with_the_frames_made():
    h = Harness({'step_timeout': 0.5})
    try:
        h.start()
        response = h.call(StepFrames, '/simulator/step', StepFrames.Request(frames=1000))
        assert not response.success and 'timed out after step_timeout=0.5 s' in response.message
        assert response.frames_generated < 1000
        assert h.step(1).frames_generated == 1  # the next request is served normally
    finally:
        h.close()


# ---- finding 3: garbage refused where it enters ---------------------------------------------------------------
def _start_request(sim: Harness, depth: np.ndarray | None = None, K: np.ndarray | None = None) -> Any:
    cfg = sim.node.engine.config
    request = ResetFromImage.Request()
    request.image = conv.numpy_to_image(np.full((cfg.height, cfg.width, 3), 90, np.uint8), 'rgb8', 0, 'c')
    request.pose = conv.matrix_to_pose(camera_pose(BaseState(height=cfg.camera_height)))
    if depth is not None:
        request.depth = conv.depth_to_image(depth, 0, 'c')
    if K is not None:
        request.camera_info = conv.camera_info(K, cfg.width, cfg.height, 0, 'c')
    return request


@pytest.mark.parametrize('depth_value, K_focal, reason', [
    (np.inf, None, 'finite positive values in 0.0% of the pixels'),
    (-5.0, None, 'depth must be positive metres'),
    (0.0, None, 'depth must be positive metres'),
    (None, 1e30, 'camera_info.k fx=1e+30 gives a'),
])
def test_reset_from_image_refuses_depth_and_intrinsics_that_are_not_a_camera(sim, depth_value, K_focal, reason):
    cfg = sim.node.engine.config
    depth = None if depth_value is None else np.full((cfg.height, cfg.width), depth_value, np.float32)
    K = None
    if K_focal is not None:
        K = np.array([[K_focal, 0, cfg.width / 2], [0, K_focal, cfg.height / 2], [0, 0, 1]])
    response = sim.call(ResetFromImage, '/simulator/reset_from_image', _start_request(sim, depth, K))
    assert not response.success and reason in response.message


def test_reset_after_a_reset_from_image_with_camera_info_brings_back_the_models_camera(sim):
    cfg = sim.node.engine.config
    model_K = intrinsics_from_fov(cfg.width, cfg.height, cfg.vfov_deg)
    other = np.array([[100.0, 0, 60.0], [0, 100.0, 50.0], [0, 0, 1]])
    assert sim.call(ResetFromImage, '/simulator/reset_from_image', _start_request(sim, K=other)).success
    np.testing.assert_allclose(sim.node.engine.intrinsics, other)
    assert sim.call(ResetFromImage, '/simulator/reset_from_image', _start_request(sim)).success
    np.testing.assert_allclose(sim.node.engine.intrinsics, model_K)  # no camera_info: the model's camera
    assert sim.call(ResetFromImage, '/simulator/reset_from_image', _start_request(sim, K=other)).success
    assert sim.call(Trigger, '/simulator/reset').success
    np.testing.assert_allclose(sim.node.engine.intrinsics, model_K, atol=1e-9)
    info = sim.subscribe(CameraInfo, 'camera/camera_info')
    sim.step(1)
    np.testing.assert_allclose(np.reshape(info.wait_for(1)[-1].k, (3, 3)), k_to_ros(model_K), atol=1e-9)


def test_cmd_vel_of_1e308_is_clamped_to_finite_limits_without_an_overflow_warning(sim):
    msg = _twist(vx=1e308, wz=-1e308)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # an overflow RuntimeWarning fails the test
        sim.node._warn.forget('clamp cmd_vel')
        sim.node._inputs.on_cmd_vel(msg)
    line = sim.logged.matching('cmd_vel [1e+308')[-1]
    assert 'inf' not in line and 'clamped to [2, 0, 0, -2, 0]' in line
    count = len(sim.odom.msgs)
    sim.step(1)
    odom = sim.odom.wait_for(count + 1)[-1]
    assert (odom.twist.twist.linear.x, odom.twist.twist.angular.z) == (2.0, -2.0)


def _hands(handedness: str = 'right', z: float = 0.5, x: float = 0.0) -> HandKeypoints:
    msg = HandKeypoints()
    msg.header.frame_id = 'camera_optical_frame'
    msg.handedness = handedness
    for i, p in enumerate(msg.points):
        p.x, p.y, p.z = x + 0.01 * (i % 5), 0.01 * (i // 5), z
    msg.scores = [1.0] * 21
    return msg


def test_hand_keypoints_with_garbage_handedness_far_points_or_points_behind_the_camera_are_refused():
    h = Harness({'mode': 'manipulation'})
    try:
        h.start()
        logged = Logged(h.node)
        rejected = h.node.rejected_inputs
        for msg, reason in [(_hands(handedness='\x00garbage☃'), "handedness must be 'left' or 'right'"),
                            (_hands(x=1e30), 'farther than 3 m from the camera'),
                            (_hands(z=-0.3), 'at or behind the camera plane')]:
            h.node._warn.forget()
            h.publish(HandKeypoints, 'hand_keypoints', msg, 'hand_keypoints')
            assert logged.matching(reason), reason
        assert h.node.rejected_inputs == rejected + 3
        h.publish(HandKeypoints, 'hand_keypoints', _hands(handedness='left'), 'hand_keypoints')
        assert h.node.rejected_inputs == rejected + 3
        assert h.step(1).frames_generated == 1
    finally:
        h.close()


def test_velocity_commands_stop_at_the_edge_of_the_working_range(tmp_path):
    start = tmp_path / 'start.npy'
    np.save(start, np.full((96, 128, 3), 90, np.uint8))
    h = Harness({'start_image': str(start), 'max_position': 1.0})  # an image start sits at the odom origin
    try:
        h.start()
        odom = h.subscribe(Odometry, 'odom')
        for _ in range(8):  # 2 m/s at 10 fps: 0.2 m a frame
            h.publish(Twist, 'cmd_vel', _twist(vx=5.0), 'cmd_vel')
            h.step(1)
        msgs = odom.wait_for(8)
        xs = [m.pose.pose.position.x for m in msgs]
        assert max(abs(x) for x in xs) <= 1.0 + 1e-9
        assert msgs[-1].twist.twist.linear.x == 0.0 and xs[-1] == pytest.approx(xs[-2])
    finally:
        h.close()


def test_an_unknown_parameter_is_refused_at_configure_listing_the_known_ones():
    h = Harness(cli_args=['--ros-args', '-p', 'width:=0'])
    try:
        logged = Logged(h.node)
        assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        line = logged.matching('unknown parameter width')[-1]
        assert '(the simulator knows: model_config, checkpoint, device' in line
    finally:
        h.close()


def test_a_checkpoint_path_that_is_a_directory_is_named_as_one(tmp_path):
    h = Harness({'checkpoint': str(tmp_path)})
    try:
        logged = Logged(h.node)
        assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert logged.matching(f"checkpoint '{tmp_path}' is a directory: give the path of its .safetensors file")
    finally:
        h.close()


def _twist(vx: float = 0.0, wz: float = 0.0) -> Twist:
    t = Twist()
    t.linear.x, t.angular.z = vx, wz
    return t


class CommandDuringDiT:
    """Wraps the engine's DiT pass: the first pass publishes `vx` on cmd_vel and returns once the node has it, as
    a command arriving while the frame is being made."""

    def __init__(self, sim: Harness, vx: float) -> None:
        self.sim, self.vx, self.sent = sim, vx, False
        self.engine = sim.node.engine
        self.original = self.engine._denoise
        self.engine._denoise = self

    def __call__(self, *args: Any) -> Any:
        out = self.original(*args)
        if not self.sent:
            self.sent = True
            self.sim.publish(Twist, 'cmd_vel', _twist(vx=self.vx), 'cmd_vel')
        return out

    def remove(self) -> None:
        del self.engine._denoise


@pytest.mark.parametrize('drop', [True, False])
def test_a_command_arriving_while_a_frame_is_made_is_in_that_frame_when_stale_frames_are_dropped(sim, drop):
    params = sim.node.params
    sim.node.params = dataclasses.replace(params, drop_stale_frames=drop)
    sim.publish(Twist, 'cmd_vel', _twist(vx=0.2), 'cmd_vel')
    sim.step(1)
    count, dropped = len(sim.odom.msgs), sim.node._stale_frames
    patch = CommandDuringDiT(sim, vx=0.6)
    try:
        assert sim.step(1).frames_generated == 1
    finally:
        patch.remove()
        sim.node.params = params
    assert patch.sent
    msgs = sim.odom.wait_for(count + 1)
    # given up after its DiT pass and made again from the newer command; or, kept, made from the older one
    assert msgs[-1].twist.twist.linear.x == (0.6 if drop else 0.2)
    assert sim.node._stale_frames == dropped + drop
    time.sleep(0.2)
    assert len(sim.odom.msgs) == count + 1  # one frame out, not two
    sim.publish(Twist, 'cmd_vel', _twist(), 'cmd_vel')


def test_images_keep_coming_after_all_of_this(sim):
    images = sim.subscribe(Image, 'camera/image_raw')
    sim.step(2)
    assert len(images.wait_for(2)) >= 2
