"""Heads on the DiT's video-token features: metric depth per frame, and per-pixel 3D Gaussians from a small
ViT aggregator (the paper's 3DGS head, supervised by rendering into other frames' cameras)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from worldscape_ros.model.camera import camera_rays
from worldscape_ros.model.config import ModelConfig

MIN_DEPTH, MAX_DEPTH = 0.05, 100.0


class DepthHead(nn.Module):
    """Metric z-depth (metres) at full resolution, predicted as log-depth per pixel of each token's patch: linear
    on the features of a clean pass, or (hidden > 0) an MLP, for features that hold depth less plainly."""

    def __init__(self, config: ModelConfig, hidden: int = 0) -> None:
        super().__init__()
        self.config = config
        self.p = config.codec.spatial_down * config.dit.patch[1]
        self.norm = nn.LayerNorm(config.dit.dim)
        d = config.dit.dim
        self.hidden: nn.Module = nn.Sequential(nn.Linear(d, hidden), nn.GELU()) if hidden else nn.Identity()
        self.proj = nn.Linear(hidden or d, self.p * self.p)
        nn.init.zeros_(self.proj.weight)
        nn.init.constant_(self.proj.bias, math.log(2.0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F, N, D) -> depth (B, F, H, W)."""
        gh, gw = self.config.grid
        log_d = rearrange(self.proj(self.hidden(self.norm(features))), 'b f (h w) (p q) -> b f (h p) (w q)',
                          h=gh, w=gw, p=self.p, q=self.p)
        return log_d.clamp(math.log(MIN_DEPTH), math.log(MAX_DEPTH)).exp()


