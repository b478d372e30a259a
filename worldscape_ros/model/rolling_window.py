"""The rolling denoising window: one tick of it, as the engine runs it at inference and Self-Forcing training
runs it on the student (train/rollout.py), so both run one copy of the algorithm.

The window holds up to W chunks at staggered noise levels (a chunk at level l is at noise level times[l] of
sampler.schedule; chunks enter one per tick at level 0, pure noise). One tick, as the algorithm reads:
  1. the window's joint inputs: its chunks' latents concatenated along frames, each frame at its chunk's noise
     level, their conditioning concatenated (window_inputs);
  2. one DiT pass over them after the clean context (the caller's: the engine's KV memory, training's cache);
     the x0 prediction from its velocity, one slice per chunk (chunk_x0s);
  3. the oldest chunks whose level has reached their exit step leave with their x0 prediction, in order, so the
     cache advances monotonically (chunks_leaving); the engine's exit step is the last, steps - 1,
     Self-Forcing's is drawn per chunk;
  4. the chunks that stay are re-noised to their next level with fresh noise from the caller's source: the
     engine's generator, training's per-sample generators (renoise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from worldscape_ros.model.dit import Conditioning
from worldscape_ros.model.sampler import add_noise, x0_from_velocity

NoiseSource = Callable[[torch.Tensor], torch.Tensor]  # fresh standard normal noise shaped like a chunk's latents


class WindowChunk(Protocol):
    """A chunk in the window (the engine's InFlight, training's Pending)."""

    x: torch.Tensor  # (B, F, C, h, w) at noise level times[level]
    level: int  # denoising steps taken so far
    cond: Conditioning  # (B, F, ...)


def window_inputs(window: Sequence[WindowChunk], times: Sequence[float]
                  ) -> tuple[torch.Tensor, torch.Tensor, Conditioning]:
    """1. the latents (B, W * F, C, h, w), noise levels (B, W * F) and conditioning of the window's joint pass."""
    x = torch.cat([c.x for c in window], dim=1)
    t = torch.cat([torch.full(c.x.shape[:2], times[c.level], device=c.x.device) for c in window], dim=1)
    return x, t, Conditioning.cat([c.cond for c in window])


def chunk_x0s(x: torch.Tensor, velocity: torch.Tensor, t: torch.Tensor, chunks: int) -> list[torch.Tensor]:
    """2. the x0 prediction (B, F, C, h, w) of each of the window's `chunks` chunks, from the joint pass's
    velocity at the inputs x, t."""
    x0 = x0_from_velocity(x, velocity.float(), t)  # (B, W * F, C, h, w)
    F = x.shape[1] // chunks
    return [x0[:, j * F:(j + 1) * F] for j in range(chunks)]


def chunks_leaving(window: Sequence[WindowChunk], exits: Sequence[int]) -> int:
    """3. how many chunks leave at this tick: the oldest, in order, whose level has reached their exit step (the
    step whose x0 prediction is the chunk's output); exits: each chunk's, oldest first."""
    n = 0
    while n < len(window) and window[n].level >= exits[n]:
        n += 1
    return n


def renoise(staying: Sequence[WindowChunk], x0s: Sequence[torch.Tensor], times: Sequence[float],
            noise: NoiseSource) -> None:
    """4. each staying chunk to its next level: its x0 prediction noised afresh at times[level + 1], the noise
    drawn from `noise` chunk by chunk, oldest first."""
    for c, x0 in zip(staying, x0s, strict=True):
        fresh = noise(c.x)
        c.x = add_noise(x0.detach(), fresh, torch.full(c.x.shape[:2], times[c.level + 1], device=c.x.device))
        c.level += 1
