"""Latent codec: video <-> latent behind one interface, so a larger video VAE can be plugged in.

The default is a small convolutional autoencoder trainable here: `spatial_down` by strided convolutions,
`temporal_down` by folding that many consecutive frames into the channels of one latent frame.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from einops import rearrange
from torch import nn

from worldscape_ros.model.config import ModelConfig


class LatentCodec(Protocol):
    latent_channels: int

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [0, 1] -> (B, T // temporal_down, C, H / down, W / down)."""
        ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, T', C, h, w) -> (B, T' * temporal_down, 3, H, W) in [0, 1]."""
        ...


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(min(8, ch), ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                  nn.GroupNorm(min(8, ch), ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ConvCodec(nn.Module):
    """Deterministic conv autoencoder; latents are soft-clamped with tanh to a bounded range."""

    LATENT_SCALE = 3.0  # latents live in (-3, 3): roughly unit variance for flow matching

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.codec
        self.latent_channels = c.latent_channels
        self.temporal_down = c.temporal_down
        levels = int(math.log2(c.spatial_down))
        in_ch = 3 * c.temporal_down
        widths = [c.width * min(2**i, 4) for i in range(levels + 1)]
        enc: list[nn.Module] = [nn.Conv2d(in_ch, widths[0], 3, padding=1)]
        for i in range(levels):
            enc += [ResBlock(widths[i]), nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1)]
        enc += [ResBlock(widths[-1]), nn.GroupNorm(min(8, widths[-1]), widths[-1]), nn.SiLU(),
                nn.Conv2d(widths[-1], c.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(c.latent_channels, widths[-1], 3, padding=1), ResBlock(widths[-1])]
        for i in reversed(range(levels)):
            dec += [nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(widths[i + 1], widths[i], 3, padding=1),
                    ResBlock(widths[i])]
        dec += [nn.GroupNorm(min(8, widths[0]), widths[0]), nn.SiLU(), nn.Conv2d(widths[0], in_ch, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        B, T = video.shape[:2]
        k = self.temporal_down
        if T % k:
            raise ValueError(f'video length {T} must be a multiple of temporal_down {k}')
        x = rearrange(video * 2 - 1, 'b (t k) c h w -> (b t) (k c) h w', k=k)
        z = self.LATENT_SCALE * torch.tanh(self.encoder(x) / self.LATENT_SCALE)
        return rearrange(z, '(b t) c h w -> b t c h w', b=B)  # (B, T/k, C, h, w)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        B = latent.shape[0]
        x = self.decoder(rearrange(latent, 'b t c h w -> (b t) c h w'))
        x = rearrange(x, '(b t) (k c) h w -> b (t k) c h w', b=B, k=self.temporal_down)
        return (x.clamp(-1, 1) + 1) / 2  # (B, T, 3, H, W) in [0, 1]
