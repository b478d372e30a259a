"""numpy -> ROS messages: images, TF and odometry agree with model.kinematics."""

import math

import numpy as np
import pytest

from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.tools import messages as M


def _quat_to_matrix(x, y, z, w):
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _tf_matrix(t):
    T = np.eye(4)
    r, p = t.transform.rotation, t.transform.translation
    T[:3, :3] = _quat_to_matrix(r.x, r.y, r.z, r.w)
    T[:3, 3] = (p.x, p.y, p.z)
    return T


def test_tf_chain_reproduces_the_camera_pose_of_the_kinematics():
    state = BaseState(x=1.0, y=-2.0, z=0.1, yaw=2.5, pitch=0.3, height=1.2)
    odom = M.odom_tf(state, 0).transforms[0]
    static = M.static_camera_tfs(state, 0).transforms
    assert (odom.header.frame_id, odom.child_frame_id) == ('odom', 'base_link')
    chain = _tf_matrix(odom) @ _tf_matrix(static[0]) @ _tf_matrix(static[1])
    np.testing.assert_allclose(chain, camera_pose(state), atol=1e-9)


def test_images_round_trip_and_stamp_is_sim_time():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    depth = np.array([[0.5, np.inf], [np.nan, 3.0]], np.float32)
    m = M.image_rgb8(rgb, 1_500_000_000)
    assert (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (1, 500_000_000, 'camera_optical_frame')
    np.testing.assert_array_equal(M.image_to_numpy(m), rgb)
    d = M.image_to_numpy(M.image_depth32(depth, 0))
    np.testing.assert_array_equal(d, depth)
    with pytest.raises(ValueError, match='rgb must be'):
        M.image_rgb8(np.zeros((2, 3), np.uint8), 0)
    with pytest.raises(ValueError, match='hand keypoints must be'):
        M.hand_keypoints(np.zeros((20, 3)), 0)


def test_twist_and_odometry_follow_the_action_convention():
    t = M.twist(np.array([0.5, 0.1, 0.0, 0.3, -0.2]))  # vx, vy, vz, yaw_rate, pitch_rate
    assert (t.linear.x, t.linear.y, t.angular.z, t.angular.y) == (0.5, 0.1, 0.3, -0.2)
    odom = M.odometry(BaseState(x=2.0, yaw=math.pi / 2), np.array([0.5, 0, 0, 0.3, 0]), 0)
    assert odom.pose.pose.position.x == 2.0 and odom.twist.twist.angular.z == 0.3
    assert odom.pose.pose.orientation.z == pytest.approx(math.sqrt(0.5))
