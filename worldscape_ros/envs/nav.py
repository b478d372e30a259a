"""WorldScapeNav-v0: point-goal navigation inside the world model's imagination (and a manipulation variant).

Each episode starts from the first view of a synthetic scene chosen by the reset seed (only that frame comes from
the renderer; every later observation is imagined by the engine). The agent sends a velocity command per step
and sees RGB, metric depth, the camera pose and the goal relative to the robot. Reward: progress towards the
goal (metres closer this step), plus 1 on arrival (which ends the episode). The goal lives in odometry
coordinates only: the model does not draw it, the agent has to learn to drive to it from its odometry.

WorldScapeManip-v0 keeps the camera still over a table and takes 21 hand keypoints per step (a (21, 3) action
in the camera optical frame, metres); its reward is zero (a world for imitation, data and evaluation).

Several sessions share one model (`make_vector_env` / gym.make_vec, in envs/vector.py): each env holds its own
engine session (memory, state, sampling seed) over the same weights, and one batched forward steps them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from worldscape_ros.model.frames import Frame
from worldscape_ros.model.kinematics import NAV_ACTION_DIM, NavAction
from worldscape_ros.model.protocol import LiveEngine
from worldscape_ros.synthetic.kinds import SCENE_KINDS

MAX_DEPTH = 1000.0  # m: the bound of the depth observation
MAX_RANGE = 1e5  # m: the bound of positions in observations (sessions never drive that far)


def load_engine(checkpoint: str | None, config: str | None, device: str, memory: bool, steps: int | None,
                seed: int) -> LiveEngine:
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions

    return WorldEngine.from_pretrained(checkpoint, config,
                                       EngineOptions(device=device, memory=memory, steps=steps, seed=seed))


@dataclass
class Command:
    """A step's action as the engine takes it, checked and clipped, and the goal's distance before it."""

    action: NavAction
    keypoints: np.ndarray | None  # (21, 3) hand keypoints (the manipulation variant), else None
    distance: float


class WorldScapeNavEnv(gymnasium.Env):
    metadata = {'render_modes': ['rgb_array'], 'render_fps': 10}

    def __init__(self, checkpoint: str | None = None, config: str | None = None, device: str = 'cpu',
                 memory: bool = True, steps: int | None = None, scene_kind: str = 'room',
                 goal_distance: tuple[float, float] = (1.0, 3.0), goal_radius: float = 0.4,
                 max_linear: float = 1.0, max_angular: float = 1.0, render_mode: str | None = None,
                 engine: LiveEngine | None = None, engine_seed: int = 0) -> None:
        if render_mode not in (None, 'rgb_array'):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if scene_kind not in SCENE_KINDS:
            raise ValueError(f'scene_kind must be one of {", ".join(SCENE_KINDS)}, got {scene_kind!r}')
        if not (0 < goal_distance[0] <= goal_distance[1]) or not goal_radius > 0:
            raise ValueError(f'goal_distance must be 0 < min <= max and goal_radius > 0, got {goal_distance}, '
                             f'{goal_radius}')
        if not (max_linear > 0 and max_angular > 0):
            raise ValueError(f'max_linear and max_angular must be positive, got {max_linear}, {max_angular}')
        self.engine = engine if engine is not None else load_engine(checkpoint, config, device, memory, steps,
                                                                     engine_seed)
        cfg = self.engine.config
        self.render_mode = render_mode
        self.metadata = {**self.metadata, 'render_fps': float(cfg.fps)}
        self.scene_kind = scene_kind
        self.goal_distance = goal_distance
        self.goal_radius = goal_radius
        self._chunk = cfg.frames_per_chunk
        H, W = int(cfg.height), int(cfg.width)
        self.observation_space: spaces.Dict = spaces.Dict({
            'rgb': spaces.Box(0, 255, (H, W, 3), np.uint8),
            'depth': spaces.Box(0.0, MAX_DEPTH, (H, W), np.float32),  # metres along the optical axis
            'pose': spaces.Box(-MAX_RANGE, MAX_RANGE, (4, 4), np.float64),  # camera-to-odom, OpenCV axes
            'goal': spaces.Box(-MAX_RANGE, MAX_RANGE, (2,), np.float32),  # goal in the robot frame (ahead, left)
        })
        lin, ang = float(max_linear), float(max_angular)
        self.action_space: spaces.Box = self._make_action_space(lin, ang)
        self._goal = np.zeros(2)
        self._last: Frame | None = None  # the last frame made: the start frame after reset

    def _make_action_space(self, lin: float, ang: float) -> spaces.Box:
        # vx, vy, vz, yaw_rate, pitch_rate (Twist convention of model.kinematics)
        high = np.array([lin, lin, lin, ang, ang], np.float32)
        return spaces.Box(-high, high, (NAV_ACTION_DIM,), np.float32)

    # -- gymnasium API ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from worldscape_ros.synthetic.starts import start_from_scene  # MuJoCo when a first episode starts

        super().reset(seed=seed)
        scene_seed = int(self.np_random.integers(0, 2**31 - 1))
        if options and 'scene_seed' in options:
            scene_seed = int(options['scene_seed'])
        self._last = start_from_scene(self.engine, scene_seed, self.scene_kind)
        state = self.engine.state
        r = self.np_random.uniform(*self.goal_distance)
        theta = self.np_random.uniform(-math.pi, math.pi)
        self._goal = np.array([state.x + r * math.cos(theta), state.y + r * math.sin(theta)])
        return self._observation(), {'scene_seed': scene_seed, 'frame_index': 0, **self._goal_info()}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        command = self.command(action)
        return self.outcome(command, self._advance(command.action, command.keypoints))

    def command(self, action: np.ndarray) -> Command:
        """The action checked (one clear error) and clipped: what a step sends the engine."""
        act = np.asarray(action, dtype=np.float64).reshape(-1)
        if act.shape != (NAV_ACTION_DIM,) or not np.all(np.isfinite(act)):
            raise ValueError(f'action must be {NAV_ACTION_DIM} finite values (vx, vy, vz, yaw_rate, pitch_rate), '
                             f'got {np.asarray(action)!r}')
        act = np.clip(act, self.action_space.low, self.action_space.high)
        return Command(NavAction.from_array(act), None, self._distance())

    def outcome(self, command: Command, frame: Frame
                ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """The step's observation, reward, ends and info once the engine made `frame` for `command`."""
        self._last = frame
        after = self._distance()
        reached = after <= self.goal_radius
        reward = float(command.distance - after) + (1.0 if reached else 0.0)
        info = {'frame_index': int(frame.index), **self._goal_info()}
        return self._observation(), reward, bool(reached), False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != 'rgb_array' or self._last is None:
            return None
        from worldscape_ros.tools.video import panel

        return panel(self._last.rgb, self._last.depth)

    # -- helpers ---------------------------------------------------------------------------------------------
    @property
    def latency_ms(self) -> float:
        """The engine's time for the last frame (kept out of `info`, which must be deterministic)."""
        return float(self._last.latency_ms) if self._last is not None else 0.0

    def _advance(self, action: NavAction, keypoints: np.ndarray | None) -> Frame:
        return self.engine.step_chunk(*self.held(Command(action, keypoints, 0.0)))[-1]

    def held(self, command: Command) -> tuple[list[NavAction], list[np.ndarray | None]]:
        """One env step is one chunk: the command held over it (actions and hand keypoints, one per frame)."""
        return [command.action] * self._chunk, [command.keypoints] * self._chunk

    def _distance(self) -> float:
        s = self.engine.state
        return float(math.hypot(self._goal[0] - s.x, self._goal[1] - s.y))

    def _goal_in_robot_frame(self) -> np.ndarray:
        s = self.engine.state
        dx, dy = self._goal[0] - s.x, self._goal[1] - s.y
        c, si = math.cos(s.yaw), math.sin(s.yaw)
        return np.array([c * dx + si * dy, -si * dx + c * dy], np.float32)

    def _goal_info(self) -> dict[str, Any]:
        return {'goal_odom': self._goal.copy(), 'distance': self._distance()}

    def _frame(self) -> Frame:
        if self._last is None:
            raise ResetNeeded('the env has no frame yet: call reset() first')
        return self._last

    def _observation(self) -> dict[str, np.ndarray]:
        f = self._frame()
        # unknown depth (NaN) reads 0, too far (+inf) reads MAX_DEPTH, as a depth camera driver reports them
        depth = np.nan_to_num(np.asarray(f.depth, np.float32), nan=0.0, posinf=MAX_DEPTH, neginf=0.0)
        return {'rgb': np.asarray(f.rgb, np.uint8), 'depth': np.clip(depth, 0.0, MAX_DEPTH),
                'pose': np.clip(np.asarray(f.pose, np.float64), -MAX_RANGE, MAX_RANGE),
                'goal': np.clip(self._goal_in_robot_frame(), -MAX_RANGE, MAX_RANGE)}


