"""The navigation scripts of the revisit suite: they come back to views the start frame does not see."""

import math

import numpy as np
import pytest

from worldscape_ros.model.kinematics import BaseState
from worldscape_ros.synthetic.trajectories import poses_from_actions, script_actions


@pytest.mark.parametrize('frames', [80, 41, 6])
def test_corner_out_and_back_turns_a_corner_and_retraces_it_to_the_start(frames):
    actions = script_actions('corner_out_and_back', frames, fps=10.0, seed=90041)
    assert len(actions) == frames
    poses = poses_from_actions(BaseState(), actions, 10.0)
    out = frames // 2
    np.testing.assert_allclose(poses[2 * out], poses[0], atol=1e-9)  # back at the start pose
    for k in range(out):  # the way back shows the way out's views in reverse order
        np.testing.assert_allclose(poses[2 * out - k], poses[k], atol=1e-9)
    if frames >= 80:  # long enough for the whole corner: the far leg looks 90 deg away from the start view
        cos = float(poses[out, :3, 2] @ poses[0, :3, 2])
        assert abs(cos) < 1e-6
        assert np.linalg.norm(poses[out, :3, 3] - poses[0, :3, 3]) > 0.5


def test_corner_side_follows_the_seed_and_is_deterministic():
    sides = {np.sign(next(a.yaw_rate for a in script_actions('corner_out_and_back', 80, seed=s) if a.yaw_rate))
             for s in range(90041, 90051)}
    assert sides == {-1.0, 1.0}
    assert script_actions('corner_out_and_back', 80, seed=3) == script_actions('corner_out_and_back', 80, seed=3)


def test_loop_revisit_closes_a_lap_in_80_frames_and_goes_round_again():
    actions = script_actions('loop_revisit', 120, fps=10.0)
    poses = poses_from_actions(BaseState(), actions, 10.0)
    for k in range(40):
        np.testing.assert_allclose(poses[k + 80], poses[k], atol=1e-9)
    centre_dist = np.linalg.norm(poses[40, :3, 3] - poses[0, :3, 3])
    assert centre_dist == pytest.approx(2 * 0.4 / math.radians(45), rel=1e-3)  # half a lap: across the circle