class StartDepthHead(nn.Module):
    """Metric z-depth (metres) of a start frame at full resolution, from a reset's clean-pass features and the
    image itself: convs on the token grid give each token its neighbours' context (dilations 1, 2, 4: 15 x 15
    tokens), and at half resolution, beside the image's own conv features, a residual on the linear head's log
    depth (the zero-initialised output makes it start as that head, smoothed)."""

    def __init__(self, config: ModelConfig, channels: int, bound: float | None = None) -> None:
        """bound: the largest |log| residual (None: any), so the head can refine its prior but not overrule it."""
        super().__init__()
        self.config = config
        self.bound = bound
        c, d = channels, config.dit.dim
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Conv2d(d, 2 * c, 1)
        self.context = nn.ModuleList([nn.Conv2d(2 * c, 2 * c, 3, padding=r, dilation=r) for r in (1, 2, 4)])
        self.down = nn.Conv2d(2 * c, c, 1)
        self.image = nn.Sequential(nn.Conv2d(3, c // 2, 3, stride=2, padding=1), nn.GELU(),
                                   nn.Conv2d(c // 2, c // 2, 3, padding=1), nn.GELU())
        self.fuse = nn.Sequential(nn.Conv2d(c + c // 2 + 1, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, 1, 3, padding=1))
        for p in self.fuse[-1].parameters():
            nn.init.zeros_(p)

    def forward(self, features: torch.Tensor, rgb: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """features (B, N, D) of the clean pass's start frame, rgb (B, 3, H, W) in [0, 1], prior (B, H, W) the
        linear head's depth -> depth (B, H, W)."""
        gh, gw = self.config.grid
        H, W = self.config.height, self.config.width
        half = (H // 2, W // 2)
        x = self.proj(rearrange(self.norm(features), 'b (h w) d -> b d h w', h=gh, w=gw))  # (B, 2C, gh, gw)
        for conv in self.context:
            x = x + conv(F.gelu(x))
        x = F.interpolate(self.down(F.gelu(x)), size=half, mode='bilinear', align_corners=False)  # (B, C, H/2, W/2)
        log_prior = F.interpolate(prior.clamp(MIN_DEPTH, MAX_DEPTH).log()[:, None], size=half, mode='area')
        image = self.image(rgb - 0.5)  # (B, C/2, H/2, W/2)
        residual = self.fuse(torch.cat([x, image, log_prior], 1))  # (B, 1, H/2, W/2)
        if self.bound is not None:
            residual = self.bound * torch.tanh(residual / self.bound)
        log_d = log_prior + residual
        log_d = F.interpolate(log_d, size=(H, W), mode='bilinear', align_corners=False)[:, 0]  # (B, H, W)
        return log_d.clamp(math.log(MIN_DEPTH), math.log(MAX_DEPTH)).exp()


@dataclass
class GaussianParams:
    """Per-pixel-cell Gaussians of each frame, all (B, F, G, k)."""

    means: torch.Tensor  # (..., 3) world
    scales: torch.Tensor  # (..., 3) metres
    rotations: torch.Tensor  # (..., 4) unit quaternions wxyz
    opacities: torch.Tensor  # (..., 1)
    colors: torch.Tensor  # (..., 3) in [0, 1]

    def select(self, b: int, frames: list[int]) -> GaussianParams:
        pick = lambda x: x[b, frames].reshape(-1, x.shape[-1])  # noqa: E731
        return GaussianParams(pick(self.means), pick(self.scales), pick(self.rotations), pick(self.opacities),
                              pick(self.colors))


class GaussianHead(nn.Module):
    """ViT aggregator over a frame's tokens -> one Gaussian per stride x stride pixel cell, placed on the
    cell's ray at the predicted depth (pixel-aligned, as feed-forward 3DGS heads do)."""

    PARAMS = 1 + 3 + 4 + 1 + 3  # depth, scale, rotation, opacity, colour

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dit.dim
        self.p = config.codec.spatial_down * config.dit.patch[1]
        self.stride = config.heads.gaussian_stride
        if self.p % self.stride:
            raise ValueError(f'gaussian_stride {self.stride} must divide the token pixel patch {self.p}')
        self.g = self.p // self.stride
        layer = nn.TransformerEncoderLayer(d, config.dit.heads, 2 * d, dropout=0.0, batch_first=True,
                                           norm_first=True, activation='gelu')
        self.aggregator = nn.TransformerEncoder(layer, config.heads.gaussian_layers, enable_nested_tensor=False)
        self.proj = nn.Linear(d, self.g * self.g * self.PARAMS)
        nn.init.normal_(self.proj.weight, std=1e-3)
        nn.init.zeros_(self.proj.bias)

    def forward(self, features: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor) -> GaussianParams:
        """features (B, F, N, D), c2w (B, F, 4, 4), K (B, 3, 3) -> Gaussians (B, F, G, k)."""
        cfg = self.config
        B, Fr = features.shape[:2]
        gh, gw = cfg.grid
        x = self.aggregator(features.flatten(0, 1))  # (B*F, N, D): attention within each frame
        raw = rearrange(self.proj(x), '(b f) (h w) (p q k) -> b f (h p) (w q) k', b=B, h=gh, w=gw, p=self.g,
                        q=self.g)  # (B, F, Hg, Wg, PARAMS)
        Hg, Wg = gh * self.g, gw * self.g
        Kg = K.clone()
        Kg[:, :2] = Kg[:, :2] / self.stride  # the same camera at the Gaussian grid's resolution
        origins, dirs = camera_rays(c2w, Kg[:, None].expand(B, Fr, 3, 3), Hg, Wg)  # (B, F, Hg, Wg, 3)
        z_dir = torch.einsum('bfhwc,bfc->bfhw', dirs, c2w[..., :3, 2])  # cos between ray and optical axis
        depth = (raw[..., 0] + math.log(2.0)).clamp(math.log(MIN_DEPTH), math.log(MAX_DEPTH)).exp()
        means = origins + dirs * (depth / z_dir.clamp_min(1e-3))[..., None]
        footprint = depth / Kg[:, None, None, None, 0, 0]  # metres one grid cell spans at that depth
        scales = footprint[..., None] * torch.sigmoid(raw[..., 1:4]) * 0.75
        rot = F.normalize(raw[..., 4:8] + torch.tensor([1.0, 0, 0, 0], device=raw.device), dim=-1)
        opac = torch.sigmoid(raw[..., 8:9] + 2.0)
        colors = torch.sigmoid(raw[..., 9:12])
        flat = lambda t: t.flatten(2, 3)  # noqa: E731
        return GaussianParams(flat(means), flat(scales), flat(rot), flat(opac), flat(colors))
