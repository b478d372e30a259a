"""Giving up a live step that a newer command has made stale, before it changes the session.

A live front (the ROS node) steps the engine with the latest command. When a different command arrives while a
frame is being made, finishing that frame and then making the next keeps the robot waiting up to two frame
times. So the front may pass `stale` to a step: the engine asks it between the stages of the step (after the
render, the encode, the DiT pass, the decode and the forming of the output) and, while nothing is committed to
the scene or KV memories, undoes what the step changed and raises FrameAbandoned. What a step changes before it
commits: the base state (kinematics), the sampling generator, the last geometric guess and a carried object's
motion. A step whose hand grasped or released moved points between the scene and the hand: it commits whatever
`stale` says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldscape_ros.model.frames import GeometricGuess
from worldscape_ros.model.kinematics import BaseState


class FrameAbandoned(Exception):
    """A step given up because its command went stale; the session is as it was before the step."""


@dataclass(frozen=True)
class UndoPoint:
    """What a step may change before it commits, as it was when the step began (WorldEngine._give_up_if_stale
    puts it back)."""

    state: BaseState
    generator: torch.Tensor  # the sampling generator's state
    guess: GeometricGuess | None
    grasp_closed: bool  # once the step's hand grasps or releases, points have moved: the step commits
    held_motion: np.ndarray | None  # (4, 4) of the object in the hand, or None
