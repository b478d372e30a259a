"""The WorldScape model: latent codec + causal DiT + depth and Gaussian heads, built from one config."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from worldscape_ros.model.codec import ConvCodec
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.dit import CausalDiT
from worldscape_ros.model.heads import DepthHead, GaussianHead, StartDepthHead
from worldscape_ros.model.refiner import Refiner

STEP_IMAGE_DEPTH_BOUND = 1.5  # the step image depth head moves the step depth head's depth by this factor at most

if TYPE_CHECKING:
    from worldscape_ros.model.wan_codec import WanCodec


class WorldModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.codec: ConvCodec | WanCodec
        self.dit: CausalDiT
        if config.codec.kind == 'wan':
            from worldscape_ros.model.wan_codec import WanCodec  # needs diffusers: imported only when used

            self.codec = WanCodec(config)
        else:
            self.codec = ConvCodec(config)
        if config.dit.layout == 'wan':
            from worldscape_ros.model.wan import WanDiT  # the Wan2.1 transformer, which builds on CausalDiT

            self.dit = WanDiT(config)
        else:
            self.dit = CausalDiT(config)
        self.depth_head = DepthHead(config) if config.heads.depth else None
        hidden = config.heads.step_depth_hidden
        self.step_depth_head = DepthHead(config, hidden) if config.heads.depth and hidden else None
        channels = config.heads.start_depth_channels
        self.start_depth_head = StartDepthHead(config, channels) if config.heads.depth and channels else None
        channels = config.heads.step_image_depth_channels
        # where the model imagines, its output is a smooth fill: the head may move the step head's depth by a factor
        # of STEP_IMAGE_DEPTH_BOUND at most (unbounded, it put a wall 1.5 m away at over 6 m on a held-out turn)
        self.step_image_depth_head = (StartDepthHead(config, channels, bound=math.log(STEP_IMAGE_DEPTH_BOUND))
                                      if config.heads.depth and channels else None)
        self.gaussian_head = GaussianHead(config) if config.heads.gaussians else None
        self.refiner = Refiner(config.refiner) if config.refiner.enabled else None
        self.hand_refiner = Refiner(config.refiner) if config.refiner.enabled and config.refiner.hand_refiner else None

    def num_parameters(self, part: str | None = None) -> int:
        module = self if part is None else getattr(self, part)
        return sum(p.numel() for p in module.parameters())

    def predict_depth(self, features: torch.Tensor, denoising: bool = False) -> torch.Tensor:
        """(B, F, N, D) -> (B, F, H, W) metres; without a depth head, a constant 2 m. denoising: the features
        come from a denoising pass (sampler.cache_from_last_step), read by the step depth head when there is one."""
        if self.depth_head is None:
            B, F = features.shape[:2]
            return torch.full((B, F, self.config.height, self.config.width), 2.0, device=features.device)
        if denoising and self.step_depth_head is not None:
            return self.step_depth_head(features)
        return self.depth_head(features)

    def refine_step_depth(self, features: torch.Tensor, video: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """A denoising pass's depth (B, Fv, H, W) refined by the step image depth head, when the model has one, from
        that pass's features (B, F, N, D) and the output frames (B, Fv, 3, H, W) in [0, 1]."""
        head = self.step_image_depth_head
        if head is None:
            return depth
        f = features.float().repeat_interleave(self.config.codec.temporal_down, dim=1)  # (B, Fv, N, D)
        refined = head(f.flatten(0, 1), video.clamp(0, 1).flatten(0, 1), depth.flatten(0, 1))  # (B * Fv, H, W)
        return refined.unflatten(0, depth.shape[:2])

    def predict_start_depth(self, features: torch.Tensor, rgb: torch.Tensor | None) -> torch.Tensor:
        """A reset's clean-pass features (B, F, N, D) -> (B, H, W) metres of its start frame (the last latent
        frame's). rgb (B, 3, H, W) in [0, 1]: the start image, which the start depth head reads beside the features
        when there is one; None: the depth head's alone."""
        depth = self.predict_depth(features)[:, -1]  # (B, H, W)
        if rgb is None or self.start_depth_head is None:
            return depth
        return self.start_depth_head(features[:, -1], rgb, depth)
