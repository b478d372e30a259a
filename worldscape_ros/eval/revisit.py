"""Revisits of places the start frame does not see: the return frames against ground truth, and two generated
views of the same unseen place against each other.

A return pair (i, j) is two generated frames (1 <= i, i + min_gap <= j) at the same commanded pose: a 360 deg
turn and beyond, a loop's second lap, the way back from around a corner. Scored only on the pixels the start
frame does not see (its revealed mask, identical for both frames of a pair since their poses agree), so the
figures measure what the model imagined and kept, not what the start frame hands it:

- return_unseen_psnr: the return frames j against ground truth on those pixels (pooled PSNR);
- revisit_psnr / revisit_ssim: frame j against frame i of the same rollout on those pixels: the model against
  itself. A frozen frame or any deterministic function of the pose agrees perfectly with itself, so read them
  beside return_unseen_psnr: agreement on a wrong picture is no memory.
"""

from __future__ import annotations

import math

import numpy as np

from worldscape_ros.eval.metrics import ssim_maps
from worldscape_ros.eval.revealed import MIN_FRACTION, pooled_masked_psnr

MIN_GAP = 10  # frames: a revisit is a return after a while, not the next frame of a slow turn
MAX_DIST_M = 0.03  # under one frame's travel at 0.5 m/s and 10 fps, so a pair is one view, not two neighbours
MAX_ANGLE_DEG = 3.0


def return_pairs(poses: np.ndarray, max_dist: float = MAX_DIST_M, max_angle_deg: float = MAX_ANGLE_DEG,
                 min_gap: int = MIN_GAP) -> list[tuple[int, int]]:
    """For each frame j, the generated frame i (1 <= i <= j - min_gap) nearest to its pose, if any is at the same
    pose: camera centres within `max_dist` metres and optical axes within `max_angle_deg` (nearest: centre
    distance plus view angle in radians times 1 m; ties go to the earliest)."""
    P = np.asarray(poses, dtype=np.float64)
    if P.ndim != 3 or P.shape[1:] != (4, 4):
        raise ValueError(f'poses must be (T, 4, 4), got shape {P.shape}')
    if min_gap < 1:
        raise ValueError(f'min_gap must be at least 1 frame, got {min_gap}')
    centres, forward = P[:, :3, 3], P[:, :3, 2]
    cos_max = math.cos(math.radians(max_angle_deg))
    pairs = []
    for j in range(1 + min_gap, len(P)):
        earlier = np.arange(1, j - min_gap + 1)
        dist = np.linalg.norm(centres[earlier] - centres[j], axis=1)
        cos = np.clip(forward[earlier] @ forward[j], -1.0, 1.0)
        near = (dist <= max_dist) & (cos >= cos_max)
        if near.any():
            cost = np.where(near, dist + np.arccos(cos), np.inf)
            pairs.append((int(earlier[int(np.argmin(cost))]), j))
    return pairs


def revisit_scores(gen: np.ndarray, truth: np.ndarray, unseen: np.ndarray,
                   pairs: list[tuple[int, int]]) -> dict[str, float]:
    """gen, truth (T, H, W, 3) uint8; unseen (T, H, W) bool (the start frame's revealed masks); pairs from
    `return_pairs`. Pairs whose return frame has under MIN_FRACTION unseen are left out; NaN: none left."""
    unseen = np.asarray(unseen, bool)
    kept = [(i, j) for i, j in pairs if unseen[j].mean() >= MIN_FRACTION]
    out = {'unseen_pairs': float(len(kept)), 'return_unseen_psnr': math.nan, 'revisit_psnr': math.nan,
           'revisit_ssim': math.nan, 'return_unseen_fraction': math.nan}
    if not kept:
        return out
    i_idx = [i for i, _ in kept]
    j_idx = [j for _, j in kept]
    masks = unseen[j_idx]  # (P, H, W)
    returns = sorted(set(j_idx))
    out['return_unseen_psnr'] = pooled_masked_psnr(gen[returns], truth[returns], unseen[returns])
    out['return_unseen_fraction'] = float(unseen[returns].mean())
    out['revisit_psnr'] = pooled_masked_psnr(gen[j_idx], gen[i_idx], masks)
    maps = ssim_maps(gen[j_idx], gen[i_idx])  # (P, H, W)
    out['revisit_ssim'] = float(np.mean([maps[k][masks[k]].mean() for k in range(len(kept))]))
    return out
