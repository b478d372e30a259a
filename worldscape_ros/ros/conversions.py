"""numpy <-> rclpy messages for the simulator: images, camera info, odometry, transforms, hand keypoints.

The fields themselves (quaternions, stamps, camera info, twist, covariances, frame names) come from
tools/msg_fields.py, which the rosbags messages of offline rollouts share.

No cv_bridge (PyPI's cv-bridge is a ROS 1 port that fails on NumPy 2); images go through `np.frombuffer` / `.tobytes()`.
Conventions: REP-103 frames, REP-118 depth (32FC1 metres along the optical z axis, 16UC1 millimetres),
camera-to-world poses with OpenCV axes (the `*_optical` frame). Bad input raises ValueError naming the field.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, Quaternion, Transform, TransformStamped, Twist, Vector3
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from worldscape_ros.model.kinematics import BaseState, NavAction, base_pose
from worldscape_ros.model.pixel_convention import k_from_ros
from worldscape_ros.tools.msg_fields import (
    HANDEDNESS,
    NUM_HAND_KEYPOINTS,
    camera_info_fields,
    matrix_from_quaternion,
    ns_from_parts,
    odometry_covariance,
    quaternion_from_matrix,
    stamp_parts,
    twist_fields,
)

HAND_RANGE_M = 3.0  # hand keypoints farther than this from the camera (any axis) are not a hand in view
MIN_FOV_DEG, MAX_FOV_DEG = 5.0, 170.0  # cameras a pinhole model of the image can stand for
MAX_DEPTH_M = 1000.0  # start depth beyond this is not a scene the model renders
MIN_DEPTH_SHARE = 0.5  # a start depth must give metres for at least this share of the pixels

# encoding -> (numpy dtype, channels)
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    'rgba8': (np.dtype(np.uint8), 4),
    'bgra8': (np.dtype(np.uint8), 4),
    'mono8': (np.dtype(np.uint8), 1),
    '32FC1': (np.dtype(np.float32), 1),
    '16UC1': (np.dtype(np.uint16), 1),
}


# ---- time ----------------------------------------------------------------------------------------------------
def stamp_from_ns(ns: int) -> Time:
    sec, nanosec = stamp_parts(ns)
    return Time(sec=sec, nanosec=nanosec)


def ns_from_stamp(stamp: Time) -> int:
    return ns_from_parts(stamp.sec, stamp.nanosec)


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=stamp_from_ns(stamp_ns), frame_id=frame_id)


# ---- images --------------------------------------------------------------------------------------------------
def numpy_to_image(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    """(H, W) or (H, W, C) array -> Image with a tight row step, little-endian."""
    if encoding not in _ENCODINGS:
        raise ValueError(f'image encoding {encoding!r} is not supported (one of {sorted(_ENCODINGS)})')
    dtype, channels = _ENCODINGS[encoding]
    arr = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if arr.ndim == 3 and channels == 1 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != expected_ndim or (channels > 1 and arr.shape[2] != channels):
        raise ValueError(f'image array of shape {arr.shape} does not fit encoding {encoding}')
    if arr.dtype != dtype:
        raise ValueError(f'image array of dtype {arr.dtype} does not fit encoding {encoding} ({dtype})')
    arr = np.ascontiguousarray(arr.astype(dtype.newbyteorder('<'), copy=False))
    msg = Image()
    msg.header = header(stamp_ns, frame_id)
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * channels * dtype.itemsize)
    msg.data = arr.tobytes()
    return msg


def rgb_to_image(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    return numpy_to_image(rgb, 'rgb8', stamp_ns, frame_id)


def depth_to_image(depth: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    return numpy_to_image(np.asarray(depth, dtype=np.float32), '32FC1', stamp_ns, frame_id)


def image_to_numpy(msg: Image) -> np.ndarray:
    """Image -> (H, W) or (H, W, C) array, honouring row padding and byte order."""
    if msg.encoding not in _ENCODINGS:
        raise ValueError(f'image.encoding {msg.encoding!r} is not supported (one of {sorted(_ENCODINGS)})')
    dtype, channels = _ENCODINGS[msg.encoding]
    dtype = dtype.newbyteorder('>' if msg.is_bigendian else '<')
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.height == 0 or msg.width == 0:
        raise ValueError(f'image is empty ({msg.width}x{msg.height})')
    if msg.step < row_bytes:
        raise ValueError(f'image.step {msg.step} is smaller than a row ({row_bytes} bytes)')
    if len(msg.data) < msg.step * msg.height:
        raise ValueError(f'image.data holds {len(msg.data)} bytes, expected {msg.step * msg.height}')
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.step * msg.height).reshape(msg.height, msg.step)
    rows = buf[:, :row_bytes]  # drop row padding
    arr = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)  # (H, W, C)
    arr = arr.astype(dtype.newbyteorder('='), copy=False)
    return arr[..., 0] if channels == 1 else arr


def image_to_rgb(msg: Image, height: int | None = None, width: int | None = None) -> np.ndarray:
    """rgb8/bgr8/rgba8/bgra8 Image -> (H, W, 3) uint8 RGB, optionally of a required size."""
    if msg.encoding not in ('rgb8', 'bgr8', 'rgba8', 'bgra8'):
        raise ValueError(f'image.encoding must be rgb8 or bgr8 (or rgba8/bgra8), got {msg.encoding!r}')
    if height is not None and width is not None and (msg.height, msg.width) != (height, width):
        raise ValueError(f'image is {msg.width}x{msg.height}, the model needs {width}x{height}')
    arr = image_to_numpy(msg)
    if msg.encoding.startswith('bgr'):
        arr = arr[..., [2, 1, 0]]
    return np.ascontiguousarray(arr[..., :3])


def image_to_depth(msg: Image, height: int | None = None, width: int | None = None) -> np.ndarray:
    """32FC1 (metres) or 16UC1 (millimetres, 0 = unknown) Image -> (H, W) float32 metres, NaN where unknown."""
    if msg.encoding not in ('32FC1', '16UC1'):
        raise ValueError(f'depth.encoding must be 32FC1 or 16UC1 (REP-118), got {msg.encoding!r}')
    if height is not None and width is not None and (msg.height, msg.width) != (height, width):
        raise ValueError(f'depth is {msg.width}x{msg.height}, the model needs {width}x{height}')
    arr = image_to_numpy(msg)
    if msg.encoding == '16UC1':
        metres = arr.astype(np.float32) / 1000.0
        metres[arr == 0] = np.nan
        return metres
    return arr.astype(np.float32, copy=False)


# ---- cameras -------------------------------------------------------------------------------------------------
def camera_info(K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str) -> CameraInfo:
    """Pinhole CameraInfo with no distortion: P = [K | 0], R = I (a monocular, rectified camera)."""
    f = camera_info_fields(K, width, height)
    msg = CameraInfo()
    msg.header = header(stamp_ns, frame_id)
    msg.width, msg.height = f.width, f.height
    msg.distortion_model = f.distortion_model
    msg.d, msg.k, msg.r, msg.p = f.d.tolist(), f.k.tolist(), f.r.tolist(), f.p.tolist()
    return msg


def camera_info_to_intrinsics(msg: CameraInfo, width: int | None = None, height: int | None = None
                              ) -> np.ndarray | None:
    """CameraInfo.k -> the model's K (3, 3) (k_from_ros: pixel centres at +0.5), or None for an all-zero k
    (meaning: keep the model's camera).

    With the model's `width` and `height`, the camera must also be one the model can render: a field of view
    between MIN_FOV_DEG and MAX_FOV_DEG on both axes and the principal point inside the image.
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.any(k):
        return None
    if (not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1.0
            or k[1, 0] != 0 or k[2, 0] != 0 or k[2, 1] != 0):
        raise ValueError(f'camera_info.k is not a pinhole matrix: {k.reshape(-1).tolist()}')
    if width is not None and height is not None:
        for name, focal, size in (('fx', k[0, 0], width), ('fy', k[1, 1], height)):
            fov = math.degrees(2.0 * math.atan(0.5 * size / focal))
            if not MIN_FOV_DEG <= fov <= MAX_FOV_DEG:
                raise ValueError(f'camera_info.k {name}={focal:.6g} gives a {fov:.3g} deg field of view over '
                                 f'{size} px; it must be within [{MIN_FOV_DEG:g}, {MAX_FOV_DEG:g}] deg')
        for name, centre, size in (('cx', k[0, 2], width), ('cy', k[1, 2], height)):
            if not 0.0 <= centre <= size:
                raise ValueError(f'camera_info.k {name}={centre:.6g} must lie inside the image [0, {size}]')
        skew_limit = 0.1 * k[0, 0]
        if abs(k[0, 1]) > skew_limit:
            raise ValueError(f'camera_info.k skew={k[0, 1]:.6g} must be within +-10% of fx')
    return k_from_ros(k)


def check_depth(depth: np.ndarray, name: str = 'depth') -> np.ndarray:
    """A start depth (H, W) metres as REP-118 allows it (NaN unknown, +-inf out of range), refused when it is not
    depth: finite values must lie in (0, MAX_DEPTH_M], and at least MIN_DEPTH_SHARE of the pixels must hold one.
    Returns float32 with the out-of-range markers as NaN (unknown) for the engine."""
    d = np.asarray(depth, dtype=np.float32)
    finite = np.isfinite(d)
    if finite.any():
        lo, hi = float(d[finite].min()), float(d[finite].max())
        if lo <= 0.0:
            raise ValueError(f'{name} must be positive metres (REP-118: -inf too near, NaN unknown), '
                             f'found {lo:.6g}')
        if hi > MAX_DEPTH_M:
            raise ValueError(f'{name} must be at most {MAX_DEPTH_M:g} m (+inf: too far), found {hi:.6g}')
    share = float(finite.mean()) if d.size else 0.0
    if share < MIN_DEPTH_SHARE:
        raise ValueError(f'{name} has finite positive values in {100 * share:.1f}% of the pixels; at least '
                         f'{100 * MIN_DEPTH_SHARE:.0f}% are needed')
    return np.where(finite, d, np.float32(np.nan))


# ---- rotations and poses -------------------------------------------------------------------------------------
def pose_to_matrix(pose: Pose, name: str = 'pose') -> np.ndarray:
    """geometry_msgs/Pose -> 4x4; raises ValueError on a non-finite position or a non-unit quaternion."""
    p = np.array([pose.position.x, pose.position.y, pose.position.z], dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise ValueError(f'{name}.position must be finite, got {p.tolist()}')
    o = pose.orientation
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion([o.x, o.y, o.z, o.w], name=f'{name}.orientation')
    T[:3, 3] = p
    return T


def matrix_to_pose(T: np.ndarray) -> Pose:
    q = quaternion_from_matrix(T[:3, :3])
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    pose.orientation = Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))
    return pose


