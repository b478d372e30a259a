"""The supervisor of engine steps: a step that raises is logged with its cause, its inputs are dropped and the
session stands still for that frame; when even that fails, the session restarts from its start. Only when
that fails too does generation stop (GenerationFailed). The counts go to /diagnostics."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from worldscape_ros.model.kinematics import BaseState, NavAction
from worldscape_ros.model.protocol import Action, LiveEngine
from worldscape_ros.ros.inbox import Throttle

if TYPE_CHECKING:
    from worldscape_ros.model.engine import Frame


class ErrorLog(Protocol):
    """A logger's error level (rclpy's or the logging module's)."""

    def error(self, msg: str, /) -> object: ...


class GenerationFailed(Exception):
    """The inference thread cannot go on: a step failed and so did every recovery."""


class StepSupervisor:
    """Runs engine steps and recovers from the ones that raise; counts what happened."""

    def __init__(self, logger: ErrorLog, warn: Throttle) -> None:
        self._logger = logger
        self._warn = warn
        self.failed_steps = 0  # engine steps that raised
        self.recovered_steps = 0  # ... after which a stand-still frame went out
        self.resets_after_failure = 0  # ... after which the session restarted from its start
        self.last_failure: tuple[float, str] = (-math.inf, '')  # (monotonic time, what happened)

    def note(self, message: str) -> None:
        """A failure the frame survived (for /diagnostics' WARN)."""
        self.last_failure = (time.monotonic(), message)

    @staticmethod
    def step(engine: LiveEngine, motion: Action, hands: np.ndarray | None, k: int,
             stale: Callable[[], bool] | None = None) -> list[Frame]:
        """One chunk of `k` frames; a command holds over the chunk. stale: as the engine's step takes it (a step
        it gives up raises FrameAbandoned, which is no failure)."""
        if k == 1:
            return [engine.step(motion, hands, stale)]
        return list(engine.step_chunk([motion] * k, [hands] * k, stale))

    def recover(self, engine: LiveEngine, exc: Exception, prev: BaseState, k: int, reset: Callable[[], None],
                drop_inputs: Callable[[], None]) -> list[Frame]:
        """A step raised: drop the inputs, undo its motion and stand still for this chunk; if even that fails,
        `reset` the session to its start. Logged once per warning period with the cause (a restart always)."""
        self.failed_steps += 1
        drop_inputs()
        cause = f'{type(exc).__name__}: {exc}'
        try:
            engine.state = prev
            frames = self.step(engine, NavAction(), None, k)
            self.recovered_steps += 1
            outcome, restarted = 'dropped the inputs and stood still for this frame', False
        except Exception as again:  # the session's state is corrupt: back to its start
            try:
                reset()
                frames = self.step(engine, NavAction(), None, k)
            except Exception as last:
                raise GenerationFailed(f'step failed ({cause}); standing still failed ({again!r}) and so did a '
                                       f'reset to the start ({last!r})') from last
            self.resets_after_failure += 1
            restarted = True
            outcome = f'standing still failed too ({type(again).__name__}: {again}); reset to the start'
        message = f'step failed ({cause}): {outcome}'
        self.note(message)
        if restarted or self._warn('step failed'):  # a restart of the session is always said; stand-stills throttled
            self._logger.error(f'{message} [{self.failed_steps} failed steps so far]')
        return frames
