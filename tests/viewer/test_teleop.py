"""What the page's teleop values mean and how bad values from the page are clamped or refused."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.viewer import ViewerError
from worldscape_ros.viewer.teleop import DRIVE_BUTTONS, MAX_STEP_FRAMES, Drive, Limits, checked_frames, checked_value
from worldscape_ros.viewer.viewer import DRIVE_GROUPS


def test_every_drive_button_is_on_the_page_once():
    on_page = [b for group in DRIVE_GROUPS.values() for b in group]
    assert sorted(on_page) == sorted(DRIVE_BUTTONS)


def test_drive_buttons_set_the_held_command_scaled_by_the_speed_sliders():
    drive = Drive(Limits(max_linear=1.0, max_angular=2.0), linear=0.4, angular=1.0)
    assert drive.press('Forward') == NavAction(vx=0.4)
    assert drive.press('Back') == NavAction(vx=-0.4)
    assert drive.press('Turn left') == NavAction(yaw_rate=1.0)
    assert drive.press('Strafe right') == NavAction(vy=-0.4)
    assert drive.set_linear(0.8) == ''
    assert drive.action == NavAction(vy=-0.8)  # the held button follows the slider
    assert drive.press('Stop') == NavAction()


def test_a_speed_out_of_range_is_clamped_with_a_message():
    drive = Drive(Limits(max_linear=1.0, max_angular=1.5))
    msg = drive.set_linear(7.5)
    assert drive.linear == 1.0 and 'clamped to 1' in msg
    msg = drive.set_angular(-3)
    assert drive.angular == 0.0 and 'clamped to 0' in msg


@pytest.mark.parametrize('value', [math.nan, math.inf, 'fast', None, True])
def test_a_speed_that_is_not_a_finite_number_is_refused_and_the_speed_kept(value):
    drive = Drive(Limits(), linear=0.3)
    with pytest.raises(ViewerError, match='linear speed'):
        drive.set_linear(value)
    assert drive.linear == 0.3


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_checked_values_always_land_in_their_range(value):
    v, msg = checked_value('x', value, -1.0, 2.0)
    assert -1.0 <= v <= 2.0
    assert (msg == '') == (-1.0 <= value <= 2.0)


def test_step_frames_outside_the_range_or_fractional_are_refused():
    assert checked_frames(3) == 3
    assert checked_frames(3.0) == 3
    for bad in (0, -1, MAX_STEP_FRAMES + 1, 2.5, math.nan, 'x'):
        with pytest.raises(ViewerError, match='step frames'):
            checked_frames(bad)


def test_unknown_buttons_and_bad_limits_are_named():
    with pytest.raises(ViewerError, match="unknown drive button 'Jump'"):
        Drive(Limits()).press('Jump')
    with pytest.raises(ViewerError, match='max_linear must be a positive number'):
        Limits(max_linear=0.0)
