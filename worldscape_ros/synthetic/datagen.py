"""Generate a folder of episodes in parallel, resumably: finished episodes are skipped, none is half written.

Episode i of a run is a pure function of (kind, seed, i, frames, size, fps): its scene seed, scene kind and
family are drawn from numpy.random.default_rng([seed, i]). The run's settings are kept in datagen.json in
the output folder, so a resumed run cannot silently mix episodes made with other settings.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from worldscape_ros.data.episode import EPISODE_SUFFIX, Episode, read_header, write_episode
from worldscape_ros.errors import DatagenError, EpisodeFormatError
from worldscape_ros.synthetic.hand_scripts import HAND_SCRIPTS
from worldscape_ros.synthetic.trajectories import FAMILIES

log = logging.getLogger(__name__)
DATAGEN_KINDS = ('nav', 'manip')
NAV_WORLDS = ('procedural', 'furnished')  # rooms and yards as painted by textures.py; or furnished rooms
MANIFEST = 'datagen.json'


@dataclass(frozen=True)
class DatagenConfig:
    kind: str
    episodes: int
    frames: int
    width: int
    height: int
    seed: int
    out: Path
    workers: int = 1
    fps: float = 10.0
    worlds: str = 'procedural'  # nav only: NAV_WORLDS

    def __post_init__(self) -> None:
        if self.kind not in DATAGEN_KINDS:
            raise DatagenError(f'unknown kind {self.kind!r}; expected one of {", ".join(DATAGEN_KINDS)}')
        if self.worlds not in NAV_WORLDS:
            raise DatagenError(f'unknown worlds {self.worlds!r}; expected one of {", ".join(NAV_WORLDS)}')
        if self.worlds != 'procedural' and self.kind != 'nav':
            raise DatagenError(f'--worlds {self.worlds} is for nav episodes, not {self.kind}')
        for name in ('episodes', 'frames', 'width', 'height', 'workers'):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise DatagenError(f'--{name} must be a positive integer, got {value!r}')
        if self.seed < 0:
            raise DatagenError(f'--seed must be non-negative, got {self.seed}')
        if not self.fps > 0:
            raise DatagenError(f'--fps must be positive, got {self.fps}')

    def settings(self) -> dict[str, object]:
        d = asdict(self)
        for key in ('out', 'workers', 'episodes'):  # these may change between resumed runs
            d.pop(key)
        if self.worlds == 'procedural':  # as written before furnished rooms existed, so those folders resume
            d.pop('worlds')
        return d


def parse_size(text: str) -> tuple[int, int]:
    """'128x96' -> (128, 96)."""
    parts = text.lower().split('x')
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise DatagenError(f'--size must look like WIDTHxHEIGHT (e.g. 128x96), got {text!r}') from None
    if w <= 0 or h <= 0:
        raise DatagenError(f'--size must be positive, got {text!r}')
    return w, h


def episode_path(config: DatagenConfig, index: int) -> Path:
    return config.out / f'{config.kind}_{index:06d}{EPISODE_SUFFIX}'


@dataclass(frozen=True)
class EpisodePlan:
    scene_seed: int
    scene_kind: str
    script: str


def episode_plan(config: DatagenConfig, index: int) -> EpisodePlan:
    """Scene seed, scene kind and script of episode `index` (deterministic)."""
    rng = np.random.default_rng([config.seed, index, DATAGEN_KINDS.index(config.kind)])
    scene_seed = int(rng.integers(0, 2**31 - 1))
    if config.kind == 'nav':
        outdoor = rng.random() >= 0.7
        scene_kind = 'furnished' if config.worlds == 'furnished' else 'yard' if outdoor else 'room'
        return EpisodePlan(scene_seed, scene_kind, FAMILIES[int(rng.integers(len(FAMILIES)))])
    script = 'pick_and_place' if rng.random() < 0.6 else HAND_SCRIPTS[int(rng.integers(len(HAND_SCRIPTS)))]
    return EpisodePlan(scene_seed, 'table', script)


def make_episode(config: DatagenConfig, index: int) -> Episode:
    from worldscape_ros.synthetic.episodes import manip_episode, nav_episode  # imports MuJoCo only in workers

    plan = episode_plan(config, index)
    if config.kind == 'nav':
        ep = nav_episode(plan.scene_seed, plan.script, config.frames, config.width, config.height, config.fps,
                         scene_kind=plan.scene_kind)
    else:
        ep = manip_episode(plan.scene_seed, plan.script, config.frames, config.width, config.height, config.fps)
    ep.meta.update({'datagen_seed': config.seed, 'datagen_index': index})
    return ep


def _is_done(config: DatagenConfig, path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        header = read_header(path)
    except EpisodeFormatError as exc:
        log.warning('regenerating %s: %s', path, exc)
        return False
    return (header['num_frames'], header['width'], header['height']) == (config.frames, config.width, config.height)


def _prepare_output(config: DatagenConfig) -> None:
    try:
        config.out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.probe.', dir=config.out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DatagenError(f'cannot write to output folder {config.out}: {exc.strerror or exc}') from None
    for stale in config.out.glob(f'.{config.kind}_*{EPISODE_SUFFIX}.*'):  # left by a killed run
        stale.unlink(missing_ok=True)
    manifest = config.out / MANIFEST
    settings = config.settings()
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise DatagenError(f'{manifest} is unreadable ({exc}); remove it or use another --out') from None
        if old != json.loads(json.dumps(settings)):
            raise DatagenError(f'{config.out} holds episodes made with other settings ({old}); '
                               f'use another --out or the same settings')
        return
    tmp = manifest.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True))
    os.replace(tmp, manifest)


def _work(args: tuple[DatagenConfig, int]) -> tuple[int, int]:
    config, index = args
    episode = make_episode(config, index)
    try:
        write_episode(episode_path(config, index), episode)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DatagenError(f'output disk is full while writing {episode_path(config, index)}') from None
        raise DatagenError(f'cannot write {episode_path(config, index)}: {exc.strerror or exc}') from None
    return index, episode.num_frames


def run_datagen(config: DatagenConfig, progress: bool = True) -> dict[str, float]:
    """Generate the missing episodes; returns counts and the frame rate of this run."""
    _prepare_output(config)
    todo = [i for i in range(config.episodes) if not _is_done(config, episode_path(config, i))]
    skipped = config.episodes - len(todo)
    if skipped:
        log.info('%d of %d episodes already done in %s', skipped, config.episodes, config.out)
    start = time.perf_counter()
    frames = 0
    bar = tqdm(total=len(todo) * config.frames, unit='frame', desc=f'datagen {config.kind}', disable=not progress)
    try:
        if config.workers == 1 or len(todo) <= 1:
            for i in todo:
                frames += _work((config, i))[1]
                bar.update(config.frames)
        else:
            # fork is safe (and starts in milliseconds) because this process never opens a GL context:
            # MuJoCo and the renderers are created inside the workers only.
            method = 'fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn'
            with multiprocessing.get_context(method).Pool(min(config.workers, len(todo))) as pool:
                for _, n in pool.imap_unordered(_work, [(config, i) for i in todo]):
                    frames += n
                    bar.update(n)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return {'generated': len(todo), 'skipped': skipped, 'frames': frames, 'seconds': seconds,
            'frames_per_s': frames / seconds if seconds > 0 else 0.0}
