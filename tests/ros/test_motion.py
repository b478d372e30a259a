"""Motion limits: the working range and the twist that a pose target implies."""

import math

import numpy as np
import pytest

from worldscape_ros.model.kinematics import BaseState, NavAction, integrate
from worldscape_ros.ros.motion import check_working_range, scale_action, stays_in_working_range, twist_between

DT = 0.1


def test_the_twist_between_two_states_drives_one_to_the_other_in_a_frame():
    a = BaseState(x=1.0, y=-2.0, z=0.1, yaw=0.7, pitch=0.1, height=1.2)
    b = BaseState(x=1.3, y=-1.8, z=0.15, yaw=0.7, pitch=0.2, height=1.2)
    after = integrate(a, twist_between(a, b, DT), DT)
    np.testing.assert_allclose([after.x, after.y, after.z, after.yaw, after.pitch],
                               [b.x, b.y, b.z, b.yaw, b.pitch], atol=1e-12)


def test_the_twist_between_takes_the_short_way_round():
    a, b = BaseState(yaw=math.pi - 0.05), BaseState(yaw=-math.pi + 0.05)
    assert twist_between(a, b, DT).yaw_rate == pytest.approx(0.1 / DT)


def test_motion_that_would_leave_the_working_range_is_caught_before_it_happens():
    at_edge = BaseState(x=9.95)
    assert stays_in_working_range(at_edge, NavAction(vx=0.4), DT, max_position=10.0)
    assert not stays_in_working_range(at_edge, NavAction(vx=1.0), DT, max_position=10.0)
    assert stays_in_working_range(at_edge, NavAction(vx=-1.0), DT, max_position=10.0)


def test_a_pose_outside_the_working_range_is_refused_with_its_position():
    pose = np.eye(4)
    pose[:3, 3] = (0.0, 1e30, 0.0)
    with pytest.raises(ValueError, match=r'camera_pose.position \[0, 1e\+30, 0\] is outside the working range'):
        check_working_range(pose, 1000.0, 'camera_pose')
    pose[:3, 3] = (1000.0, -1000.0, 0.0)
    check_working_range(pose, 1000.0, 'camera_pose')  # the edge itself is inside


def test_scaling_an_action_scales_every_axis():
    action = NavAction(vx=1.0, vy=-2.0, vz=0.5, yaw_rate=0.3, pitch_rate=-0.1)
    np.testing.assert_allclose(scale_action(action, 2.0).to_array(), 2.0 * action.to_array())
