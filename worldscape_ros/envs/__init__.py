"""Gymnasium environments in the model's imagination (registered on import).

    import gymnasium as gym
    import worldscape_ros.envs  # registers the ids
    env = gym.make('WorldScapeNav-v0', checkpoint='random')
    envs = gym.make_vec('WorldScapeNav-v0', num_envs=4, checkpoint='random')  # one model, four sessions, batched
"""

import gymnasium

from worldscape_ros.envs.nav import WorldScapeManipEnv, WorldScapeNavEnv
from worldscape_ros.envs.vector import WorldScapeVectorEnv, make_vector_env

__all__ = ['WorldScapeManipEnv', 'WorldScapeNavEnv', 'WorldScapeVectorEnv', 'make_vector_env']

for _id, _entry in (('WorldScapeNav-v0', 'worldscape_ros.envs.nav:WorldScapeNavEnv'),
                    ('WorldScapeManip-v0', 'worldscape_ros.envs.nav:WorldScapeManipEnv')):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry, vector_entry_point='worldscape_ros.envs.vector:make_vector_env',
                           max_episode_steps=200)
