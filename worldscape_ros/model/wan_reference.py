"""Wan2.1 checked against diffusers' own implementation: the forward and the parameter layout compared, and
random reference folders written (tests, smoke runs, and full-size checks without the real weights).
Everything here needs `diffusers`, which only these checks import."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.dit import Conditioning
from worldscape_ros.model.wan import WORLD_MODEL_PARTS, WanDiT
from worldscape_ros.model.wan_import import WanSource, wan_state_names

WAN21_T2V_1_3B = {  # diffusers' config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers (transformer/)
    '_class_name': 'WanTransformer3DModel', 'patch_size': [1, 2, 2], 'num_attention_heads': 12,
    'attention_head_dim': 128, 'in_channels': 16, 'out_channels': 16, 'text_dim': 4096, 'freq_dim': 256,
    'ffn_dim': 8960, 'num_layers': 30, 'cross_attn_norm': True, 'qk_norm': 'rms_norm_across_heads', 'eps': 1e-6,
    'image_dim': None, 'added_kv_proj_dim': None, 'rope_max_seq_len': 1024,
}


def compare_with_diffusers(dit: WanDiT, source: WanSource, frames: int = 1, seed: int = 0) -> tuple[float, float]:
    """Run diffusers' WanTransformer3DModel on `source`'s tensors and `dit` on one random input (`frames` latent
    frames at the config's resolution, one flow time per frame, the world model's inputs absent); return the
    max abs difference of the velocities and the largest velocity. Both run in float32 on the CPU."""
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    a = source.arch
    kwargs = {'patch_size': tuple(a['patch']), 'num_attention_heads': a['heads'],
              'attention_head_dim': a['dim'] // a['heads'], 'in_channels': a['in_channels'],
              'out_channels': a['out_channels'], 'text_dim': a['text_dim'], 'freq_dim': a['freq_dim'],
              'ffn_dim': a['ffn'], 'num_layers': a['depth'], 'cross_attn_norm': True,
              'qk_norm': 'rms_norm_across_heads', 'eps': a['eps']}
    with torch.device('meta'):
        ref: Any = WanTransformer3DModel(**kwargs)  # untyped: diffusers' lazy modules defeat the type checker
    state: dict[str, torch.Tensor] = {}
    for name, (file, stored) in source.files.items():
        with safe_open(str(file), framework='pt', device='cpu') as f:
            state[name] = f.get_tensor(stored).float()
    ref.load_state_dict(state, assign=True)  # the files' tensors themselves: no second copy
    ref.rope = WanRotaryPosEmbed(kwargs['attention_head_dim'], kwargs['patch_size'], 1024)  # not in the state
    ref.eval()
    cfg = dit.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, frames, cfg.codec.latent_channels, cfg.latent_height, cfg.latent_width, generator=g)
    t = torch.rand(1, frames, generator=g)
    with torch.no_grad():
        ours = dit.float().eval()(x, t, Conditioning()).velocity
        timestep = (1000 * t).repeat_interleave(cfg.tokens_per_frame, dim=1)
        theirs = ref(x.permute(0, 2, 1, 3, 4), timestep, dit.text_embedding[None]).sample.permute(0, 2, 1, 3, 4)
    return (ours - theirs).abs().max().item(), theirs.abs().max().item()


def parameter_comparison(config: ModelConfig, wan_config: dict[str, Any]) -> dict[str, Any]:
    """Tensor for tensor, the WanDiT of `config` against diffusers' WanTransformer3DModel of `wan_config`, both
    built on the meta device (no memory): equal shapes for every Wan tensor, and the counts."""
    from diffusers import WanTransformer3DModel

    kwargs = {k: v for k, v in wan_config.items() if not k.startswith('_')}
    with torch.device('meta'):
        ref: Any = WanTransformer3DModel(**kwargs)  # untyped: diffusers' lazy modules defeat the type checker
        ours = WanDiT(config)
    theirs = {n: p.shape for n, p in ref.state_dict().items()}
    expected = wan_state_names(ours)
    mismatched = sorted(n for n in set(theirs) | set(expected) if theirs.get(n) != expected.get(n))
    own = {n: p.numel() for n, p in ours.named_parameters() if n.startswith(WORLD_MODEL_PARTS)}
    return {'wan_tensors': len(theirs), 'wan_parameters': sum(p.numel() for p in ref.parameters()),
            'dit_parameters': sum(p.numel() for p in ours.parameters()),
            'mapped_parameters': sum(math.prod(s) for s in expected.values()),
            'world_model_parts': own, 'mismatched': mismatched}


REFERENCE_TRANSFORMERS: dict[str, dict[str, Any]] = {
    'tiny': {'patch_size': (1, 2, 2), 'num_attention_heads': 2, 'attention_head_dim': 8, 'in_channels': 4,
             'out_channels': 4, 'text_dim': 16, 'freq_dim': 16, 'ffn_dim': 32, 'num_layers': 2,
             'cross_attn_norm': True, 'qk_norm': 'rms_norm_across_heads', 'rope_max_seq_len': 32},
    '1.3b': {k: v for k, v in WAN21_T2V_1_3B.items() if not k.startswith('_')},
}
REFERENCE_VAES: dict[str, dict[str, Any]] = {
    'tiny': {'base_dim': 8, 'z_dim': 4, 'dim_mult': [1, 1, 1, 1], 'num_res_blocks': 1,
             'temperal_downsample': [False, True, True], 'latents_mean': [0.1, -0.2, 0.3, 0.0],
             'latents_std': [1.5, 0.5, 2.0, 1.0]},
    '1.3b': {},  # diffusers' defaults are the Wan2.1 VAE's architecture and latent statistics
}


def write_reference(out: str | Path, size: str = 'tiny', seed: int = 0, max_shard_size: str | None = None) -> Path:
    """A randomly initialised Wan2.1 pipeline folder in diffusers format (`transformer/`, `vae/`, safetensors):
    what `import-wan` reads, without the real weights. Norm weights are perturbed so that every tensor matters."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    if size not in REFERENCE_TRANSFORMERS:
        raise ValueError(f'reference size must be one of {sorted(REFERENCE_TRANSFORMERS)}, got {size!r}')
    out = Path(out)
    torch.manual_seed(seed)
    transformer: Any = WanTransformer3DModel(**REFERENCE_TRANSFORMERS[size])  # untyped, as above
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if 'norm' in name:
                p.add_(0.1 * torch.randn_like(p))
    shard = {'max_shard_size': max_shard_size} if max_shard_size else {}
    transformer.save_pretrained(out / 'transformer', safe_serialization=True, **shard)
    vae: Any = AutoencoderKLWan(**REFERENCE_VAES[size])
    vae.save_pretrained(out / 'vae', safe_serialization=True)
    return out
