"""What an engine takes from its caller, checked before anything moves: the start of a session (frame, pose,
intrinsics, depth), one frame's action, and the hand keypoints of a chunk or of a trajectory. Bad input is one
ValueError naming the argument and what was wrong with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from worldscape_ros.model import hands
from worldscape_ros.model.camera import check_intrinsics, check_rigid
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.model.protocol import Action


def checked_action(action: Action) -> NavAction | np.ndarray:
    """One frame's action as the engine takes it: a NavAction (None: stand still) or a (4, 4) target pose;
    bad values raise ValueError before anything moves."""
    if action is None:
        return NavAction()
    if isinstance(action, np.ndarray) and action.shape == (4, 4):
        check_rigid(action, name='action (target pose)')
        return action.astype(np.float64)
    if not isinstance(action, NavAction):
        action = NavAction.from_array(np.asarray(action, dtype=np.float64))
    return action


def checked_start(cfg: ModelConfig, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray | None,
                  depth: np.ndarray | None, hand_keypoints: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """A session's start: the frame (H, W, 3) uint8, its camera pose (rigid), intrinsics (3, 3) or None (the
    engine's own), metric depth (H, W) or None (the model's) and the (21, 3) keypoints of a hand in the frame or
    None -> (frame, intrinsics, depth, hand keypoints) as arrays."""
    frame = np.asarray(first_frame)
    if frame.dtype != np.uint8:
        raise ValueError(f'first_frame must be uint8 RGB, got dtype {frame.dtype}')
    if frame.shape != (cfg.height, cfg.width, 3):
        raise ValueError(f'first_frame must have shape ({cfg.height}, {cfg.width}, 3), got {frame.shape}')
    check_rigid(np.asarray(pose, dtype=np.float64), name='pose')
    if intrinsics is not None:
        check_intrinsics(intrinsics)
        intrinsics = np.asarray(intrinsics, dtype=np.float64)
    if depth is not None:
        depth = np.asarray(depth)
        if depth.shape != (cfg.height, cfg.width):
            raise ValueError(f'depth must have shape ({cfg.height}, {cfg.width}), got {depth.shape}')
    kp = None if hand_keypoints is None else hands.validate_keypoints(hand_keypoints)
    return frame, intrinsics, depth, kp


def chunk_keypoints(frames: int, actions: Sequence[Any], hand_keypoints: Sequence[np.ndarray | None] | None
                    ) -> list[np.ndarray | None]:
    """A chunk's hand keypoints, one (21, 3) array or None per frame, checked with the number of its actions
    (`frames`, one per frame); hand_keypoints None: no hand in the chunk."""
    if len(actions) != frames:
        raise ValueError(f'actions must hold {frames} entries (one per frame of a chunk), got {len(actions)}')
    given = list(hand_keypoints) if hand_keypoints is not None else [None] * frames
    if len(given) != frames:
        raise ValueError(f'hand_keypoints must hold {frames} entries, got {len(given)}')
    return [None if kp is None else hands.validate_keypoints(kp) for kp in given]


def trajectory_keypoints(frames: int, actions: Sequence[Any], hand_keypoints: Sequence[np.ndarray | None] | None
                         ) -> list[np.ndarray | None]:
    """A trajectory's hand keypoints, one entry per action (None: no hand anywhere), checked with its actions:
    a whole number of chunks of `frames` frames (each chunk's entries are checked as it is cut)."""
    if len(actions) % frames:
        raise ValueError(f'actions must hold a multiple of {frames} entries (whole chunks), got {len(actions)}')
    given: list[np.ndarray | None] = list(hand_keypoints) if hand_keypoints is not None else [None] * len(actions)
    if len(given) != len(actions):
        raise ValueError(f'hand_keypoints must hold one entry per action ({len(actions)}), got {len(given)}')
    return given
