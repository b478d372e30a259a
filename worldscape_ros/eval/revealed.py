"""Newly revealed regions: the pixels of each frame that the start frame does not see (turning into an unseen part
of the room, stepping past an occluder). Only the model can fill them; reprojection leaves them empty and the
geometric guess has nothing there. Fidelity and structure are measured on those pixels alone.
"""

from __future__ import annotations

import math

import numpy as np

from worldscape_ros.eval.baselines import forward_warp
from worldscape_ros.eval.metrics import PSNR_CAP_DB
from worldscape_ros.eval.structure import StructureBand, gradient_energy_map, interior, region_energy_ratio

MIN_FRACTION = 0.02  # frames with less of the image revealed are left out (a sliver of border is not a region)


def revealed_masks(depth0: np.ndarray, poses: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: pixels of frame t no pixel of frame 0 lands on (true depth, z-buffered splat)."""
    blank = np.zeros((*depth0.shape, 3), np.uint8)
    masks = [forward_warp(blank, depth0, poses[0], pose, K)[1] <= 0 for pose in poses]
    return np.stack(masks)


def masked_psnr(pred: np.ndarray, target: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """PSNR per frame over the masked pixels only: (T, H, W, 3) frames, (T, H, W) masks -> (T,); NaN where a
    mask is empty; capped at PSNR_CAP_DB like every PSNR here."""
    m = np.asarray(masks, bool)
    if np.shape(pred) != np.shape(target) or m.shape != np.shape(pred)[:-1]:
        raise ValueError(f'frames {np.shape(pred)}, {np.shape(target)} and masks {m.shape} must agree in shape')
    out = np.full(len(m), np.nan)
    for t in range(len(m)):
        if m[t].any():
            out[t] = _psnr_of(*_sse(pred[t], target[t], m[t]))
    return out


def _sse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    p, g = pred.astype(np.float64) / 255.0, target.astype(np.float64) / 255.0
    return float(((p - g) ** 2)[mask].sum()), int(mask.sum()) * 3


def _psnr_of(se: float, n: int) -> float:
    if n == 0:
        return math.nan
    mse = se / n
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else -10.0 * math.log10(mse)


def pooled_masked_psnr(pred: np.ndarray, target: np.ndarray, masks: np.ndarray) -> float:
    """PSNR of the squared error pooled over every masked pixel of every frame (NaN: no pixel)."""
    se, n = 0.0, 0
    for t in range(len(masks)):
        if masks[t].any():
            a, b = _sse(pred[t], target[t], masks[t])
            se, n = se + a, n + b
    return _psnr_of(se, n)


def revealed_scores(pred: np.ndarray, target: np.ndarray, masks: np.ndarray,
                    band: StructureBand | None = None) -> dict[str, float]:
    """Figures on revealed and seen pixels, frames 1.. (frame 0 is the given start). NaN: none to score.

    Revealed, over the frames where at least MIN_FRACTION is revealed: pooled PSNR, gradient energy of pred over
    that of target, the revealed fraction, the share of those frames whose revealed region is patch noise
    (energy ratio above the band) and the scenario's patch-noise flag (1 when the pooled ratio is above it).
    Seen, over every pixel of frames 1.. that the start frame sees: pooled PSNR and gradient energy ratio.
    Energy ratios are taken on each region's interior (structure.interior): the seam between seen and revealed
    pixels belongs to neither.
    """
    band = band or StructureBand()
    masks = np.asarray(masks, bool)
    seen = ~masks
    seen[0] = False
    out = {'seen_psnr': pooled_masked_psnr(pred, target, seen)}
    inner = np.stack([interior(m) for m in seen])
    e_pred = sum(float(gradient_energy_map(pred[t])[inner[t]].sum()) for t in range(1, len(masks)))
    e_true = sum(float(gradient_energy_map(target[t])[inner[t]].sum()) for t in range(1, len(masks)))
    out['seen_structure'] = e_pred / e_true if e_true > 0 else math.nan
    frames = [t for t in range(1, len(masks)) if masks[t].mean() >= MIN_FRACTION]
    if not frames:
        return out | {'revealed_psnr': math.nan, 'revealed_structure': math.nan, 'revealed_fraction': 0.0,
                      'revealed_noise_frames': math.nan, 'revealed_noise_flag': math.nan}
    rev = np.zeros_like(masks)
    rev[frames] = masks[frames]
    inner = np.stack([interior(m) for m in rev[frames]])
    e_pred = sum(float(gradient_energy_map(pred[t])[m].sum()) for t, m in zip(frames, inner))
    e_true = sum(float(gradient_energy_map(target[t])[m].sum()) for t, m in zip(frames, inner))
    ratio = e_pred / e_true if e_true > 0 else math.nan
    per_frame = region_energy_ratio(pred[frames], target[frames], inner)
    return out | {'revealed_psnr': pooled_masked_psnr(pred, target, rev), 'revealed_structure': ratio,
                  'revealed_fraction': float(np.mean([masks[t].mean() for t in frames])),
                  'revealed_noise_frames': float(np.mean(band.noisy(per_frame))),
                  'revealed_noise_flag': float(band.noisy(np.array(ratio))) if math.isfinite(ratio) else math.nan}


def region_curves(pred: np.ndarray, target: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame PSNR on seen pixels and on revealed pixels (frames with under MIN_FRACTION revealed: NaN)."""
    masks = np.asarray(masks, bool)
    rev = masks & (masks.mean(axis=(1, 2)) >= MIN_FRACTION)[:, None, None]
    seen_psnr, rev_psnr = masked_psnr(pred, target, ~masks), masked_psnr(pred, target, rev)
    seen_psnr[0] = rev_psnr[0] = math.nan
    return {'seen_psnr': seen_psnr, 'revealed_psnr': rev_psnr}
