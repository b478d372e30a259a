"""WorldScapeNav-v0: gymnasium's own checker passes; seeds reproduce; reward is progress; sessions share a model."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldscape_ros.envs  # noqa: F401  (registers the ids)
from worldscape_ros.envs import WorldScapeManipEnv, WorldScapeNavEnv, make_vector_env
from worldscape_ros.model.options import EngineOptions


@pytest.fixture(scope='module')
def engine():
    from worldscape_ros.model.engine import WorldEngine

    return WorldEngine.from_pretrained('random', 'ws-tiny', EngineOptions(seed=0))


def test_registered_ids_make_the_env(engine):
    env = gym.make('WorldScapeNav-v0', engine=engine)
    assert isinstance(env.unwrapped, WorldScapeNavEnv)
    assert env.spec.max_episode_steps == 200
    assert 'WorldScapeManip-v0' in gym.registry


def test_gymnasium_env_checker_passes(engine):
    env = WorldScapeNavEnv(engine=engine, render_mode='rgb_array')
    check_env(env, skip_render_check=False)


def test_same_seed_same_observations_and_reward_is_progress(engine):
    env = WorldScapeNavEnv(engine=engine)
    obs_a, info_a = env.reset(seed=11)
    step_a = env.step(np.array([0.6, 0, 0, 0, 0], np.float32))
    obs_b, info_b = env.reset(seed=11)
    step_b = env.step(np.array([0.6, 0, 0, 0, 0], np.float32))
    assert info_a['scene_seed'] == info_b['scene_seed']
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
        np.testing.assert_array_equal(step_a[0][key], step_b[0][key])
    obs, reward, terminated, truncated, info = step_a
    assert reward == pytest.approx(info_a['distance'] - info['distance'])
    assert obs['rgb'].shape == (96, 128, 3) and obs['depth'].dtype == np.float32
    # the goal, seen from the robot, moved back by the distance driven (0.6 m/s for one 0.1 s frame)
    assert obs['goal'][0] == pytest.approx(obs_a['goal'][0] - 0.06, abs=1e-4)
    assert not truncated and terminated == (info['distance'] <= env.goal_radius)


def test_arriving_at_the_goal_ends_the_episode_with_a_bonus(engine):
    env = WorldScapeNavEnv(engine=engine, goal_distance=(0.45, 0.45), goal_radius=0.4)
    obs, info = env.reset(seed=3)
    ahead, left = (float(v) for v in obs['goal'])
    heading = np.arctan2(left, ahead)
    # turn towards the goal in one frame (yaw rate limit is max_angular = 1 rad/s -> 0.1 rad per frame)
    env.engine.state = env.engine.state.__class__(**{**env.engine.state.__dict__,
                                                     'yaw': env.engine.state.yaw + heading})
    _, reward, terminated, _, info = env.step(np.array([1.0, 0, 0, 0, 0], np.float32))
    assert terminated and info['distance'] <= 0.4
    assert reward == pytest.approx(1.0 + 0.1, abs=1e-3)


def test_bad_actions_are_named(engine):
    env = WorldScapeNavEnv(engine=engine)
    env.reset(seed=0)
    with pytest.raises(ValueError, match='action must be 5 finite values'):
        env.step(np.array([np.nan, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match='render_mode'):
        WorldScapeNavEnv(engine=engine, render_mode='human')


def test_vector_env_runs_sessions_over_one_model():
    envs = make_vector_env(2, checkpoint='random')
    try:
        e0, e1 = (e.engine for e in envs.envs)
        assert e0 is not e1 and e0.model is e1.model
        obs, _ = envs.reset(seed=[1, 2])
        assert obs['rgb'].shape == (2, 96, 128, 3)
        obs, reward, term, trunc, _ = envs.step(np.tile(np.array([0.5, 0, 0, 0.2, 0], np.float32), (2, 1)))
        assert reward.shape == (2,) and obs['pose'].shape == (2, 4, 4)
        assert not np.array_equal(obs['rgb'][0], obs['rgb'][1])  # different scenes, separate sessions
    finally:
        envs.close()


def test_gym_make_vec_uses_the_shared_model():
    envs = gym.make_vec('WorldScapeNav-v0', num_envs=2, vectorization_mode='vector_entry_point',
                        checkpoint='random')
    try:
        assert envs.num_envs == 2 and envs.envs[0].engine.model is envs.envs[1].engine.model
    finally:
        envs.close()


@pytest.mark.slow
def test_manipulation_variant_passes_the_checker(engine):
    env = WorldScapeManipEnv(engine=engine)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {'rgb', 'depth', 'pose', 'pose_video'}
