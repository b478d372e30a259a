#!/usr/bin/env python
"""Where the per-frame time that grows over a long tour goes: the scene memory's commit and render, timed over
frames 10-19 and 990-999 of `worldscape bench`'s tour with the shipped ws-tiny (2 threads). Per frame: the mean,
and the median and the slowest frame (the side store's joins and the prune land on a few frames).

    OMP_NUM_THREADS=2 .venv/bin/python scripts/scene_growth_profile.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import worldscape_ros.model.scene_memory as scene_memory
from worldscape_ros.model import bench
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions

WINDOWS = {'frames 10-19': range(10, 20), 'frames 990-999': range(990, 1000)}

spent = {'commit': 0.0, 'render': 0.0}  # this frame's


def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - t0
    return wrapper


def main() -> None:
    torch.set_num_threads(2)
    scene_memory.SceneMemory.commit = timed('commit', scene_memory.SceneMemory.commit)  # type: ignore[method-assign]
    scene_memory.SceneMemory.render = timed('render', scene_memory.SceneMemory.render)  # type: ignore[method-assign]
    engine = WorldEngine.from_pretrained(None, None, EngineOptions())
    bench.start(engine)
    for label, frames in WINDOWS.items():
        while engine.frame_index < frames.start:  # driven up to the window unmeasured
            engine.step(bench.tour_action(engine.frame_index))
        per_frame: dict[str, list[float]] = {'step': [], 'commit': [], 'render': []}
        for _ in frames:
            spent.update(commit=0.0, render=0.0)
            t0 = time.perf_counter()
            engine.step(bench.tour_action(engine.frame_index))
            per_frame['step'].append(time.perf_counter() - t0)
            per_frame['commit'].append(spent['commit'])
            per_frame['render'].append(spent['render'])
        shown = ', '.join(f'{name} {1e3 * statistics.mean(t):.1f} ms (median {1e3 * statistics.median(t):.1f}, '
                          f'max {1e3 * max(t):.1f})' for name, t in per_frame.items())
        print(f'{label}: {shown}, {len(engine.scene) / 1e3:.0f} k points held')


if __name__ == '__main__':
    main()
