"""What the simulator starts from: at configure the device, the checkpoint's path, the engine loaded from it, and
the start view (an image of any size with its optional depth, fitted to the model's camera) or a synthetic scene;
later, the start a ~/reset_from_image request brings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldscape_ros.data.camera_adapt import FittedStart, fit_start, start_warnings
from worldscape_ros.errors import CheckpointError, ConfigError
from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.model.protocol import EngineConfig, LiveEngine
from worldscape_ros.ros import conversions as conv
from worldscape_ros.ros.motion import check_working_range
from worldscape_ros.ros.params import SimulatorParams


@dataclass(frozen=True)
class StartView:
    """A start image fitted to the model, the camera it now has, and where the camera stands."""

    rgb: np.ndarray  # (height, width, 3) uint8
    depth: np.ndarray | None  # (height, width) float32 metres, or None: the model's own
    pose: np.ndarray  # (4, 4) camera-to-world, OpenCV axes
    K: np.ndarray  # (3, 3) the fitted image's intrinsics


def resolve_device(device: str) -> str:
    """auto -> cuda when available, else cpu; cuda when absent -> ConfigError (configure fails)."""
    import torch

    has_cuda = torch.cuda.is_available()
    if device == 'auto':
        return 'cuda' if has_cuda else 'cpu'
    if device == 'cuda' and not has_cuda:
        raise ConfigError("device='cuda' but CUDA is not available on this machine; set device to 'auto' or 'cpu'")
    return device


def check_checkpoint_path(checkpoint: str | None) -> None:
    """A checkpoint path must name a file (None: the shipped default; 'random': a random init)."""
    if checkpoint in (None, 'random'):
        return
    if Path(checkpoint).is_dir():
        raise CheckpointError(f'checkpoint {checkpoint!r} is a directory: give the path of its .safetensors file')
    if not Path(checkpoint).is_file():
        raise CheckpointError(f'checkpoint {checkpoint!r} does not exist')


def load_engine(p: SimulatorParams, device: str) -> LiveEngine:
    """The world model the parameters name, on `device`; raises CheckpointError naming the checkpoint."""
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions

    check_checkpoint_path(p.checkpoint_arg)
    options = EngineOptions(device=device, dtype=p.dtype, memory=p.memory, steps=p.denoising_steps or None,
                            seed=p.start_seed,
                            pool_bytes=int(p.memory_budget_mb * 2**20) if p.memory_budget_mb else None)
    try:
        return WorldEngine.from_pretrained(p.checkpoint_arg, p.model_config or None, options)
    except CheckpointError as exc:
        raise CheckpointError(f'checkpoint {p.checkpoint!r} could not be loaded: {exc}') from None


def load_start_image(path: str, height: int, width: int) -> np.ndarray:
    """An RGB start image of any size (fitted to the model's height x width by data.camera_adapt), from PNG/JPEG
    or .npy (uint8 HxWx3)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f'start_image {path!r} does not exist')
    try:
        if p.suffix == '.npy':
            img = np.load(p, allow_pickle=False)
        else:
            import imageio.v3 as iio

            img = np.asarray(iio.imread(p))
    except (OSError, ValueError) as exc:
        raise ConfigError(f'start_image {path!r} could not be read: {exc}') from None
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ConfigError(f'start_image {path!r} must be 8-bit RGB, got dtype {img.dtype} shape {img.shape}')
    return np.ascontiguousarray(img[..., :3])


def load_start_depth(path: str, height: int, width: int) -> np.ndarray:
    """A start depth (.npy, float HxW metres) of the start image's size."""
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f'start_depth {path!r} could not be read: {exc}') from None
    if depth.shape != (height, width) or not np.issubdtype(depth.dtype, np.floating):
        raise ConfigError(f'start_depth {path!r} must be float HxW = {height}x{width}, got {depth.dtype} {depth.shape}')
    return depth.astype(np.float32)


def start_view(p: SimulatorParams, cfg: EngineConfig) -> tuple[StartView | None, list[str]]:
    """The start view the parameters name (None: start_scene's synthetic view) and what makes it unlike the
    model's training views, one sentence each. Raises ConfigError naming the parameter."""
    if not p.start_image:
        return None, []
    rgb = load_start_image(p.start_image, cfg.height, cfg.width)
    depth = load_start_depth(p.start_depth, *rgb.shape[:2]) if p.start_depth else None
    try:
        start = fit_start(rgb, cfg.width, cfg.height, cfg.vfov_deg, depth=depth)
    except ValueError as exc:
        raise ConfigError(f'start_image {p.start_image!r}: {exc}') from None
    height = p.camera_height or cfg.camera_height
    pose = camera_pose(BaseState(pitch=p.camera_pitch, height=height))
    notes = start.notes + start_warnings(start.fit, start.K, cfg.vfov_deg)
    return StartView(rgb=start.rgb, depth=start.depth, pose=pose, K=start.K), notes


def start_from_request(request: Any, cfg: EngineConfig, max_position: float) -> tuple[FittedStart, np.ndarray]:
    """A worldscape_msgs/ResetFromImage request checked field by field and fitted to the model: the fitted start
    and its camera pose (camera-to-world). Raises ValueError naming the field."""
    rgb = conv.image_to_rgb(request.image)  # any size: fitted to the model's below
    h, w = rgb.shape[:2]
    depth = None
    if request.depth.width or request.depth.height or request.depth.encoding:
        depth = conv.check_depth(conv.image_to_depth(request.depth, h, w))
    c2w = conv.pose_to_matrix(request.pose, 'pose')
    check_working_range(c2w, max_position, 'pose')
    K = conv.camera_info_to_intrinsics(request.camera_info, w, h)
    info = request.camera_info
    if K is not None and (info.width, info.height) != (w, h):
        raise ValueError(f'camera_info is {info.width}x{info.height}, the image {w}x{h}')
    # no camera_info: the model's own field of view, not whatever an earlier request brought
    return fit_start(rgb, cfg.width, cfg.height, cfg.vfov_deg, K=K, depth=depth), c2w
