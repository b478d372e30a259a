"""The play session (the page's Controller beside the engine), driven directly: commands reach the engine,
pause and step make exactly the frames asked for, reset goes back to the start. No page, no browser."""

import time

import numpy as np
import pytest

from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.synthetic.starts import start_from_scene
from worldscape_ros.tools.rollout import Start
from worldscape_ros.viewer import ViewerError
from worldscape_ros.viewer.play import PlaySession, frame_view, memory_view

START = Start(kind='room', seed=3)


def forward_distance(before: np.ndarray, after: np.ndarray) -> float:
    """Metres moved along the camera's forward axis (optical z) in the odom frame."""
    return float((after[:3, 3] - before[:3, 3]) @ before[:3, 2])


def test_a_held_forward_command_moves_the_camera_forward_by_speed_times_frame_time(engine):
    session = PlaySession(engine, START)
    session.begin()
    start = session.pose
    session.set_command(NavAction(vx=0.5))
    stats = session.run(frames=3)
    assert stats.frames == 3
    assert forward_distance(start, session.pose) == pytest.approx(3 * 0.5 / engine.config.fps, abs=1e-6)


def test_step_is_refused_unless_paused_and_then_makes_exactly_the_frames_asked_for(engine):
    session = PlaySession(engine, START)
    session.begin()
    with pytest.raises(ViewerError, match='Step works while paused'):
        session.step(1)
    assert session.pause() == 'paused'
    assert session.step(2) == 'stepping 2 frames'
    session.start_thread()
    try:
        t0 = time.monotonic()
        while session.stats.frames < 2 and time.monotonic() - t0 < 60.0:
            time.sleep(0.05)
        time.sleep(0.3)  # no third frame comes while paused
        assert session.stats.frames == 2
        assert session.alive
    finally:
        session.stop()
    assert not session.alive and session.error is None


def test_reset_returns_to_the_start_pose(engine):
    session = PlaySession(engine, START)
    session.begin()
    start = session.pose
    session.set_command(NavAction(vx=1.0, yaw_rate=0.5))
    session.run(frames=2)
    assert not np.allclose(session.pose, start)
    assert session.reset() == 'reset to room:3'
    session.run(frames=1)  # the reset happens in the generation loop, then one frame with the command cleared
    assert np.allclose(session.pose, start, atol=1e-9)


def test_a_script_drives_before_the_page_commands(engine):
    from worldscape_ros.tools.scripts import ActionScript

    script = ActionScript(actions=np.tile([0.0, 0.0, 0.0, 1.0, 0.0], (2, 1)))
    session = PlaySession(engine, START, script=script)
    session.begin()
    start = session.pose
    session.set_command(NavAction(vx=1.0))  # held, but the script comes first
    session.run(frames=2)
    assert np.allclose(session.pose[:3, 3], start[:3, 3])  # turned in place
    session.run(frames=1)  # the script is over: the held command drives
    assert np.linalg.norm(session.pose[:3, 3] - start[:3, 3]) == pytest.approx(0.1, abs=1e-6)


def test_frame_views_carry_the_engine_memory_and_sim_time(engine):
    frame = start_from_scene(engine, 3)
    view = frame_view(engine, frame)
    assert view.sim_time == 0.0 and view.index == 0
    mem = memory_view(engine)
    assert mem is not None and mem.sink == 1 and len(mem.poses) == 1 and mem.nbytes == engine.cache_bytes
