"""What /diagnostics reports: the real-time factor and p50 latencies of recent frames, and the status level."""

import math

import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from worldscape_ros.ros.diagnostics import FAILURE_WARN_S, FrameStats, diagnostic_array, health


def test_the_real_time_factor_is_frames_per_wall_second_over_fps():
    stats = FrameStats()
    for i in range(11):
        stats.add(frames=i, engine_ms=float(i), frame_ms=2.0 * i, wall=100.0 + 0.2 * i)  # 5 frames/s
    snap = stats.snapshot(fps=10.0)
    assert snap['frames_per_second'] == pytest.approx(5.0)
    assert snap['real_time_factor'] == pytest.approx(0.5)
    assert (snap['engine_latency_ms'], snap['frame_latency_ms']) == (5.0, 10.0)  # medians


def test_before_two_chunks_there_is_no_rate_only_the_last_latency():
    stats = FrameStats()
    assert stats.snapshot(10.0)['real_time_factor'] == 0.0
    stats.add(frames=1, engine_ms=7.0, frame_ms=9.0, wall=1.0)
    assert stats.snapshot(10.0) == {'real_time_factor': 0.0, 'frames_per_second': 0.0,
                                    'engine_latency_ms': 7.0, 'frame_latency_ms': 9.0}


def test_only_the_most_recent_chunks_count():
    stats = FrameStats(maxlen=3)
    for i, wall in enumerate([0.0, 50.0, 51.0, 52.0]):  # the slow first second leaves the window
        stats.add(frames=i, engine_ms=0.0, frame_ms=0.0, wall=wall)
    assert stats.snapshot(1.0)['frames_per_second'] == pytest.approx(1.0)


NEVER = (-math.inf, '')


@pytest.mark.parametrize(('fault', 'failure', 'realtime', 'paused', 'rtf', 'level', 'message'), [
    ('step failed for good', (99.0, 'x'), True, False, 0.1, DiagnosticStatus.ERROR, 'step failed for good'),
    ('', (99.0, 'step failed (x)'), True, False, 0.1, DiagnosticStatus.WARN, 'recovered: step failed (x)'),
    ('', (100.0 - FAILURE_WARN_S, 'old'), True, False, 1.0, DiagnosticStatus.OK, 'running'),
    ('', NEVER, True, False, 0.5, DiagnosticStatus.WARN, 'slower than real time'),
    ('', NEVER, False, False, 0.5, DiagnosticStatus.OK, 'running'),
    ('', NEVER, True, True, 0.5, DiagnosticStatus.OK, 'paused'),
    ('', NEVER, True, False, 0.0, DiagnosticStatus.OK, 'running'),  # no rate measured yet
])
def test_the_status_level_puts_faults_before_recoveries_before_speed(fault, failure, realtime, paused, rtf, level,
                                                                       message):
    assert health(fault, failure, realtime, paused, rtf, now=100.0) == (level, message)


def test_the_array_carries_the_status_and_its_values_at_sim_time():
    msg = diagnostic_array('simulator: world model', 'cpu', DiagnosticStatus.OK, 'running',
                           {'fps': '10', 'frames': '3'}, stamp_ns=1_500_000_000)
    (status,) = msg.status
    assert (status.name, status.hardware_id, status.level, status.message) == (
        'simulator: world model', 'cpu', DiagnosticStatus.OK, 'running')
    assert [(kv.key, kv.value) for kv in status.values] == [('fps', '10'), ('frames', '3')]
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1, 500_000_000)