class WorldScapeManipEnv(WorldScapeNavEnv):
    """A still camera over a table; actions are the hand's 21 keypoints (camera frame, metres)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault('scene_kind', 'table')
        super().__init__(**kwargs)
        self.observation_space = spaces.Dict({k: v for k, v in self.observation_space.spaces.items() if k != 'goal'}
                                             | {'pose_video': self.observation_space['rgb']})

    def _make_action_space(self, lin: float, ang: float) -> spaces.Box:
        # keypoints in front of the camera: x, y within +-1 m, z (depth) within 5 cm .. 2 m
        low = np.tile(np.array([-1.0, -1.0, 0.05], np.float32), (21, 1))
        high = np.tile(np.array([1.0, 1.0, 2.0], np.float32), (21, 1))
        return spaces.Box(low, high, (21, 3), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        return obs, {k: v for k, v in info.items() if k in ('scene_seed', 'frame_index')}

    def command(self, action: np.ndarray) -> Command:
        kp = np.asarray(action, dtype=np.float64)
        if kp.shape != (21, 3) or not np.all(np.isfinite(kp)):
            raise ValueError(f'action must be (21, 3) finite hand keypoints, got shape {kp.shape}')
        return Command(NavAction(), np.clip(kp, self.action_space.low, self.action_space.high), 0.0)

    def outcome(self, command: Command, frame: Frame
                ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self._last = frame
        return self._observation(), 0.0, False, False, {'frame_index': int(frame.index)}

    def _observation(self) -> dict[str, np.ndarray]:
        obs = super()._observation()
        del obs['goal']
        pv = self._frame().pose_video
        obs['pose_video'] = np.zeros_like(obs['rgb']) if pv is None else np.asarray(pv, np.uint8)
        return obs

