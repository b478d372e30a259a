"""Codec training (the stage before the DiT): reconstruct frames, L1 + a small image-gradient and SSIM term."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from worldscape_ros.errors import TrainError
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.config import CodecLossConfig
from worldscape_ros.train.image_losses import gradient_l1, ssim_map


class CodecObjective(nn.Module):
    def __init__(self, model: WorldModel, loss: CodecLossConfig) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, video: torch.Tensor, gens: Sequence[torch.Generator]) -> tuple[torch.Tensor, dict[str, float]]:
        """video (B, T, 3, H, W) in [0, 1] -> loss (per-sample means, averaged) and its parts."""
        codec = self.model.codec
        with torch.set_grad_enabled(self.loss.train_encoder and torch.is_grad_enabled()):
            latent = codec.encode(video)
        recon = codec.decode(latent).float()  # (B, T, 3, H, W)
        a, b = recon.flatten(0, 1), video.flatten(0, 1)  # (B*T, 3, H, W)
        B = video.shape[0]
        l1 = (a - b).abs().flatten(1).mean(1).view(B, -1).mean(1)  # (B,)
        grad = gradient_l1(a, b).view(B, -1).mean(1)
        ssim = (1 - ssim_map(a, b)).flatten(1).mean(1).view(B, -1).mean(1)
        total = (l1 + self.loss.gradient_weight * grad + self.loss.ssim_weight * ssim).mean()
        with torch.no_grad():
            mse = ((a - b) ** 2).flatten(1).mean(1)
            psnr = (-10 * torch.log10(mse.clamp_min(1e-10))).mean().item()
        parts = {'loss': total.item(), 'l1': l1.mean().item(), 'grad': grad.mean().item(),
                 'ssim': 1 - ssim.mean().item(), 'psnr': psnr}
        if not math.isfinite(parts['loss']):
            raise TrainError(f'codec loss is not finite ({parts}): lower optim.lr')
        return total, parts
