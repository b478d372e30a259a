"""Camera messages of a bag as arrays: colour (Image in rgb8, bgr8, mono8, rgba8, bgra8, or a JPEG/PNG
CompressedImage) and registered depth (32FC1 metres, 16UC1 millimetres, 16-bit PNG), the camera_info's distortion
undone, and depth resampled onto the colour image's grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from worldscape_ros.data.camera_adapt import CameraFit
from worldscape_ros.errors import BagImportError

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'


def _bytes(data: Any) -> np.ndarray:
    return np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray | memoryview) else \
        np.asarray(data, dtype=np.uint8)


def _rows(msg: Any, channels: int, itemsize: int) -> np.ndarray:
    data = _bytes(msg.data)
    width_bytes = msg.width * channels * itemsize
    if msg.step < width_bytes or data.size < msg.step * msg.height:
        raise BagImportError(f'{msg.encoding} image {msg.width}x{msg.height} has step {msg.step} and '
                             f'{data.size} bytes: too few')
    return data[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :width_bytes]


_COLOUR = {'rgb8': (3, None), 'bgr8': (3, cv2.COLOR_BGR2RGB), 'mono8': (1, cv2.COLOR_GRAY2RGB),
           'rgba8': (4, cv2.COLOR_RGBA2RGB), 'bgra8': (4, cv2.COLOR_BGRA2RGB)}


def decode_colour(msgtype: str, msg: Any) -> np.ndarray:
    """Image or CompressedImage -> (H, W, 3) uint8 RGB."""
    if msgtype == COMPRESSED:
        fmt = str(msg.format).lower()
        if 'compresseddepth' in fmt:
            raise BagImportError(f'compressed image format {msg.format!r} is depth, not colour')
        bgr = cv2.imdecode(_bytes(msg.data), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BagImportError(f'compressed image (format {msg.format!r}) does not decode as JPEG or PNG')
        return np.ascontiguousarray(bgr[..., ::-1])
    enc = str(msg.encoding).lower()
    if enc not in _COLOUR:
        raise BagImportError(f'image encoding {msg.encoding!r} is not supported for colour (use one of '
                             f'{", ".join(_COLOUR)}, or jpeg/png CompressedImage)')
    channels, code = _COLOUR[enc]
    img = _rows(msg, channels, 1).reshape(msg.height, msg.width, channels)
    return np.ascontiguousarray(img if code is None else cv2.cvtColor(img, code))


def decode_depth(msgtype: str, msg: Any) -> np.ndarray:
    """32FC1 metres or 16UC1 millimetres (Image, or a 16-bit PNG CompressedImage) -> (H, W) float32 metres, NaN
    where unknown (0, NaN, +-inf in the message: REP-118)."""
    if msgtype == COMPRESSED:
        if 'compresseddepth' in str(msg.format).lower():
            raise BagImportError(f"depth format {msg.format!r} (image_transport's compressedDepth) is not "
                                 'supported: record raw 16UC1 or 32FC1 depth')
        raw = cv2.imdecode(_bytes(msg.data), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
            raise BagImportError(f'compressed depth (format {msg.format!r}) is not a 16-bit one-channel PNG')
        metres = raw.astype(np.float32) / 1000.0
    else:
        enc = str(msg.encoding).upper()
        if enc == '32FC1':
            metres = _rows(msg, 1, 4).copy().view('>f4' if msg.is_bigendian else '<f4').reshape(
                msg.height, msg.width).astype(np.float32)
        elif enc in ('16UC1', 'MONO16'):
            mm = _rows(msg, 1, 2).copy().view('>u2' if msg.is_bigendian else '<u2').reshape(msg.height, msg.width)
            metres = mm.astype(np.float32) / 1000.0
        else:
            raise BagImportError(f'depth encoding {msg.encoding!r} is not supported (32FC1 metres or 16UC1 mm)')
    return np.where(np.isfinite(metres) & (metres > 0), metres, np.float32(np.nan)).astype(np.float32)


def undistorter(K: np.ndarray, info: Any) -> Any:
    """A function undoing the camera_info's distortion (identity when there is none)."""
    d = np.asarray(info.d, dtype=np.float64)
    if d.size == 0 or not np.any(d):
        return None
    model = str(info.distortion_model)
    if model not in ('plumb_bob', 'rational_polynomial'):
        raise BagImportError(f'camera_info distortion model {model!r} is not supported (plumb_bob, '
                             'rational_polynomial, or rectified images with zero distortion)')
    size = (int(info.width), int(info.height))
    maps = cv2.initUndistortRectifyMap(K, d, None, K, size, cv2.CV_32FC1)

    def undo(img: np.ndarray, depth: bool = False) -> np.ndarray:
        return cv2.remap(img, *maps, interpolation=cv2.INTER_NEAREST if depth else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=float('nan') if depth else 0)

    return undo


def fit_depth(d: np.ndarray, w: int, h: int, fit: CameraFit, undistort: Any, bag: Path, topic: str | None
              ) -> np.ndarray:
    """A depth image on the colour image's grid (w x h), undistorted like it and fitted to the model's size."""
    if d.shape != (h, w):  # registered depth at another resolution: same field of view, resampled
        if abs(d.shape[1] / d.shape[0] - w / h) > 0.01:
            raise BagImportError(f'{bag}: depth on {topic} is {d.shape[1]}x{d.shape[0]}, not the colour images\' '
                                 f'{w}x{h} or their aspect: it must be registered to the colour camera')
        d = cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST)
    if undistort is not None:
        d = undistort(d, depth=True)
    return fit.image(d, depth=True)
