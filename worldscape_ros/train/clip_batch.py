"""A batch of clips made ready for the DiT: codec latents, the conditioning built as the engine builds it, and
the targets of the heads.

Conditioning, per latent frame (as engine.py does at inference):
  - Plücker rays of the frame's camera relative to the clip's first camera;
  - the pose video of the hand keypoints (an empty video when the clip has no hands), codec-encoded;
  - the geometric guess: earlier chunks' frames committed to a scene memory and rendered into the frame's camera
    by their depth (true depth in teacher forcing; the model's own frames and depth in self-rollouts), as the
    engine's scene memory renders, codec-encoded, with coverage.
Conditioning dropout zeroes each stream per sample with some probability, so the model also learns without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worldscape_ros.errors import TrainError
from worldscape_ros.model.camera import plucker_rays
from worldscape_ros.model.dit import Conditioning
from worldscape_ros.model.scene_memory import render_sources
from worldscape_ros.model.world_model import WorldModel


@dataclass
class ClipBatch:
    x0: torch.Tensor  # (B, F, C, h, w) clean latents (codec frozen: no grad)
    cond: Conditioning
    rgb: torch.Tensor  # (B, T, 3, H, W) video in [0, 1]
    depth: torch.Tensor  # (B, F, H, W) true metric depth of each latent frame's last video frame (NaN: unknown)
    c2w: torch.Tensor  # (B, F, 4, 4) cameras of the latent frames, relative to the clip's first camera
    video_c2w: torch.Tensor  # (B, T, 4, 4) every video frame's camera, relative to the first
    K: torch.Tensor  # (B, 3, 3)

    @property
    def frames(self) -> int:
        return self.x0.shape[1]


def sample_generator(seed: int, step: int, index: int) -> torch.Generator:
    """Randomness of one sample at one step, keyed by its global index: the same whatever the number of
    processes and however the run was interrupted and resumed."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_000_033 + index)


