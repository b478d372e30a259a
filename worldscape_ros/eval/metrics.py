"""Fidelity, depth, memory and hand metrics of generated frames against ground truth renders.

Frames are (T, H, W, 3) uint8 RGB; depth (T, H, W) float32 metres; poses (T, 4, 4) camera-to-world.
Every function returns one figure per frame (np.ndarray (T,)) or a scenario figure (float); NaN means
"not defined here" (no valid pixel, no revisited pose) and is left out of means.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

PSNR_CAP_DB = 100.0  # identical frames have infinite PSNR; JSON has no infinity, so cap it
HAND_BONES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)  # MediaPipe's 21-landmark skeleton


def _to_tensor(frames: np.ndarray, name: str) -> torch.Tensor:
    x = np.asarray(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f'{name} must be (T, H, W, 3) RGB frames, got shape {x.shape}')
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    return t / 255.0 if x.dtype == np.uint8 else t


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if np.shape(pred) != np.shape(target):
        raise ValueError(f'generated and ground-truth frames differ in shape: {np.shape(pred)} vs {np.shape(target)}')
    return _to_tensor(pred, 'generated frames'), _to_tensor(target, 'ground-truth frames')


def psnr(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PSNR in dB per frame (data range 1), capped at PSNR_CAP_DB."""
    p, t = _pair(pred, target)
    values = peak_signal_noise_ratio(p, t, data_range=1.0, reduction='none', dim=(1, 2, 3))
    return np.minimum(torch.as_tensor(values).double().numpy(), PSNR_CAP_DB)


def ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """SSIM per frame (Gaussian window 11, sigma 1.5, data range 1)."""
    p, t = _pair(pred, target)
    values = structural_similarity_index_measure(p, t, data_range=1.0, reduction='none')
    assert isinstance(values, torch.Tensor)  # a tuple only with return_full_image / return_contrast_sensitivity
    return values.double().numpy().reshape(len(p))


