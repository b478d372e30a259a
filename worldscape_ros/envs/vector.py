"""N sessions of a WorldScape env stepped in one batched forward per step (a gymnasium.vector.VectorEnv).

Each sub-env is a WorldScapeNavEnv (or WorldScapeManipEnv) whose engine is one session of a BatchedEngine: the
sub-env checks its action and makes its observation, reward and info, the batch makes every session's frame
together. Autoreset is gymnasium's default (next step): the step after a session's episode ended resets that
session alone (reward 0) while the others step. `reset(options={'reset_mask': mask})` resets the sessions the
mask picks and leaves the others where they are.

    envs = gym.make_vec('WorldScapeNav-v0', num_envs=8, vectorization_mode='vector_entry_point')
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from worldscape_ros.envs.nav import WorldScapeManipEnv, WorldScapeNavEnv
from worldscape_ros.model.batched import BatchedEngine
from worldscape_ros.model.options import EngineOptions


class WorldScapeVectorEnv(gymnasium.vector.VectorEnv[dict[str, np.ndarray], np.ndarray, np.ndarray]):
    def __init__(self, num_envs: int, env_cls: type[WorldScapeNavEnv] = WorldScapeNavEnv,
                 checkpoint: str | None = None, config: str | None = None, device: str = 'cpu',
                 memory: bool = True, steps: int | None = None, batch: BatchedEngine | None = None,
                 **env_kwargs: Any) -> None:
        """num_envs sessions over one model (loaded from checkpoint and config, or the sessions of `batch`);
        env_kwargs go to every sub-env (scene_kind, goal_distance, render_mode, ...)."""
        if num_envs < 1:
            raise ValueError(f'num_envs must be >= 1, got {num_envs}')
        if batch is not None and len(batch) != num_envs:
            raise ValueError(f'batch holds {len(batch)} sessions, num_envs is {num_envs}')
        self.batch = batch or BatchedEngine.from_pretrained(
            num_envs, checkpoint, config, EngineOptions(device=device, memory=memory, steps=steps))
        self.envs = [env_cls(engine=session, **env_kwargs) for session in self.batch.sessions]
        first = self.envs[0]
        self.num_envs = num_envs
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**first.metadata, 'autoreset_mode': AutoresetMode.NEXT_STEP}
        self.render_mode = first.render_mode
        self._ended = np.zeros(num_envs, dtype=bool)  # episodes that ended on the last step: reset on the next
        self._obs = dict_batch(create_empty_array(self.single_observation_space, num_envs))

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """seed: one int (session i gets seed + i) or one per session; options['reset_mask']: (num_envs,) bool,
        the sessions to reset (default all); other options go to each sub-env's reset."""
        super().reset(seed=seed if isinstance(seed, int) else None)
        n = self.num_envs
        seeds = [None] * n if seed is None else [seed + i for i in range(n)] if isinstance(seed, int) else list(seed)
        if len(seeds) != n:
            raise ValueError(f'seed must be an int or hold one seed per env ({n}), got {len(seeds)}')
        options = dict(options or {})
        mask = np.asarray(options.pop('reset_mask', np.ones(n, dtype=bool)))
        if mask.shape != (n,) or mask.dtype != np.bool_ or not mask.any():
            raise ValueError(f'reset_mask must be a bool array of shape ({n},) picking at least one env, got {mask!r}')
        infos: dict[str, Any] = {}
        observations = []
        for i, env in enumerate(self.envs):
            if mask[i]:
                obs, info = env.reset(seed=seeds[i], options=options or None)
                self._ended[i] = False
                infos = self._add_info(infos, info, i)
            else:
                obs = env._observation()  # the session as it stands
            observations.append(obs)
        self._obs = dict_batch(concatenate(self.single_observation_space, observations, self._obs))
        return self._obs, infos

    def step(self, actions: np.ndarray
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Every session one step (those whose episode ended last step are reset instead), in one batched
        forward. Every action is checked before any session moves."""
        n = self.num_envs
        per_env = list(iterate(self.action_space, actions))
        if len(per_env) != n:
            raise ValueError(f'actions must hold one action per env ({n}), got {len(per_env)}')
        stepping = [i for i in range(n) if not self._ended[i]]
        commands = {i: self.envs[i].command(per_env[i]) for i in stepping}
        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        infos: dict[str, Any] = {}
        observations: list[dict[str, np.ndarray] | None] = [None] * n
        for r in (i for i in range(n) if self._ended[i]):
            observations[r], info = self.envs[r].reset()
            infos = self._add_info(infos, info, r)
        if stepping:
            held = [self.envs[i].held(commands[i]) for i in stepping]
            chunks = self.batch.step_chunk([a for a, _ in held], [k for _, k in held], sessions=stepping)
            for i, frames in zip(stepping, chunks, strict=True):
                obs, reward, term, trunc, info = self.envs[i].outcome(commands[i], frames[-1])
                observations[i], rewards[i], terminated[i], truncated[i] = obs, reward, term, trunc
                infos = self._add_info(infos, info, i)
        self._ended = terminated | truncated
        self._obs = dict_batch(concatenate(self.single_observation_space, observations, self._obs))
        return self._obs, rewards, terminated, truncated, infos

    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)


def dict_batch(observations: tuple[Any, ...] | dict[str, Any] | np.ndarray | None) -> dict[str, np.ndarray]:
    """The sessions' observations as gymnasium batches a Dict space: a dict of arrays, one row per session
    (gymnasium's own return type covers every kind of space)."""
    return cast(dict[str, np.ndarray], observations)


def make_vector_env(num_envs: int, env_cls: type[WorldScapeNavEnv] | None = None, id: str | None = None,
                    checkpoint: str | None = None, config: str | None = None, device: str = 'cpu',
                    memory: bool = True, steps: int | None = None, **kwargs: Any) -> WorldScapeVectorEnv:
    """gym.make_vec's entry point: `num_envs` sessions of the env `id` over one loaded model."""
    cls = env_cls or (WorldScapeManipEnv if id is not None and 'Manip' in id else WorldScapeNavEnv)
    kwargs.pop('max_episode_steps', None)  # gym.make_vec passes the registration's; episodes end on arrival
    return WorldScapeVectorEnv(num_envs, cls, checkpoint, config, device, memory, steps, **kwargs)
