"""Fitting `scene.headlight`, the camera's share of the light (model/headlight.py), to a world's episodes: each
episode's frames with measured depth committed to a scene memory as the engine commits a start, rendered into the
camera a few frames later, and the share whose render is nearest those later frames on the pixels it covers is
the world's. A world with no light on the camera fits 0; the synthetic worlds (MuJoCo's headlight) fit about 0.4.

Only geometry and the light are fitted: no network runs, so the share does not depend on any checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldscape_ros.data.episode import read_episode
from worldscape_ros.errors import TrainError
from worldscape_ros.model.config import SceneConfig
from worldscape_ros.model.scene_memory import OBSERVED, SceneMemory

SHARES = tuple(round(0.05 * i, 2) for i in range(17))  # 0 to 0.8: the shares tried
OFFSETS = (4, 8)  # frames between a start and the frame it is rendered into
STRIDE = 8  # frames between starts within an episode


@dataclass(frozen=True)
class HeadlightFit:
    """The share whose renders are nearest the frames, and each share's PSNR on the rendered pixels."""

    share: float
    psnr: dict[float, float]  # share -> PSNR (dB) of the renders pooled over every pair
    pairs: int  # (start, later frame) pairs pooled


def squared_errors(rgb: np.ndarray, depth: np.ndarray, poses: np.ndarray, K: np.ndarray, shares: Sequence[float],
                   offsets: Sequence[int] = OFFSETS, stride: int = STRIDE) -> tuple[np.ndarray, int, int]:
    """One episode: rgb (T, H, W, 3) uint8, depth (T, H, W) metres (NaN or <= 0: unknown), poses (T, 4, 4)
    camera-to-world, K (3, 3) -> per share the summed squared error (in [0, 1] units) of the rendered pixels, the
    number of values summed, and the pairs used."""
    T, H, W = depth.shape
    sse = np.zeros(len(shares))
    n, pairs = 0, 0
    for start in range(0, T, stride):
        ahead = [start + k for k in offsets if start + k < T]
        if not ahead or not np.isfinite(depth[start]).any():
            continue
        frame = torch.from_numpy(rgb[start]).permute(2, 0, 1).float() / 255
        d = torch.from_numpy(np.nan_to_num(depth[start], nan=0.0))
        renders = []
        for share in shares:
            scene = SceneMemory(SceneConfig(headlight=share))
            scene.commit(frame, d, poses[start], K, trust=OBSERVED)
            renders.append([scene.render(poses[t], K, H, W) for t in ahead])
        for t_index, t in enumerate(ahead):
            covered = renders[0][t_index].mask.numpy()  # the same pixels at every share
            if not covered.any():
                continue
            truth = rgb[t].astype(np.float64)[covered] / 255
            for i in range(len(shares)):
                drawn = renders[i][t_index].rgb.permute(1, 2, 0).numpy().astype(np.float64)[covered]
                sse[i] += float(((drawn - truth) ** 2).sum())
            n += truth.size
            pairs += 1
    return sse, n, pairs


def fit_headlight(paths: Sequence[Path], shares: Sequence[float] = SHARES, offsets: Sequence[int] = OFFSETS,
                  stride: int = STRIDE) -> HeadlightFit:
    """The share of `shares` (each in [0, 1)) whose renders are nearest the episodes' frames."""
    if not paths:
        raise TrainError('headlight fit: no episodes given')
    if not shares or any(not 0 <= s < 1 for s in shares):
        raise TrainError(f'headlight fit: every share must be in [0, 1), got {list(shares)}')
    if not offsets or min(offsets) < 1 or stride < 1:
        raise TrainError(f'headlight fit: offsets and stride must be >= 1, got {list(offsets)} and {stride}')
    sse = np.zeros(len(shares))
    n, pairs = 0, 0
    for path in paths:
        ep = read_episode(path)
        e, m, p = squared_errors(ep.rgb, ep.depth, ep.poses, ep.intrinsics, shares, offsets, stride)
        sse, n, pairs = sse + e, n + m, pairs + p
    if not n:
        raise TrainError('headlight fit: no frame pair with measured depth and a later frame in view')
    psnr = {float(s): -10 * math.log10(max(e / n, 1e-12)) for s, e in zip(shares, sse)}
    return HeadlightFit(float(shares[int(np.argmin(sse))]), psnr, pairs)
