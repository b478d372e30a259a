"""Wan2.1's pretrained transformer read into the world model's DiT (wan_checkpoint.py makes the checkpoint).

`read_wan_folder` reads a diffusers-format folder (config.json, safetensors shards with or without an index) or the
original Wan layout (config.json with `_class_name: WanModel`, `diffusion_pytorch_model*.safetensors`) and
refuses any missing, unexpected or misshaped tensor, naming it. Weights are read from safetensors only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from worldscape_ros.errors import WanImportError
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.wan import WORLD_MODEL_PARTS, WanDiT


@dataclass
class WanSource:
    """A Wan2.1 transformer on disk: its architecture and where each tensor lives (diffusers names)."""

    folder: Path
    layout: str  # 'diffusers' or 'original'
    arch: dict[str, Any]  # dim, depth, heads, ffn, patch, in_channels, out_channels, freq_dim, text_dim
    files: dict[str, tuple[Path, str]]  # diffusers name -> (file, name in that file)


# The original Wan layout (Wan-AI's `WanModel`) -> diffusers names; the cross-attention norm is norm3 there.
_ORIGINAL_RULES = (
    (r'^time_embedding\.0\.', 'condition_embedder.time_embedder.linear_1.'),
    (r'^time_embedding\.2\.', 'condition_embedder.time_embedder.linear_2.'),
    (r'^text_embedding\.0\.', 'condition_embedder.text_embedder.linear_1.'),
    (r'^text_embedding\.2\.', 'condition_embedder.text_embedder.linear_2.'),
    (r'^time_projection\.1\.', 'condition_embedder.time_proj.'),
    (r'^head\.modulation$', 'scale_shift_table'),
    (r'^head\.head\.', 'proj_out.'),
    (r'^(blocks\.\d+\.)modulation$', r'\1scale_shift_table'),
    (r'^(blocks\.\d+\.)self_attn\.([qkv])\.', r'\1attn1.to_\2.'),
    (r'^(blocks\.\d+\.)self_attn\.o\.', r'\1attn1.to_out.0.'),
    (r'^(blocks\.\d+\.)self_attn\.norm_([qk])\.', r'\1attn1.norm_\2.'),
    (r'^(blocks\.\d+\.)cross_attn\.([qkv])\.', r'\1attn2.to_\2.'),
    (r'^(blocks\.\d+\.)cross_attn\.o\.', r'\1attn2.to_out.0.'),
    (r'^(blocks\.\d+\.)cross_attn\.norm_([qk])\.', r'\1attn2.norm_\2.'),
    (r'^(blocks\.\d+\.)norm3\.', r'\1norm2.'),
    (r'^(blocks\.\d+\.)ffn\.0\.', r'\1ffn.net.0.proj.'),
    (r'^(blocks\.\d+\.)ffn\.2\.', r'\1ffn.net.2.'),
)


def original_to_diffusers(name: str) -> str:
    """A tensor name of the original Wan2.1 checkpoint in diffusers' naming (unchanged when no rule applies)."""
    for pattern, repl in _ORIGINAL_RULES:
        new, n = re.subn(pattern, repl, name)
        if n:
            return new
    return name


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise WanImportError(f'{path.parent}: no {path.name} ({what})') from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WanImportError(f'{path}: not readable JSON ({what}): {exc}') from None
    if not isinstance(data, dict):
        raise WanImportError(f'{path}: {what} must be a JSON object')
    return data


