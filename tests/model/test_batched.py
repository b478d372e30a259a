"""Batched sessions: N sessions stepped together make the frames each makes stepped alone; bad input moves none."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from worldscape_ros.model.batched import BatchedEngine
from worldscape_ros.model.engine import Frame, WorldEngine
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel

SEEDS = (7, 8, 9)


def start(engine: WorldEngine, seed: int) -> Frame:
    cfg = engine.config
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    pose = camera_pose(BaseState(x=0.1 * seed, yaw=0.2 * seed, height=cfg.camera_height))
    return engine.reset(img, pose, depth=np.full((cfg.height, cfg.width), 2.0 + 0.2 * seed, np.float32))


def hand(frame: int) -> np.ndarray:
    kp = np.zeros((21, 3))
    kp[:, 0] = np.linspace(-0.1, 0.1, 21) + 0.02 * frame
    kp[:, 1] = np.linspace(-0.05, 0.05, 21)
    kp[:, 2] = 0.5
    return kp


def action(session: int, frame: int) -> NavAction:
    return NavAction(vx=0.3 + 0.1 * session, yaw_rate=0.6 * (-1) ** (frame // 2 + session))


def model(config, randomize) -> WorldModel:
    torch.manual_seed(0)
    return randomize(WorldModel(config), seed=3)


def assert_same_frames(batched: list[Frame], alone: list[Frame]) -> None:
    assert len(batched) == len(alone)
    for a, b in zip(batched, alone, strict=True):
        assert a.index == b.index and np.array_equal(a.pose, b.pose)
        # float rounding of a batched matmul may move a pixel by one level, never more
        assert np.abs(a.rgb.astype(int) - b.rgb).max() <= 1
        assert np.mean(a.rgb != b.rgb) < 0.01
        np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4, atol=1e-5)
        assert (a.pose_video is None) == (b.pose_video is None)


def run_alone(net: WorldModel, schedule: list[list[tuple[int, NavAction, np.ndarray | None]]]):
    """Each session by itself: the frames it makes for its own actions of the schedule."""
    frames: dict[int, list[Frame]] = {i: [] for i in range(len(SEEDS))}
    engines = {}
    for i, seed in enumerate(SEEDS):
        engines[i] = WorldEngine(net, EngineOptions(seed=seed))
        start(engines[i], i)
    for tick in schedule:
        for i, a, kp in tick:
            frames[i].append(engines[i].step(a, hand_keypoints=kp))
    return frames


def assert_batched_equals_alone(net: WorldModel, schedule: list[list[tuple[int, NavAction, np.ndarray | None]]]):
    """Each session's frames stepped together equal that session stepped alone; returns the batched frames."""
    _, batched = run_batched(net, schedule)
    alone = run_alone(net, schedule)
    for i in range(len(SEEDS)):
        assert_same_frames(batched[i], alone[i])
    return batched


def run_batched(net: WorldModel, schedule: list[list[tuple[int, NavAction, np.ndarray | None]]]):
    batch = BatchedEngine.over(net, len(SEEDS), seeds=SEEDS)
    for i, s in enumerate(batch.sessions):
        start(s, i)
    frames: dict[int, list[Frame]] = {i: [] for i in range(len(SEEDS))}
    for tick in schedule:
        picked = [i for i, _, _ in tick]
        got = batch.step([a for _, a, _ in tick], [kp for _, _, kp in tick], sessions=picked)
        for i, f in zip(picked, got, strict=True):
            frames[i].append(f)
    return batch, frames


def staggered(frames: int, hands: bool = False) -> list[list[tuple[int, NavAction, np.ndarray | None]]]:
    """Session 2 joins late and session 0 pauses once: their contexts hold different numbers of chunks."""
    ticks = []
    for t in range(frames):
        picked = [i for i in range(len(SEEDS)) if not (i == 2 and t < 2) and not (i == 0 and t == 3)]
        ticks.append([(i, action(i, t), hand(t) if hands and i == 1 and t % 2 else None) for i in picked])
    return ticks


