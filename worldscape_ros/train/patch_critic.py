"""A patch critic for the refiner's fills: a small conditional PatchGAN (Isola et al. 2017) with spectral norm
(Miyato et al. 2018) and the hinge loss, scored only on patches that hold pixels the refiner writes.

An L1 fill is the mean of what could be there: smooth where the scene has texture. The critic tells a fill
from the true frame by its local statistics, which pushes the refiner to draw structure of the scene's kind.
It reads the image beside the render's coverage, so a seam at a hole's edge is judged in context. Training only:
it is not part of the shipped model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

CONDITION_CHANNELS = 1  # the render's coverage


class PatchCritic(nn.Module):
    """(B, 3 + 1, H, W) image and coverage -> (B, 1, H/4, W/4) realness logits, one per overlapping patch
    (receptive field 26 pixels)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        c = width
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(3 + CONDITION_CHANNELS, c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * c, 2 * c, 3, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * c, 1, 3, padding=1)),
        )

    def forward(self, image: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, coverage], 1))


def patch_weights(focus: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) bool pixels the refiner writes -> (B, 1, h, w) float: the patches of logits holding any."""
    return F.adaptive_max_pool2d(focus.float(), logits.shape[-2:])


def _masked_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).sum() / w.sum().clamp_min(1.0)


def critic_loss(critic: PatchCritic, real: torch.Tensor, fake: torch.Tensor, coverage: torch.Tensor,
                focus: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the critic on the focus patches: true frames above +1, the refiner's (detached) below -1."""
    lr, lf = critic(real, coverage), critic(fake.detach(), coverage)
    w = patch_weights(focus, lr)
    return _masked_mean(F.relu(1 - lr), w) + _masked_mean(F.relu(1 + lf), w)


def generator_loss(critic: PatchCritic, fake: torch.Tensor, coverage: torch.Tensor,
                   focus: torch.Tensor) -> torch.Tensor:
    """The refiner's adversarial loss: minus the critic's mean logit on its focus patches."""
    lf = critic(fake, coverage)
    return -_masked_mean(lf, patch_weights(focus, lf))
