"""Checkpoints in safetensors only: weights, the model config, a format version and per-tensor hashes.

Loading never unpickles. A truncated file, an unknown format version, a tensor missing, unexpected, of the
wrong shape or whose bytes do not match its recorded hash fails with a CheckpointError naming it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from worldscape_ros.errors import CheckpointError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.config import MODELS_DIR, ModelConfig, load_config
from worldscape_ros.model.world_model import WorldModel

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = MODELS_DIR / 'ws-tiny.safetensors'


def tensor_sha256(t: torch.Tensor) -> str:
    data = t.detach().contiguous().cpu()
    if data.dtype == torch.bfloat16:
        data = data.view(torch.int16)
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()


def weights_sha256(hashes: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def save_checkpoint(path: str | Path, model: WorldModel, extra: dict[str, Any] | None = None,
                    dtype: torch.dtype | None = None) -> str:
    """Write atomically; return the weights' sha256. dtype: store the floating-point tensors in this precision
    (half the file in float16); a model loads them back in its own."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: stored(k, v, dtype) for k, v in state.items()}
    hashes = {k: tensor_sha256(v) for k, v in state.items()}
    digest = weights_sha256(hashes)
    meta = {
        'format_version': str(FORMAT_VERSION),
        'config': json.dumps(model.config.to_dict()),
        'tensor_sha256': json.dumps(hashes),
        'weights_sha256': digest,
        'extra': json.dumps(extra or {}),
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return digest


def stored(name: str, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`t` in `dtype` if it is floating point; a value the precision cannot hold is refused, never made inf."""
    if not t.is_floating_point():
        return t
    out = t.to(dtype)
    if bool(torch.isfinite(t).all()) and not bool(torch.isfinite(out).all()):
        raise CheckpointError(f'tensor {name!r} holds values up to {t.abs().max().item():.3g}, beyond {dtype}')
    return out


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} does not exist')
    try:
        with safe_open(str(path), framework='pt') as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f'checkpoint {path} is not a readable safetensors file: {exc}') from None
    version = int(meta.get('format_version', '0') or 0)
    if version < 1 or version > FORMAT_VERSION:
        raise CheckpointError(f'checkpoint {path} has format version {meta.get("format_version")!r}; '
                              f'this build reads versions 1 to {FORMAT_VERSION}')
    return meta


def check_names(source: str, found: set[str], expected: set[str]) -> None:
    """One CheckpointError naming the first tensor of `expected` that `source` lacks, else its first unexpected one."""
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing:
        raise CheckpointError(f'{source} lacks tensor {missing[0]!r} ({len(missing)} missing)')
    if unexpected:
        raise CheckpointError(f'{source} has unexpected tensor {unexpected[0]!r}')


def check_shape(source: str, name: str, t: torch.Tensor, ref: torch.Tensor) -> None:
    if t.shape != ref.shape:
        raise CheckpointError(f'{source}: tensor {name!r} has shape {tuple(t.shape)}, the config needs '
                              f'{tuple(ref.shape)}')


def load_checkpoint(path: str | Path, device: str | torch.device = 'cpu', config: ModelConfig | None = None,
                    verify: bool = True) -> tuple[WorldModel, dict[str, Any]]:
    """Build the model from the checkpoint's config (or `config`, which must match its tensors)."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        cfg = config or ModelConfig.from_dict(json.loads(meta['config']))
        hashes: dict[str, str] = json.loads(meta.get('tensor_sha256', '{}'))
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'checkpoint {path} has no readable config: {exc}') from None
    model = WorldModel(cfg)
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            check_names(f'checkpoint {path}', set(f.keys()), set(expected))
            for name, ref in expected.items():
                t = f.get_tensor(name)
                check_shape(f'checkpoint {path}', name, t, ref)
                if verify and name in hashes and tensor_sha256(t) != hashes[name]:
                    raise CheckpointError(f'checkpoint {path}: tensor {name!r} does not match its recorded hash')
                state[name] = t
    except SafetensorError as exc:
        raise CheckpointError(f'checkpoint {path} is truncated or corrupt: {exc}') from None
    model.load_state_dict(state)
    info = {'path': str(path), 'weights_sha256': meta.get('weights_sha256', ''),
            'extra': json.loads(meta.get('extra', '{}') or '{}')}
    return model.to(device), info


def open_model(checkpoint: str | None = None, config: str | None = None, seed: int = 0) -> tuple[WorldModel, str]:
    """The network an engine runs, on the CPU, and its weights' sha256. checkpoint: None for the shipped default,
    'random' for a random init of `config` seeded with `seed` (hash 'random-init'), or a path; config: a
    registered name or YAML path (default: the checkpoint's)."""
    if checkpoint == 'random':
        torch.manual_seed(seed)
        return WorldModel(load_config(config or 'ws-tiny')), 'random-init'
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if not checkpoint and not path.is_file():
        raise CheckpointError(f'no shipped default checkpoint at {path}; train one (worldscape train) '
                              "or pass checkpoint='random'")
    model, info = load_checkpoint(path, device='cpu', config=load_config(config) if config else None)
    return model, info['weights_sha256']


def export_checkpoint(path: str | Path, out: str | Path, config: str | None = None,
                      codec_from: str | Path | None = None, dtype: torch.dtype | None = None,
                      refiner_from: str | Path | None = None) -> str:
    """Re-save `path` under `config` (a name or YAML; default its own), its codec replaced by `codec_from`'s when
    given, its scene refiner by the `refiner.*` tensors of `refiner_from` when given, its floating-point tensors
    stored in `dtype` when given (else unchanged). The extra metadata keeps the source's and records the parts'
    origins. Returns the new weights' sha256."""
    model, info = load_checkpoint(path, config=load_config(config) if config else None)
    extra = dict(info['extra'])
    extra['exported_from'] = {'checkpoint': str(path), 'weights_sha256': info['weights_sha256']}
    if codec_from:
        donor = load_codec(model, codec_from)
        extra['exported_from'].update(codec_from=str(codec_from), codec_weights_sha256=donor['weights_sha256'])
    if refiner_from:
        extra['exported_from'].update(refiner_from=str(refiner_from), refiner_sha256=load_refiner(model, refiner_from))
    if dtype is not None:
        extra['exported_from']['dtype'] = str(dtype).removeprefix('torch.')
    return save_checkpoint(out, model, extra, dtype=dtype)


def load_codec(model: WorldModel, path: str | Path) -> dict[str, Any]:
    """Replace `model`'s codec with the one in checkpoint `path`, read under `model`'s config (so its tensors must
    have this architecture's shapes); return the checkpoint's info."""
    donor, info = load_checkpoint(path, config=model.config)
    model.codec.load_state_dict(donor.codec.state_dict())
    return info


def load_refiner(model: WorldModel, path: str | Path) -> str:
    """Replace `model`'s scene refiner with the `refiner.*` tensors of safetensors file `path` (a checkpoint, or
    the refiner alone as scripts/gpu_lease_refiner.sh brings it back), which must match its tensors one for one;
    return their sha256."""
    if model.refiner is None:
        raise CheckpointError("the exported model has no refiner to replace (its config's refiner is off)")
    source = f'refiner file {path}'
    try:
        with safe_open(str(path), framework='pt') as f:
            found = {k: f.get_tensor(k) for k in f.keys() if k.startswith('refiner.')}
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f'{source} is not a readable safetensors file: {exc}') from None
    if not found:
        raise CheckpointError(f'{source} holds no refiner.* tensor')
    expected = {f'refiner.{k}': v for k, v in model.refiner.state_dict().items()}
    check_names(source, set(found), set(expected))
    for name, t in found.items():
        check_shape(source, name, t, expected[name])
    model.refiner.load_state_dict({k.removeprefix('refiner.'): v.to(expected[k].dtype) for k, v in found.items()})
    return weights_sha256({k: tensor_sha256(v) for k, v in found.items()})
