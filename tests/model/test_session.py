"""Sessions: a saved (or taken) session continues in a fresh engine with the frames of the uninterrupted run; it is
refused by other weights or another config (naming both) and by a bad file, changing nothing; it brings back its
seed."""

import dataclasses
import logging

import numpy as np
import pytest
import torch

from worldscape_ros.errors import CheckpointError
from worldscape_ros.model.engine import Frame, WorldEngine
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.session import load_session, save_session
from worldscape_ros.model.world_model import WorldModel

SHA = 'a' * 64


def _engine(config, randomize, weights_seed: int = 3, seed: int = 5, sha: str = SHA) -> WorldEngine:
    torch.manual_seed(0)
    return WorldEngine(randomize(WorldModel(config), seed=weights_seed), EngineOptions(seed=seed), weights_sha256=sha)


def _start(engine: WorldEngine) -> None:
    cfg = engine.config
    rgb = np.random.default_rng(0).integers(0, 255, (cfg.height, cfg.width, 3), dtype=np.uint8)
    engine.reset(rgb, camera_pose(BaseState(height=cfg.camera_height)), depth=np.full((cfg.height, cfg.width), 2.5))


def _hand(t: int) -> np.ndarray:
    kp = np.zeros((21, 3))
    kp[:, 0] = np.linspace(-0.1, 0.1, 21) + 0.01 * t
    kp[:, 1] = np.linspace(-0.05, 0.05, 21)
    kp[:, 2] = 0.5
    return kp


