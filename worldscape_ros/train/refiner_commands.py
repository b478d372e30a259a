"""`worldscape refiner-trace` and `worldscape refiner-fit`: train the output refiner on the engine's own traces
(train/refiner.py), then ship it inside the model's checkpoint."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from worldscape_ros.errors import TrainError

if TYPE_CHECKING:
    from worldscape_ros.model.engine import WorldEngine

log = logging.getLogger(__name__)


def episode_paths(folders: list[Path], limit: int | None, skip: int = 0) -> list[Path]:
    """The episode files of each folder, sorted: the first `skip` left out, then at most `limit`."""
    from worldscape_ros.data.episode import EPISODE_SUFFIX

    found: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise TrainError(f'episode folder {folder} does not exist')
        eps = sorted(folder.glob(f'*{EPISODE_SUFFIX}'))
        if not eps:
            raise TrainError(f'no *{EPISODE_SUFFIX} files in {folder}')
        eps = eps[skip:]
        found += eps[:limit] if limit else eps
    return found


def trace_engine(args: argparse.Namespace) -> WorldEngine:
    """The engine a trace runs: the checkpoint under --config, one chunk at a time as live, on --threads."""
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions

    torch.set_num_threads(args.threads)
    return WorldEngine.from_pretrained(args.checkpoint, args.config, EngineOptions(window=1, seed=args.seed))


def add_trace_arguments(t: argparse.ArgumentParser) -> None:
    """The episodes a trace replays, where its shards go, and the engine it runs (trace_engine)."""
    t.add_argument('--data', nargs='+', type=Path, required=True, help='episode folders')
    t.add_argument('--out', type=Path, required=True, help='trace folder')
    t.add_argument('--episodes', type=int, help='at most this many episodes per folder')
    t.add_argument('--skip', type=int, default=0, help='leave out the first SKIP episodes of each folder')
    t.add_argument('--frames', type=int, default=32, help='frames per episode (default 32)')
    t.add_argument('--checkpoint', help='model checkpoint (default: the shipped one)')
    t.add_argument('--config', help="model config name or YAML (default: the checkpoint's)")
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--threads', type=int, default=1)


def _trace(args: argparse.Namespace) -> int:
    from worldscape_ros.train.refiner import trace_episodes

    n = trace_episodes(trace_engine(args), episode_paths(args.data, args.episodes, args.skip), args.out, args.frames)
    log.info('traced %d new samples into %s', n, args.out)
    return 0


def _fit(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.train.refiner import FitConfig, Traces, fit_refiner

    torch.set_num_threads(args.threads)
    engine = WorldEngine.from_pretrained(checkpoint=args.checkpoint, config=args.config)
    traces = Traces(args.traces, args.min_coverage)
    held = Traces(args.held_out, args.min_coverage) if args.held_out else None
    cfg = FitConfig(steps=args.steps, batch=args.batch_size, lr=args.lr, crop=None if args.full_frames else (64, 64),
                    adversarial_weight=args.adversarial_weight, adversarial_region=args.adversarial_region,
                    pixel_loss=args.pixel_loss, gradient_weight=args.gradient_weight,
                    fresh_residual=args.fresh_residual)
    refiner_cfg = replace(engine.config.refiner, enabled=True)  # its size and policy as the config sets them
    anchor = None
    if args.anchor:
        anchor = WorldEngine.from_pretrained(checkpoint=args.anchor, config=args.config).model.refiner
        if anchor is None:
            raise TrainError(f'--anchor {args.anchor}: that checkpoint has no refiner')
    scene = None
    if args.part == 'hand':
        source = engine if args.scene_from is None else WorldEngine.from_pretrained(checkpoint=args.scene_from)
        scene = source.model.refiner
        if scene is None:
            raise TrainError(f'--part hand: {args.scene_from or "the checkpoint"} has no scene refiner to fit beside')
    elif args.scene_from:
        raise TrainError('--scene-from is for --part hand')
    final = fit_refiner(engine, traces, held, args.out, cfg, refiner_cfg, args.max_minutes, args.warm_start,
                        anchor, scene, args.device)
    log.info('%d training samples from %d shards; wrote %s', len(traces), traces.shards, final)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser('refiner-trace', help="record the engine's refiner inputs on episodes",
                              description='Reset the engine on each episode\'s true start frame and depth, step it '
                              'through the true cameras and hands, and write the refiner\'s inputs beside the true '
                              'frames (one shard per episode; existing shards are kept, so a rerun resumes).')
    add_trace_arguments(t)
    t.set_defaults(func=_trace)
    f = subparsers.add_parser('refiner-fit', help='train the output refiner on traces and save the model with it',
                              description='Fit the refiner (resuming from --out) and write OUT/final.safetensors: '
                              'the checkpoint\'s model with the refiner enabled.')
    f.add_argument('--traces', nargs='+', type=Path, required=True, help='trace folders')
    f.add_argument('--held-out', nargs='*', type=Path, help='trace folders scored every log interval')
    f.add_argument('--out', type=Path, required=True, help='run folder')
    f.add_argument('--checkpoint', help='model checkpoint to add the refiner to (default: the shipped one)')
    f.add_argument('--config', help="model config name or YAML (default: the checkpoint's); its refiner section "
                   'sets the refiner fitted')
    f.add_argument('--warm-start', action='store_true',
                   help="start from the checkpoint's refiner of the part fitted (a hand refiner it lacks: its scene "
                   "refiner; else afresh); a saved fit in --out resumes either way")
    f.add_argument('--anchor', help="a checkpoint whose refiner's output is the target outside the hand's region "
                   '(the truth inside it): a fit for the hand that keeps that refiner elsewhere')
    f.add_argument('--fresh-residual', action='store_true',
                   help="with --warm-start: the refiner's last layer starts at zero, so the fit starts from the "
                   "smooth fill exactly (with the checkpoint's features)")
    f.add_argument('--part', choices=('scene', 'hand'), default='scene',
                   help="the refiner fitted: the scene's (default), or the hand's (refiner.hand_refiner), which "
                   "writes the hand's region over a frozen scene refiner's output")
    f.add_argument('--scene-from', help="with --part hand: the checkpoint whose refiner is the scene refiner "
                   "(default: --checkpoint's)")
    f.add_argument('--full-frames', action='store_true', help='train on whole frames instead of 64x64 crops')
    f.add_argument('--steps', type=int, default=4000)
    f.add_argument('--batch-size', type=int, default=16)
    f.add_argument('--lr', type=float, default=1e-3)
    f.add_argument('--pixel-loss', choices=('l1', 'l2'), default='l1',
                   help="the per-pixel loss: l1 (the median colour a hole may hold) or l2 (the mean: what PSNR "
                   "rewards)")
    f.add_argument('--gradient-weight', type=float, default=1.0, help='weight of the image-gradient L1 on holes '
                   'and hand (default 1)')
    f.add_argument('--adversarial-weight', type=float, default=0.0,
                   help="weight of a patch critic's loss (default 0: none)")
    f.add_argument('--adversarial-region', choices=('hand', 'all'), default='hand',
                   help="the pixels the critic judges: the hand's region (default), or the holes too")
    f.add_argument('--min-coverage', type=float, default=0.25,
                   help='leave out samples whose render covers less of the view (default 0.25)')
    f.add_argument('--max-minutes', type=float, help='stop and save after this much wall time (rerun resumes)')
    f.add_argument('--threads', type=int, default=1)
    f.add_argument('--device', default='cpu', help='where the fit runs, traces and all (cpu, cuda, cuda:1, ...)')
    f.set_defaults(func=_fit)
