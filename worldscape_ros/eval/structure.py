"""Structure figures that fail both blur and noise, beside PSNR/SSIM (which reward a collapse to mean colours).

- Gradient energy ratio: sum of squared Sobel gradients of the generated frame over that of ground truth.
  Blur pushes it below 1, patch noise and grain above 1; a frame passes when it lies in a band around 1.
- Region ratio: the same ratio summed over a region only (the pixels the start frame does not see), on its
  interior (the region less a 1-pixel rim, the reach of the 3x3 Sobel), so what is measured is the texture of
  the fill and not the seam to its surroundings (a black hole's edge would otherwise read as structure); above
  the band's upper bound there, the region is flagged as patch noise (more texture than the scene has).
- GMSD (Xue et al. 2014, gradient magnitude similarity deviation): the standard deviation over pixels of the
  gradient magnitude similarity map; 0 for identical images, larger for blur and noise alike.

Images are (..., H, W, 3) uint8 or float in [0, 1]; figures are per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GMSD_C = 170.0 / 255.0**2  # the paper's stability constant, rescaled to images in [0, 1]


@dataclass(frozen=True)
class StructureBand:
    """Gradient energy ratios inside [low, high] pass: near 1 from below (blur) and above (noise)."""

    low: float = 0.7
    high: float = 1.3

    def __post_init__(self) -> None:
        if not 0 < self.low < 1 < self.high:
            raise ValueError(f'structure band must satisfy 0 < low < 1 < high, got [{self.low}, {self.high}]')

    def passes(self, ratio: np.ndarray) -> np.ndarray:
        r = np.asarray(ratio, dtype=np.float64)
        return (r >= self.low) & (r <= self.high)

    def noisy(self, ratio: np.ndarray) -> np.ndarray:
        """Ratios above the band: more gradient energy than the scene has (patch noise, grain). NaN: False."""
        return np.asarray(ratio, dtype=np.float64) > self.high


def to_gray(images: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 or float in [0, 1] -> (..., H, W) float32 luma in [0, 1]."""
    x = np.asarray(images)
    if x.ndim < 3 or x.shape[-1] != 3:
        raise ValueError(f'images must be (..., H, W, 3), got shape {x.shape}')
    xf = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return xf @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _frames(gray: np.ndarray) -> np.ndarray:
    return gray.reshape(-1, *gray.shape[-2:])  # (N, H, W)


def gradient_energy_map(image: np.ndarray) -> np.ndarray:
    """Squared Sobel gradient magnitude per pixel of one frame: (H, W, 3) -> (H, W) float64."""
    g = to_gray(image)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2


def gradient_energy(images: np.ndarray) -> np.ndarray:
    """Mean squared Sobel gradient magnitude per frame: (..., H, W, 3) -> (...)."""
    x = np.asarray(images)
    frames = x.reshape(-1, *x.shape[-3:])  # (N, H, W, 3)
    return np.array([gradient_energy_map(f).mean() for f in frames], dtype=np.float64).reshape(x.shape[:-3])


def gradient_energy_ratio(pred: np.ndarray, target: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Gradient energy of `pred` over that of `target`, per frame (1 = as much structure as ground truth)."""
    _check_pair(pred, target)
    return gradient_energy(pred) / np.maximum(gradient_energy(target), eps)


def interior(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> the mask less a 1-pixel rim inside the image (the image's own border is no rim)."""
    m = np.asarray(mask, np.uint8)
    return cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0


def region_energy_ratio(pred: np.ndarray, target: np.ndarray, masks: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Per frame: gradient energy of `pred` summed over the given region over that of `target` there.

    pred, target (T, H, W, 3); masks (T, H, W) bool, used as given (pass `interior` masks to leave out a
    region's seam). NaN where the mask is empty or the target has no gradient there.
    """
    _check_pair(pred, target)
    m = np.asarray(masks, bool)
    if m.shape != np.shape(pred)[:-1]:
        raise ValueError(f'masks must be (T, H, W) = {np.shape(pred)[:-1]}, got {m.shape}')
    out = np.full(len(m), np.nan)
    for t in range(len(m)):
        if not m[t].any():
            continue
        e_true = float(gradient_energy_map(target[t])[m[t]].sum())
        if e_true > eps:
            out[t] = float(gradient_energy_map(pred[t])[m[t]].sum()) / e_true
    return out


def gmsd(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """GMSD per frame, as in the paper: 2x2 average-downsampled luma, Prewitt gradients, std of the GMS map."""
    _check_pair(pred, target)
    p, t = _frames(to_gray(pred)), _frames(to_gray(target))
    kx = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float32) / 3.0
    out = []
    for a, b in zip(p, t):
        if min(a.shape) >= 4:  # the paper halves the resolution first; tiny images are used as they are
            a, b = _halve(a), _halve(b)
        ma = np.hypot(cv2.filter2D(a, -1, kx), cv2.filter2D(a, -1, kx.T))
        mb = np.hypot(cv2.filter2D(b, -1, kx), cv2.filter2D(b, -1, kx.T))
        gms = (2 * ma * mb + GMSD_C) / (ma**2 + mb**2 + GMSD_C)  # (h, w), 1 where gradients agree
        out.append(float(np.std(gms.astype(np.float64))))
    return np.array(out, dtype=np.float64).reshape(to_gray(pred).shape[:-2])


def _halve(g: np.ndarray) -> np.ndarray:
    h, w = g.shape[0] // 2, g.shape[1] // 2
    return np.ascontiguousarray(g[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3)))  # (H/2, W/2)


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if np.shape(pred) != np.shape(target):
        raise ValueError(f'generated and ground-truth images differ in shape: {np.shape(pred)} vs {np.shape(target)}')
