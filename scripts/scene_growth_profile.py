#!/usr/bin/env python
"""Where the per-frame time that grows over a long tour goes: the scene memory's commit and render, timed over
frames 10-19 and 990-999 of `worldscape bench`'s tour with the shipped ws-tiny (2 threads).

    OMP_NUM_THREADS=2 .venv/bin/python scripts/scene_growth_profile.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

import worldscape_ros.model.scene_memory as scene_memory
from worldscape_ros.model import bench
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions

WINDOWS = {'frames 10-19': range(10, 20), 'frames 990-999': range(990, 1000)}

spent = {'commit': 0.0, 'render': 0.0}


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
        spent.update(commit=0.0, render=0.0)
        t0 = time.perf_counter()
        for _ in frames:
            engine.step(bench.tour_action(engine.frame_index))
        n = len(frames)
        step_ms = 1e3 * (time.perf_counter() - t0) / n
        print(f'{label}: step {step_ms:.1f} ms, scene commit {1e3 * spent["commit"] / n:.1f} ms, '
              f'render {1e3 * spent["render"] / n:.1f} ms, {len(engine.scene) / 1e3:.0f} k points held')


if __name__ == '__main__':
    main()
