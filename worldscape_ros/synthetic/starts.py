"""A start from a synthetic scene: the renderer's first view of a scene (RGB, depth, camera, and on a table the hand
in it) for an engine to reset from. It lives beside the renderer, so the torch-only model never imports MuJoCo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from worldscape_ros.synthetic.episodes import manip_episode, nav_episode

if TYPE_CHECKING:
    from worldscape_ros.model.engine import Frame
    from worldscape_ros.model.protocol import StreamingEngine


@dataclass
class SceneStart:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres
    pose: np.ndarray  # (4, 4) camera-to-world, OpenCV axes
    intrinsics: np.ndarray  # (3, 3)
    hand_keypoints: np.ndarray | None  # (21, 3) of the hand in view (a table), else None


def scene_start(seed: int, scene_kind: str, width: int, height: int, fps: float) -> SceneStart:
    """The first view of scene `scene_kind` ('room', 'yard', ... or 'table') made from `seed`."""
    if scene_kind == 'table':
        ep = manip_episode(seed, 'reach', 1, width, height, fps)
    else:
        ep = nav_episode(seed, 'idle', 1, width, height, fps, scene_kind=scene_kind)
    hand = None if ep.keypoints3d is None else ep.keypoints3d[0]
    return SceneStart(ep.rgb[0], ep.depth[0], ep.poses[0], ep.intrinsics, hand)


def start_from_scene(engine: StreamingEngine, seed: int, scene_kind: str = 'room') -> Frame:
    """Reset `engine` from the first view of a synthetic scene (the renderer makes only this frame) and return
    frame 0. A hand in the view is not static scene: the engine keeps its region out of the scene memory."""
    cfg = engine.config
    start = scene_start(seed, scene_kind, cfg.width, cfg.height, cfg.fps)
    return engine.reset(start.rgb, start.pose, start.intrinsics, start.depth, hand_keypoints=start.hand_keypoints)
