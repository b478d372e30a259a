"""numpy <-> ROS message conversions: round trips, conventions (REP-103/118) and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import Point, Twist
from sensor_msgs.msg import CameraInfo
from worldscape_msgs.msg import HandKeypoints

from worldscape_ros.model.camera import intrinsics_from_fov, unproject_depth
from worldscape_ros.model.kinematics import BaseState, NavAction, base_pose, rot_y, rot_z
from worldscape_ros.ros import conversions as conv


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q if np.linalg.det(q) > 0 else -q


def test_stamp_round_trips_nanoseconds_and_rejects_negative_time():
    for ns in (0, 1, 999_999_999, 1_000_000_000, 123_456_789_012):
        assert conv.ns_from_stamp(conv.stamp_from_ns(ns)) == ns
    with pytest.raises(ValueError, match='non-negative'):
        conv.stamp_from_ns(-1)


def test_rgb_image_round_trips_with_a_tight_step():
    rgb = np.random.default_rng(0).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    msg = conv.rgb_to_image(rgb, 1_500_000_000, 'cam')
    assert (msg.encoding, msg.step, msg.height, msg.width) == ('rgb8', 15, 6, 5)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (1, 500_000_000, 'cam')
    np.testing.assert_array_equal(conv.image_to_numpy(msg), rgb)
    np.testing.assert_array_equal(conv.image_to_rgb(msg, 6, 5), rgb)


def test_depth_32fc1_round_trips_in_metres_keeping_inf_and_nan():
    depth = np.array([[0.5, np.inf], [-np.inf, np.nan]], np.float32)
    msg = conv.depth_to_image(depth, 0, 'cam')
    assert msg.encoding == '32FC1' and msg.step == 8
    np.testing.assert_array_equal(conv.image_to_depth(msg), depth)


def test_depth_16uc1_is_millimetres_and_zero_means_unknown():
    msg = conv.numpy_to_image(np.array([[1500, 0]], np.uint16), '16UC1', 0, 'cam')
    out = conv.image_to_depth(msg)
    assert out[0, 0] == pytest.approx(1.5) and math.isnan(out[0, 1])


def test_image_reader_honours_row_padding_big_endian_and_bgr():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = conv.rgb_to_image(rgb[..., ::-1].copy(), 0, 'cam')
    msg.encoding = 'bgr8'
    padded = b''.join(bytes(msg.data[r * 9:(r + 1) * 9]) + b'\xff\xff\xff' for r in range(2))
    msg.step, msg.data = 12, padded
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)
    depth = np.array([[1.25, 2.5]], np.float32)
    big = conv.depth_to_image(depth, 0, 'cam')
    big.is_bigendian, big.data = 1, depth.astype('>f4').tobytes()
    np.testing.assert_array_equal(conv.image_to_depth(big), depth)


def test_image_errors_name_the_field():
    msg = conv.rgb_to_image(np.zeros((4, 4, 3), np.uint8), 0, 'cam')
    with pytest.raises(ValueError, match='the model needs 8x6'):
        conv.image_to_rgb(msg, 6, 8)
    with pytest.raises(ValueError, match='depth.encoding must be 32FC1 or 16UC1'):
        conv.image_to_depth(msg)
    msg.encoding = 'yuv422'
    with pytest.raises(ValueError, match="image.encoding 'yuv422' is not supported"):
        conv.image_to_numpy(msg)
    short = conv.rgb_to_image(np.zeros((4, 4, 3), np.uint8), 0, 'cam')
    short.data = bytes(10)
    with pytest.raises(ValueError, match='image.data holds 10 bytes'):
        conv.image_to_numpy(short)
    with pytest.raises(ValueError, match='does not fit encoding rgb8'):
        conv.numpy_to_image(np.zeros((4, 4), np.uint8), 'rgb8', 0, 'cam')
    with pytest.raises(ValueError, match='dtype float64 does not fit encoding 32FC1'):
        conv.numpy_to_image(np.zeros((4, 4)), '32FC1', 0, 'cam')


def test_a_depth_image_back_projected_the_ros_way_with_the_published_k_gives_the_models_points():
    import torch

    rng = np.random.default_rng(0)
    K = intrinsics_from_fov(128, 96, 60.0)
    K[0, 2] += 3.25  # an off-centre camera too
    depth = rng.uniform(0.5, 5.0, (96, 128))
    model = unproject_depth(torch.from_numpy(depth), torch.eye(4, dtype=torch.float64), torch.from_numpy(K)).numpy()
    k = np.reshape(conv.camera_info(K, 128, 96, 0, 'c').k, (3, 3))
    v, u = np.mgrid[0:96, 0:128]  # depth_image_proc: pixel (u, v) at whole-number coordinates
    ros = np.stack([(u - k[0, 2]) / k[0, 0] * depth, (v - k[1, 2]) / k[1, 1] * depth, depth], axis=-1)
    np.testing.assert_allclose(ros, model, atol=1e-9)
    np.testing.assert_allclose(conv.camera_info_to_intrinsics(conv.camera_info(K, 128, 96, 0, 'c')), K)


def test_camera_info_carries_the_intrinsics_in_k_and_p_with_pixel_centres_at_whole_numbers():
    K = intrinsics_from_fov(128, 96, 60.0)
    info = conv.camera_info(K, 128, 96, 7, 'camera_optical_frame')
    assert (info.width, info.height, info.distortion_model) == (128, 96, 'plumb_bob')
    k = np.reshape(info.k, (3, 3))
    # a centred camera, as OpenCV and depth_image_proc read it: the principal point between the middle pixels
    assert (k[0, 2], k[1, 2]) == (63.5, 47.5) and k[0, 0] == K[0, 0] and k[1, 1] == K[1, 1]
    np.testing.assert_allclose(np.reshape(info.p, (3, 4)), np.hstack([k, np.zeros((3, 1))]))
    np.testing.assert_allclose(np.reshape(info.r, (3, 3)), np.eye(3))
    np.testing.assert_allclose(conv.camera_info_to_intrinsics(info), K)
    assert conv.camera_info_to_intrinsics(CameraInfo()) is None  # all-zero k: keep the model's camera
    bad = conv.camera_info(K, 128, 96, 0, 'c')
    bad.k[0] = -1.0
    with pytest.raises(ValueError, match='camera_info.k is not a pinhole matrix'):
        conv.camera_info_to_intrinsics(bad)


def test_quaternions_round_trip_rotations_including_half_turns():
    rng = np.random.default_rng(1)
    rotations = [random_rotation(rng) for _ in range(50)]
    rotations += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0]), np.eye(3)]
    for R in rotations:
        q = conv.quaternion_from_matrix(R)
        assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
        np.testing.assert_allclose(conv.matrix_from_quaternion(q), R, atol=1e-9)


def test_yaw_quaternion_follows_rep_103():
    q = conv.quaternion_from_matrix(rot_z(math.pi / 2))  # a quarter turn left about z up
    np.testing.assert_allclose(q, [0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-12)


def test_non_unit_or_non_finite_quaternions_are_refused():
    with pytest.raises(ValueError, match='orientation must be a finite unit quaternion, got norm 2'):
        conv.matrix_from_quaternion([0, 0, 0, 2])
    zero = conv.matrix_to_pose(np.eye(4))
    zero.orientation.w = 0.0
    with pytest.raises(ValueError, match='pose.orientation'):
        conv.pose_to_matrix(zero)
    pose = conv.matrix_to_pose(np.eye(4))
    pose.position.x = math.nan
    with pytest.raises(ValueError, match='pose.position must be finite'):
        conv.pose_to_matrix(pose)


def test_pose_and_transform_round_trip_a_rigid_matrix():
    rng = np.random.default_rng(2)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = random_rotation(rng), rng.normal(size=3)
    np.testing.assert_allclose(conv.pose_to_matrix(conv.matrix_to_pose(T)), T, atol=1e-12)
    tf = conv.matrix_to_transform(T, 5, 'odom', 'base_link')
    assert (tf.header.frame_id, tf.child_frame_id) == ('odom', 'base_link')
    np.testing.assert_allclose(conv.transform_to_matrix(tf.transform), T, atol=1e-12)


def test_odometry_holds_the_base_pose_and_the_applied_twist():
    state = BaseState(x=1.0, y=-2.0, z=0.1, yaw=0.7, pitch=0.2, height=1.3)
    action = NavAction(vx=0.5, vy=0.1, yaw_rate=-0.3, pitch_rate=0.05)
    odom = conv.odometry(state, action, 42, 'odom', 'base_link')
    assert (odom.header.frame_id, odom.child_frame_id) == ('odom', 'base_link')
    np.testing.assert_allclose(conv.pose_to_matrix(odom.pose.pose), base_pose(state), atol=1e-12)
    assert conv.twist_to_action(odom.twist.twist) == action
    assert np.reshape(odom.pose.covariance, (6, 6)).trace() > 0


def test_twist_maps_to_the_nav_action_axes_and_rejects_non_finite_values():
    t = Twist()
    t.linear.x, t.linear.y, t.linear.z, t.angular.y, t.angular.z = 1.0, 2.0, 3.0, 4.0, 5.0
    assert conv.twist_to_action(t) == NavAction(vx=1.0, vy=2.0, vz=3.0, pitch_rate=4.0, yaw_rate=5.0)
    t.angular.z = math.inf
    with pytest.raises(ValueError, match='cmd_vel angular.z must be finite'):
        conv.twist_to_action(t)


def _hand(frame: str = 'camera_optical_frame') -> HandKeypoints:
    msg = HandKeypoints()
    msg.header.frame_id = frame
    msg.handedness = 'right'
    for i, p in enumerate(msg.points):
        p.x, p.y, p.z = 0.01 * i, -0.01 * i, 0.4
    msg.scores = [0.5] * 21
    return msg


def test_hand_keypoints_convert_to_21_points_in_the_optical_frame():
    xyz, scores = conv.hand_keypoints_to_numpy(_hand(), 'camera_optical_frame')
    assert xyz.shape == (21, 3) and scores.shape == (21,)
    assert xyz[20].tolist() == pytest.approx([0.2, -0.2, 0.4])


def test_bad_hand_keypoints_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="frame_id must be 'camera_optical_frame', got 'world'"):
        conv.hand_keypoints_to_numpy(_hand('world'), 'camera_optical_frame')

    class Short:  # a message whose arrays were built by hand with the wrong count
        header = _hand().header
        points = [Point()] * 20
        scores = [1.0] * 20

    with pytest.raises(ValueError, match='must have 21 points and scores, got 20 points'):
        conv.hand_keypoints_to_numpy(Short())
    nan = _hand()
    nan.points[3].z = math.nan
    with pytest.raises(ValueError, match='points must be finite'):
        conv.hand_keypoints_to_numpy(nan)
    scores = _hand()
    scores.scores[0] = 1.5
    with pytest.raises(ValueError, match=r'scores must be in \[0, 1\]'):
        conv.hand_keypoints_to_numpy(scores)


def test_pitch_rotation_helper_matches_kinematics():
    # guard against a sign slip between conversions and kinematics: pitch down is +rotation about +y
    q = conv.quaternion_from_matrix(rot_y(0.3))
    assert q[1] == pytest.approx(math.sin(0.15))
