"""Fitting the depth head alone on the features the streaming engine gives it.

The depth head reads the DiT's final video-token features. Live, with `sampler.cache_from_last_step`, those are
the features of the chunk's only denoising pass (its input is noise beside the conditioning), not of a clean
pass at t = 0, which the head was trained on: one DiT pass a frame instead of two, but the head must learn the
new features. At a reset the features still come from a clean pass of the start frame.

1. trace: the engine (the same code as live) is reset on each episode's true start frame and depth, stepped
   through its true cameras and hands, and every input the depth head receives is recorded beside the true depth
   of its frame; a few more frames of each episode are then each taken as an RGB-only start (the reset's clean
   pass), so the fitted head keeps serving starts without depth.
2. fit: the head (its norm and projection; the DiT frozen) learns log depth (L1, as the teacher's depth loss)
   over both kinds of sample.

Shards hold float16 features; a fit writes the model with the new head as one checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldscape_ros.data.episode import EPISODE_SUFFIX, Episode, read_episode
from worldscape_ros.errors import TrainError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.checkpoint import save_checkpoint
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.train.image_losses import log_depth_l1

log = logging.getLogger(__name__)

START, STEP = 0, 1  # what a sample's features come from: a reset's clean pass, or a live step


# ---- 1. trace --------------------------------------------------------------------------------------------------
def trace_depth(engine: WorldEngine, episodes: list[Path], out: Path, frames: int, starts: int) -> int:
    """Write one shard per episode (skipping shards already written); return the samples written now.
    starts: frames of each episode (evenly spaced after the first) also taken as RGB-only starts."""
    head = engine.model.depth_head
    if head is None:
        raise TrainError(f'{engine.config.name} has no depth head to trace')
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in episodes:
        shard = out / (path.name.removesuffix(EPISODE_SUFFIX) + '.depth.npz')
        if shard.exists():
            continue
        feats, depth, kind = _trace_episode(engine, head, read_episode(path), frames, starts)
        with atomic_path(shard) as tmp, open(tmp, 'wb') as f:
            np.savez(f, features=feats, depth=depth, kind=kind)
        written += len(kind)
    return written


def _trace_episode(engine: WorldEngine, head: torch.nn.Module, ep: Episode, frames: int, starts: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """features (n, N, D) float16 of the last latent frame of each call of the head, depth (n, H, W) float16
    of its frame, kind (n,) uint8."""
    T = min(frames, ep.num_frames)
    kp = ep.keypoints3d
    more = np.linspace(0, T - 1, starts + 2)[1:-1].round().astype(int) if starts else np.zeros(0, int)
    seen: list[torch.Tensor] = []  # (F, N, D) each, in call order
    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0][0].detach().half().cpu()))
    try:
        engine.reset(ep.rgb[0], ep.poses[0], ep.intrinsics, ep.depth[0],
                     hand_keypoints=None if kp is None else kp[0])
        for t in range(1, T):
            engine.step(ep.poses[t], None if kp is None else kp[t])
        for t in more:
            engine.reset(ep.rgb[t], ep.poses[t], ep.intrinsics, None, hand_keypoints=None if kp is None else kp[t])
    finally:
        hook.remove()
    if len(seen) != T + len(more):
        raise TrainError(f'the depth head ran {len(seen)} times for {T + len(more)} frames')
    index = np.concatenate([np.arange(T), more])
    kind = np.array([START] + [STEP] * (T - 1) + [START] * len(more), dtype=np.uint8)
    feats = torch.stack([f[-1] for f in seen]).numpy()
    return feats, ep.depth[index].astype(np.float16), kind


class DepthTraces:
    """All shards of some folders in memory: features (n, N, D) float16, depth (n, H, W), kind (n,)."""

    def __init__(self, folders: list[Path]) -> None:
        shards = sorted(p for folder in folders for p in folder.glob('*.depth.npz'))
        if not shards:
            raise TrainError(f'no *.depth.npz shards in {", ".join(map(str, folders))}: run depth-trace first')
        fs, ds, ks = [], [], []
        for p in shards:
            with np.load(p) as z:
                fs.append(z['features'])
                ds.append(z['depth'])
                ks.append(z['kind'])
        self.features = torch.from_numpy(np.concatenate(fs))
        self.depth = torch.from_numpy(np.concatenate(ds).astype(np.float32))
        self.kind = torch.from_numpy(np.concatenate(ks))
        self.shards = len(shards)

    def __len__(self) -> int:
        return int(self.features.shape[0])


# ---- 2. fit ----------------------------------------------------------------------------------------------------
@dataclass
class DepthFitConfig:
    steps: int = 3000
    batch: int = 64
    lr: float = 1e-3
    score_every: int = 500


def absrel(head: torch.nn.Module, traces: DepthTraces, kind: int, chunk: int = 256) -> float:
    """Mean per-frame AbsRel of the head on the samples of one kind (true depth finite and in (0, 100] m)."""
    pick = (traces.kind == kind).nonzero().flatten()
    if not len(pick):
        return float('nan')
    errors = []
    with torch.no_grad():
        for i in range(0, len(pick), chunk):
            idx = pick[i:i + chunk]
            pred = head(traces.features[idx].float()[:, None])[:, 0]  # (b, H, W)
            true = traces.depth[idx]
            valid = torch.isfinite(true) & (true > 0) & (true <= 100)
            rel = torch.where(valid, (pred - true).abs() / true.nan_to_num(1.0).clamp_min(1e-6), 0.0)
            errors.append(rel.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1))
    return float(torch.cat(errors).mean())


def fit_depth_head(engine: WorldEngine, traces: DepthTraces, held_out: DepthTraces | None, out: Path,
                   cfg: DepthFitConfig, seed: int = 0) -> tuple[Path, dict[str, float]]:
    """Train the engine's depth head on traces; save the engine's model with it as out/final.safetensors; return
    the path and the held-out AbsRel per kind before and after."""
    model = engine.model
    head = model.depth_head
    if head is None:
        raise TrainError(f'{engine.config.name} has no depth head to fit')
    out.mkdir(parents=True, exist_ok=True)
    score = held_out or traces
    scores = {f'{name}_absrel_before': absrel(head, score, k) for name, k in (('start', START), ('step', STEP))}
    head.train()
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(len(traces), (cfg.batch,), generator=gen)
        pred = head(traces.features[idx].float()[:, None])[:, 0]  # (b, H, W)
        loss = log_depth_l1(pred, traces.depth[idx])[0].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.score_every == 0 or step == cfg.steps:
            head.eval()
            log.info('step %d loss %.4f held-out AbsRel start %.4f step %.4f (%.0f s)', step, loss.item(),
                     absrel(head, score, START), absrel(head, score, STEP), time.perf_counter() - t0)
            head.train()
    head.eval()
    scores |= {f'{name}_absrel_after': absrel(head, score, k) for name, k in (('start', START), ('step', STEP))}
    final = out / 'final.safetensors'
    save_checkpoint(final, model, {'depth_head': {'steps': cfg.steps, 'samples': len(traces), **scores}})
    with atomic_path(out / 'fit.json') as tmp:
        tmp.write_text(json.dumps({'config': cfg.__dict__, 'samples': len(traces), 'shards': traces.shards,
                                   **scores}, indent=2))
    return final, scores
