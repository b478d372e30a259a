"""`worldscape depth-trace` and `worldscape depth-fit`: fit the depth head alone on the features the engine gives it
live (train/depth_head.py), then ship it inside the model's checkpoint."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from worldscape_ros.train.refiner_commands import episode_paths

log = logging.getLogger(__name__)


def _trace(args: argparse.Namespace) -> int:
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions
    from worldscape_ros.train.depth_head import trace_depth

    torch.set_num_threads(args.threads)
    engine = WorldEngine.from_pretrained(args.checkpoint, args.config, EngineOptions(window=1, seed=args.seed))
    n = trace_depth(engine, episode_paths(args.data, args.episodes, args.skip), args.out, args.frames, args.starts)
    log.info('traced %d new samples into %s', n, args.out)
    return 0


def _fit(args: argparse.Namespace) -> int:
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.train.depth_head import DepthFitConfig, DepthTraces, fit_depth_head

    torch.set_num_threads(args.threads)
    engine = WorldEngine.from_pretrained(checkpoint=args.checkpoint, config=args.config)
    traces = DepthTraces(args.traces)
    held = DepthTraces(args.held_out) if args.held_out else None
    cfg = DepthFitConfig(steps=args.steps, batch=args.batch_size, lr=args.lr)
    final, scores = fit_depth_head(engine, traces, held, args.out, cfg, args.seed)
    log.info('%d samples from %d shards; held-out AbsRel %s; wrote %s', len(traces), traces.shards,
             ', '.join(f'{k} {v:.4f}' for k, v in scores.items()), final)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser('depth-trace', help="record the depth head's inputs on episodes, as live",
                              description="Reset the engine on each episode's true start frame and depth, step it "
                              "through the true cameras and hands, and write every input of the depth head beside "
                              "the true depth; then take --starts more frames of each episode as RGB-only starts. "
                              'One shard per episode; existing shards are kept, so a rerun resumes.')
    t.add_argument('--data', nargs='+', type=Path, required=True, help='episode folders')
    t.add_argument('--out', type=Path, required=True, help='trace folder')
    t.add_argument('--episodes', type=int, help='at most this many episodes per folder')
    t.add_argument('--skip', type=int, default=0, help='leave out the first SKIP episodes of each folder')
    t.add_argument('--frames', type=int, default=32, help='frames per episode (default 32)')
    t.add_argument('--starts', type=int, default=3, help='more frames per episode taken as RGB-only starts')
    t.add_argument('--checkpoint', help='model checkpoint (default: the shipped one)')
    t.add_argument('--config', help="model config name or YAML (default: the checkpoint's)")
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--threads', type=int, default=1)
    t.set_defaults(func=_trace)
    f = subparsers.add_parser('depth-fit', help='fit the depth head on depth traces and save the model with it',
                              description='Fit the depth head (the DiT frozen) and write OUT/final.safetensors and '
                              'OUT/fit.json (held-out AbsRel at starts and live steps, before and after).')
    f.add_argument('--traces', nargs='+', type=Path, required=True, help='trace folders')
    f.add_argument('--held-out', nargs='*', type=Path, help='trace folders scored before, during and after')
    f.add_argument('--out', type=Path, required=True, help='run folder')
    f.add_argument('--checkpoint', help='model checkpoint whose depth head is fitted (default: the shipped one)')
    f.add_argument('--config', help="model config name or YAML (default: the checkpoint's)")
    f.add_argument('--steps', type=int, default=3000)
    f.add_argument('--batch-size', type=int, default=64)
    f.add_argument('--lr', type=float, default=1e-3)
    f.add_argument('--seed', type=int, default=0)
    f.add_argument('--threads', type=int, default=1)
    f.set_defaults(func=_fit)
