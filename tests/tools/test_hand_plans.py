"""Hand plans: reach / grasp / carry / place trajectories are real hands, in view of the camera."""

import numpy as np
import pytest

from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.synthetic.hand import HAND_CONNECTIONS, bone_lengths
from worldscape_ros.tools.hand_plans import (
    OBJECT,
    REST,
    SCRIPT_NAMES,
    SCRIPTS,
    TARGET,
    hand_keypoints,
    hand_plan,
    hand_states,
    hand_trajectory,
)

K = intrinsics_from_fov(128, 96, 60.0)


def _bones(traj):
    return np.linalg.norm(traj[:, [b for _, b in HAND_CONNECTIONS]] - traj[:, [a for a, _ in HAND_CONNECTIONS]],
                          axis=-1)


def _inside(traj):
    uv = traj @ K.T
    uv = uv[..., :2] / uv[..., 2:]
    return (uv[..., 0] >= 0) & (uv[..., 0] <= 128) & (uv[..., 1] >= 0) & (uv[..., 1] <= 96)


@pytest.mark.parametrize('script', SCRIPT_NAMES)
def test_every_script_keeps_bone_lengths_and_stays_in_front_of_the_camera(script):
    traj, handedness = hand_plan(script, 30, scene_seed=3)
    assert traj.shape == (30, 21, 3) and handedness in ('left', 'right')
    np.testing.assert_allclose(_bones(traj), np.broadcast_to(bone_lengths(), (30, len(HAND_CONNECTIONS))), atol=1e-9)
    assert (traj[..., 2] > 0.2).all()
    assert _inside(traj).mean() > 0.9  # the hand is in the picture (a fingertip may leave it at the edge)


@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_fallback_paths_stay_fully_in_view(script):
    traj = np.stack([hand_keypoints(s) for s in hand_states(script, 30)])
    assert _inside(traj).all() and (traj[..., 2] > 0.2).all()


def test_table_plan_is_synthetic_hand_scripts_seen_from_the_egocentric_camera():
    from worldscape_ros.synthetic.hand_scripts import egocentric_camera, hand_script
    from worldscape_ros.synthetic.scenes import make_scene

    scene = make_scene('table', 4)
    plan = hand_script('pick_and_place', scene, 20, seed=4)
    c2w = egocentric_camera(scene)
    cam, handedness = hand_plan('pick_and_place', 20, scene_seed=4)
    world = cam @ c2w[:3, :3].T + c2w[:3, 3]
    np.testing.assert_allclose(world, np.stack([f.hand.landmarks_world() for f in plan]), atol=1e-9)
    assert handedness == plan[0].hand.handedness
    other = 'left' if handedness == 'right' else 'right'
    mirrored, hd = hand_plan('pick_and_place', 20, scene_seed=4, handedness=other)
    assert hd == other and np.allclose(mirrored[..., 0], -cam[..., 0])


def test_pick_and_place_reaches_grasps_carries_places_and_returns():
    states = hand_states('pick_and_place', 100)
    curls = np.array([s.curl for s in states])
    wrists = np.array([s.wrist for s in states])
    closest_to_object = int(np.argmin(np.linalg.norm(wrists - OBJECT, axis=1)))
    assert curls[closest_to_object] < 0.2  # arrives open
    assert curls.max() == pytest.approx(1.0)  # grasps
    closed = np.flatnonzero(curls > 0.99)
    assert np.linalg.norm(wrists[closed[-1]] - TARGET) < 0.02  # carried to the target while closed
    assert curls[-1] == pytest.approx(0.0) and np.allclose(wrists[-1], REST)  # released, back to rest
    assert np.linalg.norm(np.diff(wrists, axis=0), axis=1).max() < 0.04  # no jumps: under 4 cm a frame


def test_left_hand_is_the_mirror_image():
    right = np.stack([hand_keypoints(s, 'right') for s in hand_states('reach', 5)])
    left = np.stack([hand_keypoints(s, 'left') for s in hand_states('reach', 5)])
    np.testing.assert_allclose(left[..., 0], -right[..., 0], atol=1e-12)
    np.testing.assert_allclose(left[..., 1:], right[..., 1:], atol=1e-12)


def test_bad_script_arguments_are_named():
    with pytest.raises(ValueError, match='unknown hand script'):
        hand_trajectory('juggle', 10)
    with pytest.raises(ValueError, match='frames must be'):
        hand_trajectory('reach', 0)
    with pytest.raises(ValueError, match='handedness'):
        hand_trajectory('reach', 3, handedness='both')
