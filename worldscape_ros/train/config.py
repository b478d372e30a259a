"""Typed training configuration (models/train-*.yaml, distill-*.yaml, codec-*.yaml).

One file describes one run: which stage (codec, teacher, distill), the model, the data, the optimiser, the
losses and how the run is executed. Unknown keys, bad values and missing files fail with one TrainError line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from worldscape_ros.errors import ConfigError, TrainError
from worldscape_ros.model.config import ModelConfig, load_config

STAGES = ('codec', 'teacher', 'distill')
PRECISIONS = ('auto', 'fp32', 'bf16')
PARALLEL = ('auto', 'ddp', 'fsdp')
T_SAMPLING = ('logit_normal', 'uniform')


@dataclass(frozen=True)
class DataConfig:
    root: str = 'data/train'
    clip_len: int = 8  # video frames per training clip
    stride: int = 1
    kinds: tuple[str, ...] = ('nav', 'manip')  # both kinds in one run
    batch_size: int = 4  # per process; the global batch is batch_size x world size
    num_workers: int = 0


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # max global grad norm (0: off)
    warmup_steps: int = 100
    decay_steps: int = 0  # cosine decay to 10% over this many steps after warm-up (0: constant rate); kept apart
    # from run.steps so that extending a run with --steps and --resume does not change its past schedule


@dataclass(frozen=True)
class TeacherLossConfig:
    context_frames: int = 1  # latent frames given clean (t = 0) and left out of the flow-matching loss
    t_sampling: str = 'logit_normal'
    t_mean: float = 0.0  # logit-normal location and scale (before the timestep shift)
    t_std: float = 1.0
    depth_weight: float = 0.1  # alpha
    render_weight: float = 0.05  # beta
    render_scale: float = 0.5  # render-loss images at this fraction of the model's resolution
    render_ssim: float = 0.2  # weight of (1 - SSIM) beside L1 in the render loss
    render_targets: int = 2  # frames per sample the Gaussians are rendered into
    cond_dropout: float = 0.1  # each conditioning stream zeroed with this probability
    geometry_views: int = 0  # earlier frames rendered into each target (0: the model config's value)


@dataclass(frozen=True)
class CodecLossConfig:
    gradient_weight: float = 0.5  # L1 on image gradients beside the pixel L1: keeps edges sharp
    ssim_weight: float = 0.1


@dataclass(frozen=True)
class DistillConfig:
    teacher: str = ''  # checkpoint of the bidirectional teacher (the real score)
    critic_lr: float = 1e-4
    critic_steps: int = 1  # critic updates per generator update
    guidance: float = 1.0  # teacher classifier-free guidance (1: none)
    t_min: float = 0.02  # DMD re-noising range
    t_max: float = 0.98
    regression_weight: float = 0.0  # small L2 to the ground-truth clip, for stability on tiny models
    rolling_window: bool = False  # self-rollouts through the rolling denoising window


@dataclass(frozen=True)
class RunConfig:
    out: str = 'runs/train'
    steps: int = 1000
    seed: int = 0
    log_every: int = 10
    save_every: int = 200
    precision: str = 'auto'  # bf16 autocast on CUDA, fp32 on CPU
    parallel: str = 'auto'  # under torchrun: DDP, or FSDP for configs with at least fsdp_min_params
    fsdp_min_params: int = 200_000_000
    activation_checkpointing: bool = False
    ema_decay: float = 0.999
    device: str = 'auto'
    threads: int = 0  # torch CPU threads (0: torch's default)
    progress: bool = True


@dataclass(frozen=True)
class TrainConfig:
    stage: str = 'teacher'
    model: str = 'ws-tiny'  # a registered model name or a model YAML path
    init: str = ''  # checkpoint to start from (codec stage output for the teacher, the teacher for distill)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    teacher: TeacherLossConfig = field(default_factory=TeacherLossConfig)
    codec: CodecLossConfig = field(default_factory=CodecLossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    run: RunConfig = field(default_factory=RunConfig)
    model_overrides: dict[str, Any] = field(default_factory=dict)  # replaces model config keys (tests, ablations)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise TrainError(f'train config: {what}')

        need(self.stage in STAGES, f'stage must be one of {STAGES}, got {self.stage!r}')
        need(self.run.precision in PRECISIONS, f'run.precision must be one of {PRECISIONS}')
        need(self.run.parallel in PARALLEL, f'run.parallel must be one of {PARALLEL}')
        need(self.teacher.t_sampling in T_SAMPLING, f'teacher.t_sampling must be one of {T_SAMPLING}')
        need(self.data.clip_len >= 2, f'data.clip_len must be >= 2, got {self.data.clip_len}')
        need(self.data.batch_size >= 1, f'data.batch_size must be >= 1, got {self.data.batch_size}')
        need(self.run.steps >= 0, f'run.steps must be >= 0, got {self.run.steps}')
        need(self.optim.lr > 0, f'optim.lr must be positive, got {self.optim.lr}')
        need(0 <= self.run.ema_decay < 1, f'run.ema_decay must be in [0, 1), got {self.run.ema_decay}')
        need(0 <= self.teacher.cond_dropout <= 1, 'teacher.cond_dropout must be in [0, 1]')
        need(0 < self.teacher.render_scale <= 1, 'teacher.render_scale must be in (0, 1]')
        need(self.teacher.context_frames >= 1, 'teacher.context_frames must be >= 1 (the first frame is given)')
        need(0 < self.distill.t_min < self.distill.t_max <= 1, 'distill needs 0 < t_min < t_max <= 1')
        need(self.stage != 'distill' or bool(self.distill.teacher or self.init),
             'the distill stage needs distill.teacher (or init) naming the teacher checkpoint')

    def model_config(self) -> ModelConfig:
        try:
            base = load_config(self.model)
            if not self.model_overrides:
                return base
            merged = base.to_dict()
            for key, value in self.model_overrides.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            return ModelConfig.from_dict(merged)
        except ConfigError as exc:
            raise TrainError(f'train config: model: {exc}') from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """What a resume file must match: the stage and the model's architecture."""
        key = {'stage': self.stage, 'model': self.model_config().to_dict()}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def replace_in(self, section: str, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


_SECTIONS: dict[str, type] = {'data': DataConfig, 'optim': OptimConfig, 'teacher': TeacherLossConfig,
                              'codec': CodecLossConfig, 'distill': DistillConfig, 'run': RunConfig}


def _section(name: str, cls: type, value: Any) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise TrainError(f'train config: section {name!r} must be a mapping, got {type(value).__name__}')
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise TrainError(f'train config: unknown keys in section {name!r}: {unknown}; known: {sorted(fields)}')
    kwargs = {}
    for key, v in value.items():
        default = getattr(cls(), key)
        if isinstance(default, tuple) and isinstance(v, list):
            v = tuple(v)
        elif isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if default is not None and not isinstance(v, type(default)):
            raise TrainError(f'train config: {name}.{key} must be {type(default).__name__}, got {v!r}')
        kwargs[key] = v
    return cls(**kwargs)


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(d) - top)
    if unknown:
        raise TrainError(f'train config: unknown keys {unknown}; known: {sorted(top)}')
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key in _SECTIONS:
            kwargs[key] = _section(key, _SECTIONS[key], value)
        elif key == 'model_overrides':
            if not isinstance(value, dict):
                raise TrainError('train config: model_overrides must be a mapping')
            kwargs[key] = value
        else:
            if not isinstance(value, str):
                raise TrainError(f'train config: {key} must be a string, got {value!r}')
            kwargs[key] = value
    return TrainConfig(**kwargs)


def load_train_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise TrainError(f'train config {path} does not exist')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TrainError(f'could not parse train config {path}: {exc}') from None
    if not isinstance(data, dict):
        raise TrainError(f'train config {path} must be a mapping')
    return config_from_dict(data)
