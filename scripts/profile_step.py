#!/usr/bin/env python
"""Where a live step's time goes: the shipped ws-tiny stepped frame by frame (`step`, as the node does) through one
eval scenario from its true start frame and depth, the steps after a warm-up under cProfile. Prints the wall time
per step, the CPU time of each stage (cumulative time of the engine's functions named in STAGES) and the CPU time
by kind of code (self time: torch operator calls, numpy, OpenCV, our Python, waits on the device). On a GPU the
copies to the host wait for the kernels queued before them, so "device waits" holds GPU time the CPU did not hide.

    .venv/bin/python scripts/profile_step.py [--device cuda] [--scenario revisit/turn_540_90043] [--json F]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

import numpy as np
import torch

from worldscape_ros.eval.baselines import model_system
from worldscape_ros.eval.ground_truth import ground_truth
from worldscape_ros.eval.runner import drive_command
from worldscape_ros.eval.suites import load_suite

# (label, file suffix, function name): a stage's CPU time is its function's cumulative time
STAGES = [
    ('step (all)', 'model/engine.py', 'step'),
    ('geometric guess: scene render', 'model/scene_memory.py', 'render'),
    ('geometric guess: surface repeats', 'model/guess.py', 'repeated'),
    ('denoise: DiT forward', 'model/dit.py', 'forward'),
    ('codec decode', 'model/codec.py', 'decode'),
    ('codec encode', 'model/codec.py', 'encode'),
    ('refiner', 'model/refiner.py', 'refine'),
    ('scene memory commit', 'model/scene_memory.py', 'commit'),
]


def kind(key: tuple[str, int, str]) -> str:
    """The kind of code a profiled function is, from its file and name."""
    file, _, name = key
    if file == '~':  # a built-in: torch operators, numpy and OpenCV functions, device copies
        if "method 'cpu'" in name or "method 'item'" in name or "method 'numpy'" in name or 'synchronize' in name:
            return 'device waits (copies to the host, .item, synchronize)'
        if ' ' not in name:  # '<inpaint>': a function of a C extension, here OpenCV's
            return 'OpenCV'
        if 'numpy' in name or 'ndarray' in name:
            return 'numpy'
        if 'torch' in name or 'Tensor' in name:
            return 'torch operators (launch and CPU kernels)'
        return 'other built-ins'
    if 'worldscape_ros' in file:
        return 'our Python'
    if '/torch/' in file:
        return 'torch Python (modules, autocast, dispatch)'
    if '/numpy/' in file:
        return 'numpy'
    return 'other Python'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--scenario', default='revisit/turn_540_90043', help='suite/name of an eval scenario')
    p.add_argument('--warmup', type=int, default=10, help='steps before the profile')
    p.add_argument('--top', type=int, default=12, help='list this many functions by self time')
    p.add_argument('--json', type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    suite_name, name = args.scenario.split('/')
    scenario = next(s for s in load_suite(suite_name).scenarios if s.name == name)
    gt = ground_truth(scenario)
    engine = model_system(device=args.device, dtype=args.dtype)
    engine.reset(gt.rgb[0], gt.poses[0], gt.intrinsics, gt.depth[0])
    commands = [drive_command(gt, t, scenario.kind) for t in range(1, gt.frames)]
    sync = torch.cuda.synchronize if args.device == 'cuda' else (lambda: None)
    for cmd in commands[:args.warmup]:
        engine.step(cmd)
    sync()
    walls = []
    profile = cProfile.Profile()
    for cmd in commands[args.warmup:]:
        t0 = time.perf_counter()
        profile.enable()
        engine.step(cmd)
        sync()
        profile.disable()
        walls.append(1e3 * (time.perf_counter() - t0))
    n = len(walls)
    raw = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    stages = {}
    for label, suffix, func in STAGES:
        # the outermost of same-named functions in the file (a DiT's forward calls its blocks' forwards)
        cum = max((v[3] for k, v in raw.items() if k[0].endswith(suffix) and k[2] == func), default=0.0)
        stages[label] = 1e3 * cum / n
    kinds: dict[str, float] = {}
    for key, v in raw.items():
        kinds[kind(key)] = kinds.get(kind(key), 0.0) + 1e3 * v[2] / n
    result = {'device': args.device, 'dtype': args.dtype, 'threads': args.threads, 'scenario': args.scenario,
              'steps': n, 'wall_ms_mean': float(np.mean(walls)), 'wall_ms_p50': float(np.median(walls)),
              'stage_cpu_ms': stages, 'kind_cpu_ms': dict(sorted(kinds.items(), key=lambda kv: -kv[1]))}
    if args.device == 'cuda':
        result['gpu'] = torch.cuda.get_device_name()
    print(f'{args.scenario} on {args.device} ({args.dtype}, {args.threads} threads): {n} profiled steps, wall '
          f'{result["wall_ms_mean"]:.1f} ms a step (p50 {result["wall_ms_p50"]:.1f}; cProfile adds its own)')
    print('stage (cumulative CPU ms a step):')
    for label, ms in stages.items():
        print(f'  {label:40s} {ms:7.2f}')
    print('by kind of code (self CPU ms a step):')
    for label, ms in result['kind_cpu_ms'].items():
        print(f'  {label:58s} {ms:7.2f}')
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:args.top]
    result['top_self_cpu_ms'] = {f'{Path(k[0]).name}:{k[1]} {k[2]}': 1e3 * v[2] / n for k, v in top}
    print(f'top {args.top} functions (self CPU ms a step):')
    for label, ms in result['top_self_cpu_ms'].items():
        print(f'  {label[:70]:70s} {ms:7.2f}')
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
