"""Sim time from the frames generated: each frame advances it by 1/fps, and a new fps continues from the time
already reached, so the clock never runs back (Gazebo's /clock advances the same way, by physics steps)."""

from __future__ import annotations


class SimClock:
    """Frames generated over the node's life and the sim time they make."""

    def __init__(self, fps: float = 10.0) -> None:
        if not fps > 0:
            raise ValueError(f'fps must be positive, got {fps}')
        self.frames = 0
        self._fps = fps
        self._base = (0, 0)  # (sim time ns, frame count) when fps was last set

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def now_ns(self) -> int:
        base_ns, base_frames = self._base
        return base_ns + int(round((self.frames - base_frames) * 1e9 / self._fps))

    def set_fps(self, fps: float) -> None:
        """Frames from now on advance sim time by 1/fps; the time reached so far stays."""
        if not fps > 0:
            raise ValueError(f'fps must be positive, got {fps}')
        self._base = (self.now_ns, self.frames)
        self._fps = fps

    def tick(self) -> int:
        """One more frame; returns its sim time (ns)."""
        self.frames += 1
        return self.now_ns
