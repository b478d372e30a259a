"""Property-based tests (hypothesis) of every way input enters the simulator: conversions, the working range, the
parameters, and the engine's step behind them. Whatever arrives, the answer is a value that satisfies the
documented bounds or a ValueError (ConfigError) naming the field: never another exception, an overflow warning or
a non-finite number."""

from __future__ import annotations

import math
import warnings
from dataclasses import fields
from itertools import count

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import Pose, Twist
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CameraInfo, Image
from worldscape_msgs.msg import HandKeypoints

from worldscape_ros.errors import ConfigError
from worldscape_ros.model.camera import check_intrinsics, check_rigid
from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.ros import conversions as conv
from worldscape_ros.ros.motion import check_working_range, clamp_action
from worldscape_ros.ros.params import VALIDATORS, SimulatorParams, declare_parameters, read_parameters
from worldscape_ros.synthetic.starts import start_from_scene

PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_float = st.floats(allow_nan=True, allow_infinity=True)
wild_float = st.one_of(any_float, st.sampled_from([1e308, -1e308, 1e30, -1e30, 5e-324, 0.0, -0.0]))


@pytest.fixture(autouse=True)
def _overflow_is_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # an overflow or invalid-value warning fails the test
        yield


# ---- cmd_vel -------------------------------------------------------------------------------------------------
@PROPERTIES
@given(st.lists(wild_float, min_size=5, max_size=5), st.floats(0.01, 100), st.floats(0.01, 100))
def test_any_twist_becomes_a_finite_clamped_action_or_a_named_refusal(values, max_linear, max_angular):
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.y, msg.angular.z = values
    try:
        action = conv.twist_to_action(msg)
    except ValueError as exc:
        assert 'cmd_vel' in str(exc) and 'must be finite' in str(exc)
        assert not all(math.isfinite(v) for v in values)
        return
    applied, clamped = clamp_action(action, max_linear, max_angular)
    a = applied.to_array()
    assert np.all(np.isfinite(a))
    assert np.all(np.abs(a[:3]) <= max_linear) and np.all(np.abs(a[3:]) <= max_angular)
    assert clamped == (applied != action)
    assert 'inf' not in conv.format_action(action) + conv.format_action(applied)  # the log line stays finite
    if not clamped:
        assert applied == action


# ---- poses ---------------------------------------------------------------------------------------------------
unit_quaternions = st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 1e-3).map(lambda q: np.asarray(q) / np.linalg.norm(q))


@PROPERTIES
@given(unit_quaternions, st.lists(st.floats(-2000, 2000), min_size=3, max_size=3), st.floats(1, 1e6))
def test_poses_round_trip_and_the_working_range_refuses_exactly_what_lies_outside(q, position, limit):
    T = np.eye(4)
    T[:3, :3] = conv.matrix_from_quaternion(q)
    T[:3, 3] = position
    back = conv.pose_to_matrix(conv.matrix_to_pose(T))
    np.testing.assert_allclose(back, T, atol=1e-9)
    inside = max(abs(v) for v in position) <= limit
    try:
        check_working_range(back, limit, 'camera_pose.pose')
        assert inside
    except ValueError as exc:
        assert not inside and 'outside the working range' in str(exc)


@PROPERTIES
@given(st.lists(wild_float, min_size=7, max_size=7))
def test_any_pose_message_is_a_rigid_transform_or_a_named_refusal(values):
    pose = Pose()
    (pose.position.x, pose.position.y, pose.position.z,
     pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w) = values
    try:
        T = conv.pose_to_matrix(pose, 'camera_pose.pose')
    except ValueError as exc:
        assert 'camera_pose.pose' in str(exc)
        return
    check_rigid(T)


# ---- images, depth, intrinsics -------------------------------------------------------------------------------
@PROPERTIES
@given(st.sampled_from(['rgb8', 'bgr8', 'rgba8', 'mono8', '32FC1', '16UC1', 'yuv422', '', '\x00☃']),
       st.integers(0, 12), st.integers(0, 12), st.integers(0, 80), st.binary(max_size=600), st.integers(0, 1))
def test_any_image_message_decodes_to_its_declared_shape_or_is_refused(encoding, height, width, step, data, big):
    msg = Image(encoding=encoding, height=height, width=width, step=step, data=data, is_bigendian=big)
    try:
        arr = conv.image_to_numpy(msg)
    except ValueError as exc:
        assert str(exc).startswith('image')
        return
    assert arr.shape[:2] == (height, width)


