import cv2
import numpy as np
import pytest

from worldscape_ros.eval.structure import (
    StructureBand,
    gmsd,
    gradient_energy_ratio,
    interior,
    region_energy_ratio,
)


def _blur(frames: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])


def _noise(frames: np.ndarray, std: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(frames + rng.normal(0, std, frames.shape), 0, 255).astype(np.uint8)


def test_ground_truth_passes_structure_check_exactly(turning_walk):
    gt = turning_walk['rgb']
    np.testing.assert_allclose(gradient_energy_ratio(gt, gt), 1.0)
    np.testing.assert_allclose(gmsd(gt, gt), 0.0, atol=1e-7)
    assert StructureBand().passes(gradient_energy_ratio(gt, gt)).all()


def test_blurred_ground_truth_fails_structure_check_from_below(turning_walk):
    gt = turning_walk['rgb']
    ratio = gradient_energy_ratio(_blur(gt), gt)
    assert (ratio < StructureBand().low).all()
    assert (gmsd(_blur(gt), gt) > 0.05).all()


def test_noised_ground_truth_fails_structure_check_from_above(turning_walk):
    gt = turning_walk['rgb']
    ratio = gradient_energy_ratio(_noise(gt), gt)
    assert (ratio > StructureBand().high).all()
    assert (gmsd(_noise(gt), gt) > 0.05).all()


def test_mean_colour_collapse_fails_structure_check(turning_walk):
    gt = turning_walk['rgb']
    mush = np.broadcast_to(gt.mean(axis=(1, 2), keepdims=True), gt.shape).astype(np.uint8)
    assert (gradient_energy_ratio(mush, gt) < 0.01).all()


def test_gmsd_grows_with_blur_strength(turning_walk):
    gt = turning_walk['rgb'][:3]
    scores = [gmsd(_blur(gt, s), gt).mean() for s in (0.5, 1.0, 2.0)]
    assert scores[0] < scores[1] < scores[2]


def test_structure_rejects_mismatched_shapes(turning_walk):
    gt = turning_walk['rgb']
    with pytest.raises(ValueError, match='differ in shape'):
        gradient_energy_ratio(gt[:2], gt[:3])
    with pytest.raises(ValueError, match='differ in shape'):
        gmsd(gt[:2], gt[:3])


def test_structure_band_must_straddle_one():
    with pytest.raises(ValueError, match='0 < low < 1 < high'):
        StructureBand(low=1.1, high=1.3)


def test_region_ratio_over_the_whole_frame_is_the_frame_ratio(turning_walk):
    gt = turning_walk['rgb'][:4]
    noisy = _noise(gt)
    full = np.ones(gt.shape[:3], bool)
    np.testing.assert_allclose(region_energy_ratio(noisy, gt, full), gradient_energy_ratio(noisy, gt), rtol=1e-9)


def test_region_ratio_sees_noise_only_where_it_is_and_flags_it_above_the_band(turning_walk):
    gt = turning_walk['rgb'][:3]
    patched = gt.copy()
    patched[:, :, :32] = _noise(gt)[:, :, :32]
    left = np.zeros(gt.shape[:3], bool)
    left[:, :, :32] = True
    band = StructureBand()
    assert band.noisy(region_energy_ratio(patched, gt, left)).all()
    right = np.zeros_like(left)
    right[:, :, 40:] = True  # away from the patch and its rim
    np.testing.assert_allclose(region_energy_ratio(patched, gt, right), 1.0)
    assert not band.noisy(region_energy_ratio(_blur(gt), gt, left)).any()  # blur is not noise


def test_region_ratio_is_undefined_on_an_empty_region_and_checks_shapes(turning_walk):
    gt = turning_walk['rgb'][:2]
    assert np.isnan(region_energy_ratio(gt, gt, np.zeros(gt.shape[:3], bool))).all()
    assert not StructureBand().noisy(np.array([np.nan])).any()
    with pytest.raises(ValueError, match=r'masks must be \(T, H, W\)'):
        region_energy_ratio(gt, gt, np.ones((2, 5, 5), bool))


def test_interior_drops_a_one_pixel_rim_but_not_the_image_border():
    m = np.zeros((8, 10), bool)
    m[:, :4] = True  # a strip along the left border
    inner = interior(m)
    assert inner[:, :3].all() and not inner[:, 3:].any()  # the rim towards the rest goes, the border stays
    assert interior(np.ones((4, 4), bool)).all()
