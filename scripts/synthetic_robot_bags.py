"""Rosbags as a robot with a 16:9 camera would record them, made from the project's synthetic worlds with their
true poses: the input of the fine-tuning recipe in docs/training.md ("Fine-tune on your rosbags") and a check of
`worldscape import-bag` on bags that are not the model's size, rate or encoding.

Each bag: /camera/color/image_raw/compressed (JPEG) with /camera/color/camera_info at RATE Hz, 16UC1 millimetre
depth on /camera/aligned_depth_to_color/image_raw, odom -> base_link on /tf at the image rate and the camera mount
base_link -> camera_link -> camera_color_optical_frame on /tf_static (mcap, rosbag2 version 9).

    python scripts/synthetic_robot_bags.py --out data/robot_bags/train --seeds 7000-7015
    python scripts/synthetic_robot_bags.py --out data/robot_bags/heldout --seeds 7100-7103
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from worldscape_ros.model.kinematics import R_LINK_OPTICAL, BaseState, base_to_camera_link
from worldscape_ros.synthetic.episodes import nav_episode
from worldscape_ros.synthetic.trajectories import FAMILIES
from worldscape_ros.tools import messages as M
from worldscape_ros.tools.bag import QOS_LATCHED, QOS_SENSOR, BagWriter

OPTICAL = 'camera_color_optical_frame'
IMAGE = '/camera/color/image_raw/compressed'
INFO = '/camera/color/camera_info'
DEPTH = '/camera/aligned_depth_to_color/image_raw'


def write_robot_bag(path: Path, seed: int, family: str, frames: int, width: int, height: int, rate: float,
                    kind: str = 'room') -> int:
    ep = nav_episode(seed, family, frames, width, height, rate, scene_kind=kind)
    mount = base_to_camera_link(BaseState(height=1.0))  # the renderer's camera is 1 m above the base, level
    link_optical = np.eye(4)
    link_optical[:3, :3] = R_LINK_OPTICAL
    T = M.typestore().types
    start_ns = 1_700_000_000 * 1_000_000_000 + seed * 1_000_000  # wall-clock-like stamps
    with BagWriter(path, 'mcap') as bag:
        bag.add_topic('/tf_static', 'tf2_msgs/msg/TFMessage', QOS_LATCHED)
        bag.add_topic('/tf', 'tf2_msgs/msg/TFMessage')
        bag.add_topic(IMAGE, 'sensor_msgs/msg/CompressedImage', QOS_SENSOR)
        bag.add_topic(INFO, 'sensor_msgs/msg/CameraInfo', QOS_SENSOR)
        bag.add_topic(DEPTH, 'sensor_msgs/msg/Image', QOS_SENSOR)
        bag.write('/tf_static', start_ns, M.tf_message([
            M.transform(mount, start_ns, 'base_link', 'camera_link'),
            M.transform(link_optical, start_ns, 'camera_link', OPTICAL)]))
        for t in range(frames):
            ns = start_ns + round(t * 1e9 / rate)
            base = ep.poses[t] @ np.linalg.inv(mount @ link_optical)
            bag.write('/tf', ns, M.tf_message([M.transform(base, ns, 'odom', 'base_link')]))
            ok, jpeg = cv2.imencode('.jpg', ep.rgb[t][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            bag.write(IMAGE, ns, T['sensor_msgs/msg/CompressedImage'](header=M.header(ns, OPTICAL), format='jpeg',
                                                                      data=jpeg.reshape(-1)))
            bag.write(INFO, ns, M.camera_info(ep.intrinsics, width, height, ns, OPTICAL))
            mm = np.rint(np.nan_to_num(ep.depth[t], nan=0.0) * 1000).clip(0, 65535).astype('<u2')
            bag.write(DEPTH, ns, T['sensor_msgs/msg/Image'](
                header=M.header(ns, OPTICAL), height=height, width=width, encoding='16UC1', is_bigendian=0,
                step=width * 2, data=np.frombuffer(mm.tobytes(), np.uint8)))
    return frames


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', required=True, type=Path, help='folder of bags (one per seed) to create')
    p.add_argument('--seeds', required=True, help='scene seeds A-B (inclusive)')
    p.add_argument('--seconds', type=float, default=4.0, help='length of each recording')
    p.add_argument('--rate', type=float, default=30.0, help='camera rate in Hz')
    p.add_argument('--size', default='424x240', help='camera WIDTHxHEIGHT (60 deg vertical field of view)')
    p.add_argument('--kind', default='room', choices=('room', 'yard'))
    args = p.parse_args()
    a, _, b = args.seeds.partition('-')
    seeds = range(int(a), int(b or a) + 1)
    width, height = (int(v) for v in args.size.split('x'))
    frames = round(args.seconds * args.rate)
    t0 = time.perf_counter()
    for k, seed in enumerate(seeds):
        family = FAMILIES[k % len(FAMILIES)]
        path = args.out / f'{args.kind}_{seed}_{family}'
        if path.exists():
            continue
        write_robot_bag(path, seed, family, frames, width, height, args.rate, args.kind)
        print(f'{path}: {frames} frames of {width}x{height} at {args.rate:g} Hz ({family})', flush=True)
    print(f'{len(seeds)} bags in {time.perf_counter() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
