"""numpy -> ROS 2 messages as `rosbags` objects (no rclpy): the messages a rollout records.

Frames and stamps follow the simulator node (docs/ros_interface.md): odom -> base_link per frame on /tf,
base_link -> camera_link -> camera_optical_frame on /tf_static, images rgb8 and 32FC1 metres (REP-118),
all stamps sim time (frame index / fps). The fields themselves come from tools/msg_fields.py, which the rclpy
messages of the node (ros/conversions.py) share.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from worldscape_ros.model.kinematics import BaseState, base_pose
from worldscape_ros.tools.msg_fields import (
    BASE_FRAME,
    NUM_HAND_KEYPOINTS,
    ODOM_FRAME,
    OPTICAL_FRAME,
    camera_info_fields,
    camera_mount,
    ns_from_parts,
    odometry_covariance,
    quaternion_from_matrix,
    stamp_parts,
    twist_fields,
)
from worldscape_ros.tools.msg_fields import CAMERA_LINK_FRAME as CAMERA_LINK_FRAME  # re-exported beside the rest

HAND_KEYPOINTS = 'worldscape_msgs/msg/HandKeypoints'


def msg_dir() -> Path:
    """The package's msg/ folder: the source tree's, or the installed share/worldscape_ros/msg."""
    import sys

    here = Path(__file__).resolve()
    # prefix/lib/pythonX.Y/site-packages/worldscape_ros/tools/messages.py: parents[5] is the install prefix
    # (colcon's install/worldscape_ros, or the venv of a pip install)
    prefixes = (here.parents[5], Path(sys.prefix)) if len(here.parents) > 5 else (Path(sys.prefix),)
    candidates = [here.parents[2] / 'msg', *(p / 'share' / 'worldscape_ros' / 'msg' for p in prefixes)]
    for candidate in candidates:
        if (candidate / 'HandKeypoints.msg').is_file():
            return candidate
    raise FileNotFoundError('cannot find the worldscape msg/ folder (HandKeypoints.msg) in '
                            + ', '.join(str(c) for c in candidates))


@functools.cache
def typestore() -> Typestore:
    """ROS 2 Kilted types plus the custom worldscape_msgs types, registered from the msg/ text."""
    store = get_typestore(Stores.ROS2_KILTED)
    for path in sorted(msg_dir().glob('*.msg')):
        store.register(get_types_from_msg(path.read_text(), f'worldscape_msgs/msg/{path.stem}'))
    return store


def _t(name: str) -> Any:
    return typestore().types[name]


def stamp(ns: int) -> Any:
    sec, nanosec = stamp_parts(ns)
    return _t('builtin_interfaces/msg/Time')(sec=sec, nanosec=nanosec)


def header(ns: int, frame_id: str) -> Any:
    return _t('std_msgs/msg/Header')(stamp=stamp(ns), frame_id=frame_id)


def image_rgb8(rgb: np.ndarray, ns: int, frame_id: str = OPTICAL_FRAME) -> Any:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
    h, w = rgb.shape[:2]
    return _t('sensor_msgs/msg/Image')(header=header(ns, frame_id), height=h, width=w, encoding='rgb8',
                                       is_bigendian=0, step=w * 3,
                                       data=np.frombuffer(np.ascontiguousarray(rgb).tobytes(), np.uint8))


def image_depth32(depth: np.ndarray, ns: int, frame_id: str = OPTICAL_FRAME) -> Any:
    """32FC1 metres along the optical axis (REP-118), little-endian."""
    if depth.ndim != 2:
        raise ValueError(f'depth must be (H, W), got {depth.shape}')
    h, w = depth.shape
    data = np.ascontiguousarray(depth, dtype='<f4').tobytes()
    return _t('sensor_msgs/msg/Image')(header=header(ns, frame_id), height=h, width=w, encoding='32FC1',
                                       is_bigendian=0, step=w * 4, data=np.frombuffer(data, np.uint8))


def camera_info(K: np.ndarray, width: int, height: int, ns: int, frame_id: str = OPTICAL_FRAME) -> Any:
    f = camera_info_fields(K, width, height)
    roi = _t('sensor_msgs/msg/RegionOfInterest')(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _t('sensor_msgs/msg/CameraInfo')(
        header=header(ns, frame_id), height=f.height, width=f.width, distortion_model=f.distortion_model,
        d=f.d, k=f.k, r=f.r, p=f.p, binning_x=0, binning_y=0, roi=roi)


def _vector3(v: np.ndarray | tuple[float, float, float]) -> Any:
    return _t('geometry_msgs/msg/Vector3')(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _quaternion(R: np.ndarray) -> Any:
    x, y, z, w = (float(v) for v in quaternion_from_matrix(R))
    return _t('geometry_msgs/msg/Quaternion')(x=x, y=y, z=z, w=w)


def transform(T: np.ndarray, ns: int, parent: str, child: str) -> Any:
    tf = _t('geometry_msgs/msg/Transform')(translation=_vector3(T[:3, 3]), rotation=_quaternion(T[:3, :3]))
    return _t('geometry_msgs/msg/TransformStamped')(header=header(ns, parent), child_frame_id=child, transform=tf)


def tf_message(transforms: list[Any]) -> Any:
    return _t('tf2_msgs/msg/TFMessage')(transforms=transforms)


def static_camera_tfs(state: BaseState, ns: int) -> Any:
    """base_link -> camera_link -> camera_optical_frame (the camera mount, REP-103 link and optical axes)."""
    return tf_message([transform(T, ns, parent, child) for T, parent, child in camera_mount(state)])


def odom_tf(state: BaseState, ns: int) -> Any:
    return tf_message([transform(base_pose(state), ns, ODOM_FRAME, BASE_FRAME)])


def twist(action: np.ndarray) -> Any:
    """(vx, vy, vz, yaw_rate, pitch_rate) -> geometry_msgs/Twist (angular.z yaw, angular.y pitch)."""
    linear, angular = twist_fields(action)
    return _t('geometry_msgs/msg/Twist')(linear=_vector3(linear), angular=_vector3(angular))


def odometry(state: BaseState, action: np.ndarray, ns: int) -> Any:
    T = base_pose(state)
    point = _t('geometry_msgs/msg/Point')(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3]))
    pose = _t('geometry_msgs/msg/Pose')(position=point, orientation=_quaternion(T[:3, :3]))
    cov = odometry_covariance()
    return _t('nav_msgs/msg/Odometry')(
        header=header(ns, ODOM_FRAME), child_frame_id=BASE_FRAME,
        pose=_t('geometry_msgs/msg/PoseWithCovariance')(pose=pose, covariance=cov),
        twist=_t('geometry_msgs/msg/TwistWithCovariance')(twist=twist(action), covariance=cov.copy()))


def clock(ns: int) -> Any:
    return _t('rosgraph_msgs/msg/Clock')(clock=stamp(ns))


def hand_keypoints(points: np.ndarray, ns: int, handedness: str = 'right', scores: np.ndarray | None = None,
                   frame_id: str = OPTICAL_FRAME) -> Any:
    n = NUM_HAND_KEYPOINTS
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (n, 3):
        raise ValueError(f'hand keypoints must be ({n}, 3), got {pts.shape}')
    sc = np.ones(n, np.float32) if scores is None else np.asarray(scores, dtype=np.float32).reshape(n)
    Point = _t('geometry_msgs/msg/Point')
    return _t(HAND_KEYPOINTS)(header=header(ns, frame_id), handedness=handedness,
                              points=[Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in pts], scores=sc)


def image_to_numpy(msg: Any) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or 32FC1, from rosbags or rclpy) -> (H, W, 3) uint8 or (H, W) float32."""
    data = np.asarray(msg.data, dtype=np.uint8) if not isinstance(msg.data, bytes | bytearray) else \
        np.frombuffer(msg.data, np.uint8)
    if msg.encoding == 'rgb8':
        return data.reshape(msg.height, msg.step)[:, :msg.width * 3].reshape(msg.height, msg.width, 3).copy()
    if msg.encoding == '32FC1':
        dt = '>f4' if msg.is_bigendian else '<f4'
        rows = data.reshape(msg.height, msg.step)[:, :msg.width * 4].copy()
        return rows.view(dt).reshape(msg.height, msg.width).astype(np.float32)
    raise ValueError(f'unsupported image encoding {msg.encoding!r} (expected rgb8 or 32FC1)')


def stamp_ns(msg_stamp: Any) -> int:
    return ns_from_parts(msg_stamp.sec, msg_stamp.nanosec)
