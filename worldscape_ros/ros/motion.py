"""How commanded motion is bounded before it reaches the engine: velocity limits, the working range, the rate
difference between the node and the model, and the velocity a pose target implies (for /odom's twist)."""

from __future__ import annotations

import math

import numpy as np

from worldscape_ros.model.kinematics import BaseState, NavAction, integrate, wrap_angle
from worldscape_ros.ros.conversions import format_values


def clamp_action(action: NavAction, max_linear: float, max_angular: float) -> tuple[NavAction, bool]:
    """Clip each axis to its limit (finite in, finite out: np.clip never overflows, even at 1e308)."""
    clamped = action.clamped(max_linear, max_angular)
    return clamped, clamped != action


def check_working_range(c2w: np.ndarray, max_position: float, name: str) -> None:
    """Refuse a camera pose farther than `max_position` metres from the odom origin on any axis: the model's
    rays, geometry and memory are only meaningful where a robot can be (finite is not enough: 1e30 m turns the
    ray embedding into NaN)."""
    position = np.asarray(c2w, dtype=np.float64)[:3, 3]
    if np.abs(position).max() > max_position:
        raise ValueError(f'{name}.position {format_values(position)} is outside the working range '
                         f'(|x|, |y|, |z| <= max_position={max_position:g} m)')


def stays_in_working_range(state: BaseState, motion: NavAction, dt: float, max_position: float) -> bool:
    """Whether `motion` held for `dt` seconds keeps the base within `max_position` metres on every axis."""
    after = integrate(state, motion, dt)
    return max(abs(after.x), abs(after.y), abs(after.z)) <= max_position


def scale_action(action: NavAction, factor: float) -> NavAction:
    return NavAction.from_array(action.to_array() * factor)


def twist_between(a: BaseState, b: BaseState, dt: float) -> NavAction:
    """Velocity in the base frame that moves `a` to `b` in `dt` seconds (for pose following)."""
    c, s = math.cos(a.yaw), math.sin(a.yaw)
    dx, dy = b.x - a.x, b.y - a.y
    return NavAction(vx=(c * dx + s * dy) / dt, vy=(-s * dx + c * dy) / dt, vz=(b.z - a.z) / dt,
                     yaw_rate=wrap_angle(b.yaw - a.yaw) / dt, pitch_rate=(b.pitch - a.pitch) / dt)