def matrix_to_transform(T: np.ndarray, stamp_ns: int, parent: str, child: str) -> TransformStamped:
    """4x4 parent<-child -> TransformStamped (the pose of `child` in `parent`)."""
    q = quaternion_from_matrix(T[:3, :3])
    tf = TransformStamped()
    tf.header = header(stamp_ns, parent)
    tf.child_frame_id = child
    tf.transform = Transform(
        translation=Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        rotation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )
    return tf


def transform_to_matrix(tf: Transform) -> np.ndarray:
    T = np.eye(4)
    r = tf.rotation
    T[:3, :3] = matrix_from_quaternion([r.x, r.y, r.z, r.w], name='transform.rotation')
    T[:3, 3] = (tf.translation.x, tf.translation.y, tf.translation.z)
    return T


# ---- robot base ----------------------------------------------------------------------------------------------
def twist_to_action(msg: Twist) -> NavAction:
    """Twist (base frame) -> NavAction: linear.x/y/z, angular.z yaw rate, angular.y camera pitch rate.

    Raises ValueError naming the first non-finite component.
    """
    fields = {'linear.x': msg.linear.x, 'linear.y': msg.linear.y, 'linear.z': msg.linear.z,
              'angular.y': msg.angular.y, 'angular.z': msg.angular.z}
    for name, value in fields.items():
        if not math.isfinite(value):
            raise ValueError(f'cmd_vel {name} must be finite, got {value}')
    return NavAction(vx=msg.linear.x, vy=msg.linear.y, vz=msg.linear.z, yaw_rate=msg.angular.z,
                     pitch_rate=msg.angular.y)


