"""Fitting one depth head alone on the engine's own traces: the step depth head (an MLP per token, on live
steps' denoising-pass features; train/depth_head.py), the start depth head (a conv net on a reset's features and
image; train/start_depth.py) and the step image depth head (the same conv net on a live step's features and the
frame it output; traces from train/depth_head.py). Everything else stays frozen; the loss is log-depth L1, as the
teacher's depth loss; the checkpoint written holds the model with the head.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from worldscape_ros.errors import TrainError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.checkpoint import save_checkpoint
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.image_losses import log_depth_l1

log = logging.getLogger(__name__)

# (model, features (b, N, D) float, frames (b, 3, H, W) in [0, 1] or None, with the head) -> depth (b, H, W) metres
Predict = Callable[[WorldModel, torch.Tensor, torch.Tensor | None, bool], torch.Tensor]


class DepthSamples(Protocol):
    """Traced samples in memory: features (n, N, D) float16, rgb (n, H, W, 3) uint8 or None, depth (n, H, W)."""

    @property
    def features(self) -> torch.Tensor: ...

    @property
    def rgb(self) -> torch.Tensor | None: ...

    @property
    def depth(self) -> torch.Tensor: ...

    @property
    def shards(self) -> int: ...

    def __len__(self) -> int: ...


@dataclass
class DepthFitConfig:
    steps: int = 2000
    batch: int = 32
    lr: float = 2e-3
    score_every: int = 250


def frame_absrel(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """AbsRel of each frame: pred, true (b, H, W) metres -> (b,), over the true depth finite and in (0, 100] m."""
    valid = torch.isfinite(true) & (true > 0) & (true <= 100)
    rel = torch.where(valid, (pred - true).abs() / true.nan_to_num(1.0).clamp_min(1e-6), 0.0)
    return rel.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)


def with_new_head(model: WorldModel, config: ModelConfig, head: str) -> WorldModel:
    """`model`'s weights in a model of `config`, which adds the module `head` (new, untrained) and differs in
    nothing else that holds weights."""
    target = WorldModel(config)
    if getattr(target, head, None) is None:
        raise TrainError(f'config {config.name!r} has no {head.replace("_", " ")}')
    missing, unexpected = target.load_state_dict(model.state_dict(), strict=False)
    other = [k for k in missing if not k.startswith(f'{head}.')] + list(unexpected)
    if other:
        raise TrainError(f'config {config.name!r} differs from the checkpoint beyond the {head.replace("_", " ")}: '
                         f'{other[0]}')
    return target


def sample_depth(model: WorldModel, samples: DepthSamples, idx: torch.Tensor | slice, predict: Predict,
                 head: bool = True) -> torch.Tensor:
    """The depth (b, H, W) `predict` gives for the samples `idx`, as live (head false: without the fitted head)."""
    rgb = None if samples.rgb is None else samples.rgb[idx].permute(0, 3, 1, 2).float().div(255)  # (b, 3, H, W)
    return predict(model, samples.features[idx].float(), rgb, head)


def samples_absrel(model: WorldModel, samples: DepthSamples, predict: Predict, head: bool = True,
                   chunk: int = 128) -> float:
    """Mean per-frame AbsRel over the samples (head false: without the fitted head)."""
    errors = []
    with torch.no_grad():
        for i in range(0, len(samples), chunk):
            rows = slice(i, i + chunk)
            errors.append(frame_absrel(sample_depth(model, samples, rows, predict, head), samples.depth[rows]))
    return float(torch.cat(errors).mean())


def fit_depth_head(model: WorldModel, name: str, predict: Predict, traces: DepthSamples,
                   held_out: DepthSamples | None, out: Path, cfg: DepthFitConfig, seed: int = 0
                   ) -> tuple[Path, dict[str, float]]:
    """Train `model`'s head `name` alone on traces; save the model as out/final.safetensors; return the path and
    the held-out AbsRel before (without the head) and after."""
    head = getattr(model, name, None)
    if not isinstance(head, torch.nn.Module):
        raise TrainError(f'{model.config.name} has no {name.replace("_", " ")} to fit')
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    score = held_out or traces
    scores = {'absrel_before': samples_absrel(model, score, predict, head=False)}
    frozen = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(False)
    head.requires_grad_(True)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    try:
        head.train()
        for step in range(1, cfg.steps + 1):
            idx = torch.randint(len(traces), (cfg.batch,), generator=gen)
            loss = log_depth_l1(sample_depth(model, traces, idx, predict), traces.depth[idx])[0].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % cfg.score_every == 0 or step == cfg.steps:
                head.eval()
                log.info('step %d loss %.4f held-out AbsRel %.4f (%.0f s)', step, loss.item(),
                         samples_absrel(model, score, predict), time.perf_counter() - t0)
                head.train()
    finally:
        head.eval()
        for n, p in model.named_parameters():
            p.requires_grad_(frozen[n])
    scores['absrel_after'] = samples_absrel(model, score, predict)
    final = out / 'final.safetensors'
    save_checkpoint(final, model, {name: {'steps': cfg.steps, 'samples': len(traces), **scores}})
    with atomic_path(out / 'fit.json') as tmp:
        tmp.write_text(json.dumps({'head': name, 'config': cfg.__dict__, 'samples': len(traces),
                                   'shards': traces.shards, **scores}, indent=2))
    return final, scores
