"""Asymmetric distillation of the bidirectional teacher into the few-step causal student (DMD on self-rollouts).

Generator update: the student rolls the clip out chunk by chunk with its KV cache (rollout.py); its frames are
re-noised to a random level t and scored by two denoisers on the whole clip (the given first frame clean):
the frozen teacher (real score) and a critic trained on student samples (fake score). DMD moves the student's
samples along  grad = (fake_x0 - real_x0) / mean|x - real_x0|  through  loss = 0.5 mse(x, (x - grad).detach()).
A small regression to the ground-truth clip may be added for stability on tiny models (distill.regression_weight).
Critic update: flow matching on the (detached) student samples, the same conditioning.

Network evaluations per generated frame: the teacher takes teacher_steps (x2 with classifier-free guidance);
the student takes steps + 1 (the clean pass that writes the cache), or steps when the last step's pass writes it
(sampler.cache_from_last_step) - see nfe_per_frame.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from worldscape_ros.errors import CheckpointError, TrainError
from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.dit import Conditioning
from worldscape_ros.model.sampler import add_noise, velocity_target, x0_from_velocity
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import ClipBatch, prepare_batch, rand, randn, sample_generator
from worldscape_ros.train.config import DistillConfig, TrainConfig
from worldscape_ros.train.optim import EMA, build_optimizer, lr_at, update
from worldscape_ros.train.rollout import self_rollout
from worldscape_ros.train.runtime import Runtime
from worldscape_ros.train.stages import Stage


def nfe_per_frame(config: ModelConfig, guidance: float = 1.0) -> dict[str, float]:
    """Network evaluations per generated frame: teacher (full ODE, x2 with CFG) against the causal student."""
    teacher = config.sampler.teacher_steps * (2 if guidance != 1.0 else 1)
    student = config.sampler.steps + (0 if config.sampler.cache_from_last_step else 1)
    return {'teacher_nfe': float(teacher), 'student_nfe': float(student), 'nfe_saving': teacher / student}


def noise_levels(gens: Sequence[torch.Generator], frames: int, context: int, d: DistillConfig,
                 device: torch.device) -> torch.Tensor:
    """(B, F): one level per sample in [t_min, t_max] for the generated frames; the context frames clean."""
    t = d.t_min + (d.t_max - d.t_min) * rand(gens, (1,), device)  # (B, 1)
    t = t.expand(-1, frames).clone()
    t[:, :context] = 0.0
    return t


def predict_x0(model: WorldModel, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning,
               guidance: float = 1.0) -> torch.Tensor:
    """Bidirectional x0 prediction, with classifier-free guidance against the unconditional (all streams off)."""
    v = model.dit(x_t, t, cond).velocity.float()
    if guidance != 1.0:
        empty = cond.map(torch.zeros_like)
        v_u = model.dit(x_t, t, empty).velocity.float()
        v = v_u + guidance * (v - v_u)
    return x0_from_velocity(x_t, v, t)


class GeneratorObjective(nn.Module):
    """Owns the student only (what DDP syncs); the teacher and critic are held outside the module tree."""

    def __init__(self, student: WorldModel, teacher: WorldModel, critic: WorldModel, d: DistillConfig) -> None:
        super().__init__()
        self.student = student
        self.scores = (teacher, critic)  # a plain tuple: not registered as submodules
        self.d = d

    def forward(self, clip: ClipBatch, gens: Sequence[torch.Generator],
                shared: torch.Generator) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, Conditioning]:
        d, (teacher, critic) = self.d, self.scores
        roll = self_rollout(self.student, clip, gens, shared, d.context_chunks)
        x, ctx = roll.x0, roll.context  # (B, F, C, h, w) with grad on the generated frames
        t = noise_levels(gens, x.shape[1], ctx, d, x.device)
        noise = randn(gens, x.shape[1:], x.device)
        with torch.no_grad():
            x_t = add_noise(x.detach(), noise, t)
            real = predict_x0(teacher, x_t, t, roll.cond, d.guidance)
            fake = predict_x0(critic, x_t, t, roll.cond)
            gen = x.detach()[:, ctx:]
            norm = (gen - real[:, ctx:]).abs().flatten(1).mean(1).clamp_min(1e-6)  # (B,)
            grad = (fake - real)[:, ctx:] / norm.view(-1, 1, 1, 1, 1)
            grad = torch.nan_to_num(grad)
        xg = x[:, ctx:]
        dmd = 0.5 * ((xg - (xg - grad).detach()) ** 2).flatten(1).mean(1)  # (B,)
        total = dmd
        parts = {'dmd': dmd.mean().item()}
        with torch.no_grad():
            parts['gt_mse'] = ((xg - clip.x0[:, ctx:]) ** 2).mean().item()
        if d.regression_weight > 0:
            reg = ((xg - clip.x0[:, ctx:]) ** 2).flatten(1).mean(1)
            total = total + d.regression_weight * reg
            parts['regression'] = reg.mean().item()
        total = total.mean()
        parts['loss'] = total.item()
        if not math.isfinite(parts['loss']):
            raise TrainError(f'distillation loss is not finite ({parts}): lower optim.lr')
        return total, parts, x.detach(), roll.cond


class CriticObjective(nn.Module):
    """The fake score: flow matching on the student's samples, at the levels DMD queries it."""

    def __init__(self, critic: WorldModel, d: DistillConfig) -> None:
        super().__init__()
        self.critic = critic
        self.d = d

    def forward(self, x: torch.Tensor, cond: Conditioning, context: int,
                gens: Sequence[torch.Generator]) -> tuple[torch.Tensor, dict[str, float]]:
        t = noise_levels(gens, x.shape[1], context, self.d, x.device)
        noise = randn(gens, x.shape[1:], x.device)
        v = self.critic.dit(add_noise(x, noise, t), t, cond).velocity.float()
        loss = ((v - velocity_target(x, noise))[:, context:] ** 2).flatten(1).mean(1).mean()
        return loss, {'critic': loss.item()}