def action_to_twist(action: NavAction) -> Twist:
    linear, angular = twist_fields(action)
    return Twist(linear=Vector3(x=float(linear[0]), y=float(linear[1]), z=float(linear[2])),
                 angular=Vector3(x=float(angular[0]), y=float(angular[1]), z=float(angular[2])))


def odometry(state: BaseState, twist: NavAction, stamp_ns: int, odom_frame: str, base_frame: str) -> Odometry:
    """Odometry of the base: pose in `odom_frame`, twist (the applied command) in `base_frame`."""
    msg = Odometry()
    msg.header = header(stamp_ns, odom_frame)
    msg.child_frame_id = base_frame
    msg.pose.pose = matrix_to_pose(base_pose(state))
    msg.twist.twist = action_to_twist(twist)
    msg.pose.covariance = odometry_covariance().tolist()
    msg.twist.covariance = odometry_covariance().tolist()
    return msg


# ---- hands ---------------------------------------------------------------------------------------------------
def hand_keypoints_to_numpy(msg: object, expected_frame: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """HandKeypoints -> points (21, 3) metres in the optical frame, scores (21,) in [0, 1].

    Raises ValueError for a wrong count, a wrong frame, a handedness other than 'left' or 'right', non-finite
    points, points farther than HAND_RANGE_M, a visible point (score > 0) at or behind the camera plane, or scores
    outside [0, 1].
    """
    points = list(msg.points)  # type: ignore[attr-defined]
    scores = np.asarray(list(msg.scores), dtype=np.float32)  # type: ignore[attr-defined]
    if len(points) != NUM_HAND_KEYPOINTS or scores.shape != (NUM_HAND_KEYPOINTS,):
        raise ValueError(f'hand keypoints must have {NUM_HAND_KEYPOINTS} points and scores, '
                         f'got {len(points)} points and {scores.size} scores')
    frame = msg.header.frame_id  # type: ignore[attr-defined]
    if expected_frame is not None and frame != expected_frame:
        raise ValueError(f'hand keypoints header.frame_id must be {expected_frame!r}, got {frame!r}')
    handedness = msg.handedness  # type: ignore[attr-defined]
    if handedness not in HANDEDNESS:
        raise ValueError(f"hand keypoints handedness must be 'left' or 'right', got {handedness!r}")
    xyz = np.array([[p.x, p.y, p.z] for p in points], dtype=np.float64)  # (21, 3)
    if not np.all(np.isfinite(xyz)):
        raise ValueError('hand keypoints points must be finite')
    if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise ValueError('hand keypoints scores must be in [0, 1]')
    far = np.abs(xyz).max(axis=1)
    if far.max() > HAND_RANGE_M:
        i = int(far.argmax())
        raise ValueError(f'hand keypoints points[{i}] = {format_values(xyz[i])} is farther than '
                         f'{HAND_RANGE_M:g} m from the camera')
    behind = (scores > 0) & (xyz[:, 2] <= 0)
    if behind.any():
        i = int(np.flatnonzero(behind)[0])
        raise ValueError(f'hand keypoints points[{i}] = {format_values(xyz[i])} is visible (score '
                         f'{scores[i]:.3g}) but at or behind the camera plane (z must be > 0 in the optical frame)')
    return xyz, scores


def format_values(values: np.ndarray) -> str:
    """Values for a message, never overflowing (1e308 stays 1e+308)."""
    return '[' + ', '.join(f'{float(v):.4g}' for v in np.asarray(values).reshape(-1)) + ']'


def format_action(action: NavAction) -> str:
    return format_values(action.to_array())
