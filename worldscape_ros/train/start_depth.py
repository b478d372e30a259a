"""Fitting the start depth head: the depth of a session started from an RGB frame alone.

That start depth seeds the whole scene memory. The linear depth head reads it from each token's own features,
one 8 x 8 patch at a time (blocky, no context; held-out AbsRel 0.18). The start depth head (`heads.
start_depth_channels`) reads the clean pass's features on the token grid with their neighbours, and the image
itself, as a residual on that head's log depth; the DiT and everything else stay as they are.

1. trace: the engine (the same code as live) is reset on every `every`-th frame of each episode, and the features
   the depth head is given at each reset are recorded beside the frame's RGB and true depth (resets only).
2. fit: the start depth head learns log depth (L1, as the teacher's depth loss) on those starts.

Shards hold float16 features; a fit writes the model with the new head as one checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from worldscape_ros.data.episode import Episode
from worldscape_ros.errors import TrainError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.engine_traces import pending_shards
from worldscape_ros.train.head_fit import DepthFitConfig, fit_depth_head, sample_depth, samples_absrel, with_new_head

log = logging.getLogger(__name__)

SHARD_SUFFIX = '.start.npz'


# ---- 1. trace --------------------------------------------------------------------------------------------------
def trace_starts(engine: WorldEngine, episodes: list[Path], out: Path, every: int, frames: int = 32) -> int:
    """Reset on frames 0, every, 2 every, ... of each episode's first `frames`; write one shard per episode
    (skipping shards already written); return the starts written now."""
    if engine.model.depth_head is None:
        raise TrainError(f'{engine.config.name} has no depth head: its resets give no features to trace')
    if every < 1:
        raise TrainError(f'a start every {every} frames: it must be at least 1')
    written = 0
    for ep, shard in pending_shards(episodes, out, SHARD_SUFFIX):
        feats, rgb, depth = _trace_episode(engine, ep, every, frames)
        with atomic_path(shard) as tmp, open(tmp, 'wb') as f:
            np.savez(f, features=feats, rgb=rgb, depth=depth)
        written += len(feats)
    return written


def _trace_episode(engine: WorldEngine, ep: Episode, every: int, frames: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """features (S, N, D) float16 of the start frame's latent frame at each reset, rgb (S, H, W, 3) uint8, depth
    (S, H, W) float16 of the frames reset on."""
    assert engine.model.depth_head is not None  # trace_starts checked
    seen: list[torch.Tensor] = []  # (N, D) each: the last latent frame's, as the start depth head reads it
    hook = engine.model.depth_head.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0][0, -1].detach().half().cpu()))
    starts = list(range(0, min(frames, ep.num_frames), every))
    kp = ep.keypoints3d
    try:
        for t in starts:  # the clean pass reads the image alone: the given depth does not change its features
            engine.reset(ep.rgb[t], ep.poses[t], ep.intrinsics, ep.depth[t],
                         hand_keypoints=None if kp is None else kp[t])
    finally:
        hook.remove()
    if len(seen) != len(starts):
        raise TrainError(f'the depth head ran {len(seen)} times for {len(starts)} resets')
    return torch.stack(seen).numpy(), ep.rgb[starts], ep.depth[starts].astype(np.float16)


class StartTraces:
    """The starts of some folders' shards in memory: features (n, N, D) float16, rgb (n, H, W, 3) uint8, depth
    (n, H, W) float32."""

    def __init__(self, folders: list[Path]) -> None:
        shards = sorted(p for folder in folders for p in folder.glob(f'*{SHARD_SUFFIX}'))
        if not shards:
            raise TrainError(f'no *{SHARD_SUFFIX} shards in {", ".join(map(str, folders))}: run start-depth-trace '
                             'first')
        fs, rs, ds = [], [], []
        for p in shards:
            with np.load(p) as z:
                fs.append(z['features'])
                rs.append(z['rgb'])
                ds.append(z['depth'])
        self.features = torch.from_numpy(np.concatenate(fs))
        self.rgb = torch.from_numpy(np.concatenate(rs))
        self.depth = torch.from_numpy(np.concatenate(ds).astype(np.float32))
        self.shards = len(shards)

    def __len__(self) -> int:
        return int(self.features.shape[0])


# ---- 2. fit (train/head_fit.py) -----------------------------------------------------------------------------------
def start_predict(model: WorldModel, features: torch.Tensor, rgb: torch.Tensor | None, head: bool) -> torch.Tensor:
    """A reset's start depth (b, H, W) from its clean-pass features (b, N, D) and image, as live
    (WorldModel.predict_start_depth); head false: the depth head's alone."""
    return model.predict_start_depth(features[:, None], rgb if head else None)


def start_depth(model: WorldModel, traces: StartTraces, idx: torch.Tensor | slice, head: bool = True
                ) -> torch.Tensor:
    """The start depth (b, H, W) a reset gives for the traced starts `idx`, as live."""
    return sample_depth(model, traces, idx, start_predict, head)


def start_absrel(model: WorldModel, traces: StartTraces, head: bool = True) -> float:
    """Mean per-frame AbsRel of the start depth over the traces (head false: the depth head's alone)."""
    return samples_absrel(model, traces, start_predict, head)


def with_start_head(model: WorldModel, config: ModelConfig) -> WorldModel:
    """`model`'s weights in a model of `config`, which adds a start depth head (new, untrained) and differs in
    nothing else that holds weights."""
    if not config.heads.depth or config.heads.start_depth_channels <= 0:
        raise TrainError(f'config {config.name!r} has no start depth head (heads.start_depth_channels)')
    return with_new_head(model, config, 'start_depth_head')


def fit_start_depth_head(model: WorldModel, traces: StartTraces, held_out: StartTraces | None, out: Path,
                         cfg: DepthFitConfig, seed: int = 0) -> tuple[Path, dict[str, float]]:
    """Train `model`'s start depth head alone on traces; save the model as out/final.safetensors; return the path
    and the held-out AbsRel of the start depth before (the depth head's) and after."""
    if model.start_depth_head is None:
        raise TrainError(f'{model.config.name} has no start depth head to fit (heads.start_depth_channels)')
    final, scores = fit_depth_head(model, 'start_depth_head', start_predict, traces, held_out, out, cfg, seed)
    return final, {f'start_{k}': v for k, v in scores.items()}
