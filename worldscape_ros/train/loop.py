"""The training loop shared by every stage: data, resumable saves, CSV logs and a progress bar with ETA.

One loop for the codec, the teacher and the distilled student; single process by default, DDP when started
by torchrun. Steps read like the algorithm:
  1. set up the runtime (device, process group, autocast) and build the model from its init checkpoint;
  2. build the stage (what trains, its objectives and optimisers) and, with --resume, restore its state;
  3. each step: this process's share of the global batch, per-sample random generators keyed by the global
     sample index (so results do not depend on the number of processes), one update;
  4. log, save every run.save_every steps and at the end, and export the EMA weights as final.safetensors.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from worldscape_ros.data.dataset import ClipDataset
from worldscape_ros.data.episode import read_header
from worldscape_ros.errors import CheckpointError, EpisodeFormatError, TrainError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.checkpoint import load_checkpoint, load_codec, save_checkpoint
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import sample_generator
from worldscape_ros.train.config import TrainConfig
from worldscape_ros.train.runtime import Runtime, enable_activation_checkpointing, setup_runtime, teardown_runtime
from worldscape_ros.train.sampler import ClipBatchSampler
from worldscape_ros.train.stages import CodecStage, Stage, TeacherStage
from worldscape_ros.train.state import TrainState, latest_save, load_state, save_state

log = logging.getLogger(__name__)

METRICS_FILE = 'metrics.csv'
FINAL_FILE = 'final.safetensors'


@dataclass
class RunSummary:
    steps: int
    wall_s: float
    samples_per_s: float
    final: Path
    last: dict[str, float]


def load_init(cfg: TrainConfig, model: WorldModel, path: str, codec_only: bool = False) -> None:
    """Load init weights (a codec run, a teacher) into `model`, which has the run's config; codec_only: only
    the codec's tensors (init_codec)."""
    if not path:
        return
    what = 'init_codec' if codec_only else 'init'
    try:
        if codec_only:
            load_codec(model, path)
        else:
            model.load_state_dict(load_checkpoint(path, config=model.config)[0].state_dict())
    except CheckpointError as exc:
        raise TrainError(f'{what} checkpoint: {exc}') from None


def build_model(cfg: TrainConfig) -> WorldModel:
    torch.manual_seed(cfg.run.seed)
    model = WorldModel(cfg.model_config())
    load_init(cfg, model, cfg.init)
    load_init(cfg, model, cfg.init_codec, codec_only=True)
    return model


def build_stage(cfg: TrainConfig, model: WorldModel, rt: Runtime) -> Stage:
    if cfg.stage == 'codec':
        return CodecStage(model, cfg, rt)
    if cfg.stage == 'teacher':
        return TeacherStage(model, cfg, rt)
    from worldscape_ros.train.distill import DistillStage

    return DistillStage(model, cfg, rt)


def build_dataset(cfg: TrainConfig) -> ClipDataset:
    root = Path(cfg.data.root)
    if not root.is_dir():
        raise TrainError(f'data.root {root} does not exist: generate episodes with `worldscape datagen --out {root}`')
    try:
        # episodes are cached PNG-encoded, about 1 MB per 64-frame 128x96 episode
        dataset = ClipDataset(root, cfg.data.clip_len, cfg.data.stride, cfg.data.kinds, cache_episodes=256)
    except (EpisodeFormatError, ValueError) as exc:
        raise TrainError(f'data.root {root}: {exc}') from None
    if len(dataset) == 0:
        raise TrainError(f'data.root {root} holds no episode of kinds {list(cfg.data.kinds)} with at least '
                         f'{cfg.data.clip_len} frames')
    no_depth = sum(not read_header(p)['meta'].get('has_depth', True) for p in dataset.files)
    if no_depth and cfg.stage == 'teacher':
        log.info('%d of %d episodes have no depth (meta.has_depth false): batches of them train without the depth '
                 'and render losses, and with an empty geometric guess', no_depth, len(dataset.files))
    return dataset


class MetricsLog:
    """metrics.csv, one row per logged step; a resumed run drops rows after its resume step."""

    def __init__(self, out: Path, start_step: int, enabled: bool) -> None:
        self.path = out / METRICS_FILE
        self.enabled = enabled
        self.fields: list[str] | None = None
        self.rows: list[dict[str, Any]] = []
        if enabled and start_step > 0 and self.path.is_file():
            with self.path.open(newline='') as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or [])
                self.rows = [r for r in reader if int(r['step']) <= start_step]
            self._rewrite()
        elif enabled:
            self.path.unlink(missing_ok=True)

    def _rewrite(self) -> None:
        with atomic_path(self.path) as tmp, tmp.open('w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=self.fields or ['step'], extrasaction='ignore')
            writer.writeheader()
            writer.writerows(self.rows)

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.fields is None or any(k not in self.fields for k in row):
            self.fields = list(dict.fromkeys([*(self.fields or []), *row]))
            self.rows.append(row)
            self._rewrite()
            return
        self.rows.append(row)
        with self.path.open('a', newline='') as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction='ignore').writerow(row)


