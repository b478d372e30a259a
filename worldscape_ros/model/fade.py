"""How far a smooth fill carries: its share of a pixel falls as exp(-d / reach) with the distance d from the pixels
it continues. Beside the boundary a fill that smears it (Telea's) is a good guess; half a view away the scene's
mean colour is the better one. numpy and OpenCV only, so the baselines (eval/baselines.py) share it."""

from __future__ import annotations

import cv2
import numpy as np


def source_distance(source: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) float32: each pixel's distance in pixels from the nearest source pixel (inf without
    any), from which fades of any reach are made."""
    if not source.any():
        return np.full(source.shape, np.inf, np.float32)
    return cv2.distanceTransform((~source).astype(np.uint8), cv2.DIST_L2, 5)


def fade_weight(source: np.ndarray, reach: float, distance: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool, the pixels a smooth fill continues -> (H, W) float32 exp(-d / reach), d the distance in pixels
    from the nearest of them: the share a pixel takes of that fill. Without any source pixel, 0 everywhere.
    distance: source_distance(source), when already made."""
    d = source_distance(source) if distance is None else distance
    return np.exp(-d / reach).astype(np.float32)
