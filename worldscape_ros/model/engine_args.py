"""The command line's face of an engine: the arguments that choose a model and how it runs, shared by
`worldscape rollout` and `worldscape play`, and the engine they make. Light to import: the CLI builds its
parsers before torch loads."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worldscape_ros.model.engine import WorldEngine


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--checkpoint', default=None,
                   help="checkpoint path; 'random' for a random init of --config; default: the shipped model")
    p.add_argument('--config', default=None, help='model config name (with --checkpoint random: default ws-tiny)')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16', 'float16'))
    p.add_argument('--steps', type=int, default=None, help="denoising steps (default: the config's)")
    p.add_argument('--no-memory', action='store_true', help='no global memory pool (the ablation)')
    p.add_argument('--threads', type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument('--seed', type=int, default=None,
                   help="sampling seed; default: the start's scene seed, as the simulator node uses its start_seed "
                   '(same start, seed and actions: the same frames)')


def engine_from_args(args: argparse.Namespace, scene_seed: int) -> WorldEngine:
    """The engine `add_engine_arguments`' arguments describe, seeded by --seed or else the start's scene."""
    import torch

    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions

    if args.threads < 0:
        raise ValueError(f'--threads must be >= 0, got {args.threads}')
    if args.threads:
        torch.set_num_threads(args.threads)
    options = EngineOptions(device=args.device, dtype=args.dtype, memory=not args.no_memory, steps=args.steps,
                            seed=args.seed if args.seed is not None else scene_seed)
    return WorldEngine.from_pretrained(args.checkpoint, args.config, options)
