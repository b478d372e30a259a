"""`make demo`: the simulator node in its own process, a scripted tour, a live rosbag2, an MP4 and a contact sheet.

    python -m worldscape_ros.ros.demo nav     # a tour of a room: forward, turns, an out-and-back, a loop
    python -m worldscape_ros.ros.demo manip   # a still camera over a table, scripted hands pick and place

What runs: `worldscape-sim` (simulator_node) with the shipped model (or a random ws-tiny, said so, when models/
has no checkpoint yet), paused; the recorder node writing the bag; this process driving the tour in lock step
(one Twist, and hand keypoints in the manipulation demo, then `~/step` for one frame). Then the bag is read back
into an MP4 (RGB | depth [| hand pose video]) and a contact sheet. The tour is written beside them as
tour.yaml: `worldscape rollout --start room:SEED --actions runs/demo/tour.yaml` replays it offline, frame for
frame the same.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger('worldscape.demo')

# Tours (tools.scripts format); 10 frames = 1 s at ws-tiny's 10 fps.
NAV_TOUR: dict[str, Any] = {'segments': [
    {'script': 'straight', 'frames': 10},
    {'action': [0.0, 0.0, 0.0, 0.6, 0.0], 'frames': 8},  # look left
    {'script': 'out_and_back', 'frames': 30},  # drive out and back along the same path: the views repeat
    {'action': [0.0, 0.0, 0.0, -0.6, 0.0], 'frames': 8},  # look back right
    {'script': 'loop', 'frames': 24},
]}
MANIP_TOUR: dict[str, Any] = {'segments': [{'script': 'idle', 'frames': 40}],
                              'hands': {'script': 'pick_and_place'}}
DEMOS = {'nav': ('room', NAV_TOUR, 'navigation'), 'manip': ('table', MANIP_TOUR, 'manipulation')}
POSE_VIDEO_TOPIC = '/debug/pose_video'
TOUR_FPS = 10.0  # the shipped ws-tiny's frame rate: named scripts are planned at it


def choose_checkpoint() -> tuple[str, str]:
    """The shipped checkpoint when there is one, else a random ws-tiny (and why)."""
    from worldscape_ros.model.checkpoint import DEFAULT_CHECKPOINT

    if Path(DEFAULT_CHECKPOINT).is_file():
        return 'default', f'the shipped model {DEFAULT_CHECKPOINT}'
    return 'random', (f'models/ has no checkpoint yet ({DEFAULT_CHECKPOINT} is missing): using a RANDOMLY '
                      'initialised ws-tiny, so the frames are noise; train one with `worldscape train`')


def spawn(module: str, params: dict[str, Any], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    args = [sys.executable, '-m', module, '--ros-args']
    for key, value in params.items():
        args += ['-p', f'{key}:={value}']
    with open(log_path, 'w') as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


CAMERA_TOPICS = ('/camera/image_raw', '/camera/depth/image_raw')


def wait_for_recording(log: Path, timeout: float) -> None:
    """Until the recorder's log says it hears the simulator's cameras (recorder_node: report_matches): a frame
    published before that would not be in the bag."""
    deadline = time.monotonic() + timeout
    while not all(f'{t}: matched' in (log.read_text() if log.exists() else '') for t in CAMERA_TOPICS):
        if time.monotonic() > deadline:
            raise TimeoutError(f'the recorder did not hear the simulator\'s cameras within {timeout} s (see {log})')
        time.sleep(0.05)


def drive(script: Any, wait_s: float, recorder_log: Path) -> tuple[int, float]:
    """Play the tour into the simulator in lock step, once the recorder (its log says) hears the cameras and the
    simulator and the recorder both hear the commands; returns (frames, wall seconds)."""
    wait_for_recording(recorder_log, wait_s)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from worldscape_ros.ros.scripted_teleop import ScriptPlayer

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('demo_driver', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        player = ScriptPlayer(node, script, '/simulator')
        player.wait_for_simulator(wait_s, listeners=2)
        t0 = time.monotonic()
        frames = player.play_lockstep(executor)
        return frames, time.monotonic() - t0
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def bag_to_media(bag: Path, out: Path, with_hands: bool) -> dict[str, str]:
    """MP4 and contact sheet from the recorded images (what a viewer of the bag sees)."""
    import numpy as np

    from worldscape_ros.tools import messages as M
    from worldscape_ros.tools.bag import read_bag
    from worldscape_ros.tools.video import auto_scale, contact_sheet, panel, write_mp4, write_png

    topics = ['/camera/image_raw', '/camera/depth/image_raw'] + ([POSE_VIDEO_TOPIC] if with_hands else [])
    by_stamp: dict[int, dict[str, Any]] = {}
    for m in read_bag(bag, topics):
        by_stamp.setdefault(M.stamp_ns(m.msg.header.stamp), {})[m.topic] = M.image_to_numpy(m.msg)
    stamps = sorted(s for s, v in by_stamp.items() if '/camera/image_raw' in v and '/camera/depth/image_raw' in v)
    if not stamps:
        raise RuntimeError(f'the bag {bag} holds no camera frames')
    first = by_stamp[stamps[0]]['/camera/image_raw']
    scale = auto_scale(first.shape[0])
    views, small = [], []
    for s in stamps:
        f = by_stamp[s]
        extra = (f.get(POSE_VIDEO_TOPIC, np.zeros_like(f['/camera/image_raw'])) if with_hands else None)
        views.append(panel(f['/camera/image_raw'], f['/camera/depth/image_raw'], scale, extra=extra))
        small.append(panel(f['/camera/image_raw'], f['/camera/depth/image_raw'], 1, extra=extra))
    labels = [f'{s / 1e9:.1f} s' for s in stamps]
    fps = 1e9 / float(np.median(np.diff(stamps))) if len(stamps) > 1 else 10.0  # sim time: the model's rate
    return {'mp4': str(write_mp4(out / 'demo.mp4', views, fps)),
            'contact_sheet': str(write_png(out / 'contact_sheet.png', contact_sheet(small, labels, 6, 18)))}


def replace_dir(staging: Path, final: Path) -> None:
    """Put the finished demo folder in place of the previous one."""
    old = final.with_name(f'.{final.name}.old')
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_and_why(checkpoint: str | None) -> tuple[str, str]:
    """The checkpoint asked for, else choose_checkpoint's; and how to announce it."""
    if checkpoint is None:
        return choose_checkpoint()
    return checkpoint, f'checkpoint {checkpoint}'


