"""Differentiable causal self-rollout with the KV cache (Self-Forcing): the student generates a clip as the
engine does at inference, attending to what it generated itself, through a rolling denoising window.

The window holds up to W chunks at staggered noise levels (W = sampler.rolling_window; 0 or 1: one chunk at a
time). Each tick, as the algorithm reads:
  1. a new chunk enters at pure noise if the window has room; its conditioning: Plücker rays and pose video of
     its cameras, and the geometric guess rendered from the frames generated so far (the given first frame with
     its true depth, then the model's own decoded frames with the depth its head predicts);
  2. context: the cached keys of the sink chunk(s) and the local window of clean chunks before the window,
     placed at consecutive positions; the window's chunks follow and attend to each other (mutual refinement).
     It is the engine's: a KV memory (model/memory.py) under the model's memory config with the pool off, and
     its entries' keys joined and rotated by model/context.py;
  3. one denoising step of every chunk in the window, each at its own level (sampler.schedule);
  4. the oldest chunk leaves at its exit level (drawn per chunk, the same for every process; chunks leave in
     order, so the cache advances monotonically): its x0 prediction there is its output, and only ticks where
     a chunk leaves keep their graph, so memory stays that of one step per chunk. The others are re-noised to
     their next level;
  5. a clean pass at t = 0 (no gradient) writes the leaving chunk's keys into the cache and gives the depth
     features for later geometric guesses.
With W = 1 this is chunk-by-chunk generation with a random exit step (Self-Forcing). Steps 3-4 are the engine's
own window tick (model/rolling_window.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from worldscape_ros.model.context import context_kv, memory_config, memory_entry
from worldscape_ros.model.dit import Conditioning, LayerKV
from worldscape_ros.model.memory import HierarchicalMemory
from worldscape_ros.model.rolling_window import chunk_x0s, chunks_leaving, renoise, window_inputs
from worldscape_ros.model.sampler import schedule
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import ClipBatch, geometry_condition, pick_views, randn, slice_conditioning


@dataclass
class Rollout:
    x0: torch.Tensor  # (B, F, C, h, w): the given context frames, then the generated ones (with grad)
    cond: Conditioning  # what each frame was generated with (for scoring the clip with the teacher and critic)
    context: int  # latent frames given, not generated
    exit_steps: list[int]  # the step whose output each generated chunk returned


@dataclass
class Pending:
    """A generated chunk in the rolling window (model/rolling_window.py)."""

    chunk: int
    level: int  # steps taken so far; the chunk is at noise level times[level]
    exit: int  # the level whose x0 prediction is its output
    x: torch.Tensor  # (B, cf, C, h, w)
    cond: Conditioning


def self_rollout(student: WorldModel, clip: ClipBatch, gens: Sequence[torch.Generator], shared: torch.Generator,
                 context_chunks: int = 1, steps: int | None = None, views: int | None = None,
                 window: int | None = None) -> Rollout:
    """Generate every chunk after the first `context_chunks` of the clip; gradients reach the exit steps.
    window: chunks denoised together (default: sampler.rolling_window, at least 1)."""
    cfg = student.config
    dit = student.dit
    steps = steps or cfg.sampler.steps
    views = views or cfg.memory.geometry_views
    window = max(1, cfg.sampler.rolling_window if window is None else window)
    times = schedule(steps, cfg.sampler.shift)
    cf, k = cfg.chunk_frames, cfg.codec.temporal_down
    B, Fl = clip.x0.shape[:2]
    n_chunks = Fl // cf
    device = clip.x0.device
    grad = torch.is_grad_enabled()

    # The clean chunks as the engine's KV memory holds them, the batch's B clips in one entry each. No pool: the
    # student learns the sink and local window, what the engine attends to with memory.attend_pool false.
    memory = HierarchicalMemory(memory_config(cfg, memory=False))
    cameras = clip.video_c2w[0].detach().cpu().double().numpy()  # the first clip's: what an entry is labelled by
    outputs: list[torch.Tensor] = []
    conds: list[Conditioning] = []
    # Frames the geometric guess renders from: the given ones with true depth, then generated with predicted.
    seen_rgb = [clip.rgb[:, :context_chunks * cf * k]]
    seen_depth = [clip.depth.repeat_interleave(k, dim=1)[:, :context_chunks * cf * k]]
    exits: list[int] = []

    def last_camera(c: int) -> np.ndarray:
        return cameras[(c + 1) * cf * k - 1]

    def context_for(chunk: int) -> tuple[list[LayerKV] | None, int]:
        """What `chunk` attends to (chunks leave in order, so the memory holds every chunk before it)."""
        entries = memory.context(last_camera(chunk))
        return context_kv(dit, [entries], 0, device), len(entries) * cf

    def conditioning(c: int) -> Conditioning:
        cond = slice_conditioning(clip.cond, c * cf, (c + 1) * cf)
        if c >= context_chunks and cfg.conditioning.geometry:
            rgb_src, depth_src = torch.cat(seen_rgb, 1), torch.cat(seen_depth, 1)
            src = pick_views(list(range(rgb_src.shape[1])), views)
            geo, cov = geometry_condition(student, rgb_src[:, src], depth_src[:, src], clip.video_c2w[:, src],
                                          clip.K, clip.video_c2w[:, c * cf * k:(c + 1) * cf * k])
            cond = Conditioning(plucker=cond.plucker, pose=cond.pose, geometry=geo, coverage=cov)
        return cond

    def leave(c: int, x0: torch.Tensor, cond: Conditioning) -> None:
        """5. the clean pass writes the cache; its features give the depth for the next geometric guesses."""
        outputs.append(x0)
        context, first = context_for(c)
        with torch.no_grad():
            t0 = torch.zeros(B, cf, device=device)
            out = dit(x0.detach(), t0, cond, context=context, first_frame=first, return_kv=True)
            assert out.kv is not None
            memory.append(memory_entry(c, last_camera(c), [LayerKV(kv.k.detach(), kv.v.detach()) for kv in out.kv],
                                       x0.detach()))
            if c >= context_chunks and cfg.conditioning.geometry:
                seen_rgb.append(student.codec.decode(x0.detach()).float())  # (B, cf*k, 3, H, W)
                depth = student.predict_depth(out.features).float()  # (B, cf, H, W)
                seen_depth.append(depth.repeat_interleave(k, dim=1))

    for c in range(context_chunks):  # the given first frame(s)
        conds.append(conditioning(c))
        leave(c, clip.x0[:, c * cf:(c + 1) * cf], conds[c])

    pending: list[Pending] = []
    entering = context_chunks
    while entering < n_chunks or pending:
        if entering < n_chunks and len(pending) < window:  # 1. a chunk enters at pure noise
            conds.append(conditioning(entering))
            exit_step = int(torch.randint(steps, (1,), generator=shared))
            exits.append(exit_step)
            noise = randn(gens, (cf, *clip.x0.shape[2:]), device)
            pending.append(Pending(entering, 0, exit_step, noise, conds[entering]))
            entering += 1
        # 4. who leaves at this tick: the oldest chunks that have reached their exit level, in order
        leaving = chunks_leaving(pending, [p.exit for p in pending])
        # 2-3. one joint step of the window after the clean context
        context, first = context_for(pending[0].chunk)
        x, t, cond = window_inputs(pending, times)  # (B, W * cf, C, h, w), (B, W * cf)
        with torch.set_grad_enabled(grad and leaving > 0):
            v = dit(x, t, cond, context=context, first_frame=first).velocity
            x0 = chunk_x0s(x, v, t, len(pending))
        for p, x0_p in zip(pending[:leaving], x0[:leaving], strict=True):
            leave(p.chunk, x0_p, p.cond)
        renoise(pending[leaving:], x0[leaving:], times, lambda like: randn(gens, like.shape[1:], device))
        pending = pending[leaving:]
    cond = Conditioning.cat(conds)
    return Rollout(x0=torch.cat(outputs, dim=1), cond=cond, context=context_chunks * cf, exit_steps=exits)
