"""The bidirectional teacher's objective: L = L_fm + alpha L_depth + beta L_render (the paper's L_total).

- L_fm: MSE between predicted and true velocity on noisy latents, one flow time per frame (shifted
  logit-normal); the first context frame(s) are given clean (t = 0) and left out of the loss, as at inference
  the first frame is given.
- L_depth: scale-aware log L1 of the depth head against true depth on valid pixels, on the same forward's
  features, each frame weighted by (1 - t): clean frames (the ones the engine's clean pass sees) count fully.
- L_render: Gaussians predicted from the clean context frame(s) rendered into the cameras of later frames and
  compared with those frames (L1 + SSIM) where the context frames actually see (true-depth reprojection mask),
  at a reduced resolution for CPU speed.
All losses are per-sample means averaged over the batch, so any split of a global batch over processes gives
the same gradient.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from worldscape_ros.errors import TrainError
from worldscape_ros.model import reproject
from worldscape_ros.model.sampler import add_noise, shift_time, velocity_target
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import ClipBatch, dropout_conditioning, rand, randn
from worldscape_ros.train.config import TeacherLossConfig
from worldscape_ros.train.image_losses import log_depth_l1, ssim_map


def sample_times(gens: Sequence[torch.Generator], frames: int, context: int, loss: TeacherLossConfig, shift: float,
                 device: torch.device) -> torch.Tensor:
    """(B, F) flow times: the first `context` frames 0, the others shifted logit-normal (or uniform)."""
    if loss.t_sampling == 'logit_normal':
        u = torch.sigmoid(loss.t_mean + loss.t_std * randn(gens, (frames,), device))
    else:
        u = rand(gens, (frames,), device)
    t = torch.as_tensor(shift_time(u, shift))
    t[:, :context] = 0.0
    return t


def _splat() -> object:
    try:
        return importlib.import_module('worldscape_ros.model.splat')
    except ModuleNotFoundError:
        raise TrainError('the render loss needs worldscape_ros.model.splat (rasterize); set '
                         'teacher.render_weight: 0 until it exists') from None


def render_loss(model: WorldModel, clip: ClipBatch, features: torch.Tensor, context: int, loss: TeacherLossConfig,
                gens: Sequence[torch.Generator]) -> torch.Tensor:
    """Per-sample render loss (B,): Gaussians of the context frames rendered into later frames' cameras."""
    if model.gaussian_head is None:
        raise TrainError('render loss needs the Gaussian head (heads.gaussians: true in the model config)')
    splat = _splat()
    cfg = model.config
    B, Fl = features.shape[:2]
    H, W = cfg.height, cfg.width
    Hs, Ws = max(8, round(H * loss.render_scale)), max(8, round(W * loss.render_scale))
    Ks = clip.K.clone()
    Ks[:, 0] *= Ws / W
    Ks[:, 1] *= Hs / H
    params = model.gaussian_head(features[:, :context].float(), clip.c2w[:, :context], clip.K)  # (B, ctx, G, k)
    k = cfg.codec.temporal_down
    candidates = list(range(context, min(Fl, context + 4)))  # nearby frames: they overlap the context most
    out = []
    for b in range(B):
        g = gens[b]
        order = torch.randperm(len(candidates), generator=g)[:loss.render_targets].tolist()
        sel = params.select(b, list(range(context)))
        gaussians = splat.Gaussians(sel.means, sel.scales, sel.rotations, sel.opacities[:, 0],  # type: ignore
                                    sel.colors)
        src = [f * k + k - 1 for f in range(context)]
        terms = []
        for j in order:
            f = candidates[j]
            v = f * k + k - 1
            colour, _, _ = splat.rasterize(gaussians, clip.c2w[b, f], Ks[b], Hs, Ws, check=False)  # type: ignore
            target = F.interpolate(clip.rgb[b, v][None], size=(Hs, Ws), mode='area')[0]  # (3, Hs, Ws)
            with torch.no_grad():
                _, _, seen = reproject.render_views(clip.rgb[b, src], clip.depth[b, :context], clip.c2w[b, :context],
                                                    clip.K[b], clip.c2w[b, f], Hs, Ws, target_K=Ks[b])
            m = seen.float()[None]  # (1, Hs, Ws)
            l1 = (m * (colour - target).abs()).sum() / (3 * m.sum()).clamp_min(1)
            s = (m * (1 - ssim_map(colour[None].clamp(0, 1), target[None])[0])).sum() / (3 * m.sum()).clamp_min(1)
            terms.append(l1 + loss.render_ssim * s)
        out.append(torch.stack(terms).mean() if terms else features.new_zeros(()))
    return torch.stack(out)


class TeacherObjective(nn.Module):
    """Wraps the model so that DDP sees one forward per step; returns the loss and its parts."""

    def __init__(self, model: WorldModel, loss: TeacherLossConfig) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, clip: ClipBatch, gens: Sequence[torch.Generator]) -> tuple[torch.Tensor, dict[str, float]]:
        model, loss, cfg = self.model, self.loss, self.model.config
        B, Fl = clip.x0.shape[:2]
        if Fl < 2:
            raise TrainError(f'teacher training needs clips of at least 2 latent frames, got {Fl}')
        context = min(loss.context_frames, Fl - 1)
        device = clip.x0.device
        t = sample_times(gens, Fl, context, loss, cfg.sampler.shift, device)  # (B, F)
        noise = randn(gens, clip.x0.shape[1:], device)  # (B, F, C, h, w)
        x_t = add_noise(clip.x0, noise, t)
        cond = dropout_conditioning(clip.cond, loss.cond_dropout, gens)
        if loss.causal:
            # [clean; noisy] frames: each noisy frame sees the clean earlier frames, as a chunk sees the cache.
            both = cond.map(lambda c: torch.cat([c, c], dim=1))
            index = torch.arange(Fl, device=device).repeat(2)
            out = model.dit(torch.cat([clip.x0, x_t], 1), torch.cat([torch.zeros_like(t), t], 1), both,
                            mask=model.dit.teacher_forcing_mask(Fl, device), frame_index=index)
            velocity, features = out.velocity[:, Fl:], out.features[:, :Fl]  # depth from the clean passes
            depth_w = torch.ones_like(t)
        else:
            out = model.dit(x_t, t, cond)  # bidirectional: mask None
            velocity, features = out.velocity, out.features
            depth_w = 1 - t
        err = (velocity.float() - velocity_target(clip.x0, noise)) ** 2  # (B, F, C, h, w)
        fm = err[:, context:].flatten(1).mean(1)  # (B,)
        total = fm
        parts = {'fm': fm.mean().item()}
        # clips without true depth (imported episodes, meta.has_depth false) have no depth or render target
        has_depth = bool(torch.isfinite(clip.depth).any())
        if loss.depth_weight > 0 and model.depth_head is not None and has_depth:
            pred = model.predict_depth(features).float()  # (B, F, H, W)
            per_frame, _ = log_depth_l1(pred, clip.depth)  # (B, F)
            depth = (per_frame * depth_w).sum(1) / depth_w.sum(1)
            total = total + loss.depth_weight * depth
            parts['depth'] = depth.mean().item()
        if loss.render_weight > 0 and has_depth:
            render = render_loss(model, clip, features, context, loss, gens)
            total = total + loss.render_weight * render
            parts['render'] = render.mean().item()
        total = total.mean()
        parts['loss'] = total.item()
        if not math.isfinite(parts['loss']):
            raise TrainError(f'teacher loss is not finite ({parts}): lower optim.lr or check the data')
        return total, parts
