"""`worldscape datagen` and `worldscape contact-sheet`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _datagen(args: argparse.Namespace) -> int:
    from worldscape_ros.synthetic.datagen import DatagenConfig, parse_size, run_datagen

    width, height = parse_size(args.size)
    config = DatagenConfig(kind=args.kind, episodes=args.episodes, frames=args.frames, width=width, height=height,
                           seed=args.seed, out=Path(args.out), workers=args.workers, fps=args.fps, worlds=args.worlds)
    stats = run_datagen(config, progress=not args.no_progress)
    log.info('%d episodes generated, %d skipped, %d frames in %.1f s (%.1f frames/s) -> %s', stats['generated'],
             stats['skipped'], stats['frames'], stats['seconds'], stats['frames_per_s'], config.out)
    return 0


def _contact_sheet(args: argparse.Namespace) -> int:
    from worldscape_ros.synthetic.contact_sheet import contact_sheet

    path = contact_sheet(args.episodes, args.out, count=args.count, frames_per_row=args.frames_per_row)
    log.info('contact sheet -> %s', path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser('datagen', help='render synthetic episodes with ground truth (MuJoCo)',
                              description='Render navigation or hand-manipulation episodes with RGB, metric depth, '
                              'poses, actions and hand keypoints. Resumable: finished episodes are skipped.')
    p.add_argument('--kind', required=True, help='nav (rooms and yards) or manip (hand over a table)')
    p.add_argument('--episodes', type=int, required=True, help='number of episodes')
    p.add_argument('--frames', type=int, default=64, help='frames per episode (default 64)')
    p.add_argument('--size', default='128x96', help='frame size WIDTHxHEIGHT (default 128x96)')
    p.add_argument('--seed', type=int, default=0, help='run seed: episode i is a function of (seed, i)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--workers', type=int, default=1, help='parallel worker processes (one renderer each)')
    p.add_argument('--fps', type=float, default=10.0, help='episode frame rate for integrating actions')
    p.add_argument('--worlds', default='procedural', help="nav scenes: 'procedural' (rooms and yards painted with "
                   "procedural textures, default) or 'furnished' (rooms of built-in paint and furniture on thin legs)")
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.set_defaults(func=_datagen)

    c = subparsers.add_parser('contact-sheet', help='a PNG grid of frames from a few episodes',
                              description='RGB beside colour-mapped depth for a few frames of a few episodes; '
                              'hand keypoints drawn on manipulation episodes.')
    c.add_argument('--episodes', required=True, help='folder of *.episode.npz files')
    c.add_argument('--out', required=True, help='PNG to write')
    c.add_argument('--count', type=int, default=4, help='number of episodes (default 4)')
    c.add_argument('--frames-per-row', type=int, default=4, help='frames shown per episode (default 4)')
    c.set_defaults(func=_contact_sheet)
