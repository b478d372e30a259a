"""A contact sheet: one row per episode, a few frames each as RGB beside colour-mapped depth, with the hand's
21 keypoints and bones drawn on manipulation frames (visible landmarks green, occluded ones red)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from worldscape_ros.data.episode import EPISODE_SUFFIX, Episode, read_episode
from worldscape_ros.errors import DatagenError
from worldscape_ros.fileio import atomic_write_bytes
from worldscape_ros.synthetic.hand import HAND_CONNECTIONS

MIN_TILE_HEIGHT = 128  # small frames are enlarged (nearest neighbour) so a sheet can be looked at


def depth_colour(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Metric depth (H, W) -> RGB (H, W, 3) uint8, near warm, far cold, NaN black.

    Coloured by inverse depth between lo and hi metres, which spreads the colours over near surfaces (a hand
    over a table) instead of spending them on a far wall or the sky.
    """
    finite = np.isfinite(depth)
    inv = 1.0 / np.clip(np.nan_to_num(depth, nan=hi), lo, hi)
    scaled = (inv - 1.0 / hi) / max(1.0 / lo - 1.0 / hi, 1e-9)  # 1 at lo (near), 0 at hi (far)
    bgr = cv2.applyColorMap((255 * scaled).astype(np.uint8), cv2.COLORMAP_TURBO)
    bgr[~finite] = 0
    return np.ascontiguousarray(bgr[..., ::-1])


def draw_keypoints(rgb: np.ndarray, uv: np.ndarray, visible: np.ndarray, scale: float) -> None:
    """Bones and landmarks onto an RGB tile in place; uv are pixel coordinates of the unscaled frame."""
    pts = [(int(round(u * scale)), int(round(v * scale))) for u, v in uv]
    for a, b in HAND_CONNECTIONS:
        cv2.line(rgb, pts[a], pts[b], (255, 255, 255), 1, cv2.LINE_AA)
    for p, vis in zip(pts, visible):
        cv2.circle(rgb, p, 2, (0, 230, 0) if vis else (230, 0, 0), -1, cv2.LINE_AA)


def episode_row(ep: Episode, frames_per_row: int) -> np.ndarray:
    T, H, W = ep.rgb.shape[:3]
    scale = max(1, int(np.ceil(MIN_TILE_HEIGHT / H)))
    picks = np.unique(np.linspace(0, T - 1, frames_per_row).round().astype(int))
    finite = ep.depth[np.isfinite(ep.depth)]
    lo, hi = (float(np.quantile(finite, 0.01)), float(np.quantile(finite, 0.99))) if finite.size else (0.1, 1.0)
    lo, hi = max(lo, 1e-3), max(hi, lo + 1e-3)
    tiles = []
    for t in picks:
        rgb = cv2.resize(ep.rgb[t], (W * scale, H * scale), interpolation=cv2.INTER_NEAREST)
        if ep.keypoints2d is not None and ep.visibility is not None:
            draw_keypoints(rgb, ep.keypoints2d[t], ep.visibility[t], scale)
        depth = cv2.resize(depth_colour(ep.depth[t], lo, hi), (W * scale, H * scale),
                           interpolation=cv2.INTER_NEAREST)
        tiles.append(np.concatenate([rgb, depth], axis=1))
        tiles.append(np.full((H * scale, 4, 3), 255, np.uint8))  # gap between frames
    row = np.concatenate(tiles[:-1], axis=1)
    label = f"{ep.meta.get('scene_kind', '?')} seed {ep.meta.get('scene_seed', '?')} {ep.meta.get('family', '')}"
    cv2.putText(row, label, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return row


def contact_sheet(episode_dir: str | Path, out: str | Path, count: int = 4, frames_per_row: int = 4) -> Path:
    """Write a PNG grid of `count` episodes from a folder; returns the PNG path."""
    episode_dir, out = Path(episode_dir), Path(out)
    if count <= 0 or frames_per_row <= 0:
        raise DatagenError(f'--count must be positive, got {count}')
    if not episode_dir.is_dir():
        raise DatagenError(f'episode folder {episode_dir} does not exist')
    paths = sorted(episode_dir.rglob(f'*{EPISODE_SUFFIX}'))[:count]
    if not paths:
        raise DatagenError(f'no episodes (*{EPISODE_SUFFIX}) in {episode_dir}')
    rows = [episode_row(read_episode(p), frames_per_row) for p in paths]
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = np.concatenate(padded, axis=0)
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(sheet[..., ::-1]))
    if not ok:
        raise DatagenError('OpenCV could not encode the contact sheet')
    return atomic_write_bytes(out, buf.tobytes())
