"""Action scripts for rollouts: what the robot (and the hand) does on each frame.

An actions FILE is one of:
  - `.csv` / `.txt`: one row per frame, `vx vy vz yaw_rate pitch_rate` (m/s, rad/s; commas or spaces; `#`
    comments), the Twist convention of model.kinematics;
  - `.npy`: a (T, 5) float array (loaded without pickle);
  - `.yaml` / `.json`: a tour of segments, each a named script of synthetic.trajectories or a held action,
    and optionally a hand script:

        segments:
          - {script: straight, frames: 20}
          - {action: [0.0, 0.0, 0.0, 0.5, 0.0], frames: 10}   # turn left on the spot for 1 s
          - {script: out_and_back, frames: 40}
        hands: {script: pick_and_place}                       # reach, grasp, carry, place (optional)

    A tour's hands are planned on the table scene of `scene_seed` (default: the rollout's start seed), so with a
    `table:SEED` start the hand goes for the objects of that first view (tools.hand_plans).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from worldscape_ros.model.kinematics import NAV_ACTION_DIM, NavAction


@dataclass
class ActionScript:
    actions: np.ndarray  # (T, 5) float64, the action leading to frame t + 1
    hands: np.ndarray | None = None  # (T, 21, 3) float64 camera-frame keypoints for frame t + 1, or None
    handedness: str = 'right'

    def __post_init__(self) -> None:
        a = np.asarray(self.actions, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != NAV_ACTION_DIM:
            raise ValueError(f'actions must be (T, {NAV_ACTION_DIM}) (vx, vy, vz, yaw_rate, pitch_rate), '
                             f'got shape {a.shape}')
        if not np.all(np.isfinite(a)):
            raise ValueError('actions must be finite')
        self.actions = a
        if self.hands is not None:
            h = np.asarray(self.hands, dtype=np.float64)
            if h.shape != (len(a), 21, 3):
                raise ValueError(f'hands must be ({len(a)}, 21, 3) to match the actions, got {h.shape}')
            self.hands = h

    def __len__(self) -> int:
        return len(self.actions)


def nav_script(name: str, frames: int, fps: float, seed: int = 0) -> np.ndarray:
    """A named navigation script of synthetic.trajectories as a (frames, 5) array."""
    from worldscape_ros.synthetic.trajectories import script_actions

    return np.array([a.to_array() for a in script_actions(name, frames, fps, seed)]).reshape(frames, NAV_ACTION_DIM)


def _segment(seg: Any, fps: float, where: str) -> np.ndarray:
    if not isinstance(seg, dict) or 'frames' not in seg or ('script' in seg) == ('action' in seg):
        raise ValueError(f'{where}: each segment needs `frames` and exactly one of `script` or `action`')
    frames = seg['frames']
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f'{where}: frames must be a positive integer, got {frames!r}')
    if 'script' in seg:
        return nav_script(str(seg['script']), frames, fps, int(seg.get('seed', 0)))
    action = NavAction.from_array(seg['action']).to_array()
    return np.repeat(action[None], frames, axis=0)


def load_script(path: str | Path, fps: float, scene_seed: int = 0) -> ActionScript:
    """Read an actions FILE (see the module docstring); `fps` is the model's frame rate (for named scripts),
    `scene_seed` the table scene hand scripts act in unless the tour names one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'actions file {path} does not exist')
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f'fps must be positive, got {fps}')
    suffix = path.suffix.lower()
    try:
        if suffix in ('.csv', '.txt'):
            text = path.read_text().replace(',', ' ')
            rows = [line.split('#', 1)[0].split() for line in text.splitlines()]
            rows = [r for r in rows if r]
            for n, r in enumerate(rows):
                if len(r) != NAV_ACTION_DIM:
                    raise ValueError(f'actions must be {NAV_ACTION_DIM} values per row (vx vy vz yaw_rate '
                                     f'pitch_rate), row {n + 1} has {len(r)}')
            return ActionScript(np.array([[float(v) for v in r] for r in rows]).reshape(-1, NAV_ACTION_DIM))
        if suffix == '.npy':
            return ActionScript(np.load(path, allow_pickle=False))
        if suffix in ('.yaml', '.yml', '.json'):
            doc = json.loads(path.read_text()) if suffix == '.json' else yaml.safe_load(path.read_text())
            return _tour(doc, fps, scene_seed)
    except UnicodeDecodeError:
        raise ValueError(f'actions file {path} is not text (UTF-8)') from None
    except (ValueError, TypeError, yaml.YAMLError) as exc:  # TypeError: a tour value of the wrong kind
        raise ValueError(f'actions file {path}: {exc}') from None
    raise ValueError(f'actions file {path}: unknown format {suffix!r} (expected .csv, .txt, .npy, .yaml or .json)')


def _tour(doc: Any, fps: float, scene_seed: int) -> ActionScript:
    if not isinstance(doc, dict) or not isinstance(doc.get('segments'), list) or not doc['segments']:
        raise ValueError('a tour needs a non-empty list `segments`')
    actions = np.concatenate([_segment(s, fps, f'segment {i}') for i, s in enumerate(doc['segments'])])
    hands = None
    handedness = 'right'
    if doc.get('hands') is not None:
        spec = doc['hands']
        if not isinstance(spec, dict) or 'script' not in spec:
            raise ValueError('hands must be a mapping with `script` (e.g. {script: pick_and_place})')
        from worldscape_ros.tools.hand_plans import hand_plan

        hands, handedness = hand_plan(str(spec['script']), len(actions), int(spec.get('scene_seed', scene_seed)),
                                      spec.get('handedness'))
    return ActionScript(actions, hands, handedness)
