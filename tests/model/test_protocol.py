"""The engine protocol: the world engine meets every layer of it, the evaluation's baselines only the
frame-by-frame one, and the protocol module imports no ROS."""

import subprocess
import sys

import numpy as np
import pytest

from worldscape_ros.eval.baselines import RepeatFirstFrame, Reprojection
from worldscape_ros.eval.protocol import WorldSystem
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.protocol import RollingEngine, StreamingEngine, frames_per_step
from worldscape_ros.model.world_model import WorldModel


@pytest.fixture
def engine(micro_config):
    return WorldEngine(WorldModel(micro_config), EngineOptions(seed=0))


def test_the_world_engine_is_a_streaming_and_a_rolling_engine(engine):
    assert isinstance(engine, StreamingEngine) and isinstance(engine, RollingEngine)
    assert frames_per_step(engine) == engine.config.frames_per_chunk


@pytest.mark.parametrize('system', [RepeatFirstFrame(), Reprojection()])
def test_a_baseline_steps_frame_by_frame(system):
    assert isinstance(system, WorldSystem) and not isinstance(system, StreamingEngine)
    assert frames_per_step(system) == 1


def test_a_chunk_from_the_protocol_is_what_step_chunk_takes(engine, micro_config):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (micro_config.height, micro_config.width, 3), dtype=np.uint8)
    engine.reset(rgb, np.eye(4))
    k = frames_per_step(engine)
    frames = engine.step_chunk([None] * k)
    assert len(frames) == k
    with pytest.raises(ValueError, match=f'actions must hold {k} entries'):
        engine.step_chunk([None] * (k + 1))


def test_the_protocol_imports_no_ros():
    code = ('import sys, worldscape_ros.model.protocol; '
            'bad = [m for m in sys.modules if m.split(".")[0] in ("rclpy", "rosbags") or ".ros." in m]; '
            'assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True)