def test_batched_sessions_make_the_frames_each_makes_alone(micro_config, randomize):
    net = model(micro_config, randomize)
    schedule = staggered(6)
    batched = assert_batched_equals_alone(net, schedule)
    assert not np.array_equal(batched[0][-1].rgb, batched[1][-1].rgb)  # separate sessions, separate worlds


def test_sessions_with_and_without_a_hand_share_the_encode_and_the_refiner(micro_config, randomize):
    net = model(micro_config, randomize)
    schedule = staggered(4, hands=True)
    batched = assert_batched_equals_alone(net, schedule)
    assert any(f.pose_video is not None for f in batched[1])


@pytest.mark.parametrize('memory', [
    dict(sink_chunks=1, window_chunks=0, retrieve_chunks=2, attend_pool=True),  # retrieval differs per session
    dict(sink_chunks=1, window_chunks=0, attend_pool=False),  # the shipped tiny config's: the sink alone
])
def test_batched_equals_alone_whatever_the_context(micro_config, randomize, memory):
    cfg = micro_config.replace(memory=micro_config.memory.__class__(**memory))
    net = model(cfg, randomize)
    schedule = staggered(6)
    assert_batched_equals_alone(net, schedule)


@pytest.mark.parametrize('step_depth_hidden', [0, 16])
def test_batched_equals_alone_when_the_last_step_writes_the_cache(micro_config, randomize, step_depth_hidden):
    """With a step depth head, the batch reads the last step's depth with it, as each session alone does."""
    cfg = micro_config.replace(sampler=micro_config.sampler.__class__(steps=2, cache_from_last_step=True),
                               heads=replace(micro_config.heads, step_depth_hidden=step_depth_hidden))
    net = model(cfg, randomize)
    schedule = staggered(4)
    assert_batched_equals_alone(net, schedule)


@pytest.mark.parametrize('reuse', [False, True])
def test_one_dit_pass_per_context_length_per_step(micro_config, randomize, reuse):
    cfg = micro_config.replace(sampler=replace(micro_config.sampler, cache_from_last_step=reuse))
    net = model(cfg, randomize)
    batch = BatchedEngine.over(net, 3, seeds=SEEDS)
    for i, s in enumerate(batch.sessions):
        start(s, i)
    batch.step([action(i, 0) for i in range(3)])  # all three hold the sink and one window chunk
    calls = []
    forward = net.dit.forward
    net.dit.forward = lambda x, *a, **k: (calls.append(x.shape[0]), forward(x, *a, **k))[1]  # type: ignore
    batch.step([action(i, 1) for i in range(3)])
    passes = batch.sessions[0].steps + (0 if reuse else 1)  # the clean pass, unless the last step writes the cache
    assert calls == [3] * passes  # every pass batched


def test_more_sessions_than_max_batch_run_as_several_batches_with_the_same_frames(micro_config, randomize):
    net = model(micro_config, randomize)
    schedule = [[(i, action(i, t), None) for i in range(len(SEEDS))] for t in range(3)]
    batch = BatchedEngine.over(net, len(SEEDS), seeds=SEEDS, max_batch=2)
    for i, s in enumerate(batch.sessions):
        start(s, i)
    calls = []
    forward = net.dit.forward
    net.dit.forward = lambda x, *a, **k: (calls.append(x.shape[0]), forward(x, *a, **k))[1]  # type: ignore
    got = [batch.step([a for _, a, _ in tick]) for tick in schedule]
    del net.dit.forward
    s = batch.sessions[0]
    passes = s.steps + (0 if s.config.sampler.cache_from_last_step else 1)
    assert calls == ([2] * passes + [1] * passes) * 3
    alone = run_alone(net, schedule)
    for i in range(len(SEEDS)):
        assert_same_frames([frames[i] for frames in got], alone[i])


def test_resetting_one_session_leaves_the_others_untouched(micro_config, randomize):
    net = model(micro_config, randomize)
    batch = BatchedEngine.over(net, 3, seeds=SEEDS)
    for i, s in enumerate(batch.sessions):
        start(s, i)
    batch.step([action(i, 0) for i in range(3)])
    start(batch.sessions[1], 5)
    got = batch.step([action(i, 1) for i in range(3)])
    assert [f.index for f in got] == [2, 1, 2]
    alone = run_alone(net, [[(i, action(i, t), None) for i in (0, 2)] for t in range(2)])
    assert_same_frames([got[0]], [alone[0][1]])
    assert_same_frames([got[2]], [alone[2][1]])


