"""Scenario suites: a start (a synthetic scene seed, or a first frame with its pose and intrinsics) plus an
action script, over held-out seeds. Suites are YAML files in eval/suites/ (or any path):

    name: nav
    kind: nav                     # nav | manip
    width: 128
    height: 96
    frames: 16                    # frames per scenario, the start frame included
    fps: 10.0
    stride: 2                     # frame gap for action following
    scene_kind: room              # nav: room | yard (the generator's) | l_room | office (eval/handmade.py)
    seeds: [90001, 90002]         # held out: training data uses seeds below 90000
    scripts: [straight, turn_left]
    scenarios:                    # optional extra scenarios; any key above may be overridden per scenario
      - {script: loop, seed: 90003, frames: 81}
      - {script: straight, start: {image: start.png, pose: [16 numbers], intrinsics: [9 numbers]}}

Scenarios are seeds x scripts, then the explicit list. An image start has no ground truth beyond its first
frame: only the figures that need no ground truth (action following) are computed for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from worldscape_ros.errors import EvalError
from worldscape_ros.eval.handmade import HANDMADE_SCENES
from worldscape_ros.fileio import read_yaml_mapping
from worldscape_ros.synthetic.kinds import NAV_KINDS

SUITE_NAMES = ('nav', 'memory', 'revisit', 'idle', 'manip')  # the test suites: 'all'
VALIDATION_SUITES = ('validation', 'validation_long')  # other held-out seeds, for choosing settings; never in 'all'
HANDMADE_SUITES = ('lroom', 'office')  # held-out scenes outside the generator (eval/handmade.py); not in 'all'
NAV_SCENE_KINDS = NAV_KINDS + HANDMADE_SCENES
NAV_SCRIPTS = ('straight', 'turn_left', 'turn_right', 'strafe', 'mixed', 'out_and_back', 'loop', 'idle',
               'corner_out_and_back', 'loop_revisit')  # synthetic/trajectories.SCRIPTS, without importing MuJoCo
MANIP_SCRIPTS = ('reach', 'grasp', 'lift', 'carry', 'place', 'pick_and_place')
HELD_OUT_SEED_MIN = 90000
_SUITE_KEYS = {'name', 'kind', 'description', 'width', 'height', 'frames', 'fps', 'stride', 'scene_kind', 'seeds',
               'scripts', 'scenarios'}
_SCENARIO_KEYS = {'name', 'seed', 'script', 'frames', 'width', 'height', 'fps', 'stride', 'scene_kind', 'start'}


@dataclass(frozen=True)
class ImageStart:
    """A user's first frame: RGB image file, camera-to-world pose (OpenCV axes), intrinsics, optional depth."""

    image: Path
    pose: np.ndarray  # (4, 4)
    intrinsics: np.ndarray  # (3, 3)
    depth: Path | None = None  # .npy (H, W) metres

    def load(self) -> tuple[np.ndarray, np.ndarray | None]:
        import cv2

        bgr = cv2.imread(str(self.image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise EvalError(f'could not read the start image {self.image}')
        depth = None
        if self.depth is not None:
            depth = np.load(self.depth, allow_pickle=False).astype(np.float32)
            if depth.shape != bgr.shape[:2]:
                raise EvalError(f'start depth {self.depth} has shape {depth.shape}, image is {bgr.shape[:2]}')
        return np.ascontiguousarray(bgr[..., ::-1]), depth


@dataclass(frozen=True)
class Scenario:
    suite: str
    name: str
    kind: str  # 'nav' | 'manip'
    script: str
    seed: int
    frames: int  # the start frame included
    width: int
    height: int
    fps: float
    stride: int
    scene_kind: str
    start: ImageStart | None = None

    @property
    def key(self) -> str:
        return f'{self.suite}/{self.name}'

    def resized(self, width: int, height: int, fps: float) -> Scenario:
        return replace(self, width=width, height=height, fps=fps)


@dataclass(frozen=True)
class Suite:
    name: str
    kind: str
    description: str
    scenarios: tuple[Scenario, ...]

    @property
    def seeds(self) -> list[int]:
        return sorted({s.seed for s in self.scenarios})


def suite_path(name: str) -> Path:
    return Path(str(resources.files('worldscape_ros.eval') / 'suites' / f'{name}.yaml'))


def load_suites(name_or_path: str, frames: int | None = None) -> list[Suite]:
    """'nav' | 'memory' | 'revisit' | 'idle' | 'manip' | 'all' | 'validation[_long]' | 'lroom' | 'office' | a suite YAML
    path, or several joined by commas; `frames` overrides every scenario's frame count (idle keeps at least its
    own: it measures drift at frame 100)."""
    if name_or_path == 'all':
        return [load_suite(n, frames) for n in SUITE_NAMES]
    names = [n.strip() for n in name_or_path.split(',') if n.strip()]
    if len(set(names)) != len(names) or not names:
        raise EvalError(f'suites must be named once each, got {name_or_path!r}')
    return [load_suite(n, frames) for n in names]


def load_suite(name_or_path: str, frames: int | None = None) -> Suite:
    path = Path(name_or_path)
    if name_or_path in SUITE_NAMES + VALIDATION_SUITES + HANDMADE_SUITES:
        path = suite_path(name_or_path)
    elif path.suffix not in ('.yaml', '.yml'):
        raise EvalError(f'unknown suite {name_or_path!r}; expected one of '
                        f'{", ".join(SUITE_NAMES + VALIDATION_SUITES + HANDMADE_SUITES + ("all",))} '
                        'or a path to a suite .yaml')
    data = read_yaml_mapping(path, 'suite file', EvalError)
    if frames is not None and frames < 2:
        raise EvalError(f'--frames must be at least 2 (the start frame and one generated), got {frames}')
    return parse_suite(data, source=str(path), frames=frames, base_dir=path.parent)


def parse_suite(data: Any, source: str = '<suite>', frames: int | None = None,
                base_dir: Path | None = None) -> Suite:
    if not isinstance(data, dict):
        raise EvalError(f'suite {source} must be a mapping')
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise EvalError(f'suite {source} has unknown keys: {", ".join(sorted(unknown))}')
    name = _get(data, 'name', str, source)
    kind = _get(data, 'kind', str, source)
    if kind not in ('nav', 'manip'):
        raise EvalError(f'suite {source}: kind must be nav or manip, got {kind!r}')
    defaults = {
        'width': data.get('width', 128), 'height': data.get('height', 96), 'frames': data.get('frames', 16),
        'fps': data.get('fps', 10.0), 'stride': data.get('stride', 2),
        'scene_kind': data.get('scene_kind', 'room' if kind == 'nav' else 'table'),
    }
    entries: list[dict[str, Any]] = []
    seeds, scripts = data.get('seeds', []), data.get('scripts', [])
    if not isinstance(seeds, list) or not isinstance(scripts, list):
        raise EvalError(f'suite {source}: seeds and scripts must be lists')
    for seed in seeds:
        for script in scripts:
            entries.append({'seed': seed, 'script': script})
    extra = data.get('scenarios', []) or []
    if not isinstance(extra, list):
        raise EvalError(f'suite {source}: scenarios must be a list of mappings')
    entries.extend(extra)
    if not entries:
        raise EvalError(f'suite {source} has no scenarios (give seeds and scripts, or scenarios)')
    scenarios = []
    for k, entry in enumerate(entries):
        scenarios.append(_scenario(name, kind, entry, defaults, f'{source} scenario {k}', frames, base_dir))
    names = [s.name for s in scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EvalError(f'suite {source} has duplicate scenario names: {", ".join(dupes)}')
    return Suite(name, kind, str(data.get('description', '')), tuple(scenarios))


def _scenario(suite: str, kind: str, entry: Any, defaults: dict[str, Any], where: str, frames: int | None,
              base_dir: Path | None) -> Scenario:
    if not isinstance(entry, dict):
        raise EvalError(f'{where} must be a mapping')
    unknown = set(entry) - _SCENARIO_KEYS
    if unknown:
        raise EvalError(f'{where} has unknown keys: {", ".join(sorted(unknown))}')
    e = {**defaults, **entry}
    script = _get(e, 'script', str, where)
    allowed = NAV_SCRIPTS if kind == 'nav' else MANIP_SCRIPTS
    if script not in allowed:
        raise EvalError(f'{where}: unknown {kind} script {script!r}; expected one of {", ".join(allowed)}')
    start = _image_start(e['start'], where, base_dir) if e.get('start') is not None else None
    seed = int(e.get('seed', 0))
    if start is None and 'seed' not in e:
        raise EvalError(f'{where} needs a seed (a synthetic start) or a start image')
    if start is None and seed < HELD_OUT_SEED_MIN:
        raise EvalError(f'{where}: seed {seed} is not held out (evaluation seeds are >= {HELD_OUT_SEED_MIN})')
    n = int(e['frames'])
    if frames is not None:
        n = max(frames, n) if script == 'idle' else frames
    scene_kind = str(e['scene_kind'])
    if kind == 'nav' and start is None and scene_kind not in NAV_SCENE_KINDS:
        raise EvalError(f'{where}: unknown navigation scene kind {scene_kind!r}; expected one of '
                        f'{", ".join(NAV_SCENE_KINDS)}')
    width, height, fps, stride = int(e['width']), int(e['height']), float(e['fps']), int(e['stride'])
    if n < 2 or width < 16 or height < 16 or not (fps > 0 and math.isfinite(fps)) or stride < 1:
        raise EvalError(f'{where}: need frames >= 2, width and height >= 16, fps > 0, stride >= 1; got '
                        f'frames={n} size={width}x{height} fps={fps} stride={stride}')
    default_name = f'{script}_{seed}' if start is None else f'{script}_{Path(start.image).stem}'
    return Scenario(suite=suite, name=str(e.get('name', default_name)), kind=kind, script=script, seed=seed,
                    frames=n, width=width, height=height, fps=fps, stride=stride,
                    scene_kind=scene_kind, start=start)


def _image_start(data: Any, where: str, base_dir: Path | None) -> ImageStart:
    if not isinstance(data, dict) or not {'image', 'pose', 'intrinsics'} <= set(data):
        raise EvalError(f'{where}: start must be a mapping with image, pose (16 numbers) and intrinsics (9)')
    pose = np.asarray(data['pose'], dtype=np.float64)
    K = np.asarray(data['intrinsics'], dtype=np.float64)
    if pose.size != 16 or K.size != 9:
        raise EvalError(f'{where}: start pose needs 16 numbers and intrinsics 9, got {pose.size} and {K.size}')

    def resolve(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or base_dir is None else base_dir / q

    depth = resolve(data['depth']) if data.get('depth') else None
    return ImageStart(resolve(data['image']), pose.reshape(4, 4), K.reshape(3, 3), depth)


def _get(data: dict[str, Any], key: str, typ: type, where: str) -> Any:
    if key not in data:
        raise EvalError(f'{where} is missing {key!r}')
    if not isinstance(data[key], typ):
        raise EvalError(f'{where}: {key} must be a {typ.__name__}, got {data[key]!r}')
    return data[key]
