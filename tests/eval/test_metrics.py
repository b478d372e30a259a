import math

import cv2
import numpy as np
import pytest

from worldscape_ros.eval import metrics as M
from worldscape_ros.model.kinematics import NavAction


@pytest.fixture(scope='module')
def out_and_back(render_walk):
    """Drive 1 m forward while the view pans, then back along the same path: return frames repeat views."""
    out = [NavAction(vx=0.5, vy=0.2)] * 10
    back = [NavAction(vx=-0.5, vy=-0.2)] * 10
    return render_walk(out + back)


def test_psnr_and_ssim_are_perfect_on_ground_truth_and_lower_on_perturbed(turning_walk):
    gt = turning_walk['rgb']
    assert (M.psnr(gt, gt) == M.PSNR_CAP_DB).all()
    np.testing.assert_allclose(M.ssim(gt, gt), 1.0, atol=1e-5)
    shifted = np.roll(gt, 3, axis=2)
    assert (M.psnr(shifted, gt) < 25).all() and (M.ssim(shifted, gt) < 0.9).all()


def test_psnr_matches_its_definition(turning_walk):
    gt = turning_walk['rgb'][:2]
    noisy = np.clip(gt.astype(int) + 8, 0, 255).astype(np.uint8)
    mse = ((noisy.astype(float) - gt) ** 2).mean(axis=(1, 2, 3)) / 255.0**2
    np.testing.assert_allclose(M.psnr(noisy, gt), -10 * np.log10(mse), rtol=1e-4)


def test_pooled_psnr_is_not_dominated_by_one_identical_frame(turning_walk):
    gt = turning_walk['rgb'][:4]
    frozen = np.repeat(gt[:1], 4, axis=0)  # exact at frame 0 only
    assert M.psnr(frozen, gt).mean() > 30  # the capped 100 dB of frame 0 inflates the mean
    assert M.pooled_psnr(frozen, gt) < 25
    assert M.pooled_psnr(gt, gt) == M.PSNR_CAP_DB


def test_depth_errors_are_zero_on_truth_and_scale_with_bias(turning_walk):
    d = turning_walk['depth']
    absrel, delta = M.depth_errors(d, d)
    np.testing.assert_allclose(absrel, 0.0, atol=1e-7)
    np.testing.assert_allclose(delta, 1.0)
    absrel, delta = M.depth_errors(1.1 * d, d)
    np.testing.assert_allclose(absrel, 0.1, rtol=1e-5)
    np.testing.assert_allclose(delta, 1.0)
    _, delta = M.depth_errors(1.3 * d, d)
    np.testing.assert_allclose(delta, 0.0)


def test_depth_holes_count_as_errors_and_invalid_truth_is_skipped(turning_walk):
    d = turning_walk['depth'][:1].copy()
    holed = d.copy()
    holed[:, :, :32] = 0.0  # a quarter of the image missing
    absrel, delta = M.depth_errors(holed, d)
    assert absrel[0] == pytest.approx(0.25, abs=1e-6) and delta[0] == pytest.approx(0.75)
    nan_truth = np.full_like(d, np.nan)
    absrel, delta = M.depth_errors(d, nan_truth)
    assert math.isnan(absrel[0]) and math.isnan(delta[0])


def test_depth_errors_reject_bad_shapes():
    with pytest.raises(ValueError, match='depth maps must both be'):
        M.depth_errors(np.ones((2, 4, 4)), np.ones((2, 4, 5)))


def test_revisit_pairs_match_outbound_and_return_frames_at_the_same_pose(out_and_back):
    pairs = M.revisit_pairs(out_and_back['poses'])
    assert len(pairs) >= 8
    assert all(i + j == 20 for i, j in pairs)  # frame i is revisited at frame 20 - i


def test_memory_symmetry_near_one_on_ground_truth(out_and_back):
    pairs = M.revisit_pairs(out_and_back['poses'])
    assert M.memory_symmetry(out_and_back['rgb'], pairs) > 0.98
    assert M.memory_specificity(out_and_back['rgb'], pairs, out_and_back['poses']) > 0.95