def load_teacher(path: str, config: ModelConfig) -> WorldModel:
    try:
        teacher, _ = load_checkpoint(path, config=config)
    except CheckpointError as exc:
        raise TrainError(f'distill.teacher: {exc}') from None
    return teacher


class DistillStage(Stage):
    def __init__(self, model: WorldModel, cfg: TrainConfig, rt: Runtime) -> None:
        self.model, self.cfg, self.rt, self.d = model, cfg, rt, cfg.distill
        teacher_path = self.d.teacher or cfg.init
        self.teacher = load_teacher(teacher_path, model.config).to(rt.device).eval()
        if not cfg.init:  # the student starts as the teacher
            model.load_state_dict(self.teacher.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.critic = copy.deepcopy(self.teacher)
        for m in (model, self.critic):
            for name, p in m.named_parameters():
                p.requires_grad_(name.startswith('dit.'))
        self.ema = EMA(model, cfg.run.ema_decay)
        rt.shard(model, self.ema.model, self.critic, self.teacher)  # before the optimisers, which must see shards
        self.generator = rt.wrap(GeneratorObjective(model, self.teacher, self.critic, self.d))
        self.critic_objective = rt.wrap(CriticObjective(self.critic, self.d))
        self.opt = build_optimizer(model.parameters(), cfg.optim)
        self.critic_opt = build_optimizer(self.critic.parameters(), cfg.optim, lr=self.d.critic_lr)
        self.models = {'model': model, 'ema': self.ema.model, 'critic': self.critic}
        self.optimizers = {'model': self.opt, 'critic': self.critic_opt}
        self.views = cfg.teacher.geometry_views or model.config.memory.geometry_views
        self.nfe = nfe_per_frame(model.config, self.d.guidance)

    def step(self, batch: dict, step: int, gens: Sequence[torch.Generator]) -> dict[str, float]:
        cfg, rt = self.cfg, self.rt
        with torch.no_grad():
            clip = prepare_batch(self.model, batch, rt.device, self.views)
        shared = sample_generator(cfg.run.seed, step, 1 << 40)  # exit steps: the same in every process
        with rt.autocast():
            loss, parts, x, cond = self.generator(clip, gens, shared)
        lr = lr_at(step, cfg.optim)
        parts['grad_norm'] = update(self.opt, loss, lr, cfg.optim.grad_clip)
        rt.reshard()
        self.ema.update(self.model, step)
        context = self.d.context_chunks * self.model.config.chunk_frames
        for i in range(self.d.critic_steps):
            if i > 0:  # a fresh sample from the updated student
                with torch.no_grad(), rt.autocast():
                    _, _, x, cond = self.generator(clip, gens, shared)
            with rt.autocast():  # the sample generators go on drawing: still keyed by the global sample index
                closs, cparts = self.critic_objective(x, cond, context, gens)
            update(self.critic_opt, closs, self.d.critic_lr, cfg.optim.grad_clip)
            parts.update(cparts)
        rt.reshard()  # the teacher's and critic's weights too, between steps
        parts['lr'] = lr
        return parts

    def export(self) -> WorldModel:
        return self.ema.model
