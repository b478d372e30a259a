"""Streaming benchmark: frames/s, per-chunk latency, latency and cache bytes against rollout length, and the
speedup of cached streaming over recomputing the whole context without a cache.

Run: `worldscape bench --config ws-tiny --device cpu --chunks 1000 --json runs/bench/tiny.json`
or, on a machine with only torch: `PYTHONPATH=. python -m worldscape_ros.model.bench ...`.
With `--sessions 1 8 32`: N sessions over one model stepped together (BatchedEngine), their aggregate frames/s
and each session's latency per step, for each N.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldscape_ros.fileio import atomic_write_json
from worldscape_ros.model.attention import block_causal_mask
from worldscape_ros.model.batched import BatchedEngine
from worldscape_ros.model.camera import plucker_rays
from worldscape_ros.model.config import ModelConfig, load_config
from worldscape_ros.model.dit import Conditioning
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel

log = logging.getLogger(__name__)

MARKS = (1, 10, 100, 1000)
SPEEDUP_AT = 64


def sized(config: ModelConfig, size: str | None) -> ModelConfig:
    if not size:
        return config
    try:
        w, h = (int(v) for v in size.lower().split('x'))
    except ValueError:
        raise ValueError(f'--size must look like 832x480, got {size!r}') from None
    return config.replace(width=w, height=h)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def tour_action(i: int) -> NavAction:
    """A wandering drive so that the global pool sees many distinct views."""
    return NavAction(vx=0.6, yaw_rate=0.8 * math.sin(i / 15.0), pitch_rate=0.1 * math.sin(i / 40.0))


def recompute_latency_ms(model: WorldModel, engine: WorldEngine, chunks: int, repeats: int = 1) -> float:
    """One chunk generated without a cache: every denoising step runs the DiT over all `chunks` earlier chunks
    and the new one under the block-causal mask (what a model without a KV cache must do)."""
    cfg = model.config
    dev = engine.device
    frames = (chunks + 1) * cfg.chunk_frames
    C, h, w = cfg.codec.latent_channels, cfg.latent_height, cfg.latent_width
    x = torch.randn(1, frames, C, h, w, device=dev)
    t = torch.zeros(1, frames, device=dev)
    poses = torch.from_numpy(np.stack([camera_pose(BaseState(x=0.1 * i)) for i in range(frames)])).float().to(dev)
    K = torch.from_numpy(engine.intrinsics).float().to(dev).expand(frames, 3, 3)
    cond = Conditioning(plucker=plucker_rays(poses, K, cfg.height, cfg.width)[None],
                        pose=torch.zeros_like(x), geometry=torch.zeros_like(x), coverage=torch.ones_like(x[:, :, :1]))
    ids = model.dit.chunk_ids(frames, dev)
    mask = block_causal_mask(ids, ids)
    times = []
    with torch.no_grad(), engine._networks():
        for _ in range(repeats + 1):
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(engine.steps):
                t[:, -cfg.chunk_frames:] = 0.5
                model.dit(x, t, cond, mask=mask)
            _sync(dev)
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times[1:])


def made_chunks(engine: WorldEngine, n: int, window: int) -> Iterator[None]:
    """Yield once per chunk made along the tour, as each chunk leaves the rolling denoising window of `window`
    chunks (window 1: what step_chunk makes, as live control)."""
    k = engine.config.frames_per_chunk
    frames = engine.rollout_frames([tour_action(j) for j in range(k, (n + 1) * k)], window=window)
    for i, _ in enumerate(frames, start=1):
        if i % k == 0:
            yield


def open_engine(config: str | None, device: str, dtype: str, size: str | None, checkpoint: str | None, chunks: int,
                threads: int | None) -> WorldEngine:
    """The benched engine: the checkpoint's weights (under `config` when given, else its own), or a random init of
    the (resized) config (default ws-tiny); `chunks` checked and torch's threads set first, as every bench needs."""
    if chunks < 1:
        raise ValueError(f'--chunks must be positive, got {chunks}')
    if threads:
        torch.set_num_threads(threads)
    options = EngineOptions(device=device, dtype=dtype)
    if checkpoint and checkpoint != 'random':
        return WorldEngine.from_pretrained(checkpoint, config, options=options)
    options.torch_device()  # an absent GPU is refused before the model is made
    torch.manual_seed(0)
    return WorldEngine(WorldModel(sized(load_config(config or 'ws-tiny'), size)), options,
                       weights_sha256='random-init')


def start(engine: WorldEngine, seed: int = 0) -> None:
    """Reset from a random first frame at 3 m."""
    cfg = engine.config
    first = np.random.default_rng(seed).integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    engine.reset(first, camera_pose(BaseState(height=cfg.camera_height)),
                 depth=np.full((cfg.height, cfg.width), 3.0, np.float32))


