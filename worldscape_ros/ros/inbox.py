"""The simulator's inputs between the executor and the inference thread: a latest-wins command inbox, and a
throttle for the warnings bad input would otherwise repeat every message."""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from worldscape_ros.model.kinematics import NavAction


class CommandInbox:
    """Latest-wins holder of the inputs, written by subscription callbacks and read by the inference thread.

    Times are sim time (ns), as Gazebo's diff drive times out cmd_vel against the sim clock.
    """

    def __init__(self, cmd_timeout_ns: int, hands_timeout_ns: int) -> None:
        self._lock = threading.Lock()
        self._cmd_timeout_ns = cmd_timeout_ns
        self._hands_timeout_ns = hands_timeout_ns
        self._twist: NavAction | None = None
        self._twist_ns = 0
        self._pose: np.ndarray | None = None
        self._pose_ns = 0
        self._hands: np.ndarray | None = None
        self._hands_ns = 0
        self._motions = 0  # motion commands that changed the motion (a new velocity or pose target)
        self._motions_taken = 0  # ... as of the last take()

    def set_twist(self, action: NavAction, now_ns: int) -> None:
        with self._lock:
            expired = now_ns - self._twist_ns >= self._cmd_timeout_ns
            if action != self._twist or self._pose is not None or expired:  # a teleop repeating itself: no change
                self._motions += 1
            self._twist, self._twist_ns = action, now_ns
            self._pose = None  # the newest input decides how the camera moves

    def set_pose(self, c2w: np.ndarray, now_ns: int) -> None:
        with self._lock:
            self._pose, self._pose_ns = c2w, now_ns
            self._twist = None
            self._motions += 1

    def set_hands(self, points: np.ndarray, now_ns: int) -> None:
        with self._lock:
            self._hands, self._hands_ns = points, now_ns

    def clear(self) -> None:
        with self._lock:
            self._twist = self._pose = self._hands = None

    def take(self, now_ns: int) -> tuple[NavAction | np.ndarray, np.ndarray | None]:
        """The motion for the next frame (a pose target is used once) and the current hand keypoints."""
        with self._lock:
            self._motions_taken = self._motions
            fresh = self._hands is not None and now_ns - self._hands_ns < self._hands_timeout_ns
            hands = self._hands if fresh else None
            if self._pose is not None:
                pose, self._pose = self._pose, None
                return pose, hands
            if self._twist is not None and now_ns - self._twist_ns < self._cmd_timeout_ns:  # holds `timeout` s
                return self._twist, hands
            return NavAction(), hands


    def superseded(self) -> bool:
        """A different motion command arrived since the last take(): the frame made from it is stale."""
        with self._lock:
            return self._motions != self._motions_taken


class Throttle:
    """Allows one message per `period` seconds of wall time per key."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self._period:
                return False
            self._last[key] = now
            return True

    def forget(self, key: str | None = None) -> None:
        """Let the next message of `key` (of every key with None) through."""
        with self._lock:
            if key is None:
                self._last.clear()
            else:
                self._last.pop(key, None)
