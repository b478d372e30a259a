"""The generation loop without ROS: paused frames come only from step requests, pause answers after the frame
in flight, stop cancels what is pending, free running is paced to fps, and failures end the thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from worldscape_ros.ros.generation import MAX_CONSECUTIVE_FAILURES, GenerationLoop, StepRefused
from worldscape_ros.ros.inbox import Throttle
from worldscape_ros.ros.sim_clock import SimClock
from worldscape_ros.ros.supervision import GenerationFailed, StepSupervisor

WAIT = 10.0


class Rig:
    """A loop whose `generate` ticks the clock once (or runs `self.body` first)."""

    def __init__(self, fps: float = 100.0) -> None:
        self.clock = SimClock(fps)
        self.body: Callable[[], None] = lambda: None
        self.faults: list[str] = []
        self.failed = threading.Event()
        self.supervisor = StepSupervisor(logging.getLogger('test'), Throttle(0.0))
        self.loop = GenerationLoop(self._generate, self.clock, self.supervisor, logging.getLogger('test'),
                                   idle=lambda: None, fail=self._fail)
        self.loop.realtime = False

    def _generate(self) -> None:
        self.body()
        self.clock.tick()

    def _fail(self, cause: str) -> None:
        self.faults.append(cause)
        self.failed.set()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.loop.stop('the test ended')


def test_a_paused_loop_makes_exactly_the_frames_requested(rig):
    rig.loop.set_paused(True)
    rig.loop.start()
    first = rig.loop.request(3, max_frames=10)
    second = rig.loop.request(2, max_frames=10)
    assert first.done.wait(WAIT) and second.done.wait(WAIT)
    assert (first.generated, second.generated, first.cancelled, second.cancelled) == (3, 2, '', '')
    time.sleep(0.05)
    assert rig.clock.frames == 5


@pytest.mark.parametrize(('started', 'paused', 'n', 'match'), [
    (False, True, 1, 'not active'), (True, False, 1, 'not paused'),
    (True, True, 0, r'frames=0 must be in \[1, max_step_frames=4\]'),
    (True, True, 5, r'frames=5 must be in \[1, max_step_frames=4\]'),
])
def test_a_step_request_the_loop_cannot_take_is_refused_saying_why(rig, started, paused, n, match):
    rig.loop.set_paused(paused)
    if started:
        rig.loop.start()
    with pytest.raises(StepRefused, match=match):
        rig.loop.request(n, max_frames=4)


def test_pause_answers_once_the_frame_in_flight_is_out_and_no_frame_follows(rig):
    in_flight, release = threading.Event(), threading.Event()

    def body() -> None:
        in_flight.set()
        release.wait(WAIT)

    rig.body = body
    rig.loop.start()
    assert in_flight.wait(WAIT)
    answered: list[bool] = []
    pauser = threading.Thread(target=lambda: answered.append(rig.loop.pause()))
    pauser.start()
    time.sleep(0.05)
    assert not answered  # the frame is still being made
    release.set()
    pauser.join(WAIT)
    assert answered == [True] and rig.loop.paused
    frames = rig.clock.frames
    time.sleep(0.05)
    assert rig.clock.frames == frames


def test_stop_ends_the_pending_requests_with_the_reason_and_the_frames_made(rig):
    in_flight, release = threading.Event(), threading.Event()

    def body() -> None:
        in_flight.set()
        release.wait(WAIT)

    rig.body = body
    rig.loop.set_paused(True)
    rig.loop.start()
    waiter = rig.loop.request(5, max_frames=10)
    assert in_flight.wait(WAIT)
    stopper = threading.Thread(target=rig.loop.stop, args=('the node was deactivated',))
    stopper.start()
    release.set()
    stopper.join(WAIT)
    assert waiter.done.is_set()
    assert (waiter.generated, waiter.cancelled) == (1, 'cancelled: the node was deactivated')
    assert not rig.loop.has_thread


def test_resuming_absorbs_pending_steps_into_free_running(rig):
    rig.loop.set_paused(True)
    rig.loop.start()
    waiter = rig.loop.request(3, max_frames=10)
    rig.loop.resume()
    assert waiter.done.wait(WAIT) and waiter.generated == 3 and not waiter.cancelled
    rig.loop.pause()
    frames = rig.clock.frames
    time.sleep(0.05)
    assert rig.clock.frames == frames


def test_free_running_in_real_time_is_never_faster_than_fps():
    r = Rig(fps=50.0)
    r.loop.realtime = True
    t0 = time.monotonic()
    r.loop.start()
    time.sleep(0.4)
    r.loop.stop('the test ended')
    elapsed = time.monotonic() - t0
    assert 1 <= r.clock.frames <= 50.0 * elapsed + 2


def test_frames_that_fail_after_the_step_end_the_thread_after_a_few_in_a_row(rig):
    def body() -> None:
        raise RuntimeError('publisher gone')

    rig.body = body
    rig.loop.start()
    assert rig.failed.wait(WAIT)
    assert rig.faults == [f"{MAX_CONSECUTIVE_FAILURES} frames in a row failed, the last with "
                          "RuntimeError('publisher gone')"]
    assert rig.supervisor.last_failure[1] == "frame failed: RuntimeError('publisher gone')"
    assert rig.loop.has_thread and not rig.loop.running


def test_generation_failed_ends_the_thread_at_once_and_start_runs_it_again(rig):
    calls = []

    def body() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise GenerationFailed('step failed and so did every recovery')

    rig.body = body
    rig.loop.start()
    assert rig.failed.wait(WAIT)
    assert rig.faults == ['step failed and so did every recovery'] and len(calls) == 1
    rig.loop.set_paused(True)
    rig.loop.start()
    waiter = rig.loop.request(2, max_frames=10)
    assert waiter.done.wait(WAIT) and waiter.generated == 2


def test_begin_runs_in_the_loops_thread_before_its_first_frame():
    rig = Rig()
    seen: list[tuple[int, int]] = []  # (thread, frames made when it ran)
    generated_in: list[int] = []
    rig.loop._begin = lambda: seen.append((threading.get_ident(), rig.clock.frames))
    rig.body = lambda: generated_in.append(threading.get_ident())
    rig.loop.start()
    try:
        deadline = time.monotonic() + WAIT
        while not generated_in and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        rig.loop.stop('the test ended')
    assert len(seen) == 1 and seen[0] == (generated_in[0], 0)
    assert seen[0][0] != threading.get_ident()


def test_a_begin_that_raises_ends_the_thread_through_fail_with_no_frame_made():
    rig = Rig()

    def begin() -> None:
        raise RuntimeError('no threads')

    rig.loop._begin = begin
    rig.loop.start()
    try:
        assert rig.failed.wait(WAIT)
    finally:
        rig.loop.stop('the test ended')
    assert rig.clock.frames == 0 and 'no threads' in rig.faults[0]
