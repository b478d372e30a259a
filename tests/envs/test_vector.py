"""The vector env: N sessions in one batched forward per step, each as the env alone would be; resetting one
(by mask or at the end of its episode) leaves the others where they are."""

import gymnasium as gym
import numpy as np
import pytest

import worldscape_ros.envs  # noqa: F401  (registers the ids)
from worldscape_ros.envs import WorldScapeManipEnv, WorldScapeNavEnv, WorldScapeVectorEnv
from worldscape_ros.model.batched import BatchedEngine
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions

N = 3


@pytest.fixture(scope='module')
def model():
    return WorldEngine.from_pretrained('random', 'ws-tiny', EngineOptions(seed=0)).model


def vector(model, **kwargs) -> WorldScapeVectorEnv:
    return WorldScapeVectorEnv(N, batch=BatchedEngine.over(model, N), **kwargs)


def actions(t: int) -> np.ndarray:
    return np.array([[0.5, 0, 0, 0.4 * (-1) ** (i + t), 0] for i in range(N)], np.float32)


def assert_close(a: np.ndarray, b: np.ndarray) -> None:
    """Frames equal to float rounding (a batched matmul may move a pixel by one level)."""
    assert np.abs(a.astype(float) - b.astype(float)).max() <= 1


def test_every_session_steps_in_one_batched_forward_as_the_env_alone_would(model):
    envs = vector(model)
    obs, info = envs.reset(seed=[11, 12, 13])
    calls = []
    forward = model.dit.forward
    model.dit.forward = lambda x, *a, **k: (calls.append(x.shape[0]), forward(x, *a, **k))[1]
    try:
        for t in range(2):
            obs, reward, terminated, truncated, info = envs.step(actions(t))
    finally:
        del model.dit.forward
    s = envs.batch.sessions[0]
    passes = s.steps + (0 if s.config.sampler.cache_from_last_step else 1)  # and the clean pass, unless the last
    assert calls == [N] * (2 * passes)  # step writes the cache: per step, every pass with all N at once
    assert obs['rgb'].shape == (N, 96, 128, 3) and reward.shape == (N,) and list(info['frame_index']) == [2] * N
    for i, seed in enumerate((11, 12, 13)):
        alone = WorldScapeNavEnv(engine=WorldEngine(model, EngineOptions(seed=i)))
        alone.reset(seed=seed)
        for t in range(2):
            o, r, term, _, _ = alone.step(actions(t)[i])
        assert_close(obs['rgb'][i], o['rgb'])
        np.testing.assert_allclose(obs['depth'][i], o['depth'], rtol=1e-4)
        np.testing.assert_allclose(obs['pose'][i], o['pose'])
        assert reward[i] == pytest.approx(r) and terminated[i] == term


def test_resetting_one_session_by_mask_leaves_the_others_untouched(model):
    envs, twin = vector(model), vector(model)
    for e in (envs, twin):
        e.reset(seed=[1, 2, 3])
        stepped, *_ = e.step(actions(0))
    obs, info = envs.reset(seed=[None, 7, None], options={'reset_mask': np.array([False, True, False])})
    assert list(info['_frame_index']) == [False, True, False] and info['frame_index'][1] == 0
    for i in (0, 2):  # the others' observations are as they were
        np.testing.assert_array_equal(obs['rgb'][i], stepped['rgb'][i])
    assert [s.frame_index for s in envs.batch.sessions] == [1, 0, 1]
    got, *_, info = envs.step(actions(1))
    want, *_ = twin.step(actions(1))
    assert list(info['frame_index']) == [2, 1, 2]
    for i in (0, 2):
        assert_close(got['rgb'][i], want['rgb'][i])
        np.testing.assert_allclose(got['pose'][i], want['pose'][i])


def test_a_session_whose_episode_ended_is_reset_on_the_next_step_alone(model):
    envs = vector(model)
    envs.reset(seed=[1, 2, 3])
    envs.envs[1].goal_radius = 1e3  # session 1 arrives on its first step
    _, reward, terminated, _, _ = envs.step(actions(0))
    assert list(terminated) == [False, True, False] and reward[1] > 0.9  # the arrival bonus, less a step
    _, reward, terminated, _, info = envs.step(actions(1))
    assert list(info['frame_index']) == [2, 0, 2] and reward[1] == 0.0 and not terminated[1]
    assert [s.frame_index for s in envs.batch.sessions] == [2, 0, 2]


def test_bad_input_is_one_clear_error_and_moves_no_session(model):
    envs = vector(model)
    envs.reset(seed=0)
    bad = actions(0)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match='action must be 5 finite values'):
        envs.step(bad)
    assert [s.frame_index for s in envs.batch.sessions] == [0, 0, 0]
    with pytest.raises(ValueError, match=r'reset_mask must be a bool array of shape \(3,\)'):
        envs.reset(options={'reset_mask': np.array([True, False])})
    with pytest.raises(ValueError, match=r'seed must be an int or hold one seed per env \(3\), got 2'):
        envs.reset(seed=[1, 2])
    with pytest.raises(ValueError, match='num_envs must be >= 1'):
        WorldScapeVectorEnv(0, batch=BatchedEngine.over(model, 1))
    with pytest.raises(ValueError, match='batch holds 3 sessions, num_envs is 2'):
        WorldScapeVectorEnv(2, batch=BatchedEngine.over(model, 3))


def test_the_manipulation_variant_steps_hands_in_some_sessions(model):
    envs = WorldScapeVectorEnv(2, env_cls=WorldScapeManipEnv, batch=BatchedEngine.over(model, 2))
    envs.reset(seed=[1, 2])
    kp = np.zeros((2, 21, 3), np.float32)
    kp[:, :, 0] = np.linspace(-0.1, 0.1, 21)
    kp[:, :, 2] = 0.5
    obs, reward, *_ = envs.step(kp)
    assert obs['pose_video'].shape == (2, 96, 128, 3) and obs['pose_video'].max() > 0 and not reward.any()


def test_gym_make_vec_makes_the_batched_vector_env():
    envs = gym.make_vec('WorldScapeNav-v0', num_envs=2, checkpoint='random')
    try:
        assert isinstance(envs, WorldScapeVectorEnv) and len(envs.batch) == 2
        assert envs.metadata['autoreset_mode'] == gym.vector.AutoresetMode.NEXT_STEP
    finally:
        envs.close()
