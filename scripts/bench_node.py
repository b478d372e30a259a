#!/usr/bin/env python
"""Measure the simulator node against the engine alone, and soak it.

    .venv/bin/python scripts/bench_node.py bench [--frames 200]      # frames/s and command-to-image latency
    .venv/bin/python scripts/bench_node.py soak --frames 10000       # RSS, latency, cache over a long run

Engine alone: WorldEngine.step in a loop (ws-tiny, checkpoint 'random', CPU). Node: the `worldscape-sim`
console script in its own process with the Fast DDS profile, pacing off, driven over cmd_vel by this process,
which subscribes to the images. The two run in alternating blocks (the other paused) so that load from other
processes on a shared machine falls on both alike. Command-to-image latency: wall time from publishing a new
cmd_vel to the arrival of the first image generated with it (matched through odometry's twist at the same
stamp); for the engine alone it is one step (the command is applied by the very next call). The node drops a
frame a newer command makes stale (drop_stale_frames); `--keep-stale` measures it without. Results go to
runs/bench_node/.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / 'runs' / 'bench_node'


class EngineAlone:
    """WorldEngine.step in a loop in this process: ws-tiny, checkpoint 'random', CPU."""

    def __init__(self, warmup: int = 5) -> None:
        from worldscape_ros.model.engine import WorldEngine
        from worldscape_ros.model.kinematics import NavAction
        from worldscape_ros.synthetic.starts import start_from_scene

        self.NavAction = NavAction
        self.engine = WorldEngine.from_pretrained('random', 'ws-tiny')
        start_from_scene(self.engine, 0)
        self.i = 0
        self.run(warmup)

    def run(self, frames: int) -> list[float]:
        """Seconds per step for `frames` steps of a tour (forward with alternating turns)."""
        times = []
        for _ in range(frames):
            t0 = time.perf_counter()
            self.engine.step(self.NavAction(vx=0.5, yaw_rate=0.3 if (self.i // 20) % 2 else -0.3))
            times.append(time.perf_counter() - t0)
            self.i += 1
        return times


def rss_kib(pid: int) -> int:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0


class NodeProcess:
    """The console script in its own process, pacing off, with the Fast DDS profile."""

    def __init__(self, domain: int, extra: str = '') -> None:
        self.params = Path(tempfile.mkstemp(suffix='.yaml')[1])
        self.params.write_text('/**/simulator:\n  ros__parameters:\n    checkpoint: random\n    model_config: ws-tiny\n'
                               '    device: cpu\n    realtime: false\n    cmd_vel_timeout: 5.0\n'
                               '    diagnostics_period: 1.0\n' + extra)
        self.env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(REPO / 'config' / 'fastdds.xml'),
                        ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
        exe = Path(sys.executable).with_name('worldscape-sim')
        self.log = open(OUT / f'node_{domain}.log', 'w')  # closed in stop()
        self.proc = subprocess.Popen([str(exe), '--ros-args', '--params-file', str(self.params)], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        self.proc.send_signal(2)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        self.params.unlink(missing_ok=True)
        return code


class Probe:
    """Subscribes to images, odometry and diagnostics; publishes cmd_vel."""

    def __init__(self, domain: int, images: bool = True) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(REPO / 'config' / 'fastdds.xml')
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node('bench_probe', context=self.context)
        self.lock = threading.Lock()
        self.image_times: list[tuple[float, int]] = []  # (arrival wall time, stamp ns)
        self.odom_twist: dict[int, float] = {}  # stamp ns -> linear.x
        self.diagnostics: list[dict[str, str]] = []
        if images:
            self.node.create_subscription(Image, 'camera/image_raw', self._on_image, 10)
        self.node.create_subscription(Odometry, 'odom', self._on_odom, 50)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.cmd = self.node.create_publisher(Twist, 'cmd_vel', 10)
        self.Twist = Twist
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_image(self, msg) -> None:
        t = time.perf_counter()
        with self.lock:
            self.image_times.append((t, msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec))

    def _on_odom(self, msg) -> None:
        with self.lock:
            self.odom_twist[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = msg.twist.twist.linear.x

    def _on_diag(self, msg) -> None:
        with self.lock:
            self.diagnostics.append({kv.key: kv.value for kv in msg.status[0].values})

    def call(self, srv_type, name: str):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=60):
                raise SystemExit(f'service {name} is not there')
            future = client.call_async(srv_type.Request())
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            if not done.wait(600):
                raise SystemExit(f'service {name} did not answer')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def send(self, vx: float, wz: float = 0.0) -> float:
        t = self.Twist()
        t.linear.x, t.angular.z = vx, wz
        sent = time.perf_counter()
        self.cmd.publish(t)
        return sent

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.node.destroy_node()
        import rclpy

        rclpy.shutdown(context=self.context)


def wait_for_images(probe: Probe, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(probe.image_times) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f'only {len(probe.image_times)} images arrived in {timeout} s')
        time.sleep(0.05)


def bench(frames: int, domain: int, rounds: int, drop_stale: bool = True) -> dict[str, float]:
    """Engine alone and node, interleaved in `rounds` blocks (the other one paused), so load swings on a shared
    machine hit both alike; then command-to-image latency through the node (drop_stale: the node's
    drop_stale_frames)."""
    from std_srvs.srv import Trigger

    node = NodeProcess(domain, f'    drop_stale_frames: {str(drop_stale).lower()}\n')
    try:
        probe = Probe(domain)
    except BaseException:
        node.stop()  # not left running on the domain, where the next bench's probe would hear it too
        raise
    try:
        probe.send(0.3)
        wait_for_images(probe, 10, 300)  # model loaded, discovery done, warm
        engine = EngineAlone()
        block = max(1, frames // rounds)
        engine_s = node_s = 0.0
        step_times: list[float] = []
        for _ in range(rounds):
            probe.call(Trigger, '/simulator/pause')
            times = engine.run(block)
            step_times += times
            engine_s += sum(times)
            start = len(probe.image_times)
            t0 = time.perf_counter()
            probe.call(Trigger, '/simulator/resume')
            wait_for_images(probe, start + block, 600)
            node_s += time.perf_counter() - t0
        probe.call(Trigger, '/simulator/pause')
        ms = np.array(step_times) * 1e3
        result = {'frames_each': block * rounds, 'rounds': rounds, 'engine_fps': block * rounds / engine_s,
                  'engine_step_ms_p50': float(np.median(ms)), 'engine_step_ms_p95': float(np.percentile(ms, 95)),
                  'node_fps': block * rounds / node_s}
        del engine  # its memory and threads are not needed for the latency part
        probe.call(Trigger, '/simulator/resume')
        # command-to-image latency: alternate the commanded speed at random moments
        rng = np.random.default_rng(0)
        latencies = []
        for i in range(30):
            vx = 0.2 if i % 2 else 0.4
            time.sleep(rng.uniform(0.05, 0.25))
            sent = probe.send(vx)
            deadline = time.monotonic() + 30
            found = None
            while found is None and time.monotonic() < deadline:
                time.sleep(0.002)
                with probe.lock:
                    for arrival, stamp in probe.image_times[-20:]:
                        if arrival > sent and abs(probe.odom_twist.get(stamp, -1) - vx) < 1e-9:
                            found = arrival
                            break
            if found is not None:
                latencies.append((found - sent) * 1e3)
        diag = probe.diagnostics[-1] if probe.diagnostics else {}
        period_ms = 1e3 / result['node_fps']
        result.update({'drop_stale_frames': drop_stale, 'cmd_to_image_ms_p50': float(np.median(latencies)),
                       'cmd_to_image_ms_p95': float(np.percentile(latencies, 95)), 'latency_samples': len(latencies),
                       'cmd_to_image_periods_p50': float(np.median(latencies)) / period_ms,
                       'stale_frames_dropped': int(diag.get('stale_frames_dropped', '-1')),
                       'node_frame_latency_ms': float(diag.get('frame_latency_ms', 'nan')),
                       'node_engine_latency_ms': float(diag.get('engine_latency_ms', 'nan'))})
        return result
    finally:
        probe.close()
        node.stop()


def soak(frames: int, domain: int, every: int, steps: int) -> list[dict[str, float]]:
    """A tour (forward, turns, back) for `frames` frames; samples RSS, latency and cache every `every` frames."""
    node = NodeProcess(domain, extra=f'    memory: true\n    denoising_steps: {steps}\n')
    try:
        probe = Probe(domain, images=False)
    except BaseException:
        node.stop()
        raise
    samples: list[dict[str, float]] = []
    try:
        t0 = time.perf_counter()
        next_sample = 0
        while True:
            with probe.lock:
                diag = probe.diagnostics[-1] if probe.diagnostics else None
                probe.odom_twist.clear()  # not needed here; keep the probe small
            done = int(diag['frames']) if diag is not None else 0
            phase = (done // 50) % 4  # 5 s of sim time each: forward, left turn, forward, right turn
            probe.send(0.5 if phase % 2 == 0 else 0.1, 0.0 if phase % 2 == 0 else (0.6 if phase == 1 else -0.6))
            if diag is not None and done >= next_sample:
                row = {'frames': done, 'wall_s': time.perf_counter() - t0, 'rss_mib': rss_kib(node.proc.pid) / 1024,
                       'frame_latency_ms': float(diag['frame_latency_ms']),
                       'engine_latency_ms': float(diag['engine_latency_ms']),
                       'fps': float(diag['frames_per_second']), 'cache_mib': int(diag['cache_bytes']) / 2**20}
                samples.append(row)
                print(json.dumps(row), flush=True)
                tmp = OUT / 'soak.json.tmp'
                tmp.write_text(json.dumps(samples, indent=1))
                os.replace(tmp, OUT / 'soak.json')
                next_sample += every
            if done >= frames:
                break
            if node.proc.poll() is not None:
                raise SystemExit(f'the node exited with {node.proc.returncode}; see {OUT}')
            time.sleep(0.2)
    finally:
        probe.close()
        node.stop()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mode', choices=['bench', 'soak'])
    parser.add_argument('--frames', type=int, default=200)
    parser.add_argument('--rounds', type=int, default=4, help='bench: interleaved blocks of engine and node')
    parser.add_argument('--every', type=int, default=500, help='soak: frames between samples')
    parser.add_argument('--steps', type=int, default=0, help="soak: denoising steps (0 = the model's)")
    parser.add_argument('--domain', type=int, default=91, help='ROS_DOMAIN_ID for the node and the probe')
    parser.add_argument('--keep-stale', action='store_true',
                        help='bench: run the node with drop_stale_frames false (a frame in flight always finishes)')
    args = parser.parse_args()
    # SIGTERM (timeout, kill) ends the run through the finally blocks, which stop the node
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    OUT.mkdir(parents=True, exist_ok=True)
    if args.mode == 'bench':
        result = bench(args.frames, args.domain, args.rounds, drop_stale=not args.keep_stale)
        result['overhead'] = 1 - result['node_fps'] / result['engine_fps']
        # the same frames inside the node: engine step vs step + conversions + publishing
        result['publish_overhead'] = 1 - result['node_engine_latency_ms'] / result['node_frame_latency_ms']
        result.update(date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), cpus=os.cpu_count(),
                      load_average=os.getloadavg())
        print(json.dumps(result, indent=1))
        print(f"node overhead: {100 * result['overhead']:.1f}% of engine frames/s (interleaved), "
              f"{100 * result['publish_overhead']:.1f}% of each frame's time inside the node")
        print(f"command to image: p50 {result['cmd_to_image_ms_p50']:.1f} ms = "
              f"{result['cmd_to_image_periods_p50']:.2f} frame periods of the free-running node "
              f"(drop_stale_frames {str(not args.keep_stale).lower()}, "
              f"{result['stale_frames_dropped']} frames dropped)")
        name = 'bench_keep_stale.json' if args.keep_stale else 'bench.json'
        tmp = OUT / f'{name}.tmp'
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, OUT / name)
    else:
        soak(args.frames, args.domain, args.every, args.steps)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
