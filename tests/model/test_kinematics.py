import math

import numpy as np
import pytest

from worldscape_ros.model.camera import check_rigid
from worldscape_ros.model.kinematics import (
    BaseState,
    NavAction,
    camera_pose,
    integrate,
    state_from_camera_pose,
)


def run(action: NavAction, seconds: float, fps: float = 10.0, state: BaseState | None = None) -> BaseState:
    state = state or BaseState()
    for _ in range(round(seconds * fps)):
        state = integrate(state, action, 1.0 / fps)
    return state


def test_forward_one_metre_per_second_for_one_second_moves_one_metre():
    s = run(NavAction(vx=1.0), 1.0)
    assert (s.x, s.y) == pytest.approx((1.0, 0.0))


def test_yaw_rate_integrates_to_angle():
    s = run(NavAction(yaw_rate=math.radians(30)), 2.0)
    assert s.yaw == pytest.approx(math.radians(60))


def test_forward_while_turning_stays_on_the_circle():
    # v = 1 m/s, w = 1 rad/s: a circle of radius 1 about (0, 1); mid-step heading keeps it on the circle.
    s = run(NavAction(vx=1.0, yaw_rate=1.0), math.pi / 2, fps=100)
    assert math.hypot(s.x, s.y - 1.0) == pytest.approx(1.0, abs=1e-3)


def test_camera_at_rest_looks_along_x_with_optical_axes():
    T = camera_pose(BaseState(height=1.2))
    check_rigid(T)
    assert T[:3, 2] == pytest.approx([1, 0, 0])  # optical z forward = odom x
    assert T[:3, 0] == pytest.approx([0, -1, 0])  # optical x right = odom -y
    assert T[:3, 1] == pytest.approx([0, 0, -1])  # optical y down = odom -z
    assert T[2, 3] == pytest.approx(1.2)


def test_positive_pitch_looks_down():
    T = camera_pose(BaseState(pitch=0.3))
    assert T[2, 2] < 0


def test_state_round_trips_through_camera_pose():
    s = BaseState(x=1.0, y=-2.0, z=0.1, yaw=2.5, pitch=-0.2, height=0.8)
    back = state_from_camera_pose(camera_pose(s), height=0.8)
    assert np.allclose([back.x, back.y, back.z, back.yaw, back.pitch], [s.x, s.y, s.z, s.yaw, s.pitch])


def test_non_finite_action_is_rejected_naming_the_field():
    with pytest.raises(ValueError, match='yaw_rate'):
        NavAction(yaw_rate=float('nan'))


def test_action_array_of_wrong_size_is_rejected():
    with pytest.raises(ValueError, match='5 values'):
        NavAction.from_array([1.0, 2.0])


def test_clamp_limits_each_axis():
    a = NavAction(vx=10, vy=-10, yaw_rate=9).clamped(1.0, 2.0)
    assert (a.vx, a.vy, a.yaw_rate) == (1.0, -1.0, 2.0)
