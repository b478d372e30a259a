"""`worldscape train` (codec or teacher stage) and `worldscape distill`, driven by YAML configs in models/, and
`worldscape plot-training` for their curves.

Multi-process: `torchrun --nproc_per_node N -m worldscape_ros.cli train --config ...` (DDP).
Command-line options override the config's run and data sections.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from worldscape_ros.errors import TrainError
from worldscape_ros.train.config import TrainConfig, load_train_config

log = logging.getLogger(__name__)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument('--config', required=True, help='training YAML (models/train/*.yaml, its stage named first: '
                   '01_codec, 02_causal, 03_teacher, 04_distill)')
    p.add_argument('--resume', action='store_true', help='continue from the latest save in run.out')
    p.add_argument('--data', help='episode folder (overrides data.root)')
    p.add_argument('--out', help='run folder (overrides run.out)')
    p.add_argument('--steps', type=int, help='total steps (overrides run.steps)')
    p.add_argument('--batch-size', type=int, help='clips per process (overrides data.batch_size)')
    p.add_argument('--init', help='checkpoint to start from (overrides init)')
    p.add_argument('--init-codec', help="checkpoint whose codec replaces init's (overrides init_codec)")
    p.add_argument('--device', help='cpu, cuda, cuda:1 (overrides run.device)')
    p.add_argument('--precision', choices=('auto', 'fp32', 'bf16'), help='overrides run.precision')
    p.add_argument('--parallel', choices=('auto', 'fsdp'), help='under torchrun: auto (DDP) or fsdp (sharded; '
                   'overrides run.parallel)')
    p.add_argument('--threads', type=int, help='torch CPU threads (overrides run.threads)')
    p.add_argument('--max-minutes', type=float, help='stop, save and export after this much wall time '
                   '(overrides run.max_minutes; --resume continues)')
    p.add_argument('--log-every', type=int, help='steps between metrics.csv rows (overrides run.log_every)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar (logs and metrics.csv only)')


def config_from_args(args: argparse.Namespace, stage: str | None) -> TrainConfig:
    cfg = load_train_config(args.config)
    if stage == 'distill' and cfg.stage != 'distill':
        raise TrainError(f'{args.config} is a {cfg.stage!r} config; `worldscape distill` needs stage: distill')
    if stage != 'distill' and cfg.stage == 'distill':
        raise TrainError(f'{args.config} is a distill config: run it with `worldscape distill`')
    run = {k: v for k, v in {'out': args.out, 'steps': args.steps, 'device': args.device,
                             'precision': args.precision, 'threads': args.threads, 'parallel': args.parallel,
                             'max_minutes': args.max_minutes, 'log_every': args.log_every}.items() if v is not None}
    if args.no_progress:
        run['progress'] = False
    data = {k: v for k, v in {'root': args.data, 'batch_size': args.batch_size}.items() if v is not None}
    if run:
        cfg = cfg.replace_in('run', **run)
    if data:
        cfg = cfg.replace_in('data', **data)
    if args.init is not None:
        cfg = cfg.replace(init=args.init)
    if args.init_codec is not None:
        cfg = cfg.replace(init_codec=args.init_codec)
    if getattr(args, 'teacher', None):
        cfg = cfg.replace_in('distill', teacher=args.teacher)
    cfg.validate()
    return cfg


def _run(args: argparse.Namespace, stage: str | None) -> int:
    from worldscape_ros.train.loop import train

    cfg = config_from_args(args, stage)
    summary = train(cfg, resume=args.resume)
    log.info('%s: %d steps in %.1f s (%.2f samples/s); final weights %s; last %s', cfg.stage, summary.steps,
             summary.wall_s, summary.samples_per_s, summary.final,
             {k: round(v, 5) for k, v in summary.last.items()})
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser('train', help='train the codec or the bidirectional teacher from a YAML config',
                              description='Train the latent codec (stage: codec) or the 3D-aware bidirectional '
                              'teacher (stage: teacher) on episodes from `worldscape datagen`.')
    _add_common(p)
    p.set_defaults(func=lambda a: _run(a, None))
    d = subparsers.add_parser('distill', help='distil the teacher into the few-step causal student',
                              description='Self-forcing DMD distillation of the teacher into the causal student '
                              '(stage: distill).')
    _add_common(d)
    d.add_argument('--teacher', help='teacher checkpoint (overrides distill.teacher)')
    d.set_defaults(func=lambda a: _run(a, 'distill'))
    c = subparsers.add_parser('plot-training', help='draw the training curves of runs (metrics.csv) into a PNG',
                              description='One panel per logged loss, one line per run, against the step.')
    c.add_argument('runs', nargs='+', type=Path, help='run folders (run.out) or metrics.csv files')
    c.add_argument('--out', required=True, type=Path, help='image to write (.png, .svg, .pdf)')
    c.add_argument('--columns', help='comma-separated columns to draw (default: every loss logged)')
    c.set_defaults(func=_plot)


def _plot(args: argparse.Namespace) -> int:
    from worldscape_ros.train.curves import plot_runs

    columns = [c.strip() for c in args.columns.split(',') if c.strip()] if args.columns else None
    drawn = plot_runs(args.runs, args.out, columns)
    log.info('wrote %s (%s)', args.out, ', '.join(drawn))
    return 0
