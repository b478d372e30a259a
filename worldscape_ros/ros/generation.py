"""The simulator's generation loop: one inference thread apart from the ROS executor, free running (paced to
fps against the wall clock, or as fast as it can) or paused, when frames come only from ~/step requests.

The loop knows nothing of ROS: it calls `generate` for each engine step and reports through callbacks, so the
executor's callbacks (commands, services, lifecycle transitions) stay responsive while a step runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worldscape_ros.ros.sim_clock import SimClock
from worldscape_ros.ros.supervision import ErrorLog, GenerationFailed, StepSupervisor

PAUSE_WAIT_S = 10.0  # pause() waits at most this long for the frame in flight
MAX_CONSECUTIVE_FAILURES = 3  # frames in a row that fail outside the engine step before the loop gives up
IDLE_PERIOD_S = 0.5  # while paused, `idle` runs this often


class StepRefused(Exception):
    """A request for frames the loop cannot take now (not running, not paused, or a count out of range)."""


@dataclass
class StepWaiter:
    """A ~/step request for `n` frames, which begin once the node has generated `first` frames."""

    first: int
    n: int
    done: threading.Event
    future: Any  # rclpy Future the async service callback awaits, or None without an executor
    cancelled: str = ''  # why the request ended early
    finished_at: int = -1  # the node's frame count when the request ended

    @property
    def target(self) -> int:
        return self.first + self.n

    @property
    def generated(self) -> int:
        return max(0, min(self.finished_at - self.first, self.n))


class GenerationLoop:
    """The inference thread and its pause, step and stop signals.

    generate: one engine step and its frames out (each frame ticks `clock`); idle: runs every IDLE_PERIOD_S
    while paused; fail: the thread is ending for good, with the cause; begin: runs first in each new thread
    (failing like a step that raises GenerationFailed). A `generate` that raises
    GenerationFailed ends the thread at once; other exceptions are logged, noted on `supervisor`, and end it
    after MAX_CONSECUTIVE_FAILURES in a row.
    """

    def __init__(self, generate: Callable[[], None], clock: SimClock, supervisor: StepSupervisor, logger: ErrorLog,
                 idle: Callable[[], None], fail: Callable[[str], None],
                 begin: Callable[[], None] = lambda: None) -> None:
        self._generate = generate
        self._begin = begin
        self._clock = clock
        self._supervisor = supervisor
        self._logger = logger
        self._idle = idle
        self._fail = fail
        self.realtime = True  # pace free running to the clock's fps
        self._cond = threading.Condition()  # pause / step / stop
        self._thread: threading.Thread | None = None
        self._stop = False
        self._paused = False
        self._steps_pending = 0
        self._generating = False  # a frame is being generated or published
        self._waiters: list[StepWaiter] = []

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def has_thread(self) -> bool:
        """A thread was started and not stopped (it may have ended on a failure)."""
        return self._thread is not None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # ---- control, from the executor ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread (after joining one that ended on a failure)."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._cond:
            self._stop = False
        self._thread = threading.Thread(target=self._run, name='worldscape-inference', daemon=True)
        self._thread.start()

    def set_paused(self, paused: bool) -> None:
        with self._cond:
            self._paused = paused
            self._cond.notify_all()

    def stop(self, reason: str) -> None:
        """Stop and join the thread; the step requests in flight end, cancelled with `reason`."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if thread is not threading.current_thread():
            thread.join()
        self._thread = None
        self.finish_steps(cancel=f'cancelled: {reason}')

    def pause(self) -> bool:
        """Stop generating; returns once the frame in flight is out (False: it still was after PAUSE_WAIT_S), so
        no frame follows. Pending steps are dropped; the caller ends their requests."""
        with self._cond:
            self._paused = True
            self._steps_pending = 0
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._generating, timeout=PAUSE_WAIT_S)

    def resume(self) -> None:
        self.set_paused(False)

    def request(self, n: int, max_frames: int, future: Any = None) -> StepWaiter:
        """Queue `n` frames while paused; raises StepRefused saying why it cannot."""
        with self._cond:
            if self._thread is None:
                raise StepRefused('not active: activate the node first')
            if not self._paused:
                raise StepRefused('not paused: call ~/pause first')
            if not 1 <= n <= max_frames:
                raise StepRefused(f'frames={n} must be in [1, max_step_frames={max_frames}]')
            waiter = StepWaiter(self._clock.frames + self._steps_pending, n, threading.Event(), future)
            self._steps_pending += n
            self._waiters.append(waiter)
            self._cond.notify_all()
        self.finish_steps()
        return waiter

    def finish_steps(self, cancel: str = '') -> None:
        """Complete the step requests whose frames are generated, or all of them with `cancel` as the reason
        (and no frames left pending)."""
        with self._cond:
            frames = self._clock.frames
            if cancel:
                finished, self._waiters = self._waiters, []
                self._steps_pending = 0
            else:
                finished = [w for w in self._waiters if frames >= w.target]
                self._waiters = [w for w in self._waiters if w not in finished]
            for w in finished:
                w.finished_at = frames
                w.cancelled = cancel if frames < w.target else ''
        for w in finished:
            w.done.set()
            if w.future is not None and not w.future.done():
                w.future.set_result(True)

    # ---- the thread --------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._begin()
            self._loop()
        except BaseException as exc:  # whatever ends the thread must reach the log and the lifecycle
            cause = exc.args[0] if isinstance(exc, GenerationFailed) else f'inference thread stopped: {exc!r}'
            self._fail(cause)

    def _loop(self) -> None:
        clock = self._clock
        wall0, frame0 = time.monotonic(), clock.frames
        failures = 0
        while True:
            with self._cond:
                while not self._stop and self._paused and self._steps_pending == 0:
                    self._cond.wait(IDLE_PERIOD_S)
                    self._idle()
                if self._stop:
                    return
                stepping = self._paused
                if stepping:
                    self._steps_pending -= 1
                elif self._steps_pending:
                    self._steps_pending = 0  # resumed: pending steps are absorbed by free running
                self._generating = True
            try:
                self._generate()
                failures = 0
            except GenerationFailed:
                raise
            except Exception as exc:  # publishing or bookkeeping after the step; bounded below
                failures += 1
                self._supervisor.note(f'frame failed: {exc!r}')
                self._logger.error(f'frame {clock.frames + 1} failed after the engine step ({exc!r}); '
                                   f'{failures} in a row')
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise GenerationFailed(f'{failures} frames in a row failed, the last with {exc!r}') from exc
            finally:
                with self._cond:
                    self._generating = False
                    self._cond.notify_all()
            self.finish_steps()
            if self.realtime and not stepping:
                # pace to fps against a wall clock anchor; after falling behind, re-anchor instead of bursting
                target = wall0 + (clock.frames - frame0) / clock.fps
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -1.0 / clock.fps:
                    wall0, frame0 = time.monotonic(), clock.frames
            else:
                wall0, frame0 = time.monotonic(), clock.frames
