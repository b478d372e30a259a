import numpy as np
import pytest

from worldscape_ros.model.kinematics import NavAction, state_from_camera_pose
from worldscape_ros.synthetic.episodes import manip_episode, nav_episode
from worldscape_ros.synthetic.trajectories import poses_from_actions


def test_nav_episode_is_deterministic_and_consistent():
    a = nav_episode(2, 'mixed', 8, 48, 36, scene_kind='yard')
    b = nav_episode(2, 'mixed', 8, 48, 36, scene_kind='yard')
    assert a.rgb.tobytes() == b.rgb.tobytes() and a.depth.tobytes() == b.depth.tobytes()
    assert a.rgb.shape == (8, 36, 48, 3) and a.depth.dtype == np.float32
    assert not a.actions[0].any() and a.actions[1:].any()
    start = state_from_camera_pose(a.poses[0], 1.0)
    replay = poses_from_actions(start, [NavAction.from_array(r) for r in a.actions[1:]], a.meta['fps'])
    np.testing.assert_allclose(replay, a.poses, atol=1e-6)  # actions integrate into the stored poses
    assert a.meta['kind'] == 'nav' and a.meta['scene_kind'] == 'yard' and a.meta['family'] == 'mixed'


def test_frame_zero_is_the_start_view_with_a_zero_action():
    ep = nav_episode(1, 'idle', 3, 32, 24)
    assert not ep.actions.any()
    assert np.array_equal(ep.rgb[0], ep.rgb[2])


def test_manip_episode_has_keypoints_and_a_static_camera():
    ep = manip_episode(1, 'grasp', 5, 64, 48)
    assert ep.keypoints3d.shape == (5, 21, 3) and ep.keypoints2d.shape == (5, 21, 2)
    assert ep.visibility.dtype == bool and ep.visibility.any()
    assert np.allclose(ep.poses, ep.poses[0]) and not ep.actions.any()
    assert ep.handedness in ('left', 'right') and ep.meta['kind'] == 'manip'
    z = ep.keypoints3d[..., 2]
    assert (z > 0.1).all() and (z < 1.5).all()  # metres in front of the camera


def test_episode_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown navigation script 'moonwalk'"):
        nav_episode(0, 'moonwalk', 5, 32, 24)
    with pytest.raises(ValueError, match='navigation scene kind'):
        nav_episode(0, 'straight', 5, 32, 24, scene_kind='table')
    with pytest.raises(ValueError, match='frames must be positive'):
        nav_episode(0, 'straight', 0, 32, 24)
    with pytest.raises(ValueError, match='image size must be positive'):
        manip_episode(0, 'reach', 5, 32, -1)


def test_single_frame_episodes_are_just_the_start_view():
    nav = nav_episode(0, 'loop', 1, 16, 12)
    manip = manip_episode(0, 'reach', 1, 16, 12)
    assert nav.rgb.shape == (1, 12, 16, 3) and not nav.actions.any()
    assert manip.keypoints3d.shape == (1, 21, 3)
