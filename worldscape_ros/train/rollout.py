"""Differentiable causal self-rollout with the KV cache (Self-Forcing): the student generates a clip chunk by
chunk exactly as the engine does at inference, attending to what it generated itself.

Per chunk, as the algorithm reads:
  1. context: the cached keys of the sink chunk(s) and the local window, placed at consecutive positions;
  2. conditioning: Plücker rays and pose video of the chunk's cameras; the geometric guess rendered from the
     frames so far (the given first frame with its true depth, then the model's own decoded frames with the
     depth its head predicts);
  3. denoise in a few steps (sampler.schedule); only the exit step (drawn per chunk, the same for every
     process) keeps its graph, and its x0 prediction is the chunk's output, so memory stays that of one step;
  4. a clean pass at t = 0 (no gradient) writes the chunk's keys into the cache and gives the depth features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from worldscape_ros.model.dit import Conditioning, LayerKV
from worldscape_ros.model.sampler import add_noise, schedule, x0_from_velocity
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import ClipBatch, geometry_condition, pick_views, randn, slice_conditioning


@dataclass
class Rollout:
    x0: torch.Tensor  # (B, F, C, h, w): the given context frames, then the generated ones (with grad)
    cond: Conditioning  # what each frame was generated with (for scoring the clip with the teacher and critic)
    context: int  # latent frames given, not generated
    exit_steps: list[int]  # the step whose output each generated chunk returned


def _merge(chunks: list[list[LayerKV]]) -> list[LayerKV]:
    return [LayerKV(torch.cat([c[i].k for c in chunks], dim=2), torch.cat([c[i].v for c in chunks], dim=2))
            for i in range(len(chunks[0]))]


def _cat(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if any(p is None for p in parts) else torch.cat(parts, dim=1)  # type: ignore[arg-type]


def self_rollout(student: WorldModel, clip: ClipBatch, gens: Sequence[torch.Generator], shared: torch.Generator,
                 context_chunks: int = 1, steps: int | None = None, views: int | None = None) -> Rollout:
    """Generate every chunk after the first `context_chunks` of the clip; gradients reach the exit steps."""
    cfg = student.config
    dit = student.dit
    steps = steps or cfg.sampler.steps
    views = views or cfg.memory.geometry_views
    times = schedule(steps, cfg.sampler.shift)
    cf, k = cfg.chunk_frames, cfg.codec.temporal_down
    B, Fl = clip.x0.shape[:2]
    n_chunks = Fl // cf
    device = clip.x0.device
    sink, window = cfg.memory.sink_chunks, cfg.memory.window_chunks

    cache: list[list[LayerKV]] = []
    outputs: list[torch.Tensor] = []
    geo_parts: list[torch.Tensor | None] = []
    cov_parts: list[torch.Tensor | None] = []
    # Frames the geometric guess renders from: the given ones with true depth, then generated with predicted.
    seen_rgb = [clip.rgb[:, :context_chunks * cf * k]]
    seen_depth = [clip.depth.repeat_interleave(k, dim=1)[:, :context_chunks * cf * k]]
    exits: list[int] = []

    def context_for(chunk: int) -> tuple[list[LayerKV] | None, int]:
        ids = list(range(chunk))
        keep = ids[:sink] + [i for i in ids[len(ids) - window:] if i >= sink]  # window 0: the sink only
        if not keep:
            return None, 0
        positions = dit.token_positions(len(keep) * cf, 0, device)
        return dit.rotate_context(_merge([cache[i] for i in keep]), positions), len(keep) * cf

    for c in range(n_chunks):
        sl = slice(c * cf, (c + 1) * cf)
        cond = slice_conditioning(clip.cond, sl.start, sl.stop)
        if c >= context_chunks and cfg.conditioning.geometry:
            rgb_src, depth_src = torch.cat(seen_rgb, 1), torch.cat(seen_depth, 1)
            src = pick_views(list(range(rgb_src.shape[1])), views)
            geo, cov = geometry_condition(student, rgb_src[:, src], depth_src[:, src], clip.video_c2w[:, src],
                                          clip.K, clip.video_c2w[:, c * cf * k:(c + 1) * cf * k])
            cond = Conditioning(plucker=cond.plucker, pose=cond.pose, geometry=geo, coverage=cov)
        geo_parts.append(cond.geometry)
        cov_parts.append(cond.coverage)
        context, first = context_for(c)
        if c < context_chunks:
            x0 = clip.x0[:, sl]  # 1. the given first frame(s)
        else:
            # 3. few-step denoising; the graph is kept for the exit step only
            exit_step = int(torch.randint(steps, (1,), generator=shared))
            exits.append(exit_step)
            x = randn(gens, (cf, *clip.x0.shape[2:]), device)  # (B, cf, C, h, w)
            for i in range(exit_step + 1):
                t = torch.full((B, cf), times[i], device=device)
                with torch.set_grad_enabled(i == exit_step and torch.is_grad_enabled()):
                    v = dit(x, t, cond, context=context, first_frame=first).velocity.float()
                    x0 = x0_from_velocity(x, v, t)
                if i < exit_step:
                    fresh = randn(gens, x.shape[1:], device)
                    x = add_noise(x0.detach(), fresh, torch.full((B, cf), times[i + 1], device=device))
        outputs.append(x0)
        # 4. the clean pass writes the cache; its features give the depth for the next geometric guesses
        with torch.no_grad():
            t0 = torch.zeros(B, cf, device=device)
            out = dit(x0.detach(), t0, cond, context=context, first_frame=first, return_kv=True)
            assert out.kv is not None
            cache.append([LayerKV(kv.k.detach(), kv.v.detach()) for kv in out.kv])
            if c >= context_chunks and cfg.conditioning.geometry:
                seen_rgb.append(student.codec.decode(x0.detach()).float())  # (B, cf*k, 3, H, W)
                depth = student.predict_depth(out.features).float()  # (B, cf, H, W)
                seen_depth.append(depth.repeat_interleave(k, dim=1))
    cond = Conditioning(plucker=clip.cond.plucker, pose=clip.cond.pose, geometry=_cat(geo_parts),
                        coverage=_cat(cov_parts))
    return Rollout(x0=torch.cat(outputs, dim=1), cond=cond, context=context_chunks * cf, exit_steps=exits)
