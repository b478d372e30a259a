"""What the simulator says on /diagnostics: the real-time factor and latencies of the recent frames, and a
level (ERROR for a fault generation cannot recover from, WARN after a recovered failure or when slower than
real time, else OK) with the figures as key-value pairs."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from worldscape_ros.ros.conversions import stamp_from_ns

FAILURE_WARN_S = 10.0  # WARN this long after a recovered failure
SLOW_FACTOR = 0.9  # a real-time run below this real-time factor is WARN


class FrameStats:
    """Wall time, frame count and latencies of the most recent chunks."""

    def __init__(self, maxlen: int = 512) -> None:
        self._stats: deque[tuple[float, int, float, float]] = deque(maxlen=maxlen)  # wall, frame, engine ms, e2e ms

    def add(self, frames: int, engine_ms: float, frame_ms: float, wall: float | None = None) -> None:
        """A chunk out: the node's frame count after it, the engine's latency and the end-to-end time per frame."""
        self._stats.append((time.monotonic() if wall is None else wall, frames, engine_ms, frame_ms))

    def snapshot(self, fps: float) -> dict[str, float]:
        """Real-time factor against `fps`, latencies (ms, p50 over the recent frames) and frames/s of wall time."""
        stats = list(self._stats)
        if len(stats) < 2:
            last = stats[-1] if stats else (0.0, 0, 0.0, 0.0)
            return {'real_time_factor': 0.0, 'frames_per_second': 0.0,
                    'engine_latency_ms': last[2], 'frame_latency_ms': last[3]}
        wall = stats[-1][0] - stats[0][0]
        frames = stats[-1][1] - stats[0][1]
        rate = frames / wall if wall > 0 else 0.0
        return {'real_time_factor': rate / fps, 'frames_per_second': rate,
                'engine_latency_ms': float(np.median([s[2] for s in stats])),
                'frame_latency_ms': float(np.median([s[3] for s in stats]))}


def health(fault: str, last_failure: tuple[float, str], realtime: bool, paused: bool, real_time_factor: float,
           now: float | None = None) -> tuple[bytes, str]:
    """The level and message of the simulator's status."""
    now = time.monotonic() if now is None else now
    if fault:
        return DiagnosticStatus.ERROR, fault
    if now - last_failure[0] < FAILURE_WARN_S:
        return DiagnosticStatus.WARN, f'recovered: {last_failure[1]}'
    if realtime and not paused and 0 < real_time_factor < SLOW_FACTOR:
        return DiagnosticStatus.WARN, 'slower than real time'
    return DiagnosticStatus.OK, 'paused' if paused else 'running'


def diagnostic_array(name: str, hardware_id: str, level: bytes, message: str, values: dict[str, str],
                     stamp_ns: int) -> DiagnosticArray:
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, level=level, message=message,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp_from_ns(stamp_ns)
    return msg
