"""`worldscape bench`, `worldscape info` and `worldscape export`."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser('bench', help='benchmark streaming generation: frames/s, latency, cache bytes',
                       description='Stream chunks with the cached engine and report frames/s, per-chunk latency '
                       'p50/p95, latency and cache bytes at chunks 1, 10, 100, 1000, and the speedup over '
                       'recomputing the whole context at chunk 64.')
    from worldscape_ros.model.bench import add_arguments

    add_arguments(p)
    p.set_defaults(func=_bench)
    i = sub.add_parser('info', help='describe a model config: sizes, tokens, parameters')
    i.add_argument('--config', default='ws-tiny')
    i.set_defaults(func=_info)
    e = sub.add_parser('export', help="re-save a checkpoint under a config, optionally with another's codec or refiner",
                       description='Write CHECKPOINT again under --config (a change of sampler or memory settings, '
                       'which no tensor depends on) and, with --codec-from, with the codec of another checkpoint of '
                       'the same architecture (a decoder fine-tuned on the same latents), with --refiner-from, with '
                       'a scene refiner fitted elsewhere. The tensors are copied '
                       'unchanged (or rounded to --dtype); the file records where each part came from.')
    e.add_argument('checkpoint', help='the weights to export (.safetensors)')
    e.add_argument('--out', required=True, help='file to write (atomically)')
    e.add_argument('--config', help="model config name or YAML (default: the checkpoint's)")
    e.add_argument('--codec-from', help='checkpoint whose codec replaces the exported one')
    e.add_argument('--refiner-from', help='safetensors file whose refiner.* tensors replace the scene refiner (a '
                   'checkpoint, or a refiner fitted elsewhere: scripts/gpu_lease_refiner.sh)')
    e.add_argument('--dtype', choices=('float32', 'float16', 'bfloat16'), default=None,
                   help='store the weights in this precision (float16: half the file; the engine computes in its '
                   'own dtype either way; default: float32 as loaded)')
    e.set_defaults(func=_export)


def _bench(args: argparse.Namespace) -> int:
    from worldscape_ros.model.bench import run_from_args

    return run_from_args(args)


def _info(args: argparse.Namespace) -> int:
    from worldscape_ros.model.config import load_config
    from worldscape_ros.model.world_model import WorldModel

    cfg = load_config(args.config)
    model = WorldModel(cfg)
    print(f'{cfg.name}: {cfg.width}x{cfg.height} at {cfg.fps:g} fps, latent {cfg.latent_width}x{cfg.latent_height}'
          f'x{cfg.codec.latent_channels}, {cfg.tokens_per_frame} video + {cfg.pose_tokens_per_frame} pose tokens '
          f'per frame, {cfg.chunk_frames} latent frames per chunk')
    for part in ('codec', 'dit', 'depth_head', 'gaussian_head'):
        if getattr(model, part) is not None:
            print(f'  {part}: {model.num_parameters(part) / 1e6:.2f} M parameters')
    print(f'  total: {model.num_parameters() / 1e6:.2f} M parameters')
    return 0


def _export(args: argparse.Namespace) -> int:
    import torch

    from worldscape_ros.model.checkpoint import export_checkpoint

    dtype = getattr(torch, args.dtype) if args.dtype else None
    digest = export_checkpoint(args.checkpoint, args.out, config=args.config, codec_from=args.codec_from,
                               dtype=dtype, refiner_from=args.refiner_from)
    print(f'wrote {args.out} (weights sha256 {digest})')
    return 0
