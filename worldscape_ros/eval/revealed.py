"""Newly revealed regions: the pixels of each frame that the start frame does not see (turning into an unseen part
of the room, stepping past an occluder). Only the model can fill them; reprojection leaves them empty and the
geometric guess has nothing there. Fidelity and structure are measured on those pixels alone.
"""

from __future__ import annotations

import math

import numpy as np

from worldscape_ros.eval.baselines import forward_warp
from worldscape_ros.eval.metrics import PSNR_CAP_DB
from worldscape_ros.eval.structure import gradient_energy_map

MIN_FRACTION = 0.02  # frames with less of the image revealed are left out (a sliver of border is not a region)


def revealed_masks(depth0: np.ndarray, poses: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: pixels of frame t no pixel of frame 0 lands on (true depth, z-buffered splat)."""
    blank = np.zeros((*depth0.shape, 3), np.uint8)
    masks = [forward_warp(blank, depth0, poses[0], pose, K)[1] <= 0 for pose in poses]
    return np.stack(masks)


def revealed_scores(pred: np.ndarray, target: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Over every revealed pixel of the frames where at least MIN_FRACTION is revealed (frame 0 excluded):
    pooled PSNR, the gradient energy of pred over that of target, and the revealed fraction. NaN: none."""
    frames = [t for t in range(1, len(masks)) if masks[t].mean() >= MIN_FRACTION]
    if not frames:
        return {'revealed_psnr': math.nan, 'revealed_structure': math.nan, 'revealed_fraction': 0.0}
    se, n, e_pred, e_true = 0.0, 0, 0.0, 0.0
    for t in frames:
        m = masks[t]
        p, g = pred[t].astype(np.float64) / 255.0, target[t].astype(np.float64) / 255.0
        se += float(((p - g) ** 2)[m].sum())
        n += int(m.sum()) * 3
        e_pred += float(gradient_energy_map(pred[t])[m].sum())
        e_true += float(gradient_energy_map(target[t])[m].sum())
    mse = se / n
    return {'revealed_psnr': PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else -10.0 * math.log10(mse),
            'revealed_structure': e_pred / e_true if e_true > 0 else math.nan,
            'revealed_fraction': float(np.mean([masks[t].mean() for t in frames]))}
