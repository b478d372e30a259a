"""The `worldscape` command: one subcommand per job (datagen, bench, eval, train, distill, rollout, ...).

Each subsystem keeps its subcommands in a `commands.py` with `register(subparsers)`, which adds its
parsers and sets `func(args) -> int`.
User mistakes (WorldScapeError, ValueError) print one line on stderr and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from worldscape_ros import __version__
from worldscape_ros.errors import WorldScapeError

COMMAND_MODULES = (
    'worldscape_ros.synthetic.commands',  # datagen, contact-sheet
    'worldscape_ros.model.commands',  # bench, info
    'worldscape_ros.model.wan_commands',  # import-wan, wan-params
    'worldscape_ros.eval.commands',  # eval
    'worldscape_ros.train.commands',  # train, distill, plot-training
    'worldscape_ros.train.refiner_commands',  # refiner-trace, refiner-fit
    'worldscape_ros.train.depth_head_commands',  # depth-trace, depth-fit, start-depth-*, step-image-depth-fit
    'worldscape_ros.train.headlight_commands',  # headlight-fit
    'worldscape_ros.tools.commands',  # rollout
    'worldscape_ros.data.commands',  # import-bag
    'worldscape_ros.viewer.commands',  # play
    'worldscape_ros.ros.commands',  # view
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='worldscape',
        description='WorldScape ROS: a neural simulator for ROS 2. Subcommands render synthetic worlds, '
        'benchmark, evaluate and train the world model, and roll it out offline.',
    )
    parser.add_argument('--version', action='version', version=f'worldscape {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='log debug messages')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format='%(levelname)s %(name)s: %(message)s'
    )
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (WorldScapeError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f'worldscape {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'worldscape {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
