"""Offline rollouts: drive the engine from a start and an action script without ROS, and record it.

What it writes in the output folder (docs/recording.md):
  bag/               rosbag2 with the same topics, types, frames and sim-time stamps the simulator node
                     publishes (mcap version 9, or sqlite3 version 8 for Humble): frames 1..T, all imagined
  rollout.mp4        RGB beside coloured depth, at the model's frame rate; its first frame is the start view
                     (the engine's input), then the imagined frames
  contact_sheet.png  a grid of frames spread over the rollout
  summary.json       start, engine (config, weights hash), frame count, frames/s, latency
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from worldscape_ros.data.camera_adapt import fit_start, start_warnings
from worldscape_ros.data.depth_io import load_depth
from worldscape_ros.errors import WorldScapeError
from worldscape_ros.fileio import atomic_write_json
from worldscape_ros.model.kinematics import BaseState, camera_pose, state_from_camera_pose
from worldscape_ros.model.protocol import LiveEngine, OfflineEngine, RollingEngine
from worldscape_ros.synthetic.kinds import SCENE_KINDS
from worldscape_ros.tools import messages as M
from worldscape_ros.tools.bag import SIM_TOPICS, BagWriter, stale_partials, stop_on_signals
from worldscape_ros.tools.scripts import ActionScript
from worldscape_ros.tools.video import auto_scale, contact_sheet, panel, write_mp4, write_png

if TYPE_CHECKING:
    from worldscape_ros.model.engine import Frame

log = logging.getLogger(__name__)

OUTPUTS = ('bag', 'rollout.mp4', 'contact_sheet.png', 'summary.json')  # what a rollout writes into --out


class RolloutError(WorldScapeError):
    """A rollout cannot run as asked (its output folder, its script)."""


def check_out(out: str | Path, force: bool = False) -> list[Path]:
    """Refuse an output folder that cannot take a rollout, touching nothing; return the earlier run's outputs
    that `force` will replace."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RolloutError(f'--out {out} is a file, not a folder')
    partials = stale_partials(out / 'bag')
    old = [out / name for name in OUTPUTS if (out / name).exists()] + partials
    if old and not force:
        fix = 'pass --force to replace it, or choose another --out'
        if partials:
            fix += f' (the killed recording can be recovered first: worldscape bag-recover {partials[0]})'
        raise RolloutError(f'--out {out} holds an earlier run ({", ".join(p.name for p in old)}): {fix}')
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise RolloutError(f'--out {out} cannot be written: {existing} is not a writable folder')
    return old


def prepare_out(out: str | Path, force: bool = False) -> bool:
    """Check the output folder (check_out), create it and make sure a file can be written in it; with `force`,
    remove an earlier run's outputs (this tool's own files only). Returns True when this call created it."""
    out = Path(out)
    old = check_out(out, force)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write-check.', dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise RolloutError(f'--out {out} cannot be written: {exc.strerror or exc}') from None
    for path in old:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return created


@dataclass(frozen=True)
class Start:
    """Where a rollout starts: a synthetic scene `kind:seed` (its first view only) or an RGB image file."""

    kind: str | None = None
    seed: int = 0
    image: Path | None = None
    depth: Path | None = None  # the image's depth (data/depth_io.py formats); a scene start has its own
    vfov_deg: float | None = None  # the image's camera (any size is fitted: data.camera_adapt); None: the model's
    hfov_deg: float | None = None

    def __str__(self) -> str:
        return str(self.image) if self.image is not None else f'{self.kind}:{self.seed}'


def parse_start(text: str) -> Start:
    """'room:3', 'yard:0', 'table:1', or the path of an RGB image of the model's size."""
    kind, sep, seed = text.partition(':')
    if sep and kind in SCENE_KINDS:
        try:
            return Start(kind=kind, seed=int(seed))
        except ValueError:
            raise ValueError(f'start {text!r}: the seed after {kind}: must be an integer') from None
    path = Path(text)
    if path.is_file():
        return Start(image=path)
    raise ValueError(f'start {text!r} is neither {"|".join(SCENE_KINDS)}:SEED nor an existing image file')


