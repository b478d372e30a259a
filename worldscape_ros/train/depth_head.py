"""Fitting the step depth head on the features the streaming engine gives it live.

With `sampler.cache_from_last_step` a frame costs one DiT pass: the chunk's only denoising pass writes the cache,
and the depth must come from its features. Its input is noise beside the conditioning, and the DiT's final
features then carry the velocity (noise minus the clean latent) rather than depth in the linear form the clean
pass's head reads (that head's held-out AbsRel on them: 1.6). The step depth head (`heads.step_depth_hidden`,
an MLP) learns them; the DiT, the clean pass's head (which still serves resets) and everything else stay as they
are.

1. trace: the engine (the same code as live, with the cache written by the last step) is reset on each episode's
   true start frame and depth, stepped through its true cameras and hands, and every input the depth heads
   receive is recorded beside the true depth of its frame.
2. fit: the step depth head learns log depth (L1, as the teacher's depth loss) on the live steps' features.

Shards hold float16 features; a fit writes the model with the new head as one checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from worldscape_ros.data.episode import Episode
from worldscape_ros.errors import TrainError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.engine_traces import pending_shards, replay
from worldscape_ros.train.head_fit import DepthFitConfig, fit_depth_head, frame_absrel, with_new_head

log = logging.getLogger(__name__)

START, STEP = 0, 1  # what a sample's features come from: a reset's clean pass, or a live step


# ---- 1. trace --------------------------------------------------------------------------------------------------
def trace_depth(engine: WorldEngine, episodes: list[Path], out: Path, frames: int) -> int:
    """Write one shard per episode (skipping shards already written); return the samples written now."""
    heads: list[torch.nn.Module] = [h for h in (engine.model.depth_head, engine.model.step_depth_head)
                                    if h is not None]
    if not heads:
        raise TrainError(f'{engine.config.name} has no depth head to trace')
    written = 0
    for ep, shard in pending_shards(episodes, out, '.depth.npz'):
        feats, depth, kind, rgb = _trace_episode(engine, heads, ep, frames)
        with atomic_path(shard) as tmp, open(tmp, 'wb') as f:
            np.savez(f, features=feats, depth=depth, kind=kind, rgb=rgb)
        written += len(kind)
    return written


def _trace_episode(engine: WorldEngine, heads: list[torch.nn.Module], ep: Episode, frames: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """features (T, N, D) float16 of the last latent frame of each call of a depth head, depth (T, H, W) float16
    of its frame, kind (T,) uint8, and the engine's frames (T, H, W, 3) uint8 (the start, then its outputs: what
    the step image depth head reads)."""
    seen: list[torch.Tensor] = []  # (F, N, D) each, in call order
    hooks = [h.register_forward_pre_hook(lambda _m, args: seen.append(args[0][0].detach().half().cpu()))
             for h in heads]
    try:
        made = replay(engine, ep, frames)
    finally:
        for hook in hooks:
            hook.remove()
    T = len(made)
    if len(seen) != T:
        raise TrainError(f'the depth heads ran {len(seen)} times for {T} frames')
    kind = np.array([START] + [STEP] * (T - 1), dtype=np.uint8)
    feats = torch.stack([f[-1] for f in seen]).numpy()
    return feats, ep.depth[:T].astype(np.float16), kind, np.stack([f.rgb for f in made])


class DepthTraces:
    """The live steps' samples of some folders' shards in memory: features (n, N, D) float16, depth (n, H, W),
    and with rgb=True the engine's output frames (n, H, W, 3) uint8 (shards traced before they were recorded are
    refused then)."""

    def __init__(self, folders: list[Path], rgb: bool = False) -> None:
        shards = sorted(p for folder in folders for p in folder.glob('*.depth.npz'))
        if not shards:
            raise TrainError(f'no *.depth.npz shards in {", ".join(map(str, folders))}: run depth-trace first')
        fs, ds, rs = [], [], []
        for p in shards:
            with np.load(p) as z:
                step = z['kind'] == STEP
                fs.append(z['features'][step])
                ds.append(z['depth'][step])
                if rgb:
                    if 'rgb' not in z.files:
                        raise TrainError(f'{p} holds no output frames (traced by an older depth-trace): trace again')
                    rs.append(z['rgb'][step])
        self.features = torch.from_numpy(np.concatenate(fs))
        self.depth = torch.from_numpy(np.concatenate(ds).astype(np.float32))
        self.rgb = torch.from_numpy(np.concatenate(rs)) if rgb else None
        self.shards = len(shards)

    def __len__(self) -> int:
        return int(self.features.shape[0])


# ---- 2. fit (train/head_fit.py) --------------------------------------------------------------------------------
def absrel(predict: Callable[[torch.Tensor], torch.Tensor], traces: DepthTraces, chunk: int = 256) -> float:
    """Mean per-frame AbsRel of `predict` (features (b, 1, N, D) -> depth (b, 1, H, W)) over the traces."""
    errors = []
    with torch.no_grad():
        for i in range(0, len(traces), chunk):
            pred = predict(traces.features[i:i + chunk].float()[:, None])[:, 0]  # (b, H, W)
            errors.append(frame_absrel(pred, traces.depth[i:i + chunk]))
    return float(torch.cat(errors).mean())


def step_depth(model: WorldModel, features: torch.Tensor, rgb: torch.Tensor | None, head: bool) -> torch.Tensor:
    """A live step's depth (b, H, W) from its denoising pass's features (b, N, D), as the step depth head reads it
    (head false: the clean pass's linear head reading the same features)."""
    return model.predict_depth(features[:, None], denoising=head)[:, 0]


def step_image_depth(model: WorldModel, features: torch.Tensor, rgb: torch.Tensor | None, head: bool
                     ) -> torch.Tensor:
    """A live step's depth as the engine makes it: the step depth head's, refined from the frame the step output
    (rgb (b, 3, H, W)) by the step image depth head (head false: unrefined)."""
    if rgb is None:
        raise TrainError('these traces hold no output frames for the step image depth head to read')
    depth = step_depth(model, features, None, True)
    return model.refine_step_depth(features[:, None], rgb[:, None], depth[:, None])[:, 0] if head else depth


def with_step_head(model: WorldModel, config: ModelConfig) -> WorldModel:
    """`model`'s weights in a model of `config`, which adds a step depth head (new, untrained) and differs in
    nothing that holds weights."""
    if not config.heads.depth or config.heads.step_depth_hidden <= 0:
        raise TrainError(f'config {config.name!r} has no step depth head (heads.step_depth_hidden)')
    return with_new_head(model, config, 'step_depth_head')


def fit_step_depth_head(model: WorldModel, traces: DepthTraces, held_out: DepthTraces | None, out: Path,
                        cfg: DepthFitConfig, seed: int = 0) -> tuple[Path, dict[str, float]]:
    """Train `model`'s step depth head alone on traces; save the model as out/final.safetensors; return the path
    and the held-out AbsRel of the live steps' depth before (the clean pass's head reading them) and after."""
    if model.step_depth_head is None:
        raise TrainError(f'{model.config.name} has no step depth head to fit (heads.step_depth_hidden)')
    final, scores = fit_depth_head(model, 'step_depth_head', step_depth, traces, held_out, out, cfg, seed)
    return final, {f'step_{k}': v for k, v in scores.items()}
