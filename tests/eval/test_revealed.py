import math

import cv2
import numpy as np
import pytest

from worldscape_ros.eval.baselines import Reprojection
from worldscape_ros.eval.metrics import psnr
from worldscape_ros.eval.revealed import masked_psnr, region_curves, revealed_masks, revealed_scores
from worldscape_ros.model.camera import intrinsics_from_fov

H, W = 48, 64


def _yaw(deg: float, forward: float = 0.0) -> np.ndarray:
    a = math.radians(deg)
    pose = np.eye(4)
    pose[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    pose[2, 3] = forward
    return pose


def test_turning_reveals_the_side_turned_to_and_driving_straight_at_a_wall_reveals_nothing():
    K = intrinsics_from_fov(W, H, 60.0)
    wall = np.full((H, W), 3.0, np.float32)
    turn = revealed_masks(wall, np.stack([_yaw(0), _yaw(10), _yaw(20)]), K)
    assert not turn[0].any()
    assert 0 < turn[1].mean() < turn[2].mean() < 0.6
    # yaw about +y turns the optical axis towards +x: the new columns are on the right
    assert turn[2][:, -1].all() and not turn[2][:, 0].any()
    ahead = revealed_masks(wall, np.stack([_yaw(0), _yaw(0, 0.5), _yaw(0, 1.0)]), K)
    assert not ahead.any()


def test_revealed_scores_reward_the_truth_and_see_an_empty_fill_as_structureless():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    masks = np.zeros((3, H, W), bool)
    masks[1:, :, -16:] = True
    exact = revealed_scores(truth, truth, masks)
    assert exact['revealed_psnr'] == 100.0 and exact['revealed_structure'] == 1.0
    assert exact['revealed_fraction'] == 0.25
    empty = truth.copy()
    empty[masks] = 0
    black = revealed_scores(empty, truth, masks)
    assert black['revealed_structure'] < 0.5 and black['revealed_psnr'] < 10  # only the edge column has gradient
    nothing = revealed_scores(truth, truth, np.zeros((3, H, W), bool))
    assert math.isnan(nothing['revealed_psnr']) and nothing['revealed_fraction'] == 0.0


def test_masked_psnr_over_every_pixel_is_the_frame_psnr():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    pred = np.clip(truth + rng.normal(0, 10, truth.shape), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(masked_psnr(pred, truth, np.ones((3, H, W), bool)), psnr(pred, truth), rtol=1e-5)
    assert np.isnan(masked_psnr(pred, truth, np.zeros((3, H, W), bool))).all()
    with pytest.raises(ValueError, match='must agree in shape'):
        masked_psnr(pred, truth, np.ones((3, H, 5), bool))


def test_seen_and_revealed_pixels_are_scored_apart_on_ground_truth_and_a_frozen_frame(turning_walk):
    """The truth scores 100 dB on both; a frozen start frame is far off on both; the reprojection is near the
    truth on seen pixels and worst on revealed ones (black holes), with no structure there."""
    w = turning_walk
    masks = revealed_masks(w['depth'][0], w['poses'], w['K'])
    truth = revealed_scores(w['rgb'], w['rgb'], masks)
    assert truth['seen_psnr'] == 100.0 and truth['revealed_psnr'] == 100.0
    assert truth['seen_structure'] == 1.0 and truth['revealed_noise_flag'] == 0.0
    frozen = revealed_scores(np.repeat(w['rgb'][:1], len(w['rgb']), 0), w['rgb'], masks)
    assert frozen['seen_psnr'] < 20 and frozen['revealed_psnr'] < 20
    system = Reprojection()
    system.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    warped = np.stack([w['rgb'][0]] + [system.step(p).rgb for p in w['poses'][1:]])
    warp = revealed_scores(warped, w['rgb'], masks)
    assert warp['seen_psnr'] > frozen['seen_psnr'] + 5
    assert warp['revealed_psnr'] < frozen['revealed_psnr'] and warp['revealed_structure'] < 0.5
    assert 0.05 < warp['revealed_fraction'] < 0.6


def test_patch_noise_on_revealed_pixels_raises_the_flag_and_a_blur_does_not(turning_walk):
    w = turning_walk
    masks = revealed_masks(w['depth'][0], w['poses'], w['K'])
    rng = np.random.default_rng(2)
    patches = np.kron(rng.integers(0, 256, (len(w['rgb']), H // 4 + 24, W // 4 + 32, 3)), np.ones((1, 4, 4, 1)))
    noisy = np.where(masks[..., None], patches[:, :w['rgb'].shape[1], :w['rgb'].shape[2]], w['rgb']).astype(np.uint8)
    flagged = revealed_scores(noisy, w['rgb'], masks)
    assert flagged['revealed_noise_flag'] == 1.0 and flagged['revealed_noise_frames'] == 1.0
    assert flagged['seen_psnr'] == 100.0  # the seen pixels are untouched
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in w['rgb']])
    smooth = np.where(masks[..., None], blurred, w['rgb'])
    calm = revealed_scores(smooth, w['rgb'], masks)
    assert calm['revealed_noise_flag'] == 0.0 and calm['revealed_noise_frames'] == 0.0


def test_region_curves_give_seen_and_revealed_psnr_per_frame_with_frame_zero_undefined(turning_walk):
    w = turning_walk
    masks = revealed_masks(w['depth'][0], w['poses'], w['K'])
    curves = region_curves(w['rgb'], w['rgb'], masks)
    assert np.isnan(curves['seen_psnr'][0]) and np.isnan(curves['revealed_psnr'][0])
    assert (curves['seen_psnr'][1:] == 100.0).all()
    small = masks.mean(axis=(1, 2)) < 0.02
    assert np.isnan(curves['revealed_psnr'][small]).all()