def test_frozen_frame_is_symmetric_but_scores_no_memory_specificity(out_and_back):
    pairs = M.revisit_pairs(out_and_back['poses'])
    frozen = np.repeat(out_and_back['rgb'][:1], len(out_and_back['rgb']), axis=0)
    assert M.memory_symmetry(frozen, pairs) == pytest.approx(1.0, abs=1e-5)  # why it needs a partner figure
    assert M.memory_specificity(frozen, pairs, out_and_back['poses']) == pytest.approx(0.0, abs=1e-6)
    return_frames = [j for _, j in pairs]
    assert np.median(M.psnr(frozen[return_frames], out_and_back['rgb'][return_frames])) < 20


def test_memory_symmetry_falls_on_frames_from_a_wrong_trajectory(out_and_back, render_walk):
    # The return leg wanders off: the frames come back to other places than the commanded ones.
    wrong = render_walk([NavAction(vx=0.5, vy=0.2)] * 10 + [NavAction(vx=-0.3, vy=0.4, yaw_rate=0.5)] * 10)
    pairs = M.revisit_pairs(out_and_back['poses'])
    assert M.memory_symmetry(wrong['rgb'], pairs) < 0.6
    assert M.memory_specificity(wrong['rgb'], pairs, out_and_back['poses']) < 0.3


def test_memory_figures_are_undefined_without_revisits(turning_walk):
    pairs = M.revisit_pairs(turning_walk['poses'])
    assert pairs == []
    assert math.isnan(M.memory_symmetry(turning_walk['rgb'], pairs))
    assert math.isnan(M.memory_specificity(turning_walk['rgb'], pairs, turning_walk['poses']))


def test_idle_drift_is_one_for_a_still_world_and_falls_with_drift(turning_walk):
    still = np.repeat(turning_walk['rgb'][:1], 6, axis=0)
    assert M.idle_drift_ssim(still) == pytest.approx(1.0, abs=1e-5)
    drifting = np.stack([cv2.GaussianBlur(still[0], (0, 0), 0.3 + 0.5 * k) for k in range(6)])
    assert M.idle_drift_ssim(drifting) < 0.7


def _hand_world(background: np.ndarray, frames: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A hand skeleton sweeping across a textured background: frames and the keypoints that drew them."""
    H, W = background.shape[:2]
    base = np.array([[0, 0], [3, -3], [6, -6], [8, -9], [10, -11], [6, -10], [6, -15], [6, -18], [6, -21],
                     [2, -11], [2, -16], [2, -20], [2, -23], [-2, -11], [-2, -15], [-2, -19], [-2, -22],
                     [-5, -10], [-6, -13], [-7, -16], [-8, -18]], dtype=np.float64)
    kps, out = [], []
    for t in range(frames):
        kp = base * 1.2 + np.array([15 + 8 * t, H - 20 - 2 * t])
        img = background.copy()
        mask = M.keypoint_mask(kp[None], None, H, W, radius_px=3)[0]
        img[mask] = (225, 180, 150)
        kps.append(kp)
        out.append(img)
    return np.stack(out), np.stack(kps)


def test_hand_iou_high_where_the_hand_is_drawn_at_its_keypoints(turning_walk):
    frames, kps = _hand_world(turning_walk['rgb'][0])
    iou = M.hand_iou(frames, kps, None, radius_px=3)
    assert np.nanmean(iou) > 0.7


def test_hand_iou_low_for_a_frozen_or_misplaced_hand(turning_walk):
    frames, kps = _hand_world(turning_walk['rgb'][0])
    frozen = np.repeat(frames[:1], len(frames), axis=0)
    assert np.nan_to_num(M.hand_iou(frozen, kps, None, radius_px=3)).mean() < 0.1
    misplaced = M.hand_iou(frames, kps[::-1], None, radius_px=3)  # the hand runs the other way
    assert np.nanmean(misplaced) < 0.3


def test_keypoint_mask_rejects_wrong_landmark_count():
    with pytest.raises(ValueError, match=r'keypoints2d must be \(T, 21, 2\)'):
        M.keypoint_mask(np.zeros((2, 20, 2)), None, 8, 8)


def test_fidelity_rejects_mismatched_frames(turning_walk):
    gt = turning_walk['rgb']
    with pytest.raises(ValueError, match='differ in shape'):
        M.psnr(gt[:2], gt[:3])
    with pytest.raises(ValueError, match=r'\(T, H, W, 3\)'):
        M.ssim(gt[..., 0], gt[..., 0])
