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

from collections.abc import Callable

import torch

from worldscape_ros.model.frames import GeometricGuess
from worldscape_ros.model.grasp import GraspTracker
from worldscape_ros.model.kinematics import BaseState


class FrameAbandoned(Exception):
    """A step given up because its command went stale; the session is as it was before the step."""


class StaleCheck:
    """A live step's stale check, with what the step may change before it commits as it was when the step began:
    the base state and last guess (which the engine sets back from here), the sampling generator and a carried
    object's motion (put back in place)."""

    def __init__(self, stale: Callable[[], bool], state: BaseState, generator: torch.Generator,
                 guess: GeometricGuess | None, grasp: GraspTracker) -> None:
        self._stale, self._generator, self._grasp = stale, generator, grasp
        self.state, self.guess = state, guess
        self._generator_state = generator.get_state()
        self._closed = grasp.closed  # once the step's hand grasps or releases, points have moved: it commits
        self._held_motion = None if grasp.held is None else grasp.held.motion  # (4, 4), or None

    def fired(self) -> bool:
        """The step's command went stale and the step can still be undone."""
        return self._grasp.closed == self._closed and self._stale()

    def undo(self) -> None:
        """Put the generator and a carried object's motion back (the caller sets back `state` and `guess`)."""
        self._generator.set_state(self._generator_state)
        if self._grasp.held is not None and self._held_motion is not None:
            self._grasp.held.motion = self._held_motion