def stage(out: Path, tour: dict[str, Any]) -> Path:
    """A fresh folder beside `out` (.NAME.partial) to build the demo in, holding the tour as tour.yaml."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f'.{out.name}.partial')
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    (staging / 'tour.yaml').write_text(yaml.safe_dump(tour, sort_keys=False))
    return staging


def recorder_params(kind: str, bag: Path) -> dict[str, Any]:
    """The recorder's parameters: its bag, and for the manipulation demo the topics to record."""
    from worldscape_ros.tools.bag import SIM_TOPICS

    params: dict[str, Any] = {'out': bag}
    if kind == 'manip':  # the simulator's topics and its debug image of the hand conditioning
        names = [t.name for t in SIM_TOPICS if t.name != '/camera_pose'] + [f'{POSE_VIDEO_TOPIC}:sensor_msgs/msg/Image']
        params['topics'] = '[' + ','.join(f'"{n}"' for n in names) + ']'
    return params


@dataclass
class TourRun:
    """What driving the tour left: the frames and wall seconds it took, or why it failed; the exit codes."""

    frames: int
    seconds: float
    failure: str  # '' when the tour was driven to its end
    recorder_code: int
    simulator_code: int


def record_tour(kind: str, staging: Path, script: Any, seed: int, checkpoint: str, wait_s: float) -> TourRun:
    """The simulator and the recorder in their own processes (logs in `staging`), the tour driven through them in
    lock step; both are stopped however it ends."""
    scene, _, mode = DEMOS[kind]
    env = dict(os.environ)
    sim = spawn('worldscape_ros.ros.simulator_node',
                {'checkpoint': checkpoint, 'start_scene': scene, 'start_seed': seed, 'mode': mode,
                 'start_paused': 'true', 'realtime': 'false'}, staging / 'simulator.log', env)
    rec = spawn('worldscape_ros.ros.recorder_node', recorder_params(kind, staging / 'bag'), staging / 'recorder.log',
                env)
    frames, seconds, failure = 0, 0.0, ''
    try:
        print(f'driving a {len(script)}-frame tour in lock step (simulator and recorder in their own processes) ...',
              flush=True)
        frames, seconds = drive(script, wait_s, staging / 'recorder.log')
        time.sleep(1.0)  # the last frame's messages reach the recorder
    except (TimeoutError, RuntimeError) as exc:
        failure = str(exc)
    finally:
        rec_code = stop(rec)
        sim_code = stop(sim)
    return TourRun(frames, seconds, failure, rec_code, sim_code)


