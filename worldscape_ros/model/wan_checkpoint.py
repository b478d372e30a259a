"""A Wan2.1 folder (transformer, VAE, optional text embedding) made into a world-model checkpoint, checked
tensor by tensor and, on request, against diffusers' own forward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from worldscape_ros.errors import WanImportError
from worldscape_ros.model.checkpoint import save_checkpoint
from worldscape_ros.model.config import load_config
from worldscape_ros.model.wan import WORLD_MODEL_PARTS, WanDiT
from worldscape_ros.model.wan_codec import WanCodec, load_wan_vae, read_wan_vae
from worldscape_ros.model.wan_import import load_wan_weights, read_text_embedding, read_wan_folder, wan_model_config
from worldscape_ros.model.wan_reference import compare_with_diffusers
from worldscape_ros.model.world_model import WorldModel


def find_vae(path: str | Path, vae: str | Path | None) -> Path | None:
    """The VAE folder: `vae` when given, else the `vae/` beside (or inside) a diffusers pipeline folder."""
    if vae:
        return Path(vae)
    folder = Path(path)
    for candidate in (folder / 'vae', folder.parent / 'vae'):
        if (candidate / 'config.json').is_file():
            return candidate
    return None


def import_wan(path: str | Path, config: str, out: str | Path, vae: str | Path | None = None,
               text_embedding: str | Path | None = None, seed: int = 0, check: bool = False) -> dict[str, Any]:
    """Build the world model of `config` in the 'wan' layout from a Wan2.1 transformer (and its VAE as the
    codec), check every tensor, and save it as a checkpoint. The parts Wan does not have (the depth and Gaussian
    heads, the camera encoder's hidden layer) are initialised from `seed`, so an import is reproducible.
    check: before saving, run diffusers' forward on the same tensors and refuse a difference above 1e-3 times the
    largest velocity. Returns what was done, for the report."""
    source = read_wan_folder(path)
    vae_folder = find_vae(path, vae)
    if vae_folder is None:
        raise WanImportError(f'{path}: no Wan VAE found beside the transformer; give --vae FOLDER (a diffusers '
                             "AutoencoderKLWan folder, the pipeline's vae/): the transformer works in its latents")
    vae_arch, vae_files = read_wan_vae(vae_folder)
    cfg = wan_model_config(load_config(config), source.arch, vae_arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WorldModel(cfg)
    assert isinstance(model.dit, WanDiT) and isinstance(model.codec, WanCodec)
    copied = load_wan_weights(model.dit, source)
    load_wan_vae(model.codec, vae_arch, vae_files)
    prompt = 'zeros (the padded positions of an empty prompt)'
    if text_embedding:
        with torch.no_grad():
            model.dit.text_embedding.copy_(read_text_embedding(text_embedding, cfg.dit.text_len, cfg.dit.text_dim))
        prompt = str(text_embedding)
    origin: dict[str, Any] = {'wan_transformer': str(source.folder), 'layout': source.layout,
                              'wan_vae': str(vae_folder), 'text_embedding': prompt, 'base_config': config}
    extra = {'imported_from': origin}
    difference = None
    if check:
        diff, scale = compare_with_diffusers(model.dit, source)
        difference = {'max_abs_diff': diff, 'max_abs_velocity': scale}
        if not diff <= 1e-3 * max(scale, 1.0):
            raise WanImportError(f'{source.folder}: the imported model differs from diffusers\' Wan by {diff:.3g} '
                                 f'(velocities up to {scale:.3g}); nothing written')
        origin['check'] = difference
    digest = save_checkpoint(out, model, extra)
    added = sum(p.numel() for n, p in model.dit.named_parameters() if n.startswith(WORLD_MODEL_PARTS))
    return {'config': cfg, 'layout': source.layout, 'tensors': len(source.files), 'values': copied,
            'vae_tensors': len(vae_files), 'world_model_parameters': added, 'weights_sha256': digest,
            'parameters': {part: model.num_parameters(part) for part in ('codec', 'dit', 'depth_head',
                                                                         'gaussian_head')
                           if getattr(model, part) is not None},
            'text_embedding': prompt, 'check': difference}
