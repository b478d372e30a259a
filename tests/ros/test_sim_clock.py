"""Sim time advances by 1/fps per frame and never runs back when the rate changes."""

import pytest

from worldscape_ros.ros.sim_clock import SimClock


def test_each_frame_advances_sim_time_by_one_over_fps():
    clock = SimClock(fps=10.0)
    assert clock.now_ns == 0
    assert [clock.tick() for _ in range(3)] == [100_000_000, 200_000_000, 300_000_000]
    assert clock.frames == 3


def test_a_new_fps_continues_from_the_time_reached():
    clock = SimClock(fps=10.0)
    for _ in range(5):
        clock.tick()
    clock.set_fps(4.0)
    assert clock.now_ns == 500_000_000
    assert clock.tick() == 750_000_000
    clock.set_fps(4.0)  # setting the same rate again changes nothing
    assert clock.now_ns == 750_000_000


@pytest.mark.parametrize('fps', [0.0, -1.0, float('nan')])
def test_a_rate_that_is_not_positive_is_refused(fps):
    with pytest.raises(ValueError, match='fps must be positive'):
        SimClock(fps)
    with pytest.raises(ValueError, match='fps must be positive'):
        SimClock().set_fps(fps)