def print_summary(out: Path, tour: TourRun, total_s: float, files: dict[str, str], replay: str) -> None:
    """The speed through ROS, where the bag, video, contact sheet and tour are, and `replay`'s arguments to
    `worldscape rollout` that make the same frames offline."""
    frames, seconds = tour.frames, tour.seconds
    print(f'{frames} frames in {seconds:.1f} s: {frames / seconds:.2f} frames/s through ROS (lock step, '
          f'simulator in its own process); {total_s:.0f} s in all with start-up '
          f'(simulator exit code {tour.simulator_code})')
    print(f'  bag:           {out / "bag"}   (rosbag2 mcap; `ros2 bag info` or rosbags reads it)')
    print(f'  video:         {out / Path(files["mp4"]).name}')
    print(f'  contact sheet: {out / Path(files["contact_sheet"]).name}')
    print(f'  tour:          {out / "tour.yaml"}   (replay offline, the same frames: worldscape rollout {replay})')


def run(kind: str, out: Path, seed: int, checkpoint: str | None, wait_s: float) -> int:
    """The `kind` demo into `out`: 0 with its bag, video and contact sheet there; 1 (logs kept) when it failed."""
    from worldscape_ros.tools.scripts import load_script

    scene, tour, _ = DEMOS[kind]
    checkpoint, why = checkpoint_and_why(checkpoint)
    print(f'worldscape demo ({kind}): {why}', flush=True)
    staging = stage(out, tour)
    script = load_script(staging / 'tour.yaml', TOUR_FPS, scene_seed=seed)
    t_start = time.monotonic()
    driven = record_tour(kind, staging, script, seed, checkpoint, wait_s)
    if driven.failure:
        print(f'worldscape demo: {driven.failure}; logs in {staging}', file=sys.stderr)
        return 1
    if driven.recorder_code != 0:
        print(f'worldscape demo: the recorder exited with {driven.recorder_code}; see {staging / "recorder.log"}',
              file=sys.stderr)
        return 1
    files = bag_to_media(staging / 'bag', staging, with_hands=kind == 'manip')
    replace_dir(staging, out)
    ckpt = '' if checkpoint == 'default' else f' --checkpoint {checkpoint}'
    replay = f'--start {scene}:{seed} --actions {out / "tour.yaml"}{ckpt} --out runs/replay'
    print_summary(out, driven, time.monotonic() - t_start, files, replay)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m worldscape_ros.ros.demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', nargs='?', default='nav', choices=sorted(DEMOS))
    parser.add_argument('--out', type=Path, default=None, help='default runs/demo (nav) or runs/demo-manip')
    parser.add_argument('--seed', type=int, default=3, help='start scene seed')
    parser.add_argument('--checkpoint', default=None, help="default: the shipped model, else 'random'")
    parser.add_argument('--wait', type=float, default=180.0, help='s to wait for the simulator to come up')
    args = parser.parse_args(argv)
    out = args.out or Path('runs') / ('demo' if args.kind == 'nav' else 'demo-manip')
    logging.basicConfig(level=logging.WARNING)
    try:
        return run(args.kind, out, args.seed, args.checkpoint, args.wait)
    except KeyboardInterrupt:
        print('worldscape demo: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
