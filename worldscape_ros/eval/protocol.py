"""The protocol every system under test implements (the world engine and the baselines).

`Frame` comes from the engine (model/engine.py) once it exists; until then an identical stand-in keeps the
evaluation importable and testable on the baselines. `reset` may return frame 0: the start frame with the depth
the system works from (given, or, for an RGB-only start, its own prediction), which `--rgb-only` scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from worldscape_ros.model.kinematics import NavAction

try:
    from worldscape_ros.model.engine import Frame
except ImportError:  # the engine has not landed: the same fields, so results do not depend on which is used

    @dataclass
    class Frame:  # type: ignore[no-redef]
        rgb: np.ndarray  # (H, W, 3) uint8
        depth: np.ndarray  # (H, W) float32 metres
        pose: np.ndarray  # (4, 4) float64 camera-to-world, OpenCV axes
        index: int  # frames since reset, first generated = 1
        latency_ms: float = 0.0
        pose_video: np.ndarray | None = None


@runtime_checkable
class WorldSystem(Protocol):
    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame | None: ...

    def step(self, action: NavAction | np.ndarray, hand_keypoints: np.ndarray | None = None) -> Frame: ...


__all__ = ['Frame', 'WorldSystem']