@PROPERTIES
@given(st.lists(wild_float, min_size=9, max_size=9), st.integers(1, 4000), st.integers(1, 4000))
def test_any_camera_info_is_a_renderable_pinhole_camera_or_a_named_refusal(k, width, height):
    info = CameraInfo(k=k, width=width, height=height)
    try:
        K = conv.camera_info_to_intrinsics(info, width, height)
    except ValueError as exc:
        assert str(exc).startswith('camera_info.k')
        return
    if K is None:
        assert not np.any(np.asarray(k))
        return
    check_intrinsics(K)
    for focal, size in ((K[0, 0], width), (K[1, 1], height)):
        fov = math.degrees(2 * math.atan(0.5 * size / focal))
        assert conv.MIN_FOV_DEG <= fov <= conv.MAX_FOV_DEG
    assert 0 <= K[0, 2] <= width and 0 <= K[1, 2] <= height


@PROPERTIES
@given(st.lists(st.one_of(st.floats(-10, 2000, width=32), st.sampled_from([np.inf, -np.inf, np.nan, 0.0])),
                min_size=12, max_size=12))
def test_any_start_depth_is_metres_for_most_pixels_or_a_named_refusal(values):
    depth = np.asarray(values, np.float32).reshape(3, 4)
    try:
        out = conv.check_depth(depth)
    except ValueError as exc:
        assert str(exc).startswith('depth')
        return
    finite = np.isfinite(out)
    assert finite.mean() >= conv.MIN_DEPTH_SHARE
    assert np.all(out[finite] > 0) and np.all(out[finite] <= conv.MAX_DEPTH_M)


@PROPERTIES
@given(st.text(max_size=8), st.lists(wild_float, min_size=63, max_size=63),
       st.lists(st.floats(-0.5, 1.5, width=32), min_size=21, max_size=21))
def test_any_hand_message_is_a_hand_in_front_of_the_camera_or_a_named_refusal(handedness, xyz, scores):
    msg = HandKeypoints()
    msg.header.frame_id = 'camera_optical_frame'
    msg.handedness = handedness
    for i, p in enumerate(msg.points):
        p.x, p.y, p.z = xyz[3 * i:3 * i + 3]
    msg.scores = scores
    try:
        points, sc = conv.hand_keypoints_to_numpy(msg, 'camera_optical_frame')
    except ValueError as exc:
        assert str(exc).startswith('hand keypoints')
        return
    assert handedness in ('left', 'right')
    assert np.all(np.abs(points) <= conv.HAND_RANGE_M)
    assert np.all(points[sc > 0, 2] > 0) and np.all((sc >= 0) & (sc <= 1))


# ---- parameters ----------------------------------------------------------------------------------------------
PARAM_NAMES = [f.name for f in fields(SimulatorParams)]
param_values = st.one_of(st.integers(-2**40, 2**40), wild_float, st.booleans(), st.text(max_size=6),
                         st.sampled_from(['cpu', 'auto', 'float32', 'navigation', 'room', 'odom']))


@pytest.fixture(scope='module')
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


_names = count()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(PARAM_NAMES), param_values, max_size=4))
def test_any_parameter_values_give_valid_params_or_a_config_error_naming_each_bad_one(context, overrides):
    node = rclpy.create_node(f'params_{next(_names)}', context=context)
    try:
        declare_parameters(node, overrides)
        try:
            params = read_parameters(node)
        except ConfigError as exc:
            assert str(exc).startswith('invalid simulator parameters: ')
            bad = [name for name in overrides if f'{name}=' in str(exc)]
            assert bad, str(exc)
            return
        for name, check in VALIDATORS.items():
            assert check(getattr(params, name)) is None, name
    finally:
        node.destroy_node()


# ---- the engine's step behind them ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def engine():
    import torch
    torch.set_num_threads(1)
    from worldscape_ros.model.engine import WorldEngine

    e = WorldEngine.from_pretrained('random', 'ws-tiny', EngineOptions(steps=1))
    start_from_scene(e, 0)
    return e


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(wild_float, min_size=5, max_size=5), st.booleans())
def test_whatever_passes_the_entry_checks_steps_the_engine_to_a_finite_frame(engine, values, as_pose):
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.y, msg.angular.z = values
    try:
        action, _ = clamp_action(conv.twist_to_action(msg), 2.0, 2.0)
    except ValueError:
        return
    motion: NavAction | np.ndarray = action
    if as_pose:  # the same numbers as a camera_pose position, if the working range lets it in
        from worldscape_ros.model.kinematics import BaseState, camera_pose

        target = camera_pose(BaseState(x=values[0] if math.isfinite(values[0]) else 0.0,
                                       height=engine.config.camera_height))
        try:
            check_working_range(target, 1000.0, 'camera_pose.pose')
        except ValueError:
            return
        motion = target
    frame = engine.step(motion)
    assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (engine.config.height, engine.config.width, 3)
    assert np.all(np.isfinite(frame.depth))
    check_rigid(frame.pose)
