"""The supervisor of engine steps: a failed step stands still from where it was, then resets to the start,
then gives up naming every cause."""

from __future__ import annotations

from typing import Any

import pytest

from worldscape_ros.model.kinematics import BaseState, NavAction
from worldscape_ros.ros.inbox import Throttle
from worldscape_ros.ros.supervision import GenerationFailed, StepSupervisor


class Engine:
    """Steps that move the state by one metre; the first `fail` calls move it and then raise."""

    def __init__(self, fail: int = 0) -> None:
        self.state = BaseState()
        self.fail = fail
        self.calls: list[tuple[Any, Any]] = []

    def step(self, motion: Any, hands: Any, stale: Any = None) -> str:
        self.calls.append((motion, hands))
        self.state = BaseState(x=self.state.x + 1.0)
        if len(self.calls) <= self.fail:
            raise RuntimeError(f'failure {len(self.calls)}')
        return f'frame {len(self.calls)}'

    def step_chunk(self, motions: list[Any], hands: list[Any], stale: Any = None) -> list[str]:
        self.calls.append((motions, hands))
        return [f'frame {i}' for i in range(len(motions))]


class Log:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, msg: str) -> None:
        self.errors.append(msg)


def _supervisor(period: float = 60.0) -> tuple[StepSupervisor, Log]:
    log = Log()
    return StepSupervisor(log, Throttle(period)), log


def test_a_chunk_holds_its_command_over_every_frame():
    engine = Engine()
    frames = StepSupervisor.step(engine, NavAction(vx=1.0), 'hands', k=3)
    assert frames == ['frame 0', 'frame 1', 'frame 2']
    assert engine.calls == [([NavAction(vx=1.0)] * 3, ['hands'] * 3)]


def test_a_failed_step_is_undone_and_the_session_stands_still_without_its_inputs():
    supervisor, log = _supervisor()
    engine = Engine(fail=1)
    prev = engine.state
    dropped = []
    with pytest.raises(RuntimeError) as failed:
        supervisor.step(engine, NavAction(vx=1.0), 'hands', 1)
    frames = supervisor.recover(engine, failed.value, prev, 1, reset=lambda: None,
                                drop_inputs=lambda: dropped.append(True))
    assert frames == ['frame 2'] and dropped == [True]
    assert engine.calls[-1] == (NavAction(), None)
    assert engine.state.x == prev.x + 1.0  # the stand-still step ran from the state before the failure
    assert (supervisor.failed_steps, supervisor.recovered_steps, supervisor.resets_after_failure) == (1, 1, 0)
    assert log.errors == ['step failed (RuntimeError: failure 1): dropped the inputs and stood still for this '
                          'frame [1 failed steps so far]']
    assert supervisor.last_failure[1].startswith('step failed (RuntimeError: failure 1)')


def test_stand_stills_are_logged_once_per_period_but_counted_every_time():
    supervisor, log = _supervisor(period=60.0)
    for _ in range(3):
        engine = Engine()
        supervisor.recover(engine, RuntimeError('x'), engine.state, 1, reset=lambda: None, drop_inputs=lambda: None)
    assert supervisor.failed_steps == 3 and len(log.errors) == 1


def test_when_standing_still_fails_the_session_resets_and_says_so_every_time():
    supervisor, log = _supervisor(period=60.0)
    resets = []
    for _ in range(2):
        engine = Engine(fail=1)
        supervisor.recover(engine, RuntimeError('step'), engine.state, 1, reset=lambda: resets.append(1),
                           drop_inputs=lambda: None)
    assert len(resets) == 2 and supervisor.resets_after_failure == 2 and supervisor.recovered_steps == 0
    assert len(log.errors) == 2 and all('reset to the start' in line for line in log.errors)


def test_when_the_reset_fails_too_generation_fails_naming_every_cause():
    supervisor, _ = _supervisor()
    engine = Engine(fail=10)

    def reset() -> None:
        raise OSError('no start image')

    with pytest.raises(GenerationFailed, match=r"step failed \(RuntimeError: first\); standing still failed "
                                               r"\(RuntimeError\('failure 1'\)\) and so did a reset to the start "
                                               r"\(OSError\('no start image'\)\)"):
        supervisor.recover(engine, RuntimeError('first'), engine.state, 1, reset=reset, drop_inputs=lambda: None)
    assert supervisor.failed_steps == 1 and supervisor.resets_after_failure == 0

