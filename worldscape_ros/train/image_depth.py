"""Fitting an image depth head alone: a small conv net (model/heads.py) that reads a pass's features on the token
grid and the frame itself, a residual on a per-token head's log depth. The model has two: the start depth head
(a reset without given depth; traces from train/start_depth.py) and the step image depth head (the live steps;
traces from train/depth_head.py, which record the engine's output frames). Everything else stays frozen; the
loss is log-depth L1, as the teacher's depth loss; the checkpoint written holds the model with the head.
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
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.depth_head import frame_absrel
from worldscape_ros.train.image_losses import log_depth_l1

log = logging.getLogger(__name__)

# (model, features (b, N, D) float, frames (b, 3, H, W) in [0, 1], with the head) -> depth (b, H, W) metres
Predict = Callable[[WorldModel, torch.Tensor, torch.Tensor, bool], torch.Tensor]


class ImageDepthSamples(Protocol):
    """Traced samples in memory: features (n, N, D) float16, rgb (n, H, W, 3) uint8, depth (n, H, W) float32."""

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
class ImageDepthFitConfig:
    steps: int = 2000
    batch: int = 32
    lr: float = 2e-3
    score_every: int = 250


def sample_depth(model: WorldModel, samples: ImageDepthSamples, idx: torch.Tensor | slice, predict: Predict,
                 head: bool = True) -> torch.Tensor:
    """The depth (b, H, W) `predict` gives for the samples `idx`, as live (head false: without the image head)."""
    if samples.rgb is None:
        raise TrainError('these traces hold no frames for an image depth head to read')
    rgb = samples.rgb[idx].permute(0, 3, 1, 2).float().div(255)  # (b, 3, H, W), as the engine's video
    return predict(model, samples.features[idx].float(), rgb, head)


def image_absrel(model: WorldModel, samples: ImageDepthSamples, predict: Predict, head: bool = True,
                 chunk: int = 128) -> float:
    """Mean per-frame AbsRel over the samples (head false: without the image head)."""
    errors = []
    with torch.no_grad():
        for i in range(0, len(samples), chunk):
            rows = slice(i, i + chunk)
            errors.append(frame_absrel(sample_depth(model, samples, rows, predict, head), samples.depth[rows]))
    return float(torch.cat(errors).mean())


def fit_image_depth_head(model: WorldModel, name: str, predict: Predict, traces: ImageDepthSamples,
                         held_out: ImageDepthSamples | None, out: Path, cfg: ImageDepthFitConfig, seed: int = 0
                         ) -> tuple[Path, dict[str, float]]:
    """Train `model`'s head `name` alone on traces; save the model as out/final.safetensors; return the path and
    the held-out AbsRel before (without the head) and after."""
    head = getattr(model, name, None)
    if not isinstance(head, torch.nn.Module):
        raise TrainError(f'{model.config.name} has no {name} to fit')
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    score = held_out or traces
    scores = {'absrel_before': image_absrel(model, score, predict, head=False)}
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
                         image_absrel(model, score, predict), time.perf_counter() - t0)
                head.train()
    finally:
        head.eval()
        for n, p in model.named_parameters():
            p.requires_grad_(frozen[n])
    scores['absrel_after'] = image_absrel(model, score, predict)
    final = out / 'final.safetensors'
    save_checkpoint(final, model, {name: {'steps': cfg.steps, 'samples': len(traces), **scores}})
    with atomic_path(out / 'fit.json') as tmp:
        tmp.write_text(json.dumps({'head': name, 'config': cfg.__dict__, 'samples': len(traces),
                                   'shards': traces.shards, **scores}, indent=2))
    return final, scores


# ---- the step image depth head ----------------------------------------------------------------------------------
def step_depth(model: WorldModel, features: torch.Tensor, rgb: torch.Tensor, head: bool) -> torch.Tensor:
    """A live step's depth from its denoising pass's features and output frame, as the engine makes it (head
    false: the step depth head's alone)."""
    if head:
        return model.predict_step_depth(features, rgb)
    return model.predict_depth(features[:, None], denoising=True)[:, 0]
