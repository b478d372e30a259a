"""`worldscape headlight-fit`: the camera's share of the light (`scene.headlight`) fitted to a world's episodes
(train/headlight_fit.py); set it in the model's config."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from worldscape_ros.train.refiner_commands import episode_paths

log = logging.getLogger(__name__)


def _fit(args: argparse.Namespace) -> int:
    from worldscape_ros.train.headlight_fit import SHARES, fit_headlight

    shares = SHARES if args.shares is None else tuple(args.shares)
    fit = fit_headlight(episode_paths(args.data, args.episodes), shares, tuple(args.offsets), args.stride)
    for share, psnr in fit.psnr.items():
        print(f'share {share:.2f}: {psnr:.2f} dB{"  <- fitted" if share == fit.share else ""}')
    print(f'{fit.pairs} frame pairs; set scene.headlight: {fit.share:g} in the model config')
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    f = subparsers.add_parser('headlight-fit', help="fit the camera's share of the light (scene.headlight) to "
                              'episodes with measured depth',
                              description='Commit frames of each episode to a scene memory with their depth, render '
                              'them into the camera a few frames later, and print the PSNR on the rendered pixels at '
                              'each share of the light the camera carries; the best is the world\'s scene.headlight.')
    f.add_argument('--data', nargs='+', type=Path, required=True, help='episode folders (*.episode.npz)')
    f.add_argument('--episodes', type=int, help='at most this many episodes a folder')
    f.add_argument('--shares', nargs='+', type=float, help='shares to try (default 0 to 0.8 by 0.05)')
    f.add_argument('--offsets', nargs='+', type=int, default=[4, 8], help='frames from a start to its later frames')
    f.add_argument('--stride', type=int, default=8, help='frames between starts in an episode')
    f.set_defaults(func=_fit)
