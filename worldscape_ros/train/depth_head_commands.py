"""`worldscape depth-trace` and `worldscape depth-fit`: fit the step depth head on the features the engine gives it
live when its last denoising pass writes the cache (train/depth_head.py); `worldscape start-depth-trace` and
`start-depth-fit`: fit the start depth head on the engine's resets (train/start_depth.py); then ship the head
inside the model's checkpoint."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from worldscape_ros.train.refiner_commands import add_trace_arguments, episode_paths, trace_engine

if TYPE_CHECKING:
    from worldscape_ros.train.head_fit import DepthSamples, Predict

log = logging.getLogger(__name__)


def _trace(args: argparse.Namespace) -> int:
    from worldscape_ros.train.depth_head import trace_depth

    n = trace_depth(trace_engine(args), episode_paths(args.data, args.episodes, args.skip), args.out, args.frames)
    log.info('traced %d new samples into %s', n, args.out)
    return 0


def _fit(args: argparse.Namespace) -> int:
    from worldscape_ros.train.depth_head import DepthTraces, step_depth

    return _fit_head(args, 'step_depth_head', DepthTraces, step_depth)


def _start_trace(args: argparse.Namespace) -> int:
    from worldscape_ros.train.start_depth import trace_starts

    n = trace_starts(trace_engine(args), episode_paths(args.data, args.episodes, args.skip), args.out, args.every,
                     args.frames)
    log.info('traced %d new starts into %s', n, args.out)
    return 0


def _start_fit(args: argparse.Namespace) -> int:
    from worldscape_ros.train.start_depth import StartTraces, start_predict

    return _fit_head(args, 'start_depth_head', StartTraces, start_predict)


def _step_image_fit(args: argparse.Namespace) -> int:
    from worldscape_ros.train.depth_head import DepthTraces, step_image_depth

    return _fit_head(args, 'step_image_depth_head', lambda folders: DepthTraces(folders, rgb=True), step_image_depth)


def _fit_head(args: argparse.Namespace, head: str, samples: Callable[[list[Path]], DepthSamples], predict: Predict
              ) -> int:
    """Put the checkpoint's weights in a model of --config, which adds `head`; fit that head alone on the traces
    `samples` reads, as `predict` reads them live (train/head_fit.py)."""
    from worldscape_ros.model.checkpoint import open_model
    from worldscape_ros.model.config import load_config
    from worldscape_ros.train.head_fit import DepthFitConfig, fit_depth_head, with_new_head

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    source, _ = open_model(args.checkpoint)
    model = with_new_head(source, load_config(args.config), head)
    traces = samples(args.traces)
    held = samples(args.held_out) if args.held_out else None
    cfg = DepthFitConfig(steps=args.steps, batch=args.batch_size, lr=args.lr)
    final, scores = fit_depth_head(model, head, predict, traces, held, args.out, cfg, args.seed)
    log.info('%s: %d samples from %d shards; held-out AbsRel before %.4f, after %.4f; wrote %s', head, len(traces),
             traces.shards, scores['absrel_before'], scores['absrel_after'], final)
    return 0


def _add_fit_arguments(f: argparse.ArgumentParser, steps: int, batch: int, lr: float, needs: str) -> None:
    f.add_argument('--traces', nargs='+', type=Path, required=True, help='trace folders')
    f.add_argument('--held-out', nargs='*', type=Path, help='trace folders scored before, during and after')
    f.add_argument('--out', type=Path, required=True, help='run folder')
    f.add_argument('--checkpoint', help='model checkpoint to add the head to (default: the shipped one)')
    f.add_argument('--config', required=True, help=f'model config name or YAML with {needs} > 0')
    f.add_argument('--steps', type=int, default=steps)
    f.add_argument('--batch-size', type=int, default=batch)
    f.add_argument('--lr', type=float, default=lr)
    f.add_argument('--seed', type=int, default=0)
    f.add_argument('--threads', type=int, default=1)


def register(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser('depth-trace', help="record the depth heads' inputs on episodes, as live",
                              description="Reset the engine on each episode's true start frame and depth, step it "
                              "through the true cameras and hands, and write every input of the depth heads beside "
                              'the true depth (run it with a config whose sampler.cache_from_last_step is true). '
                              'One shard per episode; existing shards are kept, so a rerun resumes.')
    add_trace_arguments(t)
    t.set_defaults(func=_trace)
    f = subparsers.add_parser('depth-fit', help='fit the step depth head on depth traces; save the model with it',
                              description="Put the checkpoint's weights in a model of --config (which adds the step "
                              'depth head), fit that head alone and write OUT/final.safetensors and OUT/fit.json '
                              "(held-out AbsRel of the live steps' depth, before and after).")
    _add_fit_arguments(f, 3000, 64, 1e-3, 'heads.step_depth_hidden')
    f.set_defaults(func=_fit)
    s = subparsers.add_parser('start-depth-trace', help="record the engine's resets on episodes' frames, as live",
                              description='Reset the engine on every --every-th frame of each episode and write the '
                              "features the depth head is given beside the frame's RGB and true depth (resets only, "
                              'no steps). One shard per episode; existing shards are kept, so a rerun resumes.')
    add_trace_arguments(s)
    s.add_argument('--every', type=int, default=4, help='reset on every EVERY-th frame (default 4)')
    s.set_defaults(func=_start_trace)
    g = subparsers.add_parser('start-depth-fit', help='fit the start depth head on start traces; save the model '
                              'with it', description="Put the checkpoint's weights in a model of --config (which adds "
                              'the start depth head), fit that head alone and write OUT/final.safetensors and '
                              'OUT/fit.json (held-out AbsRel of the start depth, before and after).')
    _add_fit_arguments(g, 2000, 32, 2e-3, 'heads.start_depth_channels')
    g.set_defaults(func=_start_fit)
    i = subparsers.add_parser('step-image-depth-fit', help='fit the step image depth head on depth traces; save the '
                              'model with it', description="Put the checkpoint's weights in a model of --config "
                              '(which adds the step image depth head), fit that head alone on the live steps of '
                              "depth-trace's shards (features and the engine's output frames) and write "
                              'OUT/final.safetensors and OUT/fit.json (held-out AbsRel of the steps\' depth, before '
                              'and after).')
    _add_fit_arguments(i, 2000, 32, 2e-3, 'heads.step_image_depth_channels')
    i.set_defaults(func=_step_image_fit)
