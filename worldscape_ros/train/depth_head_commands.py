"""`worldscape depth-trace` and `worldscape depth-fit`: fit the step depth head on the features the engine gives it
live when its last denoising pass writes the cache (train/depth_head.py); `worldscape start-depth-trace` and
`start-depth-fit`: fit the start depth head on the engine's resets (train/start_depth.py); then ship the head
inside the model's checkpoint."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from worldscape_ros.train.refiner_commands import add_trace_arguments, episode_paths, trace_engine

log = logging.getLogger(__name__)


def _trace(args: argparse.Namespace) -> int:
    from worldscape_ros.train.depth_head import trace_depth

    n = trace_depth(trace_engine(args), episode_paths(args.data, args.episodes, args.skip), args.out, args.frames)
    log.info('traced %d new samples into %s', n, args.out)
    return 0


def _fit(args: argparse.Namespace) -> int:
    from worldscape_ros.model.checkpoint import open_model
    from worldscape_ros.model.config import load_config
    from worldscape_ros.train.depth_head import DepthFitConfig, DepthTraces, fit_step_depth_head, with_step_head

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    source, _ = open_model(args.checkpoint)
    model = with_step_head(source, load_config(args.config))
    traces = DepthTraces(args.traces)
    held = DepthTraces(args.held_out) if args.held_out else None
    cfg = DepthFitConfig(steps=args.steps, batch=args.batch_size, lr=args.lr)
    final, scores = fit_step_depth_head(model, traces, held, args.out, cfg, args.seed)
    log.info('%d samples from %d shards; held-out AbsRel before %.4f, after %.4f; wrote %s', len(traces),
             traces.shards, scores['step_absrel_before'], scores['step_absrel_after'], final)
    return 0


def _start_trace(args: argparse.Namespace) -> int:
    from worldscape_ros.train.start_depth import trace_starts

    n = trace_starts(trace_engine(args), episode_paths(args.data, args.episodes, args.skip), args.out, args.every,
                     args.frames)
    log.info('traced %d new starts into %s', n, args.out)
    return 0


def _start_fit(args: argparse.Namespace) -> int:
    from worldscape_ros.model.checkpoint import open_model
    from worldscape_ros.model.config import load_config
    from worldscape_ros.train.image_depth import ImageDepthFitConfig
    from worldscape_ros.train.start_depth import StartTraces, fit_start_depth_head, with_start_head

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    source, _ = open_model(args.checkpoint)
    model = with_start_head(source, load_config(args.config))
    traces = StartTraces(args.traces)
    held = StartTraces(args.held_out) if args.held_out else None
    cfg = ImageDepthFitConfig(steps=args.steps, batch=args.batch_size, lr=args.lr)
    final, scores = fit_start_depth_head(model, traces, held, args.out, cfg, args.seed)
    log.info('%d starts from %d shards; held-out start AbsRel before %.4f, after %.4f; wrote %s', len(traces),
             traces.shards, scores['start_absrel_before'], scores['start_absrel_after'], final)
    return 0


def _step_image_fit(args: argparse.Namespace) -> int:
    from worldscape_ros.model.checkpoint import open_model
    from worldscape_ros.model.config import load_config
    from worldscape_ros.train.depth_head import DepthTraces, with_new_head
    from worldscape_ros.train.image_depth import ImageDepthFitConfig, fit_image_depth_head, step_depth

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    source, _ = open_model(args.checkpoint)
    model = with_new_head(source, load_config(args.config), 'step_image_depth_head')
    traces = DepthTraces(args.traces, rgb=True)
    held = DepthTraces(args.held_out, rgb=True) if args.held_out else None
    cfg = ImageDepthFitConfig(steps=args.steps, batch=args.batch_size, lr=args.lr)
    final, scores = fit_image_depth_head(model, 'step_image_depth_head', step_depth, traces, held, args.out, cfg,
                                         args.seed)
    log.info('%d steps from %d shards; held-out step AbsRel before %.4f, after %.4f; wrote %s', len(traces),
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
