"""The scene generator's kinds, importable without MuJoCo (the eval suites, the rollout tool and the gym
environment check names against them before anything renders)."""

SCENE_KINDS = ('room', 'yard', 'table', 'furnished')
NAV_KINDS = ('room', 'yard', 'furnished')  # a ground robot's scenes; 'furnished': synthetic/furnished.py