def start_session(engine: LiveEngine, start: Start) -> Frame:
    """Reset the engine at the start and return frame 0 (an engine Frame)."""
    cfg = engine.config
    if start.image is None:
        if start.depth is not None:
            raise ValueError(f'--start-depth {start.depth} goes with an image start; {start} brings its own depth')
        from worldscape_ros.synthetic.starts import start_from_scene  # MuJoCo only for a synthetic start

        return start_from_scene(engine, start.seed, start.kind or 'room')
    import cv2

    bgr = cv2.imread(str(start.image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'start image {start.image} cannot be read as an image')
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    pose = camera_pose(BaseState(height=cfg.camera_height))
    depth = None if start.depth is None else load_depth(start.depth, bgr.shape[:2])
    vfov = cfg.vfov_deg
    fitted = fit_start(rgb, cfg.width, cfg.height, vfov, vfov_deg=start.vfov_deg, hfov_deg=start.hfov_deg,
                       depth=depth)
    rgb = fitted.rgb
    frame = engine.reset(rgb, pose, fitted.K, depth=fitted.depth)
    for note in fitted.notes + start_warnings(fitted.fit, fitted.K, vfov, frame.depth):
        log.warning('start %s: %s', start.image, note)
    return frame


def drive(engine: RollingEngine, script: ActionScript, window: int | None = 1) -> Iterator[Frame]:
    """Roll the engine through the script; yields frames 1..T in order. The whole script is known, so it may go
    through a rolling denoising window of `window` chunks (None: the engine's); 1 makes the frames that stepping
    live makes.

    A last partial chunk is padded with standing still; the padding frames are not yielded.
    """
    k = engine.config.frames_per_chunk
    n = len(script)
    total = -(-n // k) * k
    acts = [script.actions[j] if j < n else np.zeros(5) for j in range(total)]
    kps = [script.hands[j] if script.hands is not None and j < n else None for j in range(total)]
    for i, frame in enumerate(engine.rollout_frames(acts, kps, window=window)):
        if i < n:
            yield frame


class RolloutRecorder:
    """Writes each frame as the messages the simulator node publishes for it, stamped with sim time."""

    def __init__(self, bag: BagWriter, engine: LiveEngine, handedness: str = 'right') -> None:
        self.bag = bag
        self.fps = float(engine.config.fps)
        self.height = float(engine.config.camera_height)
        self.K = np.asarray(engine.intrinsics, dtype=np.float64)
        self.handedness = handedness
        self._mount: tuple[float, float] | None = None  # (pitch, height) last written on /tf_static
        bag.add_topics(SIM_TOPICS)

    def stamp_ns(self, index: int) -> int:
        return round(index * 1e9 / self.fps)

    def start(self, frame: Frame) -> None:
        """The session's start: the camera mount on /tf_static, as the node sends it when it activates.

        The start image itself is not recorded: it is the engine's input (from the renderer or a file), and the
        bag holds only what the engine imagines, frames 1..T, as the simulator node publishes them.
        """
        self._write_mount(state_from_camera_pose(frame.pose, self.height), self.stamp_ns(frame.index))

    def _write_mount(self, state: BaseState, ns: int) -> None:
        self.bag.write('/tf_static', ns, M.static_camera_tfs(state, ns))
        self._mount = (state.pitch, state.height)

    def record(self, frame: Frame, action: np.ndarray, keypoints: np.ndarray | None) -> None:
        ns = self.stamp_ns(frame.index)
        state = state_from_camera_pose(frame.pose, self.height)
        act = np.asarray(action, dtype=np.float64)
        b = self.bag
        b.write('/cmd_vel', ns, M.twist(act))
        if keypoints is not None:
            b.write('/hand_keypoints', ns, M.hand_keypoints(keypoints, ns, self.handedness))
        b.write('/clock', ns, M.clock(ns))
        b.write('/tf', ns, M.odom_tf(state, ns))
        if self._mount != (state.pitch, state.height):  # pitch commands move the mount: the node re-sends it too
            self._write_mount(state, ns)
        b.write('/odom', ns, M.odometry(state, act, ns))
        h, w = frame.rgb.shape[:2]
        b.write('/camera/image_raw', ns, M.image_rgb8(frame.rgb, ns))
        b.write('/camera/camera_info', ns, M.camera_info(self.K, w, h, ns))
        b.write('/camera/depth/image_raw', ns, M.image_depth32(frame.depth, ns))
        b.write('/camera/depth/camera_info', ns, M.camera_info(self.K, w, h, ns))


@dataclass
class RolloutResult:
    out: Path
    frames: int = 0
    seconds: float = 0.0  # wall time in the engine's steps
    latencies_ms: list[float] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.nan


def _pose_video(frame: Frame, script: ActionScript) -> np.ndarray | None:
    """The hand conditioning drawn, shown beside the frame when the script has hands."""
    if script.hands is None:
        return None
    pv = frame.pose_video
    return np.zeros_like(frame.rgb) if pv is None else np.asarray(pv, np.uint8)


def offline_rollout(engine: OfflineEngine, start: Start, script: ActionScript, out: str | Path, bag: bool = True,
                    mp4: bool = True, storage: str = 'mcap', window: int | None = 1,
                    force: bool = False, on_frame: Callable[[Frame, np.ndarray | None], None] | None = None
                    ) -> RolloutResult:
    """Run the script from the start; write the bag, the MP4 and the contact sheet (those asked for).
    window: the rolling denoising window (1, the default: the frames the simulator node makes live; None: the
    engine's). force: replace an earlier run's outputs in `out` (refused otherwise). on_frame(frame, hand
    keypoints): called with frame 0 and each new frame as it is made (the web viewer: `rollout --view`).

    Ctrl-C (or SIGTERM) stops the rollout early: the bag is closed readable and the video holds the frames
    made so far; `interrupted` says so. A start that fails leaves nothing behind; a SIGKILL leaves a bag that
    `worldscape bag-recover` rebuilds (tools.bag).
    """
    out = Path(out)
    if len(script) == 0:
        raise RolloutError('the actions script holds no frames: nothing to roll out')
    frame = _start_in(out, force, engine, start)
    result = RolloutResult(out=out)
    writer = BagWriter(out / 'bag', storage) if bag else None
    scale = auto_scale(int(engine.config.height))
    views = _roll(engine, script, frame, window, writer, scale, result, on_frame)
    if mp4 and views:
        result.files.update(_write_video(out, views, scale, float(engine.config.fps)))
    atomic_write_json(out / 'summary.json', _summary(start, engine, result))
    result.files['summary'] = str(out / 'summary.json')
    return result


def _start_in(out: Path, force: bool, engine: OfflineEngine, start: Start) -> Frame:
    """Prepare the output folder and reset the engine at the start (frame 0); a start that fails removes the
    folder this call created."""
    created = prepare_out(out, force)
    try:
        return start_session(engine, start)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _roll(engine: OfflineEngine, script: ActionScript, frame: Frame, window: int | None, writer: BagWriter | None,
          scale: int, result: RolloutResult, on_frame: Callable[[Frame, np.ndarray | None], None] | None
          ) -> list[np.ndarray]:
    """Frame 0, then the script's frames: each recorded in the bag, drawn as a video panel (returned, in order)
    and handed to on_frame; counts, latencies and the time in the engine's steps go into `result`. Ctrl-C or
    SIGTERM stops it early (`result.interrupted`); the bag is closed either way."""
    recorder = RolloutRecorder(writer, engine, script.handedness) if writer is not None else None
    views: list[np.ndarray] = []
    t0 = time.perf_counter()
    try:
        with stop_on_signals(writer) if writer is not None else nullcontext():
            if recorder is not None:
                recorder.start(frame)
            views.append(panel(frame.rgb, frame.depth, scale,
                               extra=np.zeros_like(frame.rgb) if script.hands is not None else None))
            if on_frame is not None:
                on_frame(frame, None)
            t0 = time.perf_counter()
            for i, frame in enumerate(drive(engine, script, window)):
                keypoints = None if script.hands is None else script.hands[i]
                if recorder is not None:
                    recorder.record(frame, script.actions[i], keypoints)
                result.frames += 1
                result.latencies_ms.append(float(frame.latency_ms))
                views.append(panel(frame.rgb, frame.depth, scale, extra=_pose_video(frame, script)))
                if on_frame is not None:
                    on_frame(frame, keypoints)
            result.seconds = time.perf_counter() - t0
    except KeyboardInterrupt:
        result.interrupted = True
        result.seconds = time.perf_counter() - t0
        log.warning('rollout interrupted after %d frames', result.frames)
    finally:
        if writer is not None:
            result.files['bag'] = str(writer.close())
    return views


def _write_video(out: Path, views: list[np.ndarray], scale: int, fps: float) -> dict[str, str]:
    """The MP4 of the panels (the start view first) and a contact sheet of frames spread over it."""
    files = {'mp4': str(write_mp4(out / 'rollout.mp4', views, fps))}
    small = [panel(v[::scale, ::scale], None, max(1, scale // 2)) for v in views]
    labels = ['start (input)'] + [f'{i} ({i / fps:.1f} s)' for i in range(1, len(views))]
    sheet = contact_sheet(small, labels, columns=6, count=18)
    files['contact_sheet'] = str(write_png(out / 'contact_sheet.png', sheet))
    return files


def _summary(start: Start, engine: OfflineEngine, result: RolloutResult) -> dict[str, Any]:
    """summary.json: the start, the engine, the frames made, their rate and latency, the files written."""
    lat = np.asarray(result.latencies_ms) if result.latencies_ms else np.zeros(1)
    return {
        'start': str(start), 'frames': result.frames, 'interrupted': result.interrupted,
        'engine': {'config': engine.config.name, 'weights_sha256': engine.sha256,
                   'height': engine.config.height, 'width': engine.config.width, 'fps': engine.config.fps},
        'frames_per_second': None if math.isnan(result.fps) else round(result.fps, 3),
        'latency_ms': {'p50': float(np.percentile(lat, 50)), 'p95': float(np.percentile(lat, 95))},
        'files': result.files,
    }