def _tour(t0: int, n: int) -> list[NavAction]:
    return [NavAction(vx=0.4, yaw_rate=0.5 * (-1) ** (t // 3)) for t in range(t0, t0 + n)]


def _assert_same(a: list[Frame], b: list[Frame]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.index == y.index
        assert np.array_equal(x.rgb, y.rgb) and np.array_equal(x.depth, y.depth) and np.array_equal(x.pose, y.pose)


def _continue(engine: WorldEngine) -> list[Frame]:
    """Steps with a hand, then a rolling-window rollout."""
    frames = [engine.step(a, hand_keypoints=_hand(t)) for t, a in enumerate(_tour(4, 3))]
    return frames + engine.rollout(_tour(7, 4), window=2)


def _saved(config, randomize, tmp_path, seed: int = 5):
    engine = _engine(config, randomize, seed=seed)
    _start(engine)
    engine.step(NavAction(vx=0.5))
    path = tmp_path / 'session.safetensors'
    save_session(engine, path)
    return engine, path


def test_a_session_saved_mid_rollout_continues_in_a_fresh_engine_with_the_frames_of_the_uninterrupted_run(
        micro_config, randomize, tmp_path):
    original = _engine(micro_config, randomize)
    _start(original)
    original.rollout(_tour(0, 4), window=2)
    save_session(original, tmp_path / 'session.safetensors')
    uninterrupted = _continue(original)

    fresh = _engine(micro_config, randomize, seed=11)  # the same weights, another seed: the session brings its own
    load_session(fresh, tmp_path / 'session.safetensors')
    _assert_same(_continue(fresh), uninterrupted)


def test_a_taken_state_is_a_snapshot_that_loads_into_two_engines_alike(micro_config, randomize):
    original = _engine(micro_config, randomize)
    _start(original)
    for a in _tour(0, 4):
        original.step(a)
    state = original.session_state()
    uninterrupted = _continue(original)  # the original moves on after the state was taken
    engines = [_engine(micro_config, randomize, seed=11 + i) for i in range(2)]
    for e in engines:
        e.load_session_state(state)
    first = _continue(engines[0])  # the first one's steps must not reach the second through the state
    _assert_same(first, uninterrupted)
    _assert_same(_continue(engines[1]), uninterrupted)


def test_a_session_is_refused_by_an_engine_with_other_weights_and_changes_nothing(micro_config, randomize,
                                                                                   tmp_path):
    _, path = _saved(micro_config, randomize, tmp_path)
    other = _engine(micro_config, randomize, weights_seed=4, sha='b' * 64)
    _start(other)
    index, state, nbytes = other.frame_index, other.state, other.cache_bytes
    with pytest.raises(CheckpointError, match=f'{path}: .*weights sha256 {"a" * 12}, this engine runs {"b" * 12}'):
        load_session(other, path)
    assert (other.frame_index, other.state, other.cache_bytes) == (index, state, nbytes)


def test_a_session_of_another_config_is_refused_naming_both(micro_config, randomize, tmp_path):
    _, path = _saved(micro_config, randomize, tmp_path)
    other = _engine(micro_config.replace(name='other'), randomize)
    with pytest.raises(CheckpointError, match="made by config 'micro', this engine runs 'other'"):
        load_session(other, path)


def test_other_weights_load_only_when_asked_and_with_a_warning(micro_config, randomize, tmp_path, caplog):
    original, path = _saved(micro_config, randomize, tmp_path)
    other = _engine(micro_config, randomize, weights_seed=4, sha='b' * 64)
    with caplog.at_level(logging.WARNING):
        load_session(other, path, allow_other_weights=True)
    assert 'loading anyway' in caplog.text
    assert other.frame_index == original.frame_index


def test_a_loaded_session_brings_back_its_seed_so_a_reset_replays_the_original(micro_config, randomize, tmp_path):
    original, path = _saved(micro_config, randomize, tmp_path, seed=5)
    other = _engine(micro_config, randomize, seed=11)
    load_session(other, path)
    assert other.seed == other.options.seed == 5
    _start(original)
    _start(other)
    a = [original.step(NavAction(vx=0.3)).rgb for _ in range(2)]
    b = [other.step(NavAction(vx=0.3)).rgb for _ in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_malformed_state_is_refused_and_changes_nothing(micro_config, randomize):
    original = _engine(micro_config, randomize)
    _start(original)
    original.step(NavAction(vx=0.5))
    state = original.session_state()
    other = _engine(micro_config, randomize)
    _start(other)
    before, nbytes = other.session_state(), other.cache_bytes
    bad_reference = dataclasses.replace(state, reference=np.zeros((4, 4)))
    with pytest.raises(CheckpointError, match='malformed: session reference camera'):
        other.load_session_state(bad_reference)
    bad_generator = dataclasses.replace(state, generator=torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(CheckpointError, match='malformed'):
        other.load_session_state(bad_generator)
    after = other.session_state()
    assert (after.frame_index, after.base, after.seed) == (before.frame_index, before.base, before.seed)
    assert torch.equal(after.generator, before.generator) and other.cache_bytes == nbytes


@pytest.mark.parametrize('damage, match', [
    (lambda p: p.unlink(), 'does not exist'),
    (lambda p: p.write_bytes(p.read_bytes()[:200]), 'truncated or corrupt'),
])
def test_a_bad_session_file_is_one_checkpoint_error_naming_it(micro_config, randomize, tmp_path, damage, match):
    _, path = _saved(micro_config, randomize, tmp_path)
    damage(path)
    with pytest.raises(CheckpointError, match=match) as err:
        load_session(_engine(micro_config, randomize), path)
    assert str(path) in str(err.value)


def test_a_session_of_another_version_is_refused(micro_config, randomize, tmp_path, monkeypatch):
    import worldscape_ros.model.session as session

    monkeypatch.setattr(session, 'SESSION_VERSION', 2)
    _, path = _saved(micro_config, randomize, tmp_path)
    monkeypatch.setattr(session, 'SESSION_VERSION', 3)
    with pytest.raises(CheckpointError, match="has version '2', expected 3"):
        load_session(_engine(micro_config, randomize), path)


def test_a_session_is_taken_only_after_a_reset(micro_config, randomize):
    with pytest.raises(ValueError, match='reset'):
        _engine(micro_config, randomize).session_state()
