import numpy as np
import pytest

from worldscape_ros.eval.objects import centroids, colour_model, object_position_error, static_change


def _scene(centre: tuple[int, int], size: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A grey table with a blue square (a distractor that stays) and a red square at `centre` (u, v)."""
    rng = np.random.default_rng(0)
    img = np.clip(120 + rng.normal(0, 4, (48, 64, 3)), 0, 255).astype(np.uint8)
    img[5:11, 50:56] = (30, 40, 200)
    mask = np.zeros((48, 64), bool)
    u, v = centre
    mask[v - size // 2:v + size // 2, u - size // 2:u + size // 2] = True
    img[mask] = (200, 30, 30)
    return img, mask


def test_the_object_is_found_where_it_was_carried_and_a_frozen_frame_is_as_far_off_as_the_carry():
    frames, masks = zip(*[_scene((10 + 5 * t, 30)) for t in range(6)])
    frames, masks = np.stack(frames), np.stack(masks)
    hands = np.zeros_like(masks)
    truth = object_position_error(frames, frames[0], masks, hands)
    np.testing.assert_allclose(truth['object_error_px'], 0.0, atol=1e-9)
    assert (truth['object_found'] == 1).all()
    frozen = object_position_error(np.repeat(frames[:1], 6, 0), frames[0], masks, hands)
    np.testing.assert_allclose(frozen['object_error_px'], 5.0 * np.arange(6), atol=1e-9)


def test_a_frame_without_the_object_counts_as_not_found_and_a_hidden_object_is_left_out():
    frames, masks = zip(*[_scene((20, 30)) for _ in range(3)])
    frames, masks = np.stack(frames), np.stack(masks)
    frames[1][masks[1]] = 120  # the generated frame lost the object
    masks[2] = False  # the truth has it hidden in the hand
    out = object_position_error(frames, frames[0], masks, np.zeros_like(masks))
    assert out['object_found'][1] == 0 and np.isnan(out['object_error_px'][1])
    assert np.isnan(out['object_found'][2]) and np.isnan(out['object_error_px'][2])


def test_where_the_truth_has_the_hand_no_object_is_searched():
    frames, masks = zip(*[_scene((20, 30)) for _ in range(2)])
    frames, masks = np.stack(frames), np.stack(masks)
    frames[1, 30:42, 40:52] = (200, 30, 30)  # a bigger red blob, where the hand is in the truth
    hands = np.zeros_like(masks)
    hands[1, 28:44, 38:54] = True
    out = object_position_error(frames, frames[0], masks, hands)
    assert out['object_error_px'][1] == pytest.approx(0.0)


def test_colour_model_and_error_inputs_are_checked():
    img, mask = _scene((20, 30))
    with pytest.raises(ValueError, match='shows 1 pixels in the start frame'):
        colour_model(img, mask & (np.arange(64) == 18)[None, :] & (np.arange(48) == 28)[:, None])
    with pytest.raises(ValueError, match='disagree'):
        object_position_error(img[None], img, mask[None], np.zeros((1, 4, 4), bool))
    assert np.isnan(centroids(np.zeros((1, 4, 4), bool))).all()


def test_static_change_is_zero_when_frozen_and_sees_drift_outside_the_moving_parts():
    frames, masks = zip(*[_scene((10 + 10 * t, 30)) for t in range(4)])
    frames, masks = np.stack(frames), np.stack(masks)
    assert static_change(np.repeat(frames[:1], 4, 0), masks) == 0.0
    assert static_change(frames, masks) == 0.0  # only the object moved, and it is left out
    drifted = frames.copy()
    drifted[-1] = np.clip(drifted[-1].astype(int) + 10, 0, 255).astype(np.uint8)
    assert static_change(drifted, masks) == pytest.approx(10.0, abs=0.5)
    assert np.isnan(static_change(frames, np.ones_like(masks)))


@pytest.fixture(scope='module')
def carry():
    from worldscape_ros.eval.ground_truth import manip_masks
    from worldscape_ros.synthetic.episodes import manip_episode

    ep = manip_episode(90031, 'carry', 12, 128, 96)
    hand, obj = manip_masks(90031, 'carry', 12, 128, 96)
    return ep, hand, obj


def test_ground_truth_masks_follow_the_hand_and_the_carried_object(carry):
    ep, hand, obj = carry
    assert hand.any(axis=(1, 2)).all() and obj[0].sum() > 50
    c = centroids(obj)
    assert np.linalg.norm(c[-1] - c[0]) > 10  # carried across the image
    assert not (hand & obj).any()  # one geom per pixel


def test_object_error_is_near_zero_on_ground_truth_and_large_on_a_frozen_frame(carry):
    """The metric validated as the others are: the truth scores near 0, a frozen first frame the carry."""
    ep, hand, obj = carry
    truth = object_position_error(ep.rgb, ep.rgb[0], obj, hand)
    frozen = object_position_error(np.repeat(ep.rgb[:1], len(ep.rgb), 0), ep.rgb[0], obj, hand)
    assert np.nanmean(truth['object_error_px']) < 2.0 and np.nanmean(truth['object_found']) > 0.9
    assert np.nanmean(frozen['object_error_px'][6:]) > 10.0


def test_target_object_is_the_moved_one_or_the_one_reached_for():
    from worldscape_ros.eval.ground_truth import target_object
    from worldscape_ros.synthetic.hand_scripts import hand_script
    from worldscape_ros.synthetic.scenes import make_scene

    scene = make_scene('table', 90031)
    names = [o.name for o in scene.objects]
    carry = hand_script('carry', scene, 8, seed=90031)
    moved = target_object(carry, names)
    assert not np.allclose(carry[0].objects[moved], carry[-1].objects[moved])
    reach = hand_script('reach', scene, 8, seed=90031)
    reached = target_object(reach, names)
    grasp = reach[-1].hand.grasp_point_world()
    assert all(np.linalg.norm(reach[0].objects[reached] - grasp) <= np.linalg.norm(reach[0].objects[n] - grasp)
               for n in names)