def poses(batch: BatchedEngine) -> list[np.ndarray]:
    return [camera_pose(s.state) for s in batch.sessions]


@pytest.mark.parametrize('call,match', [
    (lambda b: b.step([NavAction()] * 2), r'actions must hold one entry per session stepped \(3\), got 2'),
    (lambda b: b.step([NavAction()] * 3, hand_keypoints=[None]), r'hand_keypoints must hold one entry per session'),
    (lambda b: b.step([NavAction(), [0.0, 0, 0, 0], NavAction()]), r'session 1: action must have 5 values'),
    (lambda b: b.step([NavAction(), NavAction(), np.diag([1.0, 1, -1, 1])]), r'session 2: .*determinant'),
    (lambda b: b.step([None] * 3, hand_keypoints=[None, np.zeros((20, 3)), None]), r'session 1: .*hand_keypoints'),
    (lambda b: b.step([None], sessions=[3]), r'sessions must be distinct indices in \[0, 3\)'),
    (lambda b: b.step([None, None], sessions=[1, 1]), r'sessions must be distinct indices'),
    (lambda b: b.step([], sessions=[]), r'sessions must name at least one session'),
    (lambda b: b.step_chunk([[None, None]] * 3), r'session 0: actions must hold 1 entries'),
])
def test_bad_input_is_one_clear_error_and_moves_no_session(micro_config, randomize, call, match):
    batch = BatchedEngine.over(model(micro_config, randomize), 3, seeds=SEEDS)
    for i, s in enumerate(batch.sessions):
        start(s, i)
    before = poses(batch)
    with pytest.raises(ValueError, match=match):
        call(batch)
    assert all(np.array_equal(a, b) for a, b in zip(before, poses(batch), strict=True))
    assert [s.frame_index for s in batch.sessions] == [0, 0, 0]


def test_a_session_not_reset_is_named(micro_config, randomize):
    batch = BatchedEngine.over(model(micro_config, randomize), 2)
    start(batch.sessions[0], 0)
    with pytest.raises(ValueError, match=r'session 1: reset\(\) the engine'):
        batch.step([NavAction(), NavAction()])
    assert batch.sessions[0].frame_index == 0


def test_a_batch_is_of_distinct_sessions_over_one_model_and_settings(micro_config, randomize):
    net = model(micro_config, randomize)
    a = WorldEngine(net)
    with pytest.raises(ValueError, match='at least one session'):
        BatchedEngine([])
    with pytest.raises(ValueError, match='given twice'):
        BatchedEngine([a, a])
    with pytest.raises(ValueError, match='session 1 runs another model'):
        BatchedEngine([a, WorldEngine(WorldModel(micro_config))])
    with pytest.raises(ValueError, match='session 1 runs on .* with 3 steps'):
        BatchedEngine([a, WorldEngine(net, EngineOptions(steps=3))])
    with pytest.raises(ValueError, match='sessions must be >= 1'):
        BatchedEngine.over(net, 0)
    with pytest.raises(ValueError, match='max_batch must be >= 1, got 0'):
        BatchedEngine.over(net, 2, max_batch=0)
    with pytest.raises(ValueError, match=r'seeds must hold one seed per session \(2\), got 1'):
        BatchedEngine.over(net, 2, seeds=[1])
    traced = BatchedEngine.over(net, 2)
    for i, s in enumerate(traced.sessions):
        start(s, i)
    traced.sessions[1].trace = lambda inputs, dynamic: None
    with pytest.raises(ValueError, match='session 1 is traced'):
        traced.step([None, None])


def test_from_pretrained_opens_sessions_over_one_loaded_model():
    batch = BatchedEngine.from_pretrained(2, checkpoint='random', config='ws-tiny', seeds=[4, 5])
    a, b = batch.sessions
    assert len(batch) == 2 and a.model is b.model and (a.seed, b.seed) == (4, 5)
    assert a.sha256 == b.sha256 == 'random-init'
