"""Procedural textures: multi-scale noise plus painted shapes, rich enough for SIFT feature matching.

MuJoCo's builtin checker textures repeat exactly, which starves feature matching (the action-following metric
recovers camera motion from matched features); these are
PNG-encoded images passed to MuJoCo as in-memory assets, made deterministically from a numpy Generator.
"""

from __future__ import annotations

import cv2
import numpy as np


def noise_image(rng: np.random.Generator, size: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Multi-octave value noise around a base colour: (size, size, 3) float in [0, 1]."""
    img = np.zeros((size, size), dtype=np.float32)
    amp, total = 1.0, 0.0
    for cells in (4, 8, 16, 32, 64):
        grid = rng.random((cells, cells), dtype=np.float32)
        img += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.6
    img = (img / total - 0.5) * 2.0  # roughly [-1, 1]
    tint = 1.0 + contrast * img[..., None] * (0.7 + 0.3 * rng.random(3, dtype=np.float32))
    return np.clip(base[None, None, :] * tint, 0.0, 1.0)


def paint_shapes(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Draw rectangles, discs and strokes in random colours, in place (float image in [0, 1])."""
    size = img.shape[0]
    for _ in range(count):
        colour = tuple(float(c) for c in rng.random(3))
        kind = int(rng.integers(3))
        p = rng.integers(0, size, 2)
        if kind == 0:
            q = p + rng.integers(size // 32, size // 6, 2)
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, -1)
        elif kind == 1:
            cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(size // 64, size // 12)), colour, -1)
        else:
            q = rng.integers(0, size, 2)
            cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, int(rng.integers(1, 5)))


def texture_png(rng: np.random.Generator, size: int = 256, shapes: int = 80, contrast: float = 0.5) -> bytes:
    """A PNG-encoded RGB texture: noise in a random base colour with painted shapes."""
    base = 0.25 + 0.6 * rng.random(3, dtype=np.float32)
    img = noise_image(rng, size, base, contrast)
    paint_shapes(rng, img, shapes)
    rgb8 = (img * 255.0 + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode('.png', cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError('OpenCV could not encode a texture as PNG')
    return buf.tobytes()
