"""`worldscape import-bag`: rosbag2 recordings -> training episodes (data.rosbag_import)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be WIDTHxHEIGHT, e.g. 128x96, got {text!r}') from None
    return w, h


def _mount(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(',', ' ').split())
    except ValueError:
        raise argparse.ArgumentTypeError(f'mount must be 6 numbers "x y z roll pitch yaw", got {text!r}') from None
    if len(values) != 6:
        raise argparse.ArgumentTypeError(f'mount must be 6 numbers "x y z roll pitch yaw", got {len(values)}')
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'import-bag', help='turn rosbag2 recordings (camera, camera_info, TF or odometry, depth) into episodes',
        description='Read rosbag2 folders (mcap or sqlite3), take the camera images with their camera_info, the '
        'camera pose from TF (or odometry plus a fixed mount) and optional depth, resample them to the model\'s '
        'frame rate and size, and write training episodes (docs/episode_format.md) into --out. '
        'docs/training.md: "Fine-tune on your rosbags".')
    p.add_argument('bags', nargs='+', metavar='BAG', help='rosbag2 folders, or folders holding them')
    p.add_argument('--out', required=True, metavar='DIR', help='episode folder (created)')
    p.add_argument('--config', default='ws-tiny', help="model config whose fps and size to fit (default ws-tiny)")
    p.add_argument('--fps', type=float, help="frame rate of the episodes (default: the model's)")
    p.add_argument('--size', type=_size, help="WIDTHxHEIGHT of the episodes (default: the model's)")
    p.add_argument('--fit', choices=('crop', 'letterbox'), default='crop',
                   help='crop to the model\'s aspect (default) or letterbox into it')
    p.add_argument('--image-topic', help='colour image topic (default: the only Image/CompressedImage topic)')
    p.add_argument('--camera-info-topic', help='its CameraInfo (default: camera_info beside the image topic)')
    p.add_argument('--vfov', type=float, help='vertical field of view in degrees, for images without camera_info')
    p.add_argument('--hfov', type=float, help='horizontal field of view in degrees, for images without camera_info')
    p.add_argument('--depth-topic', help='depth registered to the colour camera (default: depth/image_raw beside '
                   'the image topic when present)')
    p.add_argument('--no-depth', action='store_true', help='import without depth even when the bag has some')
    p.add_argument('--pose', choices=('auto', 'tf', 'odom'), default='auto',
                   help='camera pose from TF, from odometry plus the mount, or auto (TF when it reaches the camera)')
    p.add_argument('--camera-frame', help="the camera's optical frame (default: the images' frame_id)")
    p.add_argument('--world-frame', help='the frame poses are expressed in (default: the root of the TF tree)')
    p.add_argument('--odom-topic', help='nav_msgs/Odometry topic (default: the only one)')
    p.add_argument('--mount', type=_mount, metavar='"X Y Z ROLL PITCH YAW"',
                   help='camera_link pose on the odometry child frame (REP-103, m and rad), when /tf_static lacks it')
    p.add_argument('--max-tf-gap', type=float, default=0.5, help='seconds between TF samples that count as a gap')
    p.add_argument('--min-frames', type=int, default=8, help='pieces shorter than this are dropped (default 8)')
    p.add_argument('--max-frames', type=int, default=0, help='split longer pieces into episodes of this many '
                   'frames (default 0: no split)')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from worldscape_ros.data.rosbag_import import ImportOptions, bag_paths, import_bag
    from worldscape_ros.model.config import load_config

    cfg = load_config(args.config)
    width, height = args.size or (cfg.width, cfg.height)
    options = ImportOptions(
        fps=args.fps or float(cfg.fps), width=width, height=height, image_topic=args.image_topic,
        camera_info_topic=args.camera_info_topic, depth_topic='' if args.no_depth else args.depth_topic,
        pose_source=args.pose, camera_frame=args.camera_frame, world_frame=args.world_frame,
        odom_topic=args.odom_topic, mount=args.mount, vfov_deg=args.vfov, hfov_deg=args.hfov, fit=args.fit,
        max_tf_gap=args.max_tf_gap, min_frames=args.min_frames, max_frames=args.max_frames)
    options.validate()
    total = 0
    for bag in bag_paths(args.bags):
        result = import_bag(bag, args.out, options)
        total += result.frames
        print(f'{bag}: {result.frames} frames in {len(result.episodes)} episode(s) (images at '
              f'{result.image_rate:.1f} Hz, poses from {result.pose_source})')
        for note in result.notes:
            print(f'  note: {note}')
        for path in result.episodes:
            print(f'  {path}')
    print(f'{total} frames at {options.fps:g} fps, {width}x{height}, in {args.out}')
    return 0
