"""`worldscape play`: an engine of its own, driven from the page (or a script) one frame at a time, its frames
shown live. The Controller the page calls is this session: commands are held (latest wins), pause stops
generation, step makes N frames while paused, reset goes back to the start.

One generation thread owns the engine; the page's callbacks (viser's thread pool) only change the held command
or the state under a condition variable, so a click never waits for a frame.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.model.protocol import Action, ViewedEngine, frames_per_step
from worldscape_ros.tools.rollout import Start, start_session
from worldscape_ros.tools.scripts import ActionScript
from worldscape_ros.viewer import ViewerError
from worldscape_ros.viewer.viewer import FrameView, MemoryView, WorldViewer

if TYPE_CHECKING:
    from worldscape_ros.model.engine import Frame

log = logging.getLogger(__name__)


def memory_view(engine: ViewedEngine) -> MemoryView:
    """The engine's memory as the viewer draws it (read only: poses, counts and bytes of the held chunks)."""
    memory = engine.memory
    entries = [*memory.sink, *memory.pool, *memory.window]
    return MemoryView(poses=[np.asarray(e.pose) for e in entries], sink=len(memory.sink), pool=len(memory.pool),
                      window=len(memory.window), nbytes=int(memory.nbytes), scene=engine.scene)


def frame_view(engine: ViewedEngine, frame: Frame, keypoints: np.ndarray | None = None) -> FrameView:
    """An engine Frame as the viewer draws it."""
    fps = float(engine.config.fps)
    return FrameView(rgb=frame.rgb, depth=frame.depth, pose=frame.pose, K=np.asarray(engine.intrinsics),
                     index=int(frame.index), sim_time=frame.index / fps, pose_video=frame.pose_video,
                     hand_keypoints=keypoints, memory=memory_view(engine))


@dataclass
class PlayStats:
    frames: int = 0
    seconds: float = 0.0  # wall time of the loop while generating: the engine and the viewer (pauses excluded)
    viewer_seconds: float = 0.0  # of which the viewer took (drawing each frame, in this thread)
    cpu_seconds: float = 0.0  # CPU time of the whole process meanwhile (all threads: torch's, the page server's)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class PlaySession:
    """The engine behind the page: a Controller. `script` (optional) drives instead of the held command, frame
    by frame, until it ends; then the page's command holds. `viewer` None runs the same loop unseen (the
    baseline of the viewer's cost)."""

    def __init__(self, engine: ViewedEngine, start: Start, viewer: WorldViewer | None = None,
                 script: ActionScript | None = None, paused: bool = False, realtime: bool = False) -> None:
        self.engine = engine
        self.start = start
        self.viewer = viewer
        self.script = script
        self.realtime = realtime
        self.stats = PlayStats()
        self.pose = np.eye(4)
        self.commands_received = 0
        self._command = NavAction()
        self._cond = threading.Condition()
        self._paused = paused
        self._steps = 0
        self._reset = False
        self._stop = False
        self._cursor = 0  # next frame of the script
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        if viewer is not None and viewer.controller is None:
            viewer.controller = self

    # ---- Controller ------------------------------------------------------------------------------------------
    def set_command(self, action: NavAction) -> None:
        with self._cond:
            self._command = action
            self.commands_received += 1
            self._cond.notify_all()

    def pause(self) -> str:
        with self._cond:
            self._paused = True
        return 'paused'

    def resume(self) -> str:
        with self._cond:
            self._paused = False
            self._steps = 0
            self._cond.notify_all()
        return 'running'

    def step(self, frames: int) -> str:
        with self._cond:
            if not self._paused:
                raise ViewerError('Step works while paused: press Pause first')
            self._steps += frames
            self._cond.notify_all()
        return f'stepping {frames} frame{"s" * (frames != 1)}'

    def reset(self) -> str:
        with self._cond:
            self._reset = True
            self._command = NavAction()
            self._cond.notify_all()
        return f'reset to {self.start}'

    @property
    def paused(self) -> bool:
        return self._paused

    # ---- generation ------------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Reset the engine at the start and show frame 0 (in the caller's thread: errors surface here)."""
        frame = start_session(self.engine, self.start)
        self._shown(frame, None)
        self.stats = PlayStats()
        self._cursor = 0

    def run(self, frames: int = 0) -> PlayStats:
        """Generate until `frames` frames were made (0: until stop()); returns the generation statistics."""
        k = frames_per_step(self.engine)
        while True:
            with self._cond:
                while not self._stop and not self._reset and self._paused and self._steps <= 0:
                    self._cond.wait(0.5)
                if self._stop:
                    break
                if self._reset:
                    self._reset = False
                    reset = True
                else:
                    reset = False
                    if self._paused:
                        self._steps -= k
                    command = self._command
            if reset:
                self.begin()
                continue
            actions, keypoints = self._next_actions(command, k)
            t0, c0 = time.perf_counter(), time.process_time()
            made = self.engine.step_chunk(actions, keypoints)
            t1 = time.perf_counter()
            for frame, kp in zip(made, keypoints, strict=True):
                self._shown(frame, kp)
            t2 = time.perf_counter()
            self.stats.cpu_seconds += time.process_time() - c0
            self.stats.seconds += t2 - t0
            self.stats.viewer_seconds += t2 - t1
            self.stats.frames += len(made)
            if frames and self.stats.frames >= frames:
                break
            if self.realtime:
                time.sleep(max(0.0, k / float(self.engine.config.fps) - (time.perf_counter() - t0)))
        return self.stats

    def _next_actions(self, command: NavAction, k: int) -> tuple[list[Action], list[np.ndarray | None]]:
        script = self.script
        if script is None or self._cursor >= len(script):
            return [command] * k, [None] * k
        actions: list[Action] = []
        keypoints: list[np.ndarray | None] = []
        for _ in range(k):
            j = min(self._cursor, len(script) - 1)
            actions.append(script.actions[j])
            keypoints.append(script.hands[j] if script.hands is not None else None)
            self._cursor += 1
        return actions, keypoints

    def _shown(self, frame: Frame, keypoints: np.ndarray | None) -> None:
        self.pose = np.asarray(frame.pose).copy()
        if self.viewer is not None:
            self.viewer.show(frame_view(self.engine, frame, keypoints))

    def start_thread(self, frames: int = 0) -> None:
        def target() -> None:
            try:
                self.run(frames)
            except BaseException as exc:  # reported by stop()/join(): a dead generator must not look alive
                log.exception('play: generation stopped')
                self.error = exc

        self._thread = threading.Thread(target=target, name='worldscape-play', daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self.join(30.0)
