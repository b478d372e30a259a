"""Sessions: refused into other weights (their cached keys mean nothing there), and they bring back their seed."""

import logging

import numpy as np
import pytest
import torch

from worldscape_ros.errors import CheckpointError
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.session import load_session
from worldscape_ros.model.world_model import WorldModel


def _engine(config, randomize, weights_seed: int, seed: int, sha: str) -> WorldEngine:
    torch.manual_seed(0)
    return WorldEngine(randomize(WorldModel(config), seed=weights_seed), EngineOptions(seed=seed), weights_sha256=sha)


def _start(engine: WorldEngine) -> None:
    cfg = engine.config
    rgb = np.random.default_rng(0).integers(0, 255, (cfg.height, cfg.width, 3), dtype=np.uint8)
    engine.reset(rgb, camera_pose(BaseState(height=cfg.camera_height)), depth=np.full((cfg.height, cfg.width), 2.5))


def _saved(config, randomize, tmp_path, seed: int = 5):
    engine = _engine(config, randomize, 3, seed, 'a' * 64)
    _start(engine)
    engine.step(NavAction(vx=0.5))
    path = tmp_path / 'session.safetensors'
    engine.save_session(path)
    return engine, path


def test_a_session_is_refused_by_an_engine_with_other_weights_and_changes_nothing(micro_config, randomize,
                                                                                   tmp_path):
    _, path = _saved(micro_config, randomize, tmp_path)
    other = _engine(micro_config, randomize, 4, 5, 'b' * 64)
    _start(other)
    index, state = other.frame_index, other.state
    with pytest.raises(CheckpointError, match=f'weights sha256 {"a" * 12}, this engine runs {"b" * 12}'):
        other.load_session(path)
    assert (other.frame_index, other.state) == (index, state)


def test_other_weights_load_only_when_asked_and_with_a_warning(micro_config, randomize, tmp_path, caplog):
    original, path = _saved(micro_config, randomize, tmp_path)
    other = _engine(micro_config, randomize, 4, 5, 'b' * 64)
    with caplog.at_level(logging.WARNING):
        load_session(other, path, allow_other_weights=True)
    assert 'loading anyway' in caplog.text
    assert other.frame_index == original.frame_index


def test_a_loaded_session_brings_back_its_seed_so_a_reset_replays_the_original(micro_config, randomize, tmp_path):
    original, path = _saved(micro_config, randomize, tmp_path, seed=5)
    other = _engine(micro_config, randomize, 3, 11, 'a' * 64)  # the same weights, another seed
    other.load_session(path)
    assert other.seed == 5
    _start(original)
    _start(other)
    a = [original.step(NavAction(vx=0.3)).rgb for _ in range(2)]
    b = [other.step(NavAction(vx=0.3)).rgb for _ in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
