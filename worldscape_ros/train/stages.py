"""The codec and teacher stages: what each trains, with which objective, and what it saves."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import prepare_batch
from worldscape_ros.train.codec import CodecObjective
from worldscape_ros.train.config import TrainConfig
from worldscape_ros.train.optim import EMA, build_optimizer, lr_at, update
from worldscape_ros.train.runtime import Runtime
from worldscape_ros.train.teacher import TeacherObjective


class Stage:
    """models: saved in every resumable save; optimizers: their state too; export(): the run's product."""

    models: dict[str, WorldModel]
    optimizers: dict[str, torch.optim.Optimizer]

    def step(self, batch: dict, step: int, gens: Sequence[torch.Generator]) -> dict[str, float]:
        raise NotImplementedError

    def export(self) -> WorldModel:
        raise NotImplementedError


class EMAStage(Stage):
    """One model, one optimiser, EMA weights as the product."""

    model: WorldModel
    cfg: TrainConfig
    rt: Runtime
    opt: torch.optim.Optimizer
    ema: EMA

    def optimise(self, loss: torch.Tensor, parts: dict[str, float], step: int) -> dict[str, float]:
        lr = lr_at(step, self.cfg.optim)
        parts['grad_norm'] = update(self.opt, loss, lr, self.cfg.optim.grad_clip)
        parts['lr'] = lr
        self.rt.reshard()
        self.ema.update(self.model, step)
        return parts

    def export(self) -> WorldModel:
        return self.ema.model


class CodecStage(EMAStage):
    def __init__(self, model: WorldModel, cfg: TrainConfig, rt: Runtime) -> None:
        self.model, self.cfg, self.rt = model, cfg, rt
        trained = 'codec.' if cfg.codec.train_encoder else 'codec.decoder.'
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(trained))
        self.ema = EMA(model, cfg.run.ema_decay)
        rt.shard(model, self.ema.model)  # the optimiser must see the sharded parameters
        self.objective = rt.wrap(CodecObjective(model, cfg.codec))
        self.opt = build_optimizer(model.codec.parameters(), cfg.optim)
        self.models = {'model': model, 'ema': self.ema.model}
        self.optimizers = {'model': self.opt}

    def step(self, batch: dict, step: int, gens: Sequence[torch.Generator]) -> dict[str, float]:
        video = batch['rgb'].to(self.rt.device)
        with self.rt.autocast():
            loss, parts = self.objective(video, gens)
        return self.optimise(loss, parts, step)


class TeacherStage(EMAStage):
    """The bidirectional teacher with the codec frozen; EMA weights are the product."""

    def __init__(self, model: WorldModel, cfg: TrainConfig, rt: Runtime) -> None:
        self.model, self.cfg, self.rt = model, cfg, rt
        for name, p in model.named_parameters():
            p.requires_grad_(not name.startswith('codec.'))
        model.codec.eval()
        self.ema = EMA(model, cfg.run.ema_decay)
        rt.shard(model, self.ema.model)
        self.objective = rt.wrap(TeacherObjective(model, cfg.teacher))
        self.opt = build_optimizer(model.parameters(), cfg.optim)
        self.models = {'model': model, 'ema': self.ema.model}
        self.optimizers = {'model': self.opt}
        self.views = cfg.teacher.geometry_views or model.config.memory.geometry_views

    def step(self, batch: dict, step: int, gens: Sequence[torch.Generator]) -> dict[str, float]:
        with torch.no_grad():
            clip = prepare_batch(self.model, batch, self.rt.device, self.views)
        with self.rt.autocast():
            loss, parts = self.objective(clip, gens)
        return self.optimise(loss, parts, step)
