"""Flow matching with a shifted timestep schedule and the teacher's bidirectional ODE sampler. The causal
student's few steps (predict x0, re-noise it to the next level, as DMD-distilled generators sample) run in
the rolling denoising window of the engine (`WorldEngine._tick`) and of training (`train/rollout.py`).

Convention (rectified flow): x_t = (1 - t) x0 + t noise, t = 1 is pure noise; the network predicts the
velocity v = noise - x0, so x0 = x_t - t v.
"""

from __future__ import annotations

from collections.abc import Callable

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
