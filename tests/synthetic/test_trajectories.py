import math

import numpy as np
import pytest

from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.synthetic.scenes import make_scene
from worldscape_ros.synthetic.trajectories import (
    FAMILIES,
    SCRIPTS,
    family_actions,
    poses_from_actions,
    rollout,
    script_actions,
    start_state,
)


@pytest.mark.parametrize('name', SCRIPTS)
def test_scripts_have_the_frame_count_and_modest_speeds(name):
    actions = script_actions(name, 40, fps=10.0, seed=3)
    assert len(actions) == 40
    arr = np.array([a.to_array() for a in actions])
    assert np.abs(arr[:, :3]).max() <= 1.0 + 1e-9
    assert np.abs(arr[:, 3:]).max() <= math.radians(45) + 1e-9
    if name == 'idle':
        assert not arr.any()


def test_unknown_script_and_family_are_rejected():
    with pytest.raises(ValueError, match="unknown navigation script 'fly'"):
        script_actions('fly', 10)
    with pytest.raises(ValueError, match="unknown trajectory family 'zigzag'"):
        family_actions('zigzag', make_scene('room', 0).free_space, BaseState(), 10)


@pytest.mark.parametrize('frames', [20, 121])
def test_out_and_back_returns_to_its_start_pose_and_repeats_views(frames):
    scene = make_scene('room', 1)
    start = start_state(scene.free_space, np.random.default_rng(0))
    actions = family_actions('out_and_back', scene.free_space, start, frames, seed=1)
    poses = poses_from_actions(start, actions, 10.0)
    np.testing.assert_allclose(poses[-1], poses[0], atol=1e-6)
    leg = next(k for k in range(1, frames) if np.allclose(poses[2 * k], poses[0], atol=1e-9))
    for k in range(leg):  # driving backwards: frame 2*leg - k shows the view of frame k
        np.testing.assert_allclose(poses[2 * leg - k], poses[k], atol=1e-6)
    assert np.linalg.norm(poses[leg, :3, 3] - poses[0, :3, 3]) > 0.3  # it did go somewhere


def test_out_and_back_turning_around_retraces_the_path_facing_the_other_way():
    scene = make_scene('room', 2)
    start = start_state(scene.free_space, np.random.default_rng(2))
    for seed in range(20):  # a seed whose episode turns around (the other way back is driving backwards)
        actions = family_actions('out_and_back', scene.free_space, start, 60, seed=seed)
        if any(abs(a.yaw_rate) > math.radians(60) for a in actions):
            break
    else:
        pytest.fail('no seed chose turning around')
    states = rollout(start, actions, 10.0)
    turn = next(k for k, a in enumerate(actions) if abs(a.yaw_rate) > math.radians(60))  # = leg length
    back = turn + 20  # after the half turn
    for j in range(turn + 1):  # frame back + j stands where frame turn - j stood, facing the other way
        s, o = states[back + j], states[turn - j]
        assert math.hypot(s.x - o.x, s.y - o.y) < 1e-6
        assert abs(math.remainder(s.yaw - o.yaw - math.pi, 2 * math.pi)) < 1e-6
    np.testing.assert_allclose(camera_pose(states[-1]), camera_pose(start), atol=1e-6)


def test_named_out_and_back_script_returns_to_start():
    actions = script_actions('out_and_back', 30)
    poses = poses_from_actions(BaseState(height=1.0), actions, 10.0)
    np.testing.assert_allclose(poses[-1], poses[0], atol=1e-6)


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('kind', ['room', 'yard'])
def test_families_never_drive_through_walls_or_furniture(family, kind):
    for seed in range(3):
        free = make_scene(kind, seed).free_space
        start = start_state(free, np.random.default_rng(seed))
        actions = family_actions(family, free, start, 80, seed=seed)
        assert len(actions) == 80
        assert all(free.is_free(s.x, s.y) for s in rollout(start, actions, 10.0))


def test_loop_revisits_its_start():
    free = make_scene('yard', 2).free_space
    start = start_state(free, np.random.default_rng(2))
    states = rollout(start, family_actions('loop', free, start, 150, seed=2), 10.0)
    d = [math.hypot(s.x - start.x, s.y - start.y) for s in states[20:]]
    assert min(d) < 0.1 and max(d) > 0.5