def wan_architecture(folder: str | Path, cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The layout and the transformer's shape from config.json; refuses what is not a text-to-video Wan2.1."""
    try:
        return _parse_architecture(folder, cfg)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # a value missing or of the wrong type
        raise WanImportError(f'{folder}/config.json: missing or malformed setting ({type(exc).__name__}: {exc})') \
            from None


def _parse_architecture(folder: str | Path, cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    cls = cfg.get('_class_name', '')
    if cls == 'WanTransformer3DModel':
        unsupported = {k: cfg.get(k) for k in ('image_dim', 'added_kv_proj_dim', 'pos_embed_seq_len')
                       if cfg.get(k) is not None}
        if unsupported:
            raise WanImportError(f'{folder}: an image-conditioned Wan transformer ({unsupported}); the world model '
                                 'imports text-to-video Wan2.1 (no image cross-attention)')
        if cfg.get('qk_norm', 'rms_norm_across_heads') != 'rms_norm_across_heads' or not cfg.get('cross_attn_norm',
                                                                                                   True):
            raise WanImportError(f'{folder}: qk_norm {cfg.get("qk_norm")!r} / cross_attn_norm '
                                 f'{cfg.get("cross_attn_norm")!r}; Wan2.1 has rms_norm_across_heads and true')
        heads, head_dim = int(cfg.get('num_attention_heads', 40)), int(cfg.get('attention_head_dim', 128))
        arch = {'dim': heads * head_dim, 'depth': int(cfg.get('num_layers', 40)), 'heads': heads,
                'ffn': int(cfg.get('ffn_dim', 13824)), 'patch': tuple(cfg.get('patch_size', (1, 2, 2))),
                'in_channels': int(cfg.get('in_channels', 16)),
                'out_channels': int(cfg.get('out_channels') or cfg.get('in_channels', 16)),
                'freq_dim': int(cfg.get('freq_dim', 256)), 'text_dim': int(cfg.get('text_dim', 4096)),
                'eps': float(cfg.get('eps', 1e-6))}
        return 'diffusers', arch
    if cls == 'WanModel' or ('dim' in cfg and 'num_heads' in cfg and 'model_type' in cfg):
        if cfg.get('model_type', 't2v') != 't2v':
            raise WanImportError(f'{folder}: Wan model_type {cfg.get("model_type")!r}; the world model imports '
                                 "text-to-video Wan2.1 ('t2v')")
        arch = {'dim': int(cfg['dim']), 'depth': int(cfg['num_layers']), 'heads': int(cfg['num_heads']),
                'ffn': int(cfg['ffn_dim']), 'patch': tuple(cfg.get('patch_size', (1, 2, 2))),
                'in_channels': int(cfg.get('in_dim', 16)), 'out_channels': int(cfg.get('out_dim', 16)),
                'freq_dim': int(cfg.get('freq_dim', 256)), 'text_dim': int(cfg.get('text_dim', 4096)),
                'eps': float(cfg.get('eps', 1e-6))}
        return 'original', arch
    raise WanImportError(f'{folder}/config.json describes {cls or "an unknown model"!r}, not a Wan2.1 transformer '
                         '(WanTransformer3DModel in diffusers format, or the original WanModel)')


def read_wan_folder(path: str | Path) -> WanSource:
    """Index a Wan2.1 transformer folder (or a diffusers pipeline folder holding `transformer/`) without
    reading its tensors; every shard an index names must exist, and weights are read from safetensors only."""
    folder = Path(path)
    if not folder.is_dir():
        raise WanImportError(f'{folder} is not a folder (a Wan2.1 transformer in diffusers or original layout)')
    if not (folder / 'config.json').is_file() and (folder / 'transformer' / 'config.json').is_file():
        folder = folder / 'transformer'
    layout, arch = wan_architecture(folder, _read_json(folder / 'config.json', 'the transformer config'))
    indexes = sorted(folder.glob('*.safetensors.index.json'))
    weight_map: dict[str, str] = {}
    if indexes:
        if len(indexes) > 1:
            raise WanImportError(f'{folder}: more than one shard index ({", ".join(p.name for p in indexes)})')
        data = _read_json(indexes[0], 'the shard index')
        raw = data.get('weight_map')
        if not isinstance(raw, dict) or not raw:
            raise WanImportError(f'{indexes[0]}: no weight_map')
        weight_map = {str(k): str(v) for k, v in raw.items()}
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if not (folder / shard).is_file():
                count = sum(1 for v in weight_map.values() if v == shard)
                raise WanImportError(f'{folder}: missing shard {shard} (the index places {count} tensors in it)')
    else:
        shards = sorted(p.name for p in folder.glob('*.safetensors'))
        if not shards:
            pickles = sorted(p.name for p in folder.iterdir() if p.suffix in ('.bin', '.pt', '.pth', '.ckpt'))
            hint = f' (found {", ".join(pickles)}: pickle files are never loaded)' if pickles else ''
            raise WanImportError(f'{folder}: no .safetensors weights{hint}')
    files: dict[str, tuple[Path, str]] = {}
    for shard in shards:
        try:
            with safe_open(str(folder / shard), framework='pt') as f:
                names = list(f.keys())
        except (SafetensorError, OSError) as exc:
            raise WanImportError(f'{folder / shard}: not a readable safetensors file: {exc}') from None
        for name in names:
            if weight_map and weight_map.get(name) != shard:
                raise WanImportError(f'{folder / shard}: tensor {name!r} is not placed in this shard by the index')
            key = original_to_diffusers(name) if layout == 'original' else name
            if key in files:
                raise WanImportError(f'{folder}: tensor {name!r} appears in {files[key][0].name} and {shard}')
            files[key] = (folder / shard, name)
    for name, shard in weight_map.items():
        key = original_to_diffusers(name) if layout == 'original' else name
        if key not in files:
            raise WanImportError(f'{folder}: the index places tensor {name!r} in {shard}, which does not hold it')
    return WanSource(folder=folder, layout=layout, arch=arch, files=files)


def wan_model_config(base: ModelConfig, arch: dict[str, Any], vae: dict[str, Any] | None = None) -> ModelConfig:
    """`base` (its resolution, chunking, conditioning, heads, sampler, memory) in the 'wan' layout with the Wan
    transformer's shape (and the Wan VAE's as its codec); refuses a base whose DiT shape differs."""
    d = base.dit
    checks = [('dit.dim', d.dim, arch['dim']), ('dit.depth', d.depth, arch['depth']),
              ('dit.heads', d.heads, arch['heads']), ('dit.ffn', d.ffn, arch['ffn']),
              ('dit.patch', tuple(d.patch), tuple(arch['patch'])),
              ('codec.latent_channels', base.codec.latent_channels, arch['in_channels'])]
    for what, ours, theirs in checks:
        if ours != theirs:
            raise WanImportError(f'model config {base.name!r} has {what} {ours}, the Wan transformer has {theirs}')
    if arch['out_channels'] != arch['in_channels']:
        raise WanImportError(f'the Wan transformer maps {arch["in_channels"]} latent channels to '
                             f'{arch["out_channels"]}; a flow model needs the same number')
    if abs(arch.get('eps', 1e-6) - 1e-6) > 1e-12:
        raise WanImportError(f'the Wan transformer normalises with eps {arch["eps"]}; WanDiT uses 1e-6')
    dit = replace(d, layout='wan', freq_dim=arch['freq_dim'], text_dim=arch['text_dim'], qk_norm=True)
    codec = base.codec
    if vae is not None:
        if vae['z_dim'] != arch['in_channels']:
            raise WanImportError(f'the Wan VAE has {vae["z_dim"]} latent channels, the transformer takes '
                                 f'{arch["in_channels"]}')
        codec = replace(codec, kind='wan', latent_channels=vae['z_dim'], width=vae['base_dim'],
                        dim_mult=tuple(vae['dim_mult']), res_blocks=vae['num_res_blocks'],
                        spatial_down=2 ** (len(vae['dim_mult']) - 1), temporal_down=4)
    return base.replace(dit=dit, codec=codec, conditioning=replace(base.conditioning, pose_tokens=False))


def wan_state_names(model: WanDiT) -> dict[str, torch.Size]:
    """The WanDiT parameters a Wan checkpoint must provide, with their shapes in diffusers' layout."""
    out = {}
    for name, p in model.state_dict().items():
        if name.startswith(WORLD_MODEL_PARTS):
            continue
        shape = p.shape
        if name == 'patch_embedding.weight':
            _, ph, pw = model.config.dit.patch
            shape = torch.Size((shape[0], shape[1] // (ph * pw), 1, ph, pw))  # the Conv3d's kernel
        out[name] = shape
    return out


def load_wan_weights(model: WanDiT, source: WanSource) -> int:
    """Copy every tensor of `source` into `model` (the world model's own parts keep their zero init); refuses a
    missing, unexpected or misshaped tensor. Returns the number of values copied."""
    expected = wan_state_names(model)
    missing = sorted(set(expected) - set(source.files))
    unexpected = sorted(set(source.files) - set(expected))
    where = f'{source.folder} ({source.layout} layout)'
    if missing:
        raise WanImportError(f'{where} lacks tensor {missing[0]!r} ({len(missing)} missing)')
    if unexpected:
        raise WanImportError(f'{where} has tensor {unexpected[0]!r}, which Wan2.1 text-to-video does not have '
                             f'({len(unexpected)} unexpected)')
    state = model.state_dict()
    copied = 0
    by_file: dict[Path, list[str]] = {}
    for name, (file, _) in source.files.items():
        by_file.setdefault(file, []).append(name)
    with torch.no_grad():
        for file, names in by_file.items():
            with safe_open(str(file), framework='pt', device='cpu') as f:
                for name in sorted(names):
                    t = f.get_tensor(source.files[name][1])
                    if t.shape != expected[name]:
                        raise WanImportError(f'{where}: tensor {name!r} has shape {tuple(t.shape)}, the model config '
                                             f'needs {tuple(expected[name])}')
                    if not t.is_floating_point():
                        raise WanImportError(f'{where}: tensor {name!r} has dtype {t.dtype}, not floating point')
                    target = state[name]
                    target.copy_(t.reshape(target.shape))
                    copied += t.numel()
    return copied


def read_text_embedding(path: str | Path, text_len: int, text_dim: int) -> torch.Tensor:
    """A fixed text embedding (the text encoder's output for one prompt) from a safetensors file holding one
    tensor of shape (L, text_dim) or (1, L, text_dim), L <= text_len; padded with zeros to text_len as Wan's
    pipeline pads it."""
    path = Path(path)
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            names = list(f.keys())
            if len(names) != 1:
                raise WanImportError(f'{path}: a text embedding file holds one tensor, found {len(names)}')
            t = f.get_tensor(names[0]).float()
    except (SafetensorError, OSError) as exc:
        raise WanImportError(f'{path}: not a readable safetensors file: {exc}') from None
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2 or t.shape[1] != text_dim or t.shape[0] > text_len:
        raise WanImportError(f'{path}: text embedding of shape {tuple(t.shape)}; needs (L <= {text_len}, {text_dim})')
    out = torch.zeros(text_len, text_dim)
    out[: t.shape[0]] = t
    return out