def ssim_maps(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The SSIM map of each frame, averaged over colour channels: (T, H, W) float64 (the `ssim` figure is its
    mean over the image); for SSIM over a region, average the map there."""
    p, t = _pair(pred, target)
    _, full = structural_similarity_index_measure(p, t, data_range=1.0, reduction='none', return_full_image=True)
    return full.double().mean(dim=1).numpy()  # (T, H, W)


def depth_errors(pred: np.ndarray, target: np.ndarray, max_depth: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """AbsRel and delta<1.25 per frame over pixels with valid ground truth (finite, in (0, max_depth]).

    A generated depth that is missing (non-finite or <= 0, e.g. a reprojection hole) counts as 0 m there: it
    scores AbsRel 1 and fails delta, so leaving holes is not rewarded.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(target, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3:
        raise ValueError(f'depth maps must both be (T, H, W), got {p.shape} and {g.shape}')
    p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
    valid = np.isfinite(g) & (g > 0) & (g <= max_depth)
    absrel = np.full(len(g), np.nan)
    delta1 = np.full(len(g), np.nan)
    for i in range(len(g)):
        v = valid[i]
        if not v.any():
            continue
        pi, gi = p[i][v], g[i][v]
        absrel[i] = float(np.mean(np.abs(pi - gi) / gi))
        with np.errstate(divide='ignore'):
            ratio = np.maximum(pi / gi, np.where(pi > 0, gi / np.maximum(pi, 1e-12), np.inf))
        delta1[i] = float(np.mean(ratio < 1.25))
    return absrel, delta1


def pooled_psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR of the mean squared error over all frames (a mean of per-frame PSNRs is dominated by near-copies,
    e.g. a frozen start frame at a return to the start pose, whose PSNR is capped rather than infinite)."""
    p, t = _pair(pred, target)
    mse = float(torch.mean((p - t) ** 2))
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else -10.0 * math.log10(mse)


def idle_drift_ssim(frames: np.ndarray, first: int = 1, last: int = -1) -> float:
    """SSIM between generated frame `last` (frame 100 of an idle suite) and frame `first`: 1 = no drift."""
    f = np.asarray(frames)
    if len(f) < 2:
        raise ValueError(f'idle drift needs at least 2 frames, got {len(f)}')
    return float(ssim(f[[last]], f[[first]])[0])


def revisit_pairs(poses: np.ndarray, max_dist: float = 0.05, max_angle_deg: float = 3.0,
                  min_gap: int = 2) -> list[tuple[int, int]]:
    """Pairs (outbound i, return j) at the same commanded pose, for memory symmetry.

    Outbound frames are those before the turning point (the frame farthest from the start); for each, the
    return frame after the turning point with the nearest pose, if within `max_dist` metres and
    `max_angle_deg` of view direction. Frames of the turning point itself (closer than `min_gap`) are skipped:
    neighbours match trivially.
    """
    P = np.asarray(poses, dtype=np.float64)
    if P.ndim != 3 or P.shape[1:] != (4, 4):
        raise ValueError(f'poses must be (T, 4, 4), got shape {P.shape}')
    centres = P[:, :3, 3]
    forward = P[:, :3, 2]
    turn = int(np.argmax(np.linalg.norm(centres - centres[0], axis=1)))
    pairs = []
    for i in range(0, turn):
        later = np.arange(max(turn, i + 1), len(P))
        later = later[later - i >= min_gap]
        if len(later) == 0:
            continue
        dist = np.linalg.norm(centres[later] - centres[i], axis=1)
        cosang = np.clip(forward[later] @ forward[i], -1.0, 1.0)
        ok = (dist <= max_dist) & (np.degrees(np.arccos(cosang)) <= max_angle_deg)
        if ok.any():
            j = int(later[ok][np.argmin(dist[ok])])
            pairs.append((i, j))
    return pairs


def memory_symmetry(frames: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    """Mean SSIM between each outbound generated frame and the return frame at the same pose (NaN: no pairs).

    Report it only beside the PSNR of the return frames against ground truth: two identical blurs are
    perfectly symmetric.
    """
    if not pairs:
        return math.nan
    f = np.asarray(frames)
    i, j = (list(x) for x in zip(*pairs))
    return float(np.mean(ssim(f[i], f[j])))


def memory_specificity(frames: np.ndarray, pairs: list[tuple[int, int]], poses: np.ndarray,
                       min_dist: float = 0.25) -> float:
    """How much more a return frame resembles its own outbound frame than outbound frames elsewhere.

    Per pair: (s_match - s_other) / (1 - s_other), with s_other the mean SSIM of the return frame against
    outbound frames at least `min_dist` metres away. 1: recalled exactly; 0: no more like its own view than
    like others (a frozen frame is perfectly symmetric yet scores 0 here); NaN: no pairs.
    """
    if not pairs:
        return math.nan
    f = np.asarray(frames)
    centres = np.asarray(poses, dtype=np.float64)[:, :3, 3]
    turn = max(i for i, _ in pairs) + 1
    scores = []
    for i, j in pairs:
        others = [k for k in range(turn) if np.linalg.norm(centres[k] - centres[i]) >= min_dist]
        if not others:
            continue
        s_match = float(ssim(f[[j]], f[[i]])[0])
        s_other = float(np.mean(ssim(f[others], np.repeat(f[[j]], len(others), axis=0))))
        denom = 1.0 - s_other
        scores.append(0.0 if denom < 1e-6 else float(np.clip((s_match - s_other) / denom, -1.0, 1.0)))
    return float(np.mean(scores)) if scores else math.nan


def keypoint_mask(keypoints2d: np.ndarray, visibility: np.ndarray | None, height: int, width: int,
                  radius_px: float | np.ndarray = 3.0) -> np.ndarray:
    """Where the keypoints put the hand: bones drawn as thick lines and joints as discs -> (T, H, W) bool.

    radius_px is one radius for all frames or one per frame (e.g. a finger's 1 cm at the wrist's depth).
    """
    kp = np.asarray(keypoints2d, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (21, 2):
        raise ValueError(f'keypoints2d must be (T, 21, 2), got shape {kp.shape}')
    vis = np.ones(kp.shape[:2], bool) if visibility is None else np.asarray(visibility, bool)
    radii = np.broadcast_to(np.asarray(radius_px, dtype=np.float64), (len(kp),))
    masks = np.zeros((len(kp), height, width), np.uint8)
    for t in range(len(kp)):
        r = max(1, round(float(radii[t])))
        pts = np.round(kp[t] - 0.5).astype(np.int64)  # pixel centres are at +0.5
        for a, b in HAND_BONES:
            if vis[t, a] and vis[t, b]:
                cv2.line(masks[t], tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), 1, 2 * r)
        for k in np.flatnonzero(vis[t]):
            cv2.circle(masks[t], tuple(int(v) for v in pts[k]), r, 1, -1)
    return masks.astype(bool)


def motion_mask(frames: np.ndarray, threshold: float = 0.08, background: np.ndarray | None = None) -> np.ndarray:
    """Where a frame differs from the background -> (T, H, W) bool.

    The background defaults to the per-pixel temporal median of the frames themselves (the camera is fixed
    over a manipulation scenario and the hand covers any pixel less than half of the time), so a model is
    judged against its own scene, not penalised twice for scene drift already in PSNR.
    """
    f = np.asarray(frames).astype(np.float32) / (255.0 if np.asarray(frames).dtype == np.uint8 else 1.0)
    bg = np.median(f, axis=0) if background is None else np.asarray(background, np.float32)
    diff = np.abs(f - bg).max(axis=-1)  # (T, H, W)
    masks = diff > threshold
    kernel = np.ones((3, 3), np.uint8)
    return np.stack([cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0 for m in masks])


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU per frame of two (T, H, W) boolean masks (NaN where both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f'masks differ in shape: {a.shape} vs {b.shape}')
    inter = (a & b).sum(axis=(1, 2)).astype(np.float64)
    union = (a | b).sum(axis=(1, 2)).astype(np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def hand_iou(frames: np.ndarray, keypoints2d: np.ndarray, visibility: np.ndarray | None,
             radius_px: float | np.ndarray = 3.0, threshold: float = 0.08) -> np.ndarray:
    """IoU per frame of where the generated hand is (change from the background) vs the keypoint mask."""
    f = np.asarray(frames)
    return mask_iou(motion_mask(f, threshold), keypoint_mask(keypoints2d, visibility, f.shape[1], f.shape[2],
                                                            radius_px))


def nanmean(values: np.ndarray | list[float]) -> float:
    """Mean over defined values; NaN when none is defined (no warning)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan
