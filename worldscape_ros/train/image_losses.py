"""Image losses shared by the codec and the render loss: SSIM, image-gradient L1, log-depth L1."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Per-pixel SSIM of images (N, C, H, W) in [0, 1] with a box window (reflect-padded, same size)."""
    pad = window // 2
    a_p = F.pad(a, (pad,) * 4, mode='reflect')
    b_p = F.pad(b, (pad,) * 4, mode='reflect')
    mu_a, mu_b = F.avg_pool2d(a_p, window, 1), F.avg_pool2d(b_p, window, 1)
    var_a = F.avg_pool2d(a_p * a_p, window, 1) - mu_a ** 2
    var_b = F.avg_pool2d(b_p * b_p, window, 1) - mu_b ** 2
    cov = F.avg_pool2d(a_p * b_p, window, 1) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean L1 between horizontal and vertical finite differences, per image (N, C, H, W) -> (N,)."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return ((dx(a) - dx(b)).abs().flatten(1).mean(1) + (dy(a) - dy(b)).abs().flatten(1).mean(1)) / 2


def log_depth_l1(pred: torch.Tensor, true: torch.Tensor, min_depth: float = 0.05,
                 max_depth: float = 60.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale-aware log L1 per frame: pred, true (..., H, W) metres -> (loss (...), valid fraction (...)).

    Metric depth is what the robot needs, so the error is on log depth itself (not scale-invariant); unknown
    (NaN) and out-of-range true depth is left out.
    """
    valid = torch.isfinite(true) & (true > min_depth) & (true < max_depth)
    safe = torch.where(valid, true, torch.ones_like(true))
    err = (pred.clamp_min(1e-3).log() - safe.log()).abs() * valid
    count = valid.flatten(-2).sum(-1)
    return err.flatten(-2).sum(-1) / count.clamp_min(1), count / (true.shape[-1] * true.shape[-2])
