"""Fit a camera image of any size to the model's: resize, then centre-crop (or letterbox), with K adjusted.

Pixel convention (docs/episode_format.md): pixel (u, v) covers [u, u + 1) x [v, v + 1), its centre at (u + 0.5,
v + 0.5). In these continuous coordinates a resize by (sx, sy) maps x -> sx x exactly (OpenCV's resize aligns
pixel centres the same way), and a crop at (ox, oy) maps x -> x - ox, so

    fx' = sx fx,  cx' = sx cx - ox;   fy' = sy fy,  cy' = sy cy - oy   (letterbox: ox, oy negative).

Used by `worldscape import-bag` (every frame of a recording) and by the image starts of the simulator node and
`worldscape rollout --start`; `start_warnings` says when a start image is far from what the model was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from worldscape_ros.errors import WorldScapeError

FIT_MODES = ('crop', 'letterbox')


class CameraFitError(WorldScapeError, ValueError):
    """An image or camera cannot be fitted to the model's camera."""


@dataclass(frozen=True)
class CameraFit:
    """The resize and crop taking a (src_width x src_height) image to (width x height)."""

    src_width: int
    src_height: int
    width: int
    height: int
    scale_x: float  # resized width / source width
    scale_y: float
    offset_x: int  # left edge of the output in the resized image (negative: letterbox padding)
    offset_y: int

    @property
    def resized(self) -> tuple[int, int]:
        return round(self.src_width * self.scale_x), round(self.src_height * self.scale_y)

    def intrinsics(self, K: np.ndarray) -> np.ndarray:
        """K of the source image -> K of the fitted image."""
        K = check_K(K)
        out = K.copy()
        out[0, :] *= self.scale_x
        out[1, :] *= self.scale_y
        out[0, 2] -= self.offset_x
        out[1, 2] -= self.offset_y
        out[2] = (0.0, 0.0, 1.0)
        return out

    def image(self, image: np.ndarray, depth: bool = False) -> np.ndarray:
        """Apply to an (H, W) or (H, W, C) image. Colour is area-averaged when shrinking (linear when growing);
        depth (depth=True) takes the nearest sample, so no depth is invented across an edge, and letterbox
        bands are NaN (unknown) in depth and black in colour."""
        if image.shape[:2] != (self.src_height, self.src_width):
            raise CameraFitError(f'image is {image.shape[1]}x{image.shape[0]}, this fit is for '
                                 f'{self.src_width}x{self.src_height}')
        rw, rh = self.resized
        if depth:
            interp = cv2.INTER_NEAREST
        else:
            interp = cv2.INTER_AREA if rw < self.src_width or rh < self.src_height else cv2.INTER_LINEAR
        resized = cv2.resize(image, (rw, rh), interpolation=interp) if (rw, rh) != image.shape[1::-1] else image
        fill = np.nan if depth else 0
        out = np.full((self.height, self.width, *image.shape[2:]), fill, dtype=image.dtype)
        # the overlap of the output window [ox, ox + width) with the resized image [0, rw)
        x0, y0 = max(self.offset_x, 0), max(self.offset_y, 0)
        x1, y1 = min(self.offset_x + self.width, rw), min(self.offset_y + self.height, rh)
        out[y0 - self.offset_y:y1 - self.offset_y, x0 - self.offset_x:x1 - self.offset_x] = resized[y0:y1, x0:x1]
        return out

    @property
    def kept_fraction(self) -> float:
        """Share of the source image's area that is in the output (1 for letterbox)."""
        rw, rh = self.resized
        return min(self.width, rw) * min(self.height, rh) / (rw * rh)