def collate(items: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


def train(cfg: TrainConfig, resume: bool = False) -> RunSummary:
    """Run (or resume) one stage to cfg.run.steps; returns figures of this invocation."""
    out = Path(cfg.run.out)
    dataset = build_dataset(cfg)
    model = build_model(cfg)
    rt = setup_runtime(cfg.run)
    try:
        return _train(cfg, resume, out, dataset, model, rt)
    finally:
        teardown_runtime(rt)


def _train(cfg: TrainConfig, resume: bool, out: Path, dataset: ClipDataset, model: WorldModel,
           rt: Runtime) -> RunSummary:
    model.to(rt.device)
    if cfg.run.activation_checkpointing:
        enable_activation_checkpointing(model.dit.blocks)
    stage = build_stage(cfg, model, rt)
    fingerprint = cfg.fingerprint()
    start = 0
    if resume:
        loaded = load_state(latest_save(out), fingerprint, {n: m.config for n, m in stage.models.items()},
                            list(stage.optimizers))
        for name, m in stage.models.items():
            rt.load_model(m, loaded.models[name])
        for name, opt in stage.optimizers.items():  # each optimiser steps the model of the same name
            rt.load_optimizer(stage.models[name], opt, loaded.optimizers[name])
        start = loaded.state.step
        log.info('resumed %s at step %d', out, start)
    elif rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
    rt.barrier()
    sampler = ClipBatchSampler(len(dataset), cfg.data.batch_size, rt.rank, rt.world, cfg.run.seed, start,
                               cfg.run.steps)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers, collate_fn=collate,
                        persistent_workers=False)
    metrics = MetricsLog(out, start, rt.is_main)
    bar = tqdm(total=cfg.run.steps, initial=start, disable=not (rt.is_main and cfg.run.progress),
               desc=f'{cfg.stage}', unit='step', dynamic_ncols=True)
    t0 = time.perf_counter()
    samples = 0
    parts: dict[str, float] = {}
    interval: dict[str, list[float]] = {}  # every step's parts since the last metrics row

    def save(step: int) -> None:
        # Gathering is collective under FSDP: every rank takes part, rank 0 writes.
        full = {name: rt.full_model(m) for name, m in stage.models.items()}
        optim = {name: rt.optimizer_state(stage.models[name], opt) for name, opt in stage.optimizers.items()}
        if rt.is_main:
            save_state(out, TrainState(step, sampler.position(step), fingerprint, {'stage': cfg.stage}),
                       {name: m for name, m in full.items() if m is not None}, optim)
        rt.barrier()

    step = start
    for step, batch in enumerate(loader, start=start):
        first = rt.rank * cfg.data.batch_size
        gens = [sample_generator(cfg.run.seed, step, first + i) for i in range(len(batch['rgb']))]
        parts = stage.step(batch, step, gens)
        for k, v in parts.items():
            interval.setdefault(k, []).append(v)
        samples += sampler.global_batch
        bar.update(1)
        bar.set_postfix(loss=f'{parts["loss"]:.4f}')
        done = step + 1
        # Every process must agree to stop at the same step.
        out_of_time = cfg.run.max_minutes > 0 and rt.all_mean(time.perf_counter() - t0) > 60 * cfg.run.max_minutes
        if done % cfg.run.log_every == 0 or done == cfg.run.steps or out_of_time:
            elapsed = time.perf_counter() - t0
            row = {'step': done, 'wall_s': round(elapsed, 2), 'samples_per_s': round(samples / elapsed, 3),
                   **{k: rt.all_mean(sum(v) / len(v)) for k, v in interval.items()}}  # means over the interval
            metrics.write(row)
            interval = {}
        if cfg.run.save_every and done % cfg.run.save_every == 0 and done < cfg.run.steps:
            save(done)
        if out_of_time:
            log.info('run.max_minutes reached at step %d of %d: saving; --resume continues', done, cfg.run.steps)
            break
    bar.close()
    wall = time.perf_counter() - t0
    final = out / FINAL_FILE
    reached = start + samples // sampler.global_batch
    if reached > start:
        save(reached)
    product = rt.full_model(stage.export())
    if product is not None:
        digest = save_checkpoint(final, product, {'stage': cfg.stage, 'steps': reached,
                                                  'train_config': cfg.to_dict()})
        log.info('wrote %s (sha256 %s) after %d steps, %.1f s', final, digest, reached, wall)
    rt.barrier()
    return RunSummary(steps=reached - start, wall_s=wall, samples_per_s=samples / max(wall, 1e-9),
                      final=final, last=parts)
