"""Looking at rollouts: MP4 videos (imageio + ffmpeg) and contact sheets (PNG) of RGB beside coloured depth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from worldscape_ros.fileio import atomic_path, atomic_write_bytes


def colorize_depth(depth: np.ndarray, max_depth: float = 10.0) -> np.ndarray:
    """Metric depth (H, W) -> (H, W, 3) uint8 RGB, turbo colours on inverse depth (near warm, far cool).

    A fixed range (not per frame) so that colours mean the same distance in every frame of a video.
    Non-finite or non-positive depth (unknown, REP-118's +-Inf, NaN) is drawn black.
    """
    d = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    inv = np.where(valid, 1.0 / np.clip(d, 0.1, max_depth), 0.0)  # (H, W) in [1/max, 10]
    lo, hi = 1.0 / max_depth, 10.0
    t = np.clip((np.log(np.maximum(inv, lo)) - np.log(lo)) / (np.log(hi) - np.log(lo)), 0, 1)
    bgr = cv2.applyColorMap((t * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    rgb = bgr[..., ::-1].copy()
    rgb[~valid] = 0
    return rgb


def panel(rgb: np.ndarray, depth: np.ndarray | None, scale: int = 1, max_depth: float = 10.0,
          extra: np.ndarray | None = None) -> np.ndarray:
    """RGB, coloured depth (if given) and an extra image (e.g. the hand pose video) side by side, enlarged
    `scale` times with nearest neighbours."""
    parts = [rgb] if depth is None else [rgb, colorize_depth(depth, max_depth)]
    if extra is not None:
        parts.append(extra)
    out = np.concatenate(parts, axis=1)  # (H, W * parts, 3)
    if scale > 1:
        out = np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)
    return out


def auto_scale(height: int, target: int = 240) -> int:
    """Integer enlargement that brings tiny model frames (e.g. 48 px) to a viewable height."""
    return max(1, target // max(1, height))


def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """(H, W, 3) uint8 frames -> an H.264 MP4 (yuv420p, plays everywhere), written atomically."""
    import imageio.v2 as imageio

    path = Path(path)
    if not frames:
        raise ValueError(f'no frames to write to {path}')
    if not fps > 0:
        raise ValueError(f'fps must be positive, got {fps}')
    h, w = frames[0].shape[:2]
    for f in frames:
        if f.shape != (h, w, 3) or f.dtype != np.uint8:
            raise ValueError(f'every frame must be ({h}, {w}, 3) uint8, got {f.shape} {f.dtype}')
    with atomic_path(path) as tmp:
        writer: Any = imageio.get_writer(tmp, format='FFMPEG', mode='I', fps=fps, codec='libx264',
                                         pixelformat='yuv420p', macro_block_size=1, ffmpeg_log_level='error')
        with writer:
            for f in frames:
                # yuv420p needs even sizes: pad by one row/column of edge pixels where odd
                writer.append_data(np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode='edge'))
    return path


def contact_sheet(frames: Sequence[np.ndarray], labels: Sequence[str] | None = None, columns: int = 6,
                  count: int = 12) -> np.ndarray:
    """`count` frames spread evenly over the sequence, in a grid with a label under each, (H', W', 3) uint8."""
    if not frames:
        raise ValueError('no frames for a contact sheet')
    idx = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    h, w = frames[0].shape[:2]
    label_h, gap = 18, 4
    cols = min(columns, len(idx))
    rows = -(-len(idx) // cols)
    sheet = np.full((rows * (h + label_h), cols * (w + gap) - gap, 3), 255, np.uint8)
    for n, i in enumerate(idx):
        r, c = divmod(n, cols)
        y, x = r * (h + label_h), c * (w + gap)
        sheet[y:y + h, x:x + w] = frames[i]
        text = labels[i] if labels is not None else f'frame {i}'
        cv2.putText(sheet, text, (x + 3, y + h + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """RGB uint8 image -> PNG, written atomically."""
    path = Path(path)
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f'could not encode {path} as PNG')
    return atomic_write_bytes(path, buf.tobytes())


def read_mp4(path: str | Path) -> list[np.ndarray]:
    """Decode an MP4 back into (H, W, 3) uint8 frames (for checks and tests)."""
    import imageio.v2 as imageio

    reader: Any = imageio.get_reader(str(path), format='FFMPEG')
    with reader:
        return [np.asarray(f) for f in reader]
