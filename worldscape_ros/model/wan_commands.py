"""`worldscape import-wan` and `worldscape wan-params`: start the world model from pretrained Wan2.1 weights."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser('import-wan', help='build a world-model checkpoint from Wan2.1 weights (diffusers format)',
                       description='Read a Wan2.1 text-to-video transformer (a diffusers WanTransformer3DModel folder '
                       'with config.json and safetensors shards, with or without an index, or the original Wan '
                       'layout) and its VAE, map every tensor into the world model of --config in the Wan layout '
                       '(its own inputs zero-initialised, so it computes what Wan computes), and save a checkpoint. '
                       'Any missing, unexpected or misshaped tensor is refused, named. Weights are read from '
                       'safetensors only.')
    p.add_argument('path', help="the transformer folder, or a diffusers pipeline folder holding transformer/ and vae/")
    p.add_argument('--config', default='ws-1.3b', help='model config whose resolution, chunking, conditioning, '
                   'heads, sampler and memory the import keeps (its DiT shape must be the transformer\'s)')
    p.add_argument('--out', required=True, help='checkpoint to write (.safetensors, atomically)')
    p.add_argument('--vae', help="the Wan VAE folder (default: vae/ beside or inside PATH)")
    p.add_argument('--text-embedding', help='safetensors file with one (L, text_dim) tensor: the text encoder\'s '
                   'output for a prompt, computed once (default: zeros, the empty prompt\'s padded positions)')
    p.add_argument('--check', action='store_true', help="before saving, run diffusers' Wan forward on the same "
                   'tensors (one latent frame at the config\'s resolution, CPU, float32; twice the memory) and refuse '
                   'a difference')
    p.set_defaults(func=_import)
    c = sub.add_parser('wan-params', help="compare a Wan-layout DiT with Wan2.1-T2V-1.3B's transformer, tensor "
                       'for tensor', description='Build both on the meta device (no memory, no weights) and print '
                       'the parameter counts and any tensor whose shape differs.')
    c.add_argument('--config', default='ws-1.3b', help='model config (converted to the Wan layout)')
    c.set_defaults(func=_params)
    r = sub.add_parser('wan-reference', help='write a randomly initialised Wan2.1 pipeline folder (diffusers format)',
                       description='A random transformer/ and vae/ in diffusers format, the shape of the tiny '
                       'test reference or of Wan2.1-T2V-1.3B: checks the import, the recipe and their speed and '
                       'memory without the real weights.')
    r.add_argument('--size', choices=('tiny', '1.3b'), default='tiny')
    r.add_argument('--seed', type=int, default=0)
    r.add_argument('--max-shard-size', help="split the transformer's safetensors (e.g. 2GB), with an index")
    r.add_argument('--out', required=True, help='folder to write')
    r.set_defaults(func=_reference)


def _reference(args: argparse.Namespace) -> int:
    from worldscape_ros.model.wan_reference import write_reference

    out = write_reference(args.out, args.size, args.seed, args.max_shard_size)
    print(f'wrote a random {args.size} Wan2.1 reference to {out} (transformer/, vae/)')
    return 0


def _import(args: argparse.Namespace) -> int:
    from worldscape_ros.model.wan_checkpoint import import_wan

    r = import_wan(args.path, args.config, args.out, vae=args.vae, text_embedding=args.text_embedding,
                   check=args.check)
    cfg = r['config']
    print(f'imported {r["tensors"]} Wan2.1 transformer tensors ({r["values"] / 1e6:.2f} M values, {r["layout"]} '
          f'layout) and {r["vae_tensors"]} VAE tensors into {cfg.name} (layout wan, {cfg.width}x{cfg.height})')
    print(f'  world-model inputs at zero: {r["world_model_parameters"] / 1e6:.2f} M parameters; text embedding: '
          f'{r["text_embedding"]}')
    for part, n in r['parameters'].items():
        print(f'  {part}: {n / 1e6:.2f} M parameters')
    if r['check']:
        c = r['check']
        print(f"  checked against diffusers' WanTransformer3DModel: max abs difference {c['max_abs_diff']:.2e} "
              f"(velocities up to {c['max_abs_velocity']:.2f})")
    print(f'wrote {args.out} (weights sha256 {r["weights_sha256"]})')
    return 0


def _params(args: argparse.Namespace) -> int:
    from worldscape_ros.model.config import load_config
    from worldscape_ros.model.wan_import import wan_architecture, wan_model_config
    from worldscape_ros.model.wan_reference import WAN21_T2V_1_3B, parameter_comparison

    _, arch = wan_architecture("Wan2.1-T2V-1.3B", WAN21_T2V_1_3B)
    cfg = wan_model_config(load_config(args.config), arch)
    r = parameter_comparison(cfg, WAN21_T2V_1_3B)
    print(f'Wan2.1-T2V-1.3B transformer: {r["wan_tensors"]} tensors, {r["wan_parameters"]:,} parameters')
    print(f'{cfg.name} DiT (layout wan): {r["dit_parameters"]:,} parameters, of which {r["mapped_parameters"]:,} '
          f'mapped from Wan and {sum(r["world_model_parts"].values()):,} its own inputs')
    for name, n in sorted(r['world_model_parts'].items()):
        print(f'  {name}: {n:,}')
    if r['mismatched']:
        print(f'tensors that differ: {", ".join(r["mismatched"])}')
        return 1
    print('every Wan tensor has its place and shape')
    return 0