def plan_fit(src_width: int, src_height: int, width: int, height: int, mode: str = 'crop') -> CameraFit:
    """The uniform resize that covers (crop) or fits inside (letterbox) the output, centred."""
    if mode not in FIT_MODES:
        raise CameraFitError(f'fit mode must be one of {", ".join(FIT_MODES)}, got {mode!r}')
    for name, v in (('source width', src_width), ('source height', src_height), ('width', width),
                    ('height', height)):
        if int(v) != v or v <= 0:
            raise CameraFitError(f'{name} must be a positive integer, got {v}')
    s = (max if mode == 'crop' else min)(width / src_width, height / src_height)
    rw, rh = max(1, round(src_width * s)), max(1, round(src_height * s))
    if mode == 'crop':  # rounding may leave the resized image a pixel short: never smaller than the output
        rw, rh = max(rw, width), max(rh, height)
    else:
        rw, rh = min(rw, width), min(rh, height)
    return CameraFit(int(src_width), int(src_height), int(width), int(height), rw / src_width, rh / src_height,
                     (rw - width) // 2, (rh - height) // 2)


def check_K(K: np.ndarray | list[float]) -> np.ndarray:
    """A pinhole K (3x3, or 9 values row-major) with positive focal lengths."""
    k = np.asarray(K, dtype=np.float64)
    if k.size != 9:
        raise CameraFitError(f'intrinsics must be 3x3, got shape {k.shape}')
    k = k.reshape(3, 3)
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0 or np.any(k[2] != (0.0, 0.0, 1.0)) \
            or k[1, 0] != 0:
        raise CameraFitError(f'intrinsics are not a pinhole matrix with positive focal lengths: '
                             f'{k.reshape(-1).tolist()}')
    return k


def intrinsics_from_fov(width: int, height: int, hfov_deg: float | None = None,
                        vfov_deg: float | None = None) -> np.ndarray:
    """K for square pixels centred in the image from a horizontal or vertical field of view (one of them)."""
    if (hfov_deg is None) == (vfov_deg is None):
        raise CameraFitError('give exactly one of a horizontal or a vertical field of view')
    fov, size = (hfov_deg, width) if hfov_deg is not None else (vfov_deg, height)
    assert fov is not None
    if not 0 < fov < 180:
        raise CameraFitError(f'field of view must be in (0, 180) degrees, got {fov}')
    f = 0.5 * size / math.tan(math.radians(fov) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def fov_deg(K: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """(horizontal, vertical) field of view in degrees of a centred pinhole camera of that size."""
    k = check_K(K)
    return (math.degrees(2 * math.atan(0.5 * width / k[0, 0])), math.degrees(2 * math.atan(0.5 * height / k[1, 1])))


def fit_image(image: np.ndarray, K: np.ndarray, width: int, height: int, mode: str = 'crop',
              depth: bool = False) -> tuple[np.ndarray, np.ndarray, CameraFit]:
    """Fit one image of any size to (width x height); returns the image, its K and the fit applied."""
    fit = plan_fit(image.shape[1], image.shape[0], width, height, mode)
    return fit.image(image, depth=depth), fit.intrinsics(K), fit


MAX_START_UPSCALE = 4.0


@dataclass
class FittedStart:
    """A start image (and depth) fitted to the model, with the camera it now has and what was assumed."""

    rgb: np.ndarray  # (height, width, 3) uint8
    K: np.ndarray  # (3, 3) of the fitted image
    depth: np.ndarray | None  # (height, width) float32 metres, NaN unknown
    fit: CameraFit
    notes: list[str]  # what was assumed or lost, one sentence each


def fit_start(rgb: np.ndarray, width: int, height: int, model_vfov_deg: float, K: np.ndarray | None = None,
              vfov_deg: float | None = None, hfov_deg: float | None = None, depth: np.ndarray | None = None,
              mode: str = 'crop', max_upscale: float = MAX_START_UPSCALE) -> FittedStart:
    """Fit a start image of any size to the model's (width x height). Its camera: `K` (from camera_info), else a
    field of view (`vfov_deg` or `hfov_deg`), else the model's own vertical field of view (assumed, and said).
    An image that would have to be enlarged more than `max_upscale` times is refused."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CameraFitError(f'start image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}')
    h, w = rgb.shape[:2]
    notes = []
    if K is not None:
        if vfov_deg is not None or hfov_deg is not None:
            raise CameraFitError('give the start camera as intrinsics or as a field of view, not both')
        K_src = check_K(K)
    elif vfov_deg is not None or hfov_deg is not None:
        K_src = intrinsics_from_fov(w, h, hfov_deg, vfov_deg)
    else:
        K_src = intrinsics_from_fov(w, h, vfov_deg=model_vfov_deg)
        if (w, h) != (width, height):
            notes.append(f'no camera given for the {w}x{h} start image: assumed the model\'s {model_vfov_deg:g} deg '
                         'vertical field of view')
    if depth is not None and np.asarray(depth).shape != (h, w):
        raise CameraFitError(f'start depth is {np.asarray(depth).shape[1]}x{np.asarray(depth).shape[0]}, the start '
                             f'image {w}x{h}: depth must be registered to the image')
    fit = plan_fit(w, h, width, height, mode)
    if max(fit.scale_x, fit.scale_y) > max_upscale:
        raise CameraFitError(f'start image {w}x{h} is too small: the model needs {width}x{height} and enlarging it '
                             f'{max(fit.scale_x, fit.scale_y):.1f}x (more than {max_upscale:g}x) invents the detail')
    out_rgb, out_K = fit.image(rgb), fit.intrinsics(K_src)
    out_depth = None if depth is None else fit.image(np.asarray(depth, dtype=np.float32), depth=True)
    if (w, h) != (width, height):
        how = 'cropped' if mode == 'crop' else 'letterboxed'
        notes.append(f'start image {w}x{h} resized by {fit.scale_x:.3g} and {how} to {width}x{height}')
    return FittedStart(out_rgb, out_K, out_depth, fit, notes)


# How far a start may be from the training data before it is reported: ws-tiny is trained at 60 deg vertical
# FOV on rendered scenes whose per-frame median depth spans 1.4 to 38 m (240 frames of the nav training set).
FOV_TOLERANCE_DEG = 15.0
MAX_UPSCALE = 2.0
MIN_KEPT_FRACTION = 0.5
PRINCIPAL_POINT_TOLERANCE = 0.1  # of the image size


def start_warnings(fit: CameraFit, K_fitted: np.ndarray, model_vfov_deg: float,
                   depth: np.ndarray | None = None, depth_range: tuple[float, float] = (1.0, 40.0)) -> list[str]:
    """What makes a start image unlike the model's training views, one sentence each (empty: nothing).

    K_fitted: the camera after the fit; depth: the depth the model predicts (or was given) for the start
    frame, compared with `depth_range`, the range of the training data's median depths."""
    out = []
    hfov, vfov = fov_deg(K_fitted, fit.width, fit.height)
    model_hfov = math.degrees(2 * math.atan(math.tan(math.radians(model_vfov_deg) / 2) * fit.width / fit.height))
    if abs(vfov - model_vfov_deg) > FOV_TOLERANCE_DEG or abs(hfov - model_hfov) > FOV_TOLERANCE_DEG:
        size = 'smaller' if vfov > model_vfov_deg else 'larger'
        out.append(f'the camera sees {hfov:.0f}x{vfov:.0f} deg after fitting; the model was trained on '
                   f'{model_hfov:.0f}x{model_vfov_deg:.0f} deg: objects will look {size} than the model expects '
                   'and motion will not match the commands')
    upscale = max(fit.scale_x, fit.scale_y)
    if upscale > MAX_UPSCALE:
        out.append(f'the image is enlarged {upscale:.1f}x to the model\'s {fit.width}x{fit.height}: it will look '
                   'blurrier than the training frames')
    if fit.kept_fraction < MIN_KEPT_FRACTION:
        out.append(f'cropping to the model\'s aspect keeps only {100 * fit.kept_fraction:.0f}% of the image')
    cx, cy = K_fitted[0, 2], K_fitted[1, 2]
    if abs(cx - fit.width / 2) > PRINCIPAL_POINT_TOLERANCE * fit.width or \
            abs(cy - fit.height / 2) > PRINCIPAL_POINT_TOLERANCE * fit.height:
        out.append(f'the principal point ({cx:.1f}, {cy:.1f}) is far from the image centre '
                   f'({fit.width / 2:g}, {fit.height / 2:g}) the model was trained with')
    if depth is not None:
        finite = np.asarray(depth, dtype=np.float64)
        finite = finite[np.isfinite(finite) & (finite > 0)]
        if finite.size == 0:
            out.append('the start depth has no valid pixel')
        else:
            median = float(np.median(finite))
            lo, hi = depth_range
            if not lo <= median <= hi:
                out.append(f'the start depth has a median of {median:.2f} m, outside the {lo:g}-{hi:g} m of the '
                           'training scenes: the imagined geometry is likely wrong')
    return out
