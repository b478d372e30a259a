"""The protocol every system under test implements (the world engine and the baselines).

`Frame` is the engine's own (model/frames.py, data only: importing it brings no ROS or MuJoCo), so the
baselines' frames and the engine's are one type. `reset` may return frame 0: the start frame with the depth the
system works from (given, or, for an RGB-only start, its own prediction), which `--rgb-only` scores.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from worldscape_ros.model.frames import Frame
from worldscape_ros.model.kinematics import NavAction


@runtime_checkable
class WorldSystem(Protocol):
    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame | None: ...

    def step(self, action: NavAction | np.ndarray, hand_keypoints: np.ndarray | None = None) -> Frame: ...


__all__ = ['Frame', 'WorldSystem']
