"""`worldscape rollout`: drive the engine offline from a start and an actions file, write bag / MP4 / sheet.
`worldscape bag-recover`: rebuild a complete rosbag2 from a killed recording's `.partial` folder."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from worldscape_ros.model.engine_args import add_engine_arguments, engine_from_args

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'rollout', help='roll the world model out offline (no ROS) and record a rosbag2, an MP4 and a sheet',
        description='Start the imagined world from a synthetic scene view or an image, apply the actions of FILE '
        'frame by frame, and write OUT/bag (rosbag2 with the simulator node\'s topics), OUT/rollout.mp4, '
        'OUT/contact_sheet.png and OUT/summary.json. Without --bag or --mp4 both are written. '
        'Actions FILE formats: docs/recording.md.')
    p.add_argument('--start', required=True, help="'room:SEED', 'yard:SEED', 'table:SEED' or an RGB image path "
                   '(any size)')
    p.add_argument('--start-vfov', type=float, metavar='DEG',
                   help="vertical field of view of the start image's camera; an image of any size is resized and "
                   "centre-cropped to the model's, K adjusted (default: the model's field of view)")
    p.add_argument('--start-hfov', type=float, metavar='DEG', help='or its horizontal field of view')
    p.add_argument('--start-depth', default=None, type=Path, metavar='FILE',
                   help='depth of the start image: .npy float32 metres or .png 16-bit millimetres (0: unknown); '
                   'without it the model predicts its own')
    p.add_argument('--actions', required=True, metavar='FILE', help='.csv/.txt/.npy (T x 5) or a .yaml/.json tour')
    p.add_argument('--out', required=True, metavar='DIR',
                   help='output folder (created; an earlier run in it is refused unless --force)')
    p.add_argument('--force', action='store_true',
                   help="replace an earlier run's outputs in --out (bag, MP4, sheet, summary, killed recordings)")
    p.add_argument('--bag', action='store_true', help='write the rosbag2')
    p.add_argument('--mp4', action='store_true', help='write the MP4 and the contact sheet')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                   help='mcap (rosbag2 version 9, Jazzy/Kilted; default) or sqlite3 (version 8, Humble)')
    add_engine_arguments(p)
    p.add_argument('--window', type=int, default=1,
                   help='rolling denoising window over the known script: 1 (default) makes the frames the '
                   "simulator node makes live; 0: the config's sampler.rolling_window")
    p.add_argument('--view', action='store_true',
                   help='show the rollout live in the web viewer (worldscape play\'s page; it stays until Ctrl-C)')
    p.add_argument('--view-port', type=int, default=8080, help='port of the web viewer (localhost; 0: a free one)')
    p.set_defaults(func=run)

    r = subparsers.add_parser(
        'bag-recover', help="rebuild a readable rosbag2 from a killed recording's .partial folder",
        description='A recording killed without a chance to close (SIGKILL, power cut) leaves a hidden '
        '.NAME.XXXX.partial folder beside the bag it was writing, with an mcap that has no index, footer or '
        'metadata.yaml. This copies every message of its flushed chunks (topics, types, QoS, log times) into a '
        'complete rosbag2 (mcap + metadata.yaml) named NAME beside it, or --out, and removes the partial folder.')
    r.add_argument('path', metavar='PATH', help='the .partial folder (or the .mcap inside it)')
    r.add_argument('--out', default=None, metavar='DIR', help='where the recovered bag goes (default: NAME)')
    r.add_argument('--keep', action='store_true', help='keep the .partial folder after recovering it')
    r.set_defaults(func=recover)


def run(args: argparse.Namespace) -> int:
    from worldscape_ros.tools.rollout import check_out, offline_rollout, parse_start
    from worldscape_ros.tools.scripts import load_script

    start = replace(parse_start(args.start), depth=args.start_depth, vfov_deg=args.start_vfov,
                    hfov_deg=args.start_hfov)
    if args.threads < 0:
        raise ValueError(f'--threads must be >= 0, got {args.threads}')
    check_out(args.out, args.force)  # before the model loads: an --out mistake costs nothing
    engine = engine_from_args(args, start.seed)
    script = load_script(args.actions, float(engine.config.fps), scene_seed=start.seed)
    both = not (args.bag or args.mp4)
    if len(script) == 0:
        raise ValueError(f'actions file {args.actions} holds no actions: nothing to roll out')
    from worldscape_ros.viewer.commands import RolloutView

    view = RolloutView(engine, port=args.view_port) if args.view else None
    result = offline_rollout(engine, start, script, args.out, bag=args.bag or both, mp4=args.mp4 or both,
                             storage=args.storage, window=args.window or None, force=args.force, on_frame=view)
    print(f'{result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} frames/s) with '
          f'{engine.config.name} ({engine.sha256[:12]})' + (' - interrupted' if result.interrupted else ''))
    for name, path in result.files.items():
        print(f'  {name}: {path}')
    if view is not None:
        view.hold()
    return 130 if result.interrupted else 0


def recover(args: argparse.Namespace) -> int:
    from worldscape_ros.tools.bag import recover_bag

    report = recover_bag(args.path, args.out, keep=args.keep)
    total = sum(report.counts.values())
    state = 'complete' if report.complete else f'cut at the kill, {report.lost_bytes} bytes of an open chunk lost'
    print(f'recovered {total} messages from {report.source} ({state}) into {report.bag}')
    for topic, count in sorted(report.counts.items()):
        if count:
            print(f'  {topic}: {count}')
    return 0
