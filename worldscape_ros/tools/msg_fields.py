"""ROS message fields as plain numbers, for both message builders: ros/conversions.py (rclpy messages, the live
node) and tools/messages.py (rosbags messages, offline rollouts and bags). One definition of each field, so the
bag an offline rollout writes holds what the node publishes.

No rclpy, no rosbags: quaternions (x, y, z, w) with w >= 0, stamps as (sec, nanosec), the pinhole CameraInfo
of a 3x3 K, the Twist of an action, odometry covariances, the camera mount on /tf_static, and the default
frame names (REP-103 and REP-105: odom -> base_link -> camera_link -> camera_optical_frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldscape_ros.model.kinematics import R_LINK_OPTICAL, BaseState, NavAction, base_to_camera_link
from worldscape_ros.model.pixel_convention import k_to_ros

ODOM_FRAME = 'odom'
BASE_FRAME = 'base_link'
CAMERA_LINK_FRAME = 'camera_link'
OPTICAL_FRAME = 'camera_optical_frame'  # images, camera info and hand keypoints are in this frame

# msg/HandKeypoints.msg: fixed arrays of the MediaPipe hand's landmarks (model.hands.NUM_KEYPOINTS)
NUM_HAND_KEYPOINTS = 21
HANDEDNESS = ('left', 'right')

ODOM_VARIANCE = 1e-6  # the imagined world has no odometry noise: small, diagonal covariances


# ---- time ----------------------------------------------------------------------------------------------------
def stamp_parts(ns: int) -> tuple[int, int]:
    """Nanoseconds -> builtin_interfaces/Time (sec, nanosec)."""
    if ns < 0:
        raise ValueError(f'stamp must be non-negative, got {ns} ns')
    return int(ns // 1_000_000_000), int(ns % 1_000_000_000)


def ns_from_parts(sec: int, nanosec: int) -> int:
    return int(sec) * 1_000_000_000 + int(nanosec)


# ---- rotations -----------------------------------------------------------------------------------------------
def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) -> unit quaternion (x, y, z, w) with w >= 0 (Shepperd's method)."""
    m = np.asarray(R, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = np.array([(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s])
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def matrix_from_quaternion(q: np.ndarray | list[float], name: str = 'orientation') -> np.ndarray:
    """Quaternion (x, y, z, w), unit within 1e-3 -> rotation (3, 3); ValueError naming `name` otherwise."""
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or abs(n - 1.0) > 1e-3:
        raise ValueError(f'{name} must be a finite unit quaternion, got norm {n}')
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


# ---- cameras -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraInfoFields:
    """sensor_msgs/CameraInfo of a monocular, rectified pinhole camera: no distortion, R = I, P = [K | 0]."""

    width: int
    height: int
    d: np.ndarray  # (5,) plumb_bob coefficients, all zero
    k: np.ndarray  # (9,) row-major K
    r: np.ndarray  # (9,) identity
    p: np.ndarray  # (12,) row-major [K | 0]
    distortion_model: str = 'plumb_bob'


def camera_info_fields(K: np.ndarray, width: int, height: int) -> CameraInfoFields:
    """The CameraInfo of the model's K (pixel centres at +0.5), in ROS's pixel convention (k_to_ros)."""
    k = np.asarray(K, dtype=np.float64)
    if k.shape != (3, 3) or not np.all(np.isfinite(k)):
        raise ValueError(f'intrinsics must be a finite 3x3 matrix, got shape {k.shape}')
    k = k_to_ros(k)
    P = np.zeros((3, 4))  # (3, 4)
    P[:, :3] = k
    return CameraInfoFields(width=int(width), height=int(height), d=np.zeros(5), k=k.reshape(9).copy(),
                            r=np.eye(3).reshape(9), p=P.reshape(12))


def camera_mount(state: BaseState, base_frame: str = BASE_FRAME, link_frame: str = CAMERA_LINK_FRAME,
                 optical_frame: str = OPTICAL_FRAME) -> list[tuple[np.ndarray, str, str]]:
    """The /tf_static chain base -> camera link -> optical frame as (4x4 parent<-child, parent, child)."""
    T_link_opt = np.eye(4)
    T_link_opt[:3, :3] = R_LINK_OPTICAL
    return [(base_to_camera_link(state), base_frame, link_frame), (T_link_opt, link_frame, optical_frame)]


# ---- motion --------------------------------------------------------------------------------------------------
def twist_fields(action: NavAction | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A command (NavAction or its 5 values vx, vy, vz, yaw_rate, pitch_rate) -> Twist (linear, angular):
    angular.z is the yaw rate, angular.y the camera's pitch rate."""
    a = action.to_array() if isinstance(action, NavAction) else np.asarray(action, dtype=np.float64).reshape(5)
    return np.array([a[0], a[1], a[2]], dtype=np.float64), np.array([0.0, a[4], a[3]], dtype=np.float64)


def odometry_covariance() -> np.ndarray:
    """(36,) row-major 6x6 covariance of Odometry's pose and twist."""
    return (ODOM_VARIANCE * np.eye(6)).reshape(36)