def run_bench(config: str | None, device: str = 'cpu', dtype: str = 'float32', chunks: int = 100,
              size: str | None = None, checkpoint: str | None = None, threads: int | None = None, speedup: bool = True,
              window: int = 1) -> dict[str, Any]:
    if window < 1:
        raise ValueError(f'--window must be >= 1, got {window}')
    engine = open_engine(config, device, dtype, size, checkpoint, chunks, threads)
    cfg = engine.config
    dev = engine.device
    start(engine)
    latencies: list[float] = []
    at_chunk: dict[str, dict[str, float]] = {}
    k = cfg.frames_per_chunk
    warmup = min(3, chunks)
    t_start = 0.0
    passes = [0]  # DiT forwards over the timed chunks: the network evaluations the step pays
    counter = engine.model.dit.register_forward_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))
    _sync(dev)
    t0 = time.perf_counter()
    for i, _ in enumerate(made_chunks(engine, chunks + warmup, window), start=1):
        _sync(dev)
        now = time.perf_counter()
        ms = 1e3 * (now - t0)  # since the previous chunk came out
        t0 = now
        if i == warmup:
            t_start = now
            passes[0] = 0
        n = i - warmup
        if n >= 1:
            latencies.append(ms)
            if n in MARKS:
                at_chunk[str(n)] = {'latency_ms': ms, 'cache_bytes': engine.cache_bytes}
    total = time.perf_counter() - t_start
    counter.remove()
    frames = chunks * k
    result: dict[str, Any] = {
        'config': cfg.name, 'size': f'{cfg.width}x{cfg.height}', 'device': str(dev), 'dtype': dtype,
        'device_name': torch.cuda.get_device_name() if dev.type == 'cuda' else platform.processor() or 'cpu',
        'threads': torch.get_num_threads(), 'torch': torch.__version__, 'params': engine.model.num_parameters(),
        'steps': engine.steps, 'window': window, 'chunks': chunks, 'frames_per_chunk': k,
        'fps': frames / total, 'pixels_per_s': frames * cfg.width * cfg.height / total,
        'latency_ms_p50': float(np.percentile(latencies, 50)), 'latency_ms_p95': float(np.percentile(latencies, 95)),
        'latency_ms_mean': float(np.mean(latencies)), 'at_chunk': at_chunk,
        'cache_bytes_final': engine.cache_bytes,
        # the teacher takes teacher_steps passes over every chunk
        'dit_passes_per_frame': passes[0] / frames,
        'nfe_reduction': cfg.sampler.teacher_steps * chunks / max(passes[0], 1),
        'date': dt.datetime.now(dt.UTC).isoformat(timespec='seconds'),
    }
    if len(latencies) >= 10:
        result['latency_ratio_last_over_10'] = latencies[-1] / latencies[9]
        tail = latencies[-10:]
        result['latency_ratio_last10_over_chunk10'] = statistics.median(tail) / statistics.median(latencies[5:15])
    if speedup:
        cached = statistics.median(latencies[max(0, SPEEDUP_AT - 5):SPEEDUP_AT + 5]) if len(latencies) >= SPEEDUP_AT \
            else statistics.median(latencies)
        full = recompute_latency_ms(engine.model, engine, SPEEDUP_AT)
        result['recompute_latency_ms_at_64'] = full
        result['cached_latency_ms_at_64'] = cached
        result['streaming_speedup_at_64'] = full / cached
    return result


def run_sessions_bench(config: str | None, sessions: Sequence[int], device: str = 'cpu', dtype: str = 'float32',
                       chunks: int = 30, size: str | None = None, checkpoint: str | None = None,
                       threads: int | None = None) -> dict[str, Any]:
    """For each N of `sessions`: N sessions over one model, each driving its own phase of the tour, stepped
    together `chunks` times after 3 of warm-up. Aggregate frames/s (all sessions) and the per-session latency of
    a step (every session's frame comes out when the batch's step ends)."""
    if not sessions or min(sessions) < 1:
        raise ValueError(f'--sessions must be one or more counts >= 1, got {list(sessions)}')
    engine = open_engine(config, device, dtype, size, checkpoint, chunks, threads)
    cfg = engine.config
    k = cfg.frames_per_chunk
    runs = []
    for n in sessions:
        batch = BatchedEngine.over(engine.model, n, engine.options, weights_sha256=engine.sha256)
        for i, session in enumerate(batch.sessions):
            start(session, seed=i)
        latencies, cpu = [], 0.0
        for c in range(3 + chunks):
            acts = [[tour_action(c * k + j + 37 * i) for j in range(k)] for i in range(n)]
            _sync(engine.device)
            t0, c0 = time.perf_counter(), time.process_time()
            batch.step_chunk(acts)
            _sync(engine.device)
            if c >= 3:
                latencies.append(1e3 * (time.perf_counter() - t0))
                cpu += time.process_time() - c0
        total = sum(latencies) / 1e3
        # CPU seconds of all threads per frame: the work done, less sensitive than wall time to a shared machine
        runs.append({'sessions': n, 'fps': n * chunks * k / total, 'fps_per_session': chunks * k / total,
                     'latency_ms_p50': float(np.percentile(latencies, 50)),
                     'latency_ms_p95': float(np.percentile(latencies, 95)),
                     'cpu_ms_per_frame': 1e3 * cpu / (n * chunks * k)})
        del batch
    one = next((r['fps'] for r in runs if r['sessions'] == 1), None)
    for r in runs:
        if one:
            r['fps_over_one_session'] = r['fps'] / one
    return {'config': cfg.name, 'size': f'{cfg.width}x{cfg.height}', 'device': str(engine.device), 'dtype': dtype,
            'device_name': (torch.cuda.get_device_name() if engine.device.type == 'cuda'
                            else platform.processor() or 'cpu'),
            'threads': torch.get_num_threads(), 'torch': torch.__version__, 'steps': engine.steps,
            'chunks': chunks, 'frames_per_chunk': k, 'weights': engine.sha256, 'runs': runs,
            'date': dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}


