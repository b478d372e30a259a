"""Navigation kinematics: integrate velocity actions into a camera pose at the model's frame rate.

Frames (DESIGN.md): the odom/world frame is REP-103 (x forward, y left, z up). The robot base moves in it
with position (x, y, z) and yaw; the camera sits `height` above the base, pitched by `pitch` about the
base's y axis (positive pitch looks down, the right-hand rule about +y). Camera poses are camera-to-world
4x4 matrices with OpenCV axes (x right, y down, z forward), i.e. the ROS `camera_optical_frame`.

Actions follow geometry_msgs/Twist: linear.x forward, linear.y left, linear.z up, angular.z yaw rate,
angular.y camera pitch rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# Rotation from the optical frame (x right, y down, z forward) to the camera link (x forward, y left, z up):
# columns are the optical axes written in link coordinates.
R_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

NAV_ACTION_DIM = 5  # vx, vy, vz, yaw_rate, pitch_rate


@dataclass(frozen=True)
class NavAction:
    """A velocity command in the base frame: m/s and rad/s."""

    vx: float = 0.0
    vy: float = 0.0
    vz: float = 0.0
    yaw_rate: float = 0.0
    pitch_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ('vx', 'vy', 'vz', 'yaw_rate', 'pitch_rate'):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f'action.{name} must be finite, got {value}')

    @classmethod
    def from_array(cls, a: np.ndarray | list[float]) -> NavAction:
        arr = np.asarray(a, dtype=np.float64).reshape(-1)
        if arr.shape != (NAV_ACTION_DIM,):
            raise ValueError(f'action must have {NAV_ACTION_DIM} values (vx, vy, vz, yaw_rate, pitch_rate), '
                             f'got shape {np.asarray(a).shape}')
        return cls(*(float(v) for v in arr))

    def to_array(self) -> np.ndarray:
        return np.array([self.vx, self.vy, self.vz, self.yaw_rate, self.pitch_rate], dtype=np.float64)

    def clamped(self, max_linear: float, max_angular: float) -> NavAction:
        lin = lambda v: float(np.clip(v, -max_linear, max_linear))  # noqa: E731
        ang = lambda v: float(np.clip(v, -max_angular, max_angular))  # noqa: E731
        return NavAction(lin(self.vx), lin(self.vy), lin(self.vz), ang(self.yaw_rate), ang(self.pitch_rate))


@dataclass(frozen=True)
class BaseState:
    """The robot base in the odom frame plus the camera's pitch and mounting height."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    height: float = 1.0


def integrate(state: BaseState, action: NavAction, dt: float, max_pitch: float = math.radians(60)) -> BaseState:
    """Advance the base by one frame of `dt` seconds; translation uses the mid-step heading."""
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f'dt must be positive and finite, got {dt}')
    yaw_mid = state.yaw + 0.5 * action.yaw_rate * dt
    c, s = math.cos(yaw_mid), math.sin(yaw_mid)
    return replace(
        state,
        x=state.x + (c * action.vx - s * action.vy) * dt,
        y=state.y + (s * action.vx + c * action.vy) * dt,
        z=state.z + action.vz * dt,
        yaw=wrap_angle(state.yaw + action.yaw_rate * dt),
        pitch=float(np.clip(state.pitch + action.pitch_rate * dt, -max_pitch, max_pitch)),
    )


def wrap_angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(pitch: float) -> np.ndarray:
    c, s = math.cos(pitch), math.sin(pitch)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def base_pose(state: BaseState) -> np.ndarray:
    """odom -> base_link as a 4x4 matrix."""
    T = np.eye(4)
    T[:3, :3] = rot_z(state.yaw)
    T[:3, 3] = (state.x, state.y, state.z)
    return T


def base_to_camera_link(state: BaseState) -> np.ndarray:
    """base_link -> camera_link (mounted `height` above the base, pitched about y)."""
    T = np.eye(4)
    T[:3, :3] = rot_y(state.pitch)
    T[2, 3] = state.height
    return T


def camera_pose(state: BaseState) -> np.ndarray:
    """Camera-to-world pose with OpenCV axes (the camera_optical_frame in odom)."""
    T_link_opt = np.eye(4)
    T_link_opt[:3, :3] = R_LINK_OPTICAL
    return base_pose(state) @ base_to_camera_link(state) @ T_link_opt


def state_from_camera_pose(c2w: np.ndarray, height: float) -> BaseState:
    """Invert camera_pose for a camera with no roll: recover base position, yaw and pitch."""
    R_link = np.asarray(c2w[:3, :3]) @ R_LINK_OPTICAL.T  # world <- camera_link
    forward = R_link[:, 0]
    yaw = math.atan2(forward[1], forward[0])
    pitch = -math.asin(float(np.clip(forward[2], -1.0, 1.0)))
    pos = np.asarray(c2w[:3, 3]) - np.array([0.0, 0.0, height])
    return BaseState(float(pos[0]), float(pos[1]), float(pos[2]), yaw, pitch, height)
