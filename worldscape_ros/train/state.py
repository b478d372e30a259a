"""Resumable training state without pickle.

A save is a folder `step-NNNNNNN/` holding one safetensors checkpoint per model (model.checkpoint, loadable by
the engine) and `state.safetensors`: each optimiser's full state keyed by parameter name (torch's
`get_optimizer_state_dict` form, the same whether the run was sharded or not) flattened as
`optim.<optimiser>.<parameter name>.<key>`, the torch RNG state as a uint8 tensor, and in the JSON metadata the
step, the data-loader position, the optimisers' param groups and scalar states, and the config fingerprint a
resume must match. The folder is written under a temp
name and renamed; `latest` (a text file, replaced atomically) names the newest complete folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from worldscape_ros.errors import CheckpointError, TrainError
from worldscape_ros.model.checkpoint import load_checkpoint, save_checkpoint
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.world_model import WorldModel

STATE_FILE = 'state.safetensors'
OPTIMIZER_KEYS = 'name'  # optimiser state keyed by parameter name: the same whichever way a run was sharded
LATEST = 'latest'
KEEP = 2  # complete saves kept


@dataclass
class TrainState:
    step: int
    loader: dict[str, int]  # epoch, batch_in_epoch, dataset_len, global_batch
    fingerprint: str
    extra: dict[str, Any]


def flatten_optimizer(name: str, sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A name-keyed optimiser state dict -> safetensors tensors and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param, st in sd['state'].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f'optim.{name}.{param}.{key}'] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(param, {})[key] = value
    return tensors, {'param_groups': sd['param_groups'], 'scalars': scalars}


def unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    prefix = f'optim.{name}.'
    for full, value in tensors.items():
        if full.startswith(prefix):
            param, key = full[len(prefix):].rsplit('.', 1)  # parameter names hold dots, state keys do not
            state.setdefault(param, {})[key] = value
    for param, sc in meta['scalars'].items():
        state.setdefault(param, {}).update(sc)
    groups = [{**g, 'betas': tuple(g['betas'])} if 'betas' in g else g for g in meta['param_groups']]
    return {'state': state, 'param_groups': groups}


def save_state(out: Path, state: TrainState, models: dict[str, WorldModel],
               optimizers: dict[str, dict[str, Any]]) -> Path:
    """Write a complete save folder atomically; returns it. models: full weights; optimizers: name-keyed full
    optimiser state dicts (Runtime.optimizer_state)."""
    out.mkdir(parents=True, exist_ok=True)
    final = out / f'step-{state.step:07d}'
    tmp = Path(tempfile.mkdtemp(prefix='.save-', dir=out))
    try:
        for name, model in models.items():
            save_checkpoint(tmp / f'{name}.safetensors', model, {'step': state.step})
        tensors: dict[str, torch.Tensor] = {'rng.torch': torch.get_rng_state()}
        opt_meta = {}
        for name, sd in optimizers.items():
            t, m = flatten_optimizer(name, sd)
            tensors.update(t)
            opt_meta[name] = m
        meta = {'step': str(state.step), 'loader': json.dumps(state.loader), 'fingerprint': state.fingerprint,
                'optimizers': json.dumps(opt_meta), 'optimizer_keys': OPTIMIZER_KEYS,
                'models': json.dumps(sorted(models)),
                'extra': json.dumps(state.extra)}
        save_file(tensors, str(tmp / STATE_FILE), metadata=meta)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fd, ptr = tempfile.mkstemp(prefix='.latest.', dir=out)
    with os.fdopen(fd, 'w') as f:
        f.write(final.name + '\n')
    os.replace(ptr, out / LATEST)
    saves = sorted(p for p in out.glob('step-*') if p.is_dir())
    for old in saves[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_save(out: Path) -> Path:
    pointer = out / LATEST
    if not pointer.is_file():
        raise TrainError(f'nothing to resume in {out}: no {LATEST} file (run without --resume first)')
    folder = out / pointer.read_text().strip()
    if not (folder / STATE_FILE).is_file():
        raise TrainError(f'resume folder {folder} is incomplete: {STATE_FILE} missing')
    return folder


@dataclass
class LoadedState:
    state: TrainState
    models: dict[str, dict[str, torch.Tensor]]  # full weights per model name
    optimizers: dict[str, dict[str, Any]]  # name-keyed full optimiser state per optimiser name


def load_state(folder: Path, fingerprint: str, configs: dict[str, ModelConfig],
               optimizers: list[str]) -> LoadedState:
    """Read a save folder made by the same configuration (the caller loads the states into its models and
    optimisers, sharded or not) and restore the torch RNG."""
    path = folder / STATE_FILE
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise TrainError(f'resume file {path} is unreadable: {exc}') from None
    if meta.get('fingerprint') != fingerprint:
        raise TrainError(f'resume file {path} was written by another configuration (fingerprint '
                         f'{meta.get("fingerprint")!r}, this run {fingerprint!r}): use a fresh run.out')
    if meta.get('optimizer_keys') != OPTIMIZER_KEYS:
        raise TrainError(f'resume file {path} keys its optimiser state by index (an older worldscape): restart '
                         'from its model weights with init: instead of --resume')
    saved = set(json.loads(meta.get('models', '[]')))
    if saved != set(configs):
        raise TrainError(f'resume file {path} holds models {sorted(saved)}, this run needs {sorted(configs)}')
    weights: dict[str, dict[str, torch.Tensor]] = {}
    for name, config in configs.items():
        try:
            loaded, _ = load_checkpoint(folder / f'{name}.safetensors', config=config)
        except CheckpointError as exc:
            raise TrainError(f'cannot resume {name}: {exc}') from None
        weights[name] = loaded.state_dict()
    opt_meta = json.loads(meta['optimizers'])
    optim = {name: unflatten_optimizer(name, tensors, opt_meta[name]) for name in optimizers}
    torch.set_rng_state(tensors['rng.torch'])
    state = TrainState(step=int(meta['step']), loader=json.loads(meta['loader']), fingerprint=fingerprint,
                       extra=json.loads(meta.get('extra', '{}')))
    return LoadedState(state=state, models=weights, optimizers=optim)
