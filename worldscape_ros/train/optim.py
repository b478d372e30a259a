"""Optimiser, learning-rate schedule, the update step (clip, step) and the EMA of weights."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.config import OptimConfig


def build_optimizer(params: Iterable[nn.Parameter], optim: OptimConfig, lr: float | None = None) -> torch.optim.AdamW:
    trained = [p for p in params if p.requires_grad]
    return torch.optim.AdamW(trained, lr=lr or optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def lr_at(step: int, optim: OptimConfig) -> float:
    """Linear warm-up, then constant, or cosine decay to 10% of the base rate over optim.decay_steps."""
    base, warmup = optim.lr, optim.warmup_steps
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    if optim.decay_steps <= 0:
        return base
    progress = min(1.0, (step - warmup) / optim.decay_steps)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def update(opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float, grad_clip: float) -> float:
    """Backward, clip the global gradient norm, step; returns the norm before clipping."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in opt.param_groups for p in g['params'] if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if isinstance(norm, DTensor):  # FSDP shards: the global norm from every rank's part
        norm = norm.full_tensor()
    if grad_clip > 0:
        torch.nn.utils.clip_grads_with_norm_(params, grad_clip, norm)
    for g in opt.param_groups:
        g['lr'] = lr
    opt.step()
    return float(norm)


class EMA:
    """Exponential moving average of a model's weights, kept as a model (saved as the shipped weights). Made
    before FSDP sharding and then sharded like the model, so that each rank averages its own shards."""

    def __init__(self, model: WorldModel, decay: float) -> None:
        self.decay = decay
        self.model: WorldModel = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # short memory early, when the weights move fast
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - d)
        for eb, b in zip(self.model.buffers(), model.buffers(), strict=True):
            eb.copy_(b)
