"""Flow matching with a shifted timestep schedule; the teacher's bidirectional ODE sampler, the causal
student's few-step chunk denoiser, and the rolling denoising window.

Convention (rectified flow): x_t = (1 - t) x0 + t noise, t = 1 is pure noise; the network predicts the
velocity v = noise - x0, so x0 = x_t - t v.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B,F,...), t (B,F)) -> v


def shift_time(t: torch.Tensor | float, shift: float) -> torch.Tensor | float:
    """Spend more steps at high noise for larger images: t' = s t / (1 + (s - 1) t)."""
    return shift * t / (1 + (shift - 1) * t)


def schedule(steps: int, shift: float) -> list[float]:
    """steps + 1 times from 1 (noise) to 0 (data)."""
    if steps < 1:
        raise ValueError(f'steps must be >= 1, got {steps}')
    return [float(shift_time(1 - i / steps, shift)) for i in range(steps + 1)]


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """t (B, F) broadcast over (B, F, C, h, w)."""
    tt = t[..., None, None, None]
    return (1 - tt) * x0 + tt * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def x0_from_velocity(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return x_t - t[..., None, None, None] * v


def sample_ode(velocity: VelocityFn, noise: torch.Tensor, steps: int, shift: float,
               known: torch.Tensor | None = None) -> torch.Tensor:
    """The teacher: Euler integration of the flow from noise to data over all frames jointly.

    known: optional (B, F) bool marking frames given clean (e.g. the first frame); they stay at t = 0.
    """
    B, Fr = noise.shape[:2]
    x = noise.clone()
    times = schedule(steps, shift)
    for t_cur, t_next in zip(times[:-1], times[1:], strict=True):
        t = torch.full((B, Fr), t_cur, device=noise.device)
        if known is not None:
            t = torch.where(known, torch.zeros_like(t), t)
        v = velocity(x, t)
        step = (t_next - t_cur) * v
        x = x + (step if known is None else torch.where(known[..., None, None, None], 0, step))
    return x


def denoise_chunk(velocity: VelocityFn, noise: torch.Tensor, steps: int, shift: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The causal student: few steps, each predicting x0 and re-noising it to the next level (as DMD-distilled
    few-step generators sample). Returns the clean latent of the chunk."""
    B, Fr = noise.shape[:2]
    times = schedule(steps, shift)
    x = noise
    x0 = noise
    for i, t_cur in enumerate(times[:-1]):
        t = torch.full((B, Fr), t_cur, device=noise.device)
        x0 = x0_from_velocity(x, velocity(x, t), t)
        t_next = times[i + 1]
        if t_next > 0:
            fresh = torch.randn(x.shape, generator=generator, device='cpu').to(x)
            x = add_noise(x0, fresh, torch.full((B, Fr), t_next, device=noise.device))
    return x0


@dataclass
class RollingWindow:
    """Rolling denoising window: W chunks at staggered noise levels are denoised together (they attend to each
    other inside the window) while the cache advances monotonically; each tick one chunk leaves clean and a
    fresh noisy chunk enters. Level i of the window holds a chunk that has had i steps."""

    steps: int
    shift: float
    pending: list[torch.Tensor] = field(default_factory=list)  # oldest (least noisy) first
    levels: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.times = schedule(self.steps, self.shift)

    def push(self, noise: torch.Tensor) -> None:
        if len(self.pending) >= self.steps:
            raise ValueError('rolling window is full: tick() before pushing another chunk')
        self.pending.append(noise)
        self.levels.append(0)

    def tick(self, velocity: VelocityFn, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Denoise every pending chunk by one step jointly; return the chunk that became clean, if any."""
        if not self.pending:
            return None
        x = torch.cat(self.pending, dim=1)  # (B, W * F, ...)
        Fr = self.pending[0].shape[1]
        t = torch.cat([torch.full((x.shape[0], Fr), self.times[lv], device=x.device) for lv in self.levels], 1)
        x0 = x0_from_velocity(x, velocity(x, t), t)
        done: torch.Tensor | None = None
        new_pending, new_levels = [], []
        for j, lv in enumerate(self.levels):
            chunk_x0 = x0[:, j * Fr:(j + 1) * Fr]
            t_next = self.times[lv + 1]
            if t_next <= 0:
                done = chunk_x0
                continue
            fresh = torch.randn(chunk_x0.shape, generator=generator, device='cpu').to(chunk_x0)
            new_pending.append(add_noise(chunk_x0, fresh, torch.full((x.shape[0], Fr), t_next, device=x.device)))
            new_levels.append(lv + 1)
        self.pending, self.levels = new_pending, new_levels
        return done
