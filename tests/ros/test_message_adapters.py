"""The rclpy messages of the node (ros/conversions.py) and the rosbags messages of offline rollouts
(tools/messages.py) carry the same fields: a rollout's bag holds what the node publishes."""

import numpy as np

from worldscape_ros.model.kinematics import BaseState, NavAction, base_pose
from worldscape_ros.ros import conversions as conv
from worldscape_ros.tools import messages as M

STATE = BaseState(x=1.0, y=-2.0, z=0.1, yaw=2.5, pitch=0.3, height=1.2)
ACTION = NavAction(vx=0.5, vy=0.1, vz=-0.2, yaw_rate=0.3, pitch_rate=-0.4)
NS = 12_345_678_901
K = np.array([[100.0, 0.0, 64.0], [0.0, 110.0, 48.0], [0.0, 0.0, 1.0]])


def _vec(v):
    return [v.x, v.y, v.z]


def _quat(q):
    return [q.x, q.y, q.z, q.w]


def test_odometry_is_the_same_from_both():
    live = conv.odometry(STATE, ACTION, NS, 'odom', 'base_link')
    bag = M.odometry(STATE, ACTION.to_array(), NS)
    assert (live.header.frame_id, live.child_frame_id) == (bag.header.frame_id, bag.child_frame_id)
    assert (live.header.stamp.sec, live.header.stamp.nanosec) == (bag.header.stamp.sec, bag.header.stamp.nanosec)
    assert _vec(live.pose.pose.position) == _vec(bag.pose.pose.position)
    assert _quat(live.pose.pose.orientation) == _quat(bag.pose.pose.orientation)
    assert _vec(live.twist.twist.linear) == _vec(bag.twist.twist.linear)
    assert _vec(live.twist.twist.angular) == _vec(bag.twist.twist.angular)
    np.testing.assert_array_equal(live.pose.covariance, bag.pose.covariance)
    np.testing.assert_array_equal(live.twist.covariance, bag.twist.covariance)


def test_camera_info_is_the_same_from_both():
    live = conv.camera_info(K, 128, 96, NS, 'camera_optical_frame')
    bag = M.camera_info(K, 128, 96, NS)
    assert (live.width, live.height, live.distortion_model, live.header.frame_id) == (
        bag.width, bag.height, bag.distortion_model, bag.header.frame_id)
    for field in ('d', 'k', 'r', 'p'):
        np.testing.assert_array_equal(getattr(live, field), getattr(bag, field))


def test_transforms_are_the_same_from_both():
    T = base_pose(STATE)
    live = conv.matrix_to_transform(T, NS, 'odom', 'base_link')
    bag = M.odom_tf(STATE, NS).transforms[0]
    assert (live.header.frame_id, live.child_frame_id) == (bag.header.frame_id, bag.child_frame_id)
    assert _vec(live.transform.translation) == _vec(bag.transform.translation)
    assert _quat(live.transform.rotation) == _quat(bag.transform.rotation)
