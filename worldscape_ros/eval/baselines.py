"""Baselines every model figure sits beside, as real systems of the WorldSystem protocol.

- RepeatFirstFrame: the start frame (and its depth) for every step; what a frozen model scores.
- Reprojection: the start frame forward-warped into each target camera by its depth (true depth for synthetic
  starts), z-buffered, holes left empty (black RGB, depth 0): strong for short horizons, fading as holes grow.
- ReprojectionInpaint: the same warp with the holes filled by OpenCV's Telea inpainting (RGB and depth): the
  floor a learned model must clear, since it keeps everything geometry gives and fills the rest smoothly.
- ReprojectionInpaintMean: that Telea fill fading, with the distance from the nearest warped pixel, into the
  start frame's mean colour: Telea's row-wise smear is a good guess beside the boundary and a poor one far from
  it, where the scene's mean colour is the better constant. No learning; the strongest of these on the revealed
  pixels of the validation rooms (models/ws-tiny.md).
- ReprojectionRepeats: that, with the holes on a plane whose texture repeats (a wall's paper, a floor's tiles)
  first taken from the start frame a period along the plane (model/repeats.py, the engine's `repeats`).
- ReprojectionRelit: that, with the start frame lit again for each camera: the camera's own light's share taken
  out of each pixel as the start camera faced it and put back as the target camera faces it (model/headlight.py,
  the engine's scene.headlight).
The reprojections take the start depth given at reset, or, for an RGB-only start, the depth a `StartDepth`
callable predicts (the model's own start depth: `model_start_depth`).
- memory_off_model: the world engine with its memory off (sink and local window only).
Navigation actions are integrated with model.kinematics at `fps`, exactly as the engine does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from worldscape_ros.eval.protocol import Frame
from worldscape_ros.model.camera import check_intrinsics, check_rigid
from worldscape_ros.model.fade import fade_weight
from worldscape_ros.model.headlight import facing, normals, relit
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose, integrate, state_from_camera_pose
from worldscape_ros.model.repeats import SurfaceRepeats
from worldscape_ros.model.repeats_config import RepeatsConfig

if TYPE_CHECKING:
    from worldscape_ros.model.protocol import OfflineEngine, StreamingEngine

CAMERA_HEIGHT = 1.0  # any fixed height round-trips camera_pose <-> state_from_camera_pose
INPAINT_RADIUS = 3  # px: Telea's neighbourhood; small, as the holes are filled from their rims inwards anyway
MEAN_REACH_PX = 16.0  # ReprojectionInpaintMean: chosen of 8, 16, 32 on the validation rooms' revealed pixels
REPEATS = RepeatsConfig(enabled=True, share_periods=True, local_score=0.5)  # ReprojectionRepeats: ws-tiny's
HEADLIGHT = 0.4  # ReprojectionRelit: ws-tiny's scene.headlight

StartDepth = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (rgb, c2w, K) -> (H, W) metres


class _PoseTracker:
    """Shared reset/step bookkeeping: the start frame, and the target camera of each step."""

    def __init__(self, fps: float = 10.0) -> None:
        if not fps > 0:
            raise ValueError(f'fps must be positive, got {fps}')
        self.fps = fps
        self._state: BaseState | None = None
        self._pose = np.eye(4)
        self._index = 0
        self.first_frame = np.zeros((1, 1, 3), np.uint8)
        self.first_depth: np.ndarray | None = None
        self.first_pose = np.eye(4)
        self.intrinsics = np.eye(3)

    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> None:
        rgb = np.asarray(first_frame)
        if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'first_frame must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
        check_rigid(pose, 'pose')
        check_intrinsics(intrinsics)
        if depth is not None and np.shape(depth) != rgb.shape[:2]:
            raise ValueError(f'depth must be (H, W) = {rgb.shape[:2]}, got shape {np.shape(depth)}')
        self.first_frame = rgb.copy()
        self.first_depth = None if depth is None else np.asarray(depth, np.float32).copy()
        self.first_pose = np.asarray(pose, np.float64).copy()
        self.intrinsics = np.asarray(intrinsics, np.float64).copy()
        self._pose = self.first_pose.copy()
        self._state = state_from_camera_pose(self._pose, CAMERA_HEIGHT)
        self._index = 0

    def advance(self, action: NavAction | np.ndarray) -> tuple[np.ndarray, int]:
        if self._state is None:
            raise RuntimeError('step() called before reset()')
        if isinstance(action, NavAction):
            self._state = integrate(self._state, action, 1.0 / self.fps)
            self._pose = camera_pose(self._state)
        else:
            check_rigid(action, 'action (target camera pose)')
            self._pose = np.asarray(action, np.float64).copy()
            self._state = state_from_camera_pose(self._pose, CAMERA_HEIGHT)
        self._index += 1
        return self._pose.copy(), self._index

    def start_frame(self) -> Frame:
        """Frame 0: the start frame with the depth the system works from (NaN where it has none)."""
        d = self.first_depth
        depth = np.full(self.first_frame.shape[:2], np.nan, np.float32) if d is None else d.copy()
        return Frame(rgb=self.first_frame.copy(), depth=depth, pose=self.first_pose.copy(), index=0, latency_ms=0.0)


class RepeatFirstFrame:
    """Returns the start frame at every step: the figure a model that ignores actions would get."""

    name = 'repeat_first_frame'

    def __init__(self, fps: float = 10.0) -> None:
        self._track = _PoseTracker(fps)

    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame:
        self._track.reset(first_frame, pose, intrinsics, depth)
        return self._track.start_frame()

    def step(self, action: NavAction | np.ndarray, hand_keypoints: np.ndarray | None = None) -> Frame:
        t0 = time.perf_counter()
        pose, index = self._track.advance(action)
        first = self._track.first_frame
        depth = self._track.first_depth
        depth = np.full(first.shape[:2], np.nan, np.float32) if depth is None else depth.copy()
        return Frame(rgb=first.copy(), depth=depth, pose=pose, index=index,
                     latency_ms=1e3 * (time.perf_counter() - t0))


def forward_warp(rgb: np.ndarray, depth: np.ndarray, src_c2w: np.ndarray, dst_c2w: np.ndarray,
                 K: np.ndarray, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Splat a frame with metric z-depth into another camera (same intrinsics) with a z-buffer.

    Each source pixel is split into supersample^2 sub-pixel points (nearest depth), so magnification up to
    that factor leaves no cracks; what no source point lands on stays empty (RGB 0, depth 0).
    rgb (H, W, C) uint8: the colours, or any channels carried with them. Returns (H, W, C) uint8 and depth
    (H, W) float32.
    """
    H, W = depth.shape
    s = supersample
    sub = (np.arange(s) + 0.5) / s  # sub-pixel offsets within a pixel
    u = (np.arange(W)[:, None] + sub[None, :]).reshape(-1)  # (W*s,)
    v = (np.arange(H)[:, None] + sub[None, :]).reshape(-1)  # (H*s,)
    uu, vv = np.meshgrid(u, v)  # (H*s, W*s)
    z = np.repeat(np.repeat(depth.astype(np.float64), s, 0), s, 1)
    C = rgb.shape[-1]
    colours = np.repeat(np.repeat(rgb, s, 0), s, 1).reshape(-1, C)
    valid = (np.isfinite(z) & (z > 0)).reshape(-1)
    pix = np.stack([uu, vv, np.ones_like(uu)], -1).reshape(-1, 3)  # (N, 3)
    p_src = (pix @ np.linalg.inv(K).T) * z.reshape(-1, 1)  # (N, 3) source camera coordinates
    T = np.linalg.inv(dst_c2w) @ src_c2w  # source camera -> target camera
    p_dst = p_src @ T[:3, :3].T + T[:3, 3]
    zd = p_dst[:, 2]
    valid &= zd > 1e-6
    uv = p_dst[:, :2] / np.where(valid, zd, 1.0)[:, None] * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]
    ui = np.floor(uv[:, 0]).astype(np.int64)  # pixel (u, v) covers [u, u + 1)
    vi = np.floor(uv[:, 1]).astype(np.int64)
    valid &= (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    idx = np.flatnonzero(valid)
    flat = vi[idx] * W + ui[idx]
    order = np.lexsort((zd[idx], flat))  # by pixel, nearest first
    flat_sorted = flat[order]
    first = np.ones(len(order), bool)
    first[1:] = flat_sorted[1:] != flat_sorted[:-1]
    winners = idx[order[first]]
    out_rgb = np.zeros((H * W, C), np.uint8)
    out_depth = np.zeros(H * W, np.float32)
    out_rgb[flat_sorted[first]] = colours[winners]
    out_depth[flat_sorted[first]] = zd[winners]
    return out_rgb.reshape(H, W, C), out_depth.reshape(H, W)


class Reprojection:
    """The start frame reprojected into each target camera by its depth; holes left empty.

    start_depth: where the start depth comes from when reset gets none (an RGB-only start), e.g. the model's
    own prediction; without it such a reset is refused.
    """

    name = 'reprojection'

    def __init__(self, fps: float = 10.0, supersample: int = 2, start_depth: StartDepth | None = None) -> None:
        if supersample < 1:
            raise ValueError(f'supersample must be at least 1, got {supersample}')
        self._track = _PoseTracker(fps)
        self.supersample = supersample
        self.start_depth = start_depth

    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame:
        if depth is None and self.start_depth is not None:
            depth = np.asarray(self.start_depth(np.asarray(first_frame), np.asarray(pose), np.asarray(intrinsics)),
                               np.float32)
        if depth is None:
            raise ValueError(f'the {self.name} baseline needs the start frame\'s depth (true depth for synthetic '
                             'starts, or a start_depth predictor for RGB-only starts)')
        self._track.reset(first_frame, pose, intrinsics, depth)
        return self._track.start_frame()

    def warp(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The start frame and its depth seen from `pose`: (H, W, 3) uint8 and (H, W) metres, 0 in holes."""
        return self._warped(self._track.first_frame, pose)

    def _warped(self, image: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, C) uint8 channels of the start frame and its depth, seen from `pose`."""
        tr = self._track
        if tr.first_depth is None:
            raise RuntimeError('step() called before reset()')
        return forward_warp(image, tr.first_depth, tr.first_pose, pose, tr.intrinsics, self.supersample)

    def view(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What this baseline shows from `pose` before filling its holes (depth <= 0): the warp."""
        return self.warp(pose)

    def fill(self, rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The view's holes (depth <= 0) as this baseline leaves them: empty."""
        return rgb, depth

    def step(self, action: NavAction | np.ndarray, hand_keypoints: np.ndarray | None = None) -> Frame:
        t0 = time.perf_counter()
        pose, index = self._track.advance(action)
        rgb, depth = self.fill(*self.view(pose))
        return Frame(rgb=rgb, depth=depth, pose=pose, index=index, latency_ms=1e3 * (time.perf_counter() - t0))


class ReprojectionInpaint(Reprojection):
    """The reprojection with its holes (RGB and depth) filled by Telea inpainting (`cv2.INPAINT_TELEA`)."""

    name = 'reprojection_inpaint'

    def __init__(self, fps: float = 10.0, supersample: int = 2, start_depth: StartDepth | None = None,
                 radius: int = INPAINT_RADIUS) -> None:
        super().__init__(fps, supersample, start_depth)
        if radius < 1:
            raise ValueError(f'inpainting radius must be at least 1 pixel, got {radius}')
        self.radius = radius

    def fill(self, rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return inpaint_holes(rgb, depth, self.radius)


class ReprojectionInpaintMean(ReprojectionInpaint):
    """The reprojection with Telea's fill of each hole weighted exp(-d / reach) and the start frame's mean colour
    1 - that, d the distance in pixels from the nearest warped pixel (depth as Telea fills it)."""

    name = 'reprojection_inpaint_mean'

    def __init__(self, fps: float = 10.0, supersample: int = 2, start_depth: StartDepth | None = None,
                 radius: int = INPAINT_RADIUS, reach_px: float = MEAN_REACH_PX) -> None:
        super().__init__(fps, supersample, start_depth, radius)
        if not reach_px > 0:
            raise ValueError(f'reach must be a positive number of pixels, got {reach_px}')
        self.reach_px = reach_px
        self._mean = np.zeros(3)  # the start frame's mean colour, set at reset

    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame:
        start = super().reset(first_frame, pose, intrinsics, depth, hand_keypoints)
        self._mean = self._track.first_frame.reshape(-1, 3).mean(0)
        return start

    def fill(self, rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        holes = ~(depth > 0)
        rgb, depth = super().fill(rgb, depth)
        return fade_to_mean(rgb, holes, self._mean, self.reach_px), depth


class ReprojectionRepeats(ReprojectionInpaintMean):
    """`reprojection_inpaint_mean` with the start frame's surface repeats first (model/repeats.py, as the
    engine's `repeats` config): a hole on a plane whose texture repeats takes the start frame's colour a period
    along it where the start frame sees that place; the other holes as `reprojection_inpaint_mean`."""

    name = 'reprojection_repeats'

    def __init__(self, fps: float = 10.0, supersample: int = 2, start_depth: StartDepth | None = None,
                 config: RepeatsConfig | None = None) -> None:
        super().__init__(fps, supersample, start_depth)
        self.config = config or REPEATS
        self._repeats: SurfaceRepeats | None = None

    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame:
        start = super().reset(first_frame, pose, intrinsics, depth, hand_keypoints)
        tr = self._track
        assert tr.first_depth is not None  # set by the reset above
        self._repeats = SurfaceRepeats.from_frame(tr.first_frame / 255.0, tr.first_depth, tr.first_pose,
                                                  tr.intrinsics, self.config)
        return start

    def view(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The warp with the repeats' copies in its holes."""
        rgb, depth = self.warp(pose)
        if self._repeats is not None:
            copy, copy_depth, filled = self._repeats.fill(rgb / 255.0, depth, pose, self._track.intrinsics)
            rgb[filled] = np.round(copy[filled] * 255).clip(0, 255).astype(np.uint8)
            depth[filled] = copy_depth[filled]
        return rgb, depth


class ReprojectionRelit(ReprojectionRepeats):
    """`reprojection_repeats` with the warp lit again for each camera (model/headlight.py): the start frame warped
    with its surface normals (from its depth), each warped pixel's colour scaled by the light the target camera's
    own light gives it over what the start camera's gave it. The copies and the fill as before. A start without
    its depth (the model's guess of it) is warped as it is, as the engine holds it."""

    name = 'reprojection_relit'

    def __init__(self, fps: float = 10.0, supersample: int = 2, start_depth: StartDepth | None = None,
                 share: float = HEADLIGHT) -> None:
        super().__init__(fps, supersample, start_depth)
        if not 0 <= share < 1:
            raise ValueError(f"the camera light's share must be in [0, 1), got {share}")
        self.share = share
        self._normal_code = np.zeros((0, 0, 3), np.uint8)  # set at reset
        self._relight = False  # whether the start depth was given

    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame:
        start = super().reset(first_frame, pose, intrinsics, depth, hand_keypoints)
        tr = self._track
        assert tr.first_depth is not None  # set by the reset above
        self._relight = depth is not None
        n = normals(torch.from_numpy(np.asarray(tr.first_depth, np.float32)), torch.from_numpy(tr.intrinsics).float())
        world = torch.einsum('ij,jhw->ihw', torch.from_numpy(tr.first_pose[:3, :3]).float(), n)  # (3, H, W)
        self._normal_code = (((world + 1) / 2).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        return start

    def warp(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self._relight:
            return super().warp(pose)
        # the normals carried like the colours, in one splat
        both, depth = self._warped(np.concatenate([self._track.first_frame, self._normal_code], -1), pose)
        rgb, code = both[..., :3], both[..., 3:]
        n = torch.from_numpy(code).float() / 127.5 - 1  # (H, W, 3)
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        seen, faces = (facing(n, torch.from_numpy(np.asarray(c2w, np.float64)[:3, 2]).float())
                       for c2w in (self._track.first_pose, pose))
        lit = relit(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255, seen, faces, self.share)
        lit8 = (lit * 255).round().byte().permute(1, 2, 0).numpy()
        return np.where((depth > 0)[..., None], lit8, rgb), depth


def fade_to_mean(rgb: np.ndarray, holes: np.ndarray, mean: np.ndarray, reach_px: float) -> np.ndarray:
    """(H, W, 3) uint8 filled frame, (H, W) bool holes, (3,) colour -> the holes weighted exp(-d / reach_px)
    as filled and the rest the colour, d the distance from the nearest pixel outside them (model.fade, as the
    engine's refiner.fill_fade_px). A frame that is all hole has nothing to measure from: all colour."""
    if not holes.any():
        return rgb
    w = fade_weight(~holes, reach_px)[..., None]  # (H, W, 1); 1 outside the holes
    return np.round(w * rgb + (1 - w) * mean).clip(0, 255).astype(np.uint8)


def inpaint_holes(rgb: np.ndarray, depth: np.ndarray, radius: int = INPAINT_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Fill the pixels where depth <= 0 (nothing landed) by Telea inpainting, in RGB and in depth alike;
    covered pixels are kept exactly. A frame with nothing covered has nothing to inpaint from: left as it is."""
    holes = (~(depth > 0)).astype(np.uint8)  # NaN counts as a hole
    if not holes.any() or holes.all():
        return rgb, depth
    rgb_f = cv2.inpaint(np.ascontiguousarray(rgb), holes, radius, cv2.INPAINT_TELEA)
    depth_f = cv2.inpaint(np.where(holes > 0, 0.0, depth).astype(np.float32), holes, radius, cv2.INPAINT_TELEA)
    keep = holes == 0
    rgb_f[keep] = rgb[keep]  # Telea leaves known pixels alone; this makes it a guarantee
    # Telea extrapolates along gradients: at a depth edge that can overshoot, even below zero; a filled depth
    # stays within the depths the warp did give
    depth_f = np.clip(depth_f, depth[keep].min(), depth[keep].max())
    depth_f[keep] = depth[keep]
    return rgb_f, depth_f.astype(np.float32)


def model_start_depth(engine: StreamingEngine) -> StartDepth:
    """The start depth the model predicts from an RGB frame alone: its reset without depth returns it as frame
    0's depth. The engine's session is reset by each call: give it an engine that is not mid-rollout."""

    def predict(rgb: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
        frame = engine.reset(rgb, pose, intrinsics, None)
        return np.asarray(frame.depth, np.float32)

    return predict


def model_system(checkpoint: str | None = None, config: str | None = None, device: str = 'cpu',
                 dtype: str = 'float32', memory: bool = True, geometry: bool = True,
                 window: int | None = None) -> OfflineEngine:
    """The world engine (memory on: 'model'; memory off: the 'memory_off' baseline; geometry False: the
    ablation without the geometric guess; window: chunks denoised together when the trajectory is known ahead,
    default the config's)."""
    # heavy and optional: only when a model is evaluated
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions

    options = EngineOptions(device=device, dtype=dtype, memory=memory, geometry=geometry, window=window)
    return WorldEngine.from_pretrained(checkpoint, config, options)
