"""Message fields as plain numbers: quaternions, stamps, camera info, twist and the camera mount agree with the
kinematics; the hand's keypoint count agrees with the model and the message; tools never imports ros."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from worldscape_ros.model import hands
from worldscape_ros.model.kinematics import (
    R_LINK_OPTICAL,
    BaseState,
    NavAction,
    base_pose,
    camera_pose,
    rot_y,
    rot_z,
)
from worldscape_ros.tools import msg_fields as F

REPO = Path(__file__).resolve().parents[2]


def _random_rotation(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_quaternions_round_trip_rotations_on_every_branch_of_shepperds_method():
    rng = np.random.default_rng(1)
    rotations = [_random_rotation(rng) for _ in range(50)]
    rotations += [np.eye(3), np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]
    rotations += [rot_z(a) @ rot_y(0.7) @ R_LINK_OPTICAL for a in (0.0, math.pi, -math.pi / 2, 3.0)]
    for R in rotations:
        q = F.quaternion_from_matrix(R)
        assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
        np.testing.assert_allclose(F.matrix_from_quaternion(q), R, atol=1e-9)


def test_a_yaw_quarter_turn_is_about_z_up():
    np.testing.assert_allclose(F.quaternion_from_matrix(rot_z(math.pi / 2)), [0, 0, math.sqrt(0.5), math.sqrt(0.5)],
                               atol=1e-12)


@pytest.mark.parametrize('q', [[0, 0, 0, 2], [0, 0, 0, 0], [math.nan, 0, 0, 1], [0, 0, math.inf, 1]])
def test_a_quaternion_that_is_not_finite_and_unit_is_refused_by_name(q):
    with pytest.raises(ValueError, match='camera.orientation must be a finite unit quaternion'):
        F.matrix_from_quaternion(q, name='camera.orientation')


def test_stamps_split_into_seconds_and_nanoseconds_and_back():
    for ns in (0, 1, 999_999_999, 1_000_000_000, 12_345_678_901_234):
        sec, nanosec = F.stamp_parts(ns)
        assert 0 <= nanosec < 1_000_000_000 and F.ns_from_parts(sec, nanosec) == ns
    with pytest.raises(ValueError, match='stamp must be non-negative'):
        F.stamp_parts(-1)


def test_camera_info_is_a_rectified_pinhole_of_k_with_pixel_centres_at_whole_numbers():
    K = np.array([[100.0, 0.0, 64.0], [0.0, 110.0, 48.0], [0.0, 0.0, 1.0]])
    f = F.camera_info_fields(K, 128, 96)
    assert (f.width, f.height, f.distortion_model) == (128, 96, 'plumb_bob')
    np.testing.assert_array_equal(f.d, np.zeros(5))
    ros = np.array([[100.0, 0.0, 63.5], [0.0, 110.0, 47.5], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(f.k.reshape(3, 3), ros)
    np.testing.assert_array_equal(f.r.reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(f.p.reshape(3, 4), np.hstack([ros, np.zeros((3, 1))]))
    with pytest.raises(ValueError, match='intrinsics must be a finite 3x3 matrix'):
        F.camera_info_fields(np.full((3, 3), np.nan), 128, 96)


def test_twist_puts_the_yaw_rate_on_angular_z_and_the_pitch_rate_on_angular_y():
    action = NavAction(vx=0.5, vy=0.1, vz=-0.2, yaw_rate=0.3, pitch_rate=-0.4)
    for given in (action, action.to_array()):
        linear, angular = F.twist_fields(given)
        np.testing.assert_array_equal(linear, [0.5, 0.1, -0.2])
        np.testing.assert_array_equal(angular, [0.0, -0.4, 0.3])


def test_the_odom_to_optical_chain_is_the_camera_pose_of_the_kinematics():
    state = BaseState(x=1.0, y=-2.0, z=0.1, yaw=2.5, pitch=0.3, height=1.2)
    (T_base_link, *names1), (T_link_opt, *names2) = F.camera_mount(state)
    assert names1 == [F.BASE_FRAME, F.CAMERA_LINK_FRAME] and names2 == [F.CAMERA_LINK_FRAME, F.OPTICAL_FRAME]
    np.testing.assert_allclose(base_pose(state) @ T_base_link @ T_link_opt, camera_pose(state), atol=1e-12)


def test_odometry_covariance_is_small_and_diagonal():
    cov = F.odometry_covariance().reshape(6, 6)
    np.testing.assert_array_equal(cov, F.ODOM_VARIANCE * np.eye(6))


def test_the_hand_keypoint_count_is_the_models_and_the_messages():
    assert F.NUM_HAND_KEYPOINTS == hands.NUM_KEYPOINTS
    msg = (REPO / 'msg' / 'HandKeypoints.msg').read_text()
    assert f'geometry_msgs/Point[{F.NUM_HAND_KEYPOINTS}] points' in msg
    assert f'float32[{F.NUM_HAND_KEYPOINTS}] scores' in msg


def test_tools_never_imports_the_ros_package():
    """The ROS nodes build on tools (bags, message fields, hand plans); the reverse would be a cycle."""
    offenders = []
    for path in sorted((REPO / 'worldscape_ros' / 'tools').glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ''] if isinstance(node, ast.ImportFrom) else []
            offenders += [f'{path.name}: {n}' for n in names if n.startswith('worldscape_ros.ros')]
    assert not offenders


def test_the_message_fields_load_without_torch():
    # the recorder and the bag tools read them; torch would add seconds to their start and to their exit on Ctrl-C
    import subprocess
    import sys

    code = ('import sys; import worldscape_ros.tools.msg_fields, worldscape_ros.model.pixel_convention; '
            'sys.exit("torch" in sys.modules)')
    assert subprocess.run([sys.executable, '-c', code]).returncode == 0