def sessions_lines(r: dict[str, Any]) -> list[str]:
    head = f"{r['config']} {r['size']} {r['device']} {r['dtype']} x{r['threads']}"
    lines = []
    for run in r['runs']:
        line = (f"{head}, {run['sessions']} sessions: {run['fps']:.2f} frames/s aggregate "
                f"({run['fps_per_session']:.2f} per session), per-session latency p50 {run['latency_ms_p50']:.1f} ms "
                f"p95 {run['latency_ms_p95']:.1f} ms, {run['cpu_ms_per_frame']:.1f} CPU ms per frame")
        if 'fps_over_one_session' in run:
            line += f", {run['fps_over_one_session']:.2f}x one session"
        lines.append(line)
    return lines


def summary_line(r: dict[str, Any]) -> str:
    s = (f"{r['config']} {r['size']} {r['device']} {r['dtype']} x{r['threads']} window {r.get('window', 1)}: "
         f"{r['fps']:.2f} frames/s, "
         f"chunk p50 {r['latency_ms_p50']:.1f} ms p95 {r['latency_ms_p95']:.1f} ms, "
         f"cache {r['cache_bytes_final'] / 2**20:.1f} MiB")
    if 'dit_passes_per_frame' in r:
        s += (f", DiT passes per frame {r['dit_passes_per_frame']:.2f} "
              f"({r['nfe_reduction']:.1f}x fewer than the teacher)")
    if 'streaming_speedup_at_64' in r:
        s += f", streaming speedup at 64: {r['streaming_speedup_at_64']:.1f}x"
    return s


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--config', default=None, help="model config name or YAML path (default: the checkpoint's, or "
                   'ws-tiny for a random init)')
    p.add_argument('--checkpoint', default=None, help="weights (default: random init; 'random' explicitly)")
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16', 'float16'))
    p.add_argument('--chunks', type=int, default=None,
                   help='chunks to stream (default 100; marks at 1, 10, 100, 1000), or steps of each --sessions run '
                   '(default 30)')
    p.add_argument('--size', default=None, help='override the image size, e.g. 832x480')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--no-speedup', action='store_true', help='skip the recompute-the-context comparison')
    p.add_argument('--window', type=int, default=1,
                   help='1: step chunk by chunk (live control); W > 1: the tour through the rolling denoising '
                   'window of W chunks (known ahead), timed as each chunk leaves it')
    p.add_argument('--sessions', type=int, nargs='+', default=None, metavar='N',
                   help='bench N sessions over one model stepped together (batched), for each N given: aggregate '
                   'frames/s and per-session latency (--chunks steps each, default 30)')
    p.add_argument('--json', type=Path, default=None, help='write every figure to this JSON file')


def run_from_args(args: argparse.Namespace) -> int:
    if args.sessions:
        rs = run_sessions_bench(args.config, args.sessions, args.device, args.dtype,
                                30 if args.chunks is None else args.chunks, args.size, args.checkpoint, args.threads)
        print('\n'.join(sessions_lines(rs)))
        if args.json:
            atomic_write_json(args.json, rs)
            print(f'wrote {args.json}')
        return 0
    r = run_bench(args.config, args.device, args.dtype, 100 if args.chunks is None else args.chunks, args.size,
                  args.checkpoint, args.threads, speedup=not args.no_speedup, window=args.window)
    print(summary_line(r))
    for n, m in r['at_chunk'].items():
        print(f"  chunk {n:>5}: {m['latency_ms']:.1f} ms, cache {m['cache_bytes'] / 2**20:.2f} MiB")
    if args.json:
        atomic_write_json(args.json, r)
        print(f'wrote {args.json}')
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog='python -m worldscape_ros.model.bench', description=__doc__)
    add_arguments(parser)
    return run_from_args(parser.parse_args())


if __name__ == '__main__':
    raise SystemExit(main())
