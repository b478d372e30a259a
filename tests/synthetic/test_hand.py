import numpy as np
import pytest

from worldscape_ros.synthetic.episodes import manip_episode
from worldscape_ros.synthetic.hand import HAND_CONNECTIONS, NUM_LANDMARKS, HandRig, bone_lengths, hand_landmarks_local
from worldscape_ros.synthetic.hand_scripts import HAND_SCRIPTS, egocentric_camera, hand_script
from worldscape_ros.synthetic.render import SceneRenderer
from worldscape_ros.synthetic.scenes import make_scene


def test_landmarks_follow_mediapipe_layout_and_bones_keep_their_length():
    open_hand, fist = hand_landmarks_local(0.0), hand_landmarks_local(1.0)
    assert open_hand.shape == (NUM_LANDMARKS, 3) and len(HAND_CONNECTIONS) == 21
    assert np.allclose(open_hand[0], 0.0)  # 0 is the wrist
    for tip in (8, 12, 16, 20):  # fingertips are farthest from the wrist when open, closer in a fist
        assert np.linalg.norm(fist[tip]) < np.linalg.norm(open_hand[tip])
    for curl in (0.3, 0.7, 1.0):
        p = hand_landmarks_local(curl)
        lengths = [np.linalg.norm(p[b] - p[a]) for a, b in HAND_CONNECTIONS]
        np.testing.assert_allclose(lengths, bone_lengths(), atol=1e-9)


def test_projected_keypoints_fall_on_the_hands_pixels():
    W, H = 192, 144
    ep = manip_episode(3, 'pick_and_place', 8, W, H)
    scene = make_scene('table', 3)
    plan = hand_script('pick_and_place', scene, 8, seed=3)
    hits, total = 0, 0
    with SceneRenderer(scene, W, H) as r:
        rig = HandRig(r.model)
        for t, step in enumerate(plan):
            rig.apply(r.data, step.hand)
            r.forward()
            seg = r.segmentation(egocentric_camera(scene))
            hand = np.isin(seg, rig.geom_ids)
            for (u, v), visible in zip(ep.keypoints2d[t], ep.visibility[t]):
                if visible:
                    total += 1
                    hits += bool(hand[int(v), int(u)])
    assert total >= 8 * 5
    assert hits / total > 0.95


def test_grasped_object_moves_with_the_hand():
    scene = make_scene('table', 4)
    plan = hand_script('carry', scene, 10, seed=4)
    moved = [name for name in plan[0].objects if not np.allclose(plan[0].objects[name], plan[-1].objects[name])]
    assert len(moved) == 1
    offsets = [step.objects[moved[0]] - step.hand.grasp_point_world() for step in plan]
    np.testing.assert_allclose(offsets, 0.0, atol=1e-9)


@pytest.mark.parametrize('name', HAND_SCRIPTS)
def test_every_script_keeps_the_hand_above_the_table(name):
    scene = make_scene('table', 5)
    for step in hand_script(name, scene, 12, seed=5):
        assert step.hand.landmarks_world()[:, 2].min() > scene.table_top - 0.05


def test_hand_script_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown hand script 'wave'"):
        hand_script('wave', make_scene('table', 0), 10)
    with pytest.raises(ValueError, match='table scene'):
        hand_script('reach', make_scene('room', 0), 10)


def test_landmarks_are_hidden_by_the_scene_but_not_by_the_hand_itself():
    from worldscape_ros.synthetic.episodes import occluded_by_scene

    scene = make_scene('table', 2)
    plan = hand_script('reach', scene, 3, seed=2)
    with SceneRenderer(scene, 32, 24) as r:
        rig = HandRig(r.model)
        points = rig.apply(r.data, plan[0].hand)  # above the table: only the hand itself can hide its joints
        r.forward()
        origin = egocentric_camera(scene)[:3, 3]
        assert not occluded_by_scene(r.model, r.data, origin, points).any()
        under = points.copy()
        under[:, 2] = scene.table_top - 0.05  # below the table top
        assert occluded_by_scene(r.model, r.data, origin, under).all()
