"""Depth images on disk: float32 metres in a .npy file, or a 16-bit PNG in millimetres (the convention of
RealSense, Kinect and TUM RGB-D recordings; 0 = no measurement).

Both load to an (H, W) float32 array of z-depth in metres along the optical axis, 0 where nothing was
measured. A file whose shape, type or values cannot be depth is refused with one error naming the file and
what is wrong with it, so a bad start depth never reaches the engine as silent garbage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldscape_ros.errors import WorldScapeError
from worldscape_ros.fileio import atomic_path

MM_PER_M = 1000.0
PNG_MAX_M = 65.535  # the largest depth a 16-bit millimetre PNG holds


class DepthFileError(WorldScapeError, ValueError):
    """A depth file is missing, unreadable, of the wrong shape or type, or holds values that are not depth."""


def load_depth(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a depth image: `.npy` (H, W) float32 (or float64) metres, or `.png` (H, W) uint16 millimetres.

    shape: the (height, width) the depth must have (the start image's), checked when given.
    Returns (H, W) float32 metres; 0 marks pixels without a measurement.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in ('.npy', '.png'):
        raise DepthFileError(f'depth file {p}: expected a .npy (float32 metres) or a .png (16-bit millimetres), '
                             f'got {p.suffix or "no extension"}')
    if not p.is_file():
        raise DepthFileError(f'depth file {p} does not exist')
    depth = _load_npy(p) if suffix == '.npy' else _load_png(p)
    if shape is not None and depth.shape != tuple(shape):
        raise DepthFileError(f'depth file {p} is {depth.shape[1]}x{depth.shape[0]} (W x H); the image it belongs '
                             f'to is {shape[1]}x{shape[0]}')
    return depth


def _load_npy(p: Path) -> np.ndarray:
    try:
        raw = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DepthFileError(f'depth file {p} is not a readable .npy array: {exc}') from None
    if raw.ndim != 2:
        raise DepthFileError(f'depth file {p} must be one (H, W) map, got shape {raw.shape}')
    if raw.dtype not in (np.float32, np.float64):
        raise DepthFileError(f'depth file {p} must hold float32 metres, got dtype {raw.dtype} (integer millimetres '
                             'belong in a 16-bit PNG)')
    finite = np.isfinite(raw)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise DepthFileError(f'depth file {p} has {int((~finite).sum())} non-finite values (first at row '
                             f'{bad[0]}, column {bad[1]}); mark missing depth with 0')
    if (raw < 0).any():
        raise DepthFileError(f'depth file {p} has negative depths (minimum {float(raw.min()):.3g} m)')
    return raw.astype(np.float32)


def _load_png(p: Path) -> np.ndarray:
    import cv2

    raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DepthFileError(f'depth file {p} cannot be read as a PNG image')
    if raw.ndim != 2:
        raise DepthFileError(f'depth file {p} has {raw.shape[2]} channels; a depth PNG has one (16-bit '
                             'millimetres)')
    if raw.dtype != np.uint16:
        raise DepthFileError(f'depth file {p} is {raw.dtype.itemsize * 8}-bit; a depth PNG holds 16-bit '
                             'millimetres')
    return (raw.astype(np.float32) / MM_PER_M).astype(np.float32)


def save_depth(path: str | Path, depth: np.ndarray) -> Path:
    """Write (H, W) metres as `.npy` float32 or `.png` 16-bit millimetres (rounded), atomically.

    Non-finite or non-positive values are written as 0 (no measurement); a PNG refuses depths it cannot hold.
    """
    p = Path(path)
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise DepthFileError(f'depth to write to {p} must be (H, W), got shape {d.shape}')
    d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
    suffix = p.suffix.lower()
    if suffix == '.npy':
        with atomic_path(p) as tmp, open(tmp, 'wb') as fh:
            np.save(fh, d.astype(np.float32), allow_pickle=False)
        return p
    if suffix != '.png':
        raise DepthFileError(f'depth file {p}: write .npy (float32 metres) or .png (16-bit millimetres)')
    if d.max(initial=0.0) > PNG_MAX_M:
        raise DepthFileError(f'depth to write to {p} reaches {d.max():.2f} m; a 16-bit millimetre PNG holds at '
                             f'most {PNG_MAX_M} m (write .npy instead)')
    import cv2

    ok, buf = cv2.imencode('.png', np.round(d * MM_PER_M).astype(np.uint16))
    if not ok:
        raise DepthFileError(f'could not encode {p} as a 16-bit PNG')
    with atomic_path(p) as tmp:
        tmp.write_bytes(buf.tobytes())
    return p