def randn(gens: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """(B, *shape) standard normal, sample b drawn from gens[b]."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in gens]).to(device)


def rand(gens: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.stack([torch.rand(tuple(shape), generator=g) for g in gens]).to(device)


def latent_frame_index(config_temporal_down: int, latent_frames: int) -> list[int]:
    """The video frame whose camera a latent frame carries: the last one it folds in (as the engine)."""
    k = config_temporal_down
    return [f * k + k - 1 for f in range(latent_frames)]


def pick_views(indices: list[int], views: int) -> list[int]:
    """The first (anchor) frame and the newest views - 1 others, as the engine's geometric guess."""
    if len(indices) <= views:
        return indices
    return indices[:1] + indices[len(indices) - (views - 1):]


def geometry_condition(model: WorldModel, rgb: torch.Tensor, depth: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor,
                       target_c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Render source frames into target cameras; codec latent and coverage per latent pixel.

    rgb (B, S, 3, H, W), depth (B, S, H, W), c2w (B, S, 4, 4), K (B, 3, 3), target_c2w (B, Fv, 4, 4) with Fv a
    multiple of temporal_down -> latent (B, F, C, h, w), coverage (B, F, 1, h, w). S = 0: nothing seen.
    """
    cfg = model.config
    B, Fv = target_c2w.shape[:2]
    k, down = cfg.codec.temporal_down, cfg.codec.spatial_down
    Fl = Fv // k
    if rgb.shape[1] == 0:
        C = cfg.codec.latent_channels
        return (rgb.new_zeros(B, Fl, C, cfg.latent_height, cfg.latent_width),
                rgb.new_zeros(B, Fl, 1, cfg.latent_height, cfg.latent_width))
    # the engine's scene memory render (one render code for training and inference)
    video, masks = render_sources(rgb.float(), depth.float(), c2w.float(), K.float(), target_c2w.float(), cfg.scene)
    with torch.no_grad():
        latent = model.codec.encode(video.clamp(0, 1)).float()  # (B, F, C, h, w)
    cov = F.avg_pool2d(masks.float().flatten(0, 1)[:, None], down)  # (B*Fv, 1, h, w)
    cov = cov.reshape(B, Fl, k, 1, *cov.shape[-2:]).mean(2)  # (B, F, 1, h, w)
    return latent, cov


def pose_latent(model: WorldModel, keypoints: torch.Tensor, has_hands: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """keypoints (B, T, 21, 3) camera frame, has_hands (B,) -> codec latent of the pose video (B, F, C, h, w).

    Clips without hands get the latent of an empty (black) pose video, as the engine gives a hand-free step."""
    cfg = model.config
    B, T = keypoints.shape[:2]
    with torch.no_grad():
        empty = model.codec.encode(keypoints.new_zeros(1, cfg.codec.temporal_down, 3, cfg.height, cfg.width))
        out = empty.float().expand(B, T // cfg.codec.temporal_down, -1, -1, -1).clone()  # (B, F, C, h, w)
    with_hands = [b for b in range(B) if bool(has_hands[b])]
    if not with_hands:
        return out
    try:
        hands = importlib.import_module('worldscape_ros.model.hands')
    except ModuleNotFoundError:
        raise TrainError('clips with hands need worldscape_ros.model.hands, which is missing') from None
    videos = []
    for b in with_hands:
        kp = keypoints[b].detach().cpu().double()  # (T, 21, 3)
        visible = kp[..., 2] > 1e-3  # absent landmarks have z = 0
        uv = hands.project_keypoints(kp, K[b].detach().cpu().double()).float()  # (T, 21, 2), NaN behind
        videos.append(hands.pose_video(torch.nan_to_num(uv), visible, cfg.height, cfg.width))  # (T, 3, H, W)
    with torch.no_grad():
        out[with_hands] = model.codec.encode(torch.stack(videos).to(out.device)).float()
    return out


def relative_to_first(c2w: torch.Tensor) -> torch.Tensor:
    """(B, T, 4, 4) -> the same cameras in the frame of each clip's first camera (the world origin must not leak)."""
    return torch.linalg.inv(c2w[:, :1]) @ c2w


def dropout_conditioning(cond: Conditioning, p: float, gens: Sequence[torch.Generator]) -> Conditioning:
    """Zero each stream (Plücker, pose video, geometry with its coverage) per sample with probability p."""
    if p <= 0:
        return cond
    device = cond.plucker.device if cond.plucker is not None else torch.device('cpu')
    keep = (rand(gens, (3,), torch.device('cpu')) >= p).float().to(device)  # (B, 3)

    def scale(t: torch.Tensor | None, i: int) -> torch.Tensor | None:
        return None if t is None else t * keep[:, i].view(-1, *([1] * (t.ndim - 1)))

    return Conditioning(plucker=scale(cond.plucker, 0), pose=scale(cond.pose, 1), geometry=scale(cond.geometry, 2),
                        coverage=scale(cond.coverage, 2))


def prepare_batch(model: WorldModel, batch: dict, device: torch.device, geometry_views: int,
                  with_geometry: bool = True) -> ClipBatch:
    """Dataset items (collated) -> latents, teacher-forcing conditioning and targets."""
    cfg = model.config
    rgb = batch['rgb'].to(device)  # (B, T, 3, H, W)
    B, T, _, H, W = rgb.shape
    if (H, W) != (cfg.height, cfg.width):
        raise TrainError(f'clips are {W}x{H} but model {cfg.name!r} takes {cfg.width}x{cfg.height}: '
                         f'generate data at --size {cfg.width}x{cfg.height}')
    k = cfg.frames_per_chunk
    if T % k:
        raise TrainError(f'clip length {T} must be a multiple of the frames per chunk {k}')
    depth_v = batch['depth'].to(device)[:, :, 0]  # (B, T, H, W)
    K = batch['intrinsics'].to(device).float()  # (B, 3, 3)
    video_c2w = relative_to_first(batch['poses'].to(device).double()).float()  # (B, T, 4, 4)
    Fl = T // cfg.codec.temporal_down
    idx = latent_frame_index(cfg.codec.temporal_down, Fl)
    c2w = video_c2w[:, idx]  # (B, F, 4, 4)
    with torch.no_grad():
        x0 = model.codec.encode(rgb).float()  # (B, F, C, h, w)
    plucker = plucker_rays(c2w, K[:, None].expand(B, Fl, 3, 3), H, W)  # (B, F, 6, H, W)
    pose = pose_latent(model, batch['keypoints'].to(device).float(), batch['has_hands'], K) \
        if cfg.conditioning.hands else None
    geometry = coverage = None
    if cfg.conditioning.geometry and with_geometry:
        lat, cov = [], []
        for start in range(0, T, k):  # one chunk of targets at a time: its sources are the earlier chunks
            src = pick_views(list(range(start)), geometry_views)
            g, c = geometry_condition(model, rgb[:, src], depth_v[:, src], video_c2w[:, src], K,
                                      video_c2w[:, start:start + k])
            lat.append(g)
            cov.append(c)
        geometry, coverage = torch.cat(lat, dim=1), torch.cat(cov, dim=1)  # (B, F, C, h, w), (B, F, 1, h, w)
    cond = Conditioning(plucker=plucker, pose=pose, geometry=geometry, coverage=coverage)
    return ClipBatch(x0=x0, cond=cond, rgb=rgb, depth=depth_v[:, idx], c2w=c2w, video_c2w=video_c2w, K=K)


def slice_conditioning(cond: Conditioning, start: int, stop: int) -> Conditioning:
    """The conditioning of latent frames [start, stop)."""
    return cond.map(lambda c: c[:, start:stop])
