"""rosbag2 recordings of a real (or simulated) robot -> training episodes (`worldscape import-bag`).

What is read (with the pure-Python `rosbags`, mcap and sqlite3 storage, no ROS install):
  - the colour camera: sensor_msgs/Image (rgb8, bgr8, mono8, rgba8, bgra8) or CompressedImage (jpeg, png);
  - its sensor_msgs/CameraInfo (K, size, plumb_bob / rational_polynomial distortion, undone), or a field of view;
  - the camera pose at each image's stamp: from TF (/tf and /tf_static: any chain from a root frame to the
    image's frame, each moving link interpolated, translation linearly and rotation by slerp) or from
    nav_msgs/Odometry plus a fixed mount of the camera on the odometry's child frame;
  - optionally depth registered to the colour camera: 32FC1 metres or 16UC1 millimetres (REP-118; 0, NaN and
    +-inf are unknown).
Images are resampled to the model's frame rate (the image nearest each tick of 1/fps; a gap in the images ends an
episode), fitted to the model's size (data.camera_adapt: crop or letterbox, K adjusted) and written in the
episode format (data.episode), each file atomically and only after the whole bag has been checked, so a failed
import leaves nothing behind. Actions are the base velocities that the project's kinematics (model.kinematics)
recover from consecutive camera poses. The topics read are chosen in data.bag_topics, the TF tree is
data.bag_transforms, the camera's pose at a stamp data.bag_poses, the decoding of camera messages data.bag_images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldscape_ros.data.bag_images import decode_colour, decode_depth, fit_depth, undistorter
from worldscape_ros.data.bag_poses import CameraPoses, odometry_poses, pose_source, tf_poses
from worldscape_ros.data.bag_topics import TF_MESSAGE, Topics, choose_topics
from worldscape_ros.data.bag_transforms import TransformBuffer, pose_matrix, stamp_ns, transform_matrix
from worldscape_ros.data.camera_adapt import FIT_MODES, CameraFit, check_K, intrinsics_from_fov, plan_fit
from worldscape_ros.data.episode import EPISODE_SUFFIX, FORMAT_VERSION, Episode, write_episode
from worldscape_ros.errors import BagImportError
from worldscape_ros.model.kinematics import state_from_camera_pose, wrap_angle
from worldscape_ros.model.pixel_convention import k_from_ros

POSE_SOURCES = ('auto', 'tf', 'odom')
RATE_TOLERANCE = 0.03  # an image rate this fraction below the model's still counts as the model's (clock jitter)


@dataclass(frozen=True)
class ImportOptions:
    """What to take from the bag and how to fit it to the model (fps, width x height)."""

    fps: float
    width: int
    height: int
    image_topic: str | None = None  # None: the only colour image topic (Image or CompressedImage, not depth)
    camera_info_topic: str | None = None  # None: camera_info beside the image topic, or the only one
    depth_topic: str | None = None  # None: the depth topic beside the image topic if there is one; '' : none
    pose_source: str = 'auto'  # tf, odom, or auto (TF when it reaches the camera, else odometry)
    camera_frame: str | None = None  # None: the images' header.frame_id (an optical frame: z forward)
    world_frame: str | None = None  # None: the root of the camera's TF tree (or the odometry's frame)
    odom_topic: str | None = None  # None: the only Odometry topic
    mount: tuple[float, ...] | None = None  # x y z roll pitch yaw of the camera_link on the odometry child frame
    vfov_deg: float | None = None  # without camera_info: the camera's vertical field of view
    hfov_deg: float | None = None
    fit: str = 'crop'
    max_tf_gap: float = 0.5  # seconds between two samples of a moving transform beyond which it is a gap
    min_frames: int = 2  # shorter pieces are dropped
    max_frames: int = 0  # longer pieces are split into episodes of this many frames (0: no split)

    def validate(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise BagImportError(f'fps must be positive, got {self.fps}')
        if self.width <= 0 or self.height <= 0:
            raise BagImportError(f'size must be positive, got {self.width}x{self.height}')
        if self.pose_source not in POSE_SOURCES:
            raise BagImportError(f'pose source must be one of {", ".join(POSE_SOURCES)}, got {self.pose_source!r}')
        if self.fit not in FIT_MODES:
            raise BagImportError(f'fit must be one of {", ".join(FIT_MODES)}, got {self.fit!r}')
        if self.mount is not None and len(self.mount) != 6:
            raise BagImportError(f'mount must be 6 numbers (x y z roll pitch yaw), got {len(self.mount)}')
        if self.min_frames < 1 or self.max_frames < 0 or (self.max_frames and self.max_frames < self.min_frames):
            raise BagImportError(f'need 1 <= min_frames <= max_frames (or max_frames 0), got '
                                 f'{self.min_frames} and {self.max_frames}')
        if not self.max_tf_gap > 0:
            raise BagImportError(f'max_tf_gap must be positive, got {self.max_tf_gap}')


@dataclass
class ImportResult:
    episodes: list[Path] = field(default_factory=list)
    frames: int = 0
    image_rate: float = 0.0
    pose_source: str = ''
    notes: list[str] = field(default_factory=list)


def _reader(path: Path) -> Any:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not path.exists():
        raise BagImportError(f'{path}: no such bag')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise BagImportError(f'{path} is not a rosbag2 folder (no metadata.yaml; an interrupted recording has '
                             'none: reindex it with `ros2 bag reindex`)')
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED))
        reader.open()
    except Exception as exc:  # rosbags raises its own error types per storage; report them all as one
        raise BagImportError(f'{path}: cannot open the bag ({type(exc).__name__}: {exc})') from None
    return reader


def _segments(stamps: np.ndarray, fps: float, input_period_ns: float) -> list[list[int]]:
    """Indices into sorted `stamps` of the image nearest each tick of 1/fps; a tick with no image within half
    an input period (plus 10% for jitter) ends a segment."""
    period = 1e9 / fps
    tol = 0.55 * input_period_ns
    out: list[list[int]] = []
    current: list[int] = []
    t = float(stamps[0])
    while t <= stamps[-1] + tol:
        i = int(np.searchsorted(stamps, t))
        best = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(float(stamps[j]) - t))
        if abs(float(stamps[best]) - t) <= tol and (not current or best != current[-1]):
            current.append(best)
        else:
            if current:
                out.append(current)
            current = []
        t += period
    if current:
        out.append(current)
    return out


def actions_from_poses(poses: np.ndarray, fps: float, height: float) -> np.ndarray:
    """(T, 4, 4) camera poses -> (T, 5) [vx, vy, vz, yaw_rate, pitch_rate]: the commands that the project's
    kinematics (base yaw, camera pitch; translation along the mid-step heading) integrate into these poses."""
    dt = 1.0 / fps
    states = [state_from_camera_pose(p, height) for p in poses]
    actions = np.zeros((len(poses), 5), np.float32)
    for t in range(1, len(states)):
        a, b = states[t - 1], states[t]
        dyaw = wrap_angle(b.yaw - a.yaw)
        mid = a.yaw + 0.5 * dyaw
        dx, dy = b.x - a.x, b.y - a.y
        c, s = math.cos(mid), math.sin(mid)
        actions[t] = ((c * dx + s * dy) / dt, (-s * dx + c * dy) / dt, (b.z - a.z) / dt, dyaw / dt,
                      (b.pitch - a.pitch) / dt)
    return actions


@dataclass(frozen=True)
class _Scan:
    """Everything in the bag but the pixels: the images' stamps (in message order) and frame, the camera_info,
    the TF tree and the odometry."""

    stamps: list[int]
    camera: str  # the camera's frame, without a leading slash
    info: Any | None  # the first sensor_msgs/CameraInfo (None: no camera_info topic)
    tf: TransformBuffer
    odom: TransformBuffer


def _scan(reader: Any, topics: Topics, options: ImportOptions, bag: Path) -> _Scan:
    """Reads all but the pixels; refuses an empty image or camera_info topic, a changing camera_info, and images
    in more than one frame."""
    max_gap = round(options.max_tf_gap * 1e9)
    tf, odom = TransformBuffer(max_gap), TransformBuffer(max_gap)
    stamps: list[int] = []
    image_frames: set[str] = set()
    info = None
    wanted = [c for c in reader.connections if c.topic in {topics.image, topics.info, topics.odom, *topics.tf}]
    for conn, _, raw in reader.messages(connections=wanted):
        msg = reader.deserialize(raw, conn.msgtype)
        if conn.topic == topics.image:
            stamps.append(stamp_ns(msg.header.stamp))
            image_frames.add(str(msg.header.frame_id))
        elif conn.topic == topics.info:
            if info is None:
                info = msg
            elif list(msg.k) != list(info.k) or (msg.width, msg.height) != (info.width, info.height):
                raise BagImportError(f'{bag}: camera_info on {topics.info} changes during the recording '
                                     '(a zoom or a resolution change): import the pieces separately')
        elif conn.msgtype == TF_MESSAGE:
            static = conn.topic.endswith('tf_static')
            for tr in msg.transforms:
                tf.add(str(tr.header.frame_id), str(tr.child_frame_id), stamp_ns(tr.header.stamp),
                       transform_matrix(tr.transform), static)
        elif conn.topic == topics.odom:
            odom.add(str(msg.header.frame_id), str(msg.child_frame_id), stamp_ns(msg.header.stamp),
                     pose_matrix(msg.pose.pose), static=False)
    if not stamps:
        raise BagImportError(f'{bag}: topic {topics.image} has no messages')
    if topics.info is not None and info is None:
        raise BagImportError(f'{bag}: camera_info topic {topics.info} has no messages')
    if len(image_frames) > 1:
        raise BagImportError(f'{bag}: images on {topics.image} come in several frames {sorted(image_frames)}')
    return _Scan(stamps, (options.camera_frame or image_frames.pop()).lstrip('/'), info, tf, odom)


@dataclass(frozen=True)
class _Resampled:
    """The images in stamp order, their rate, and the runs of them nearest the model's ticks."""

    order: np.ndarray  # (N,) message index of each image in stamp order
    stamps: np.ndarray  # (N,) int64 ns, sorted
    image_rate: float  # Hz, from the median interval
    segments: list[list[int]]  # indices into `stamps`: one list per gap-free run of ticks


def _resample(stamps: list[int], options: ImportOptions, image_topic: str, bag: Path) -> _Resampled:
    """The image nearest each tick of the model's frame rate; refuses images slower than that rate."""
    order = np.argsort(np.array(stamps, dtype=np.int64), kind='stable')
    sorted_stamps = np.array(stamps, dtype=np.int64)[order]
    diffs = np.diff(sorted_stamps)
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        raise BagImportError(f'{bag}: {image_topic} has {len(stamps)} image(s) at one stamp: no frame rate')
    image_rate = 1e9 / float(np.median(diffs))
    if image_rate < options.fps * (1 - RATE_TOLERANCE):
        raise BagImportError(f'{bag}: images on {image_topic} arrive at {image_rate:.2f} Hz, below the '
                             f"model's {options.fps:g} fps: record at {options.fps:g} Hz or more, or train a "
                             'model at a lower rate')
    segments = _segments(sorted_stamps, options.fps, float(np.median(diffs)))
    return _Resampled(order, sorted_stamps, image_rate, segments)


def _camera_poses(scan: _Scan, topics: Topics, options: ImportOptions, bag: Path) -> CameraPoses:
    """The camera's pose from the source asked for (auto: TF when it reaches the camera, else odometry)."""
    source = pose_source(options.pose_source, scan.tf, scan.camera, topics.odom, bag)
    if source == 'tf':
        return tf_poses(scan.tf, scan.camera, options.world_frame)
    return odometry_poses(scan.odom, scan.tf, scan.camera, options.mount, options.world_frame, topics.odom, bag)


@dataclass(frozen=True)
class _Piece:
    """One future episode: indices into the sorted stamps, and the camera pose at each."""

    frames: list[int]
    poses: np.ndarray  # (T, 4, 4) world_T_camera


def _pieces(resampled: _Resampled, poses: CameraPoses, options: ImportOptions, bag: Path,
            notes: list[str]) -> list[_Piece]:
    """Each segment cut to the pose source's time span, split into max_frames; pieces under min_frames dropped."""
    stamps = resampled.stamps
    pieces: list[_Piece] = []
    dropped = 0
    for seg in resampled.segments:
        keep = [i for i in seg if poses.covers(stamps[i])]
        dropped += len(seg) - len(keep)
        if len(keep) < options.min_frames:
            dropped += len(keep)
            continue
        seg_poses = np.stack([poses.pose_at(int(stamps[i])) for i in keep])
        step = options.max_frames or len(keep)
        for s in range(0, len(keep), step):
            if len(keep[s:s + step]) >= options.min_frames:
                pieces.append(_Piece(keep[s:s + step], seg_poses[s:s + step]))
            else:
                dropped += len(keep[s:s + step])
    if dropped:
        notes.append(f'{dropped} resampled frames dropped (outside the pose source\'s time span, or in '
                     f'pieces shorter than {options.min_frames} frames)')
    if not pieces:
        raise BagImportError(f'{bag}: no piece of at least {options.min_frames} frames with images and poses')
    return pieces


@dataclass(frozen=True)
class _Pixels:
    """The decoded images of the kept frames."""

    colour: dict[int, np.ndarray]  # message index -> (H, W, 3) uint8 RGB
    depth: dict[int, tuple[np.ndarray, int]]  # image stamp -> (depth in metres, its own stamp)

    @property
    def has_depth(self) -> bool:
        return bool(self.depth)


def _read_pixels(reader: Any, topics: Topics, resampled: _Resampled, pieces: list[_Piece], bag: Path,
                 notes: list[str]) -> _Pixels:
    """The colour images of the kept frames, and for each the depth image nearest its stamp (within half an
    image period)."""
    wanted_index = {int(resampled.order[i]): None for piece in pieces for i in piece.frames}  # message index
    colour: dict[int, np.ndarray] = {}
    depth_by_stamp: dict[int, tuple[np.ndarray, int]] = {}
    needed = np.array(sorted({int(resampled.stamps[i]) for piece in pieces for i in piece.frames}), dtype=np.int64)
    depth_tol = round(0.5e9 / resampled.image_rate)
    index = 0
    for conn, _, raw in reader.messages(connections=[c for c in reader.connections
                                                     if c.topic in {topics.image, topics.depth}]):
        if conn.topic == topics.image:
            if index in wanted_index:
                msg = reader.deserialize(raw, conn.msgtype)
                try:
                    colour[index] = decode_colour(conn.msgtype, msg)
                except BagImportError as exc:
                    raise BagImportError(f'{bag}: {topics.image} message {index}: {exc}') from None
            index += 1
        else:
            msg = reader.deserialize(raw, conn.msgtype)
            ns = stamp_ns(msg.header.stamp)
            near = needed[np.searchsorted(needed, ns - depth_tol):np.searchsorted(needed, ns + depth_tol, 'right')]
            if near.size:
                try:
                    d = decode_depth(conn.msgtype, msg)
                except BagImportError as exc:
                    raise BagImportError(f'{bag}: {topics.depth}: {exc}') from None
                for s in near.tolist():
                    best = depth_by_stamp.get(s)
                    if best is None or abs(best[1] - s) > abs(ns - s):
                        depth_by_stamp[s] = (d, ns)
    if topics.depth is not None and not depth_by_stamp:
        notes.append(f'depth topic {topics.depth} has no frame near the kept images: imported without depth')
    return _Pixels(colour, depth_by_stamp)


@dataclass(frozen=True)
class _Camera:
    """The source camera and its fit to the model's."""

    width: int
    height: int
    K_source: np.ndarray
    undistort: Any  # None: no distortion to undo
    fit: CameraFit
    K: np.ndarray  # of the fitted images


def _fit_camera(first: np.ndarray, info: Any | None, K_info: np.ndarray | None, topics: Topics,
                options: ImportOptions, bag: Path) -> _Camera:
    """The source size from the first image, K from camera_info (checked against that size) or the field of
    view, and the fit to the model's size."""
    h, w = first.shape[:2]
    if info is not None and K_info is not None:
        if (int(info.width), int(info.height)) not in ((w, h), (0, 0)):
            raise BagImportError(f'{bag}: camera_info on {topics.info} is for {info.width}x{info.height} images but '
                                 f'{topics.image} has {w}x{h}')
        # OpenCV undistorts with camera_info's K as it is; the episode holds it in the model's pixel convention
        K_src, undistort = k_from_ros(K_info), undistorter(K_info, info)
    else:
        K_src, undistort = intrinsics_from_fov(w, h, options.hfov_deg, options.vfov_deg), None
    fit = plan_fit(w, h, options.width, options.height, options.fit)
    return _Camera(w, h, K_src, undistort, fit, fit.intrinsics(K_src))


def _piece_images(piece: _Piece, pixels: _Pixels, camera: _Camera, resampled: _Resampled, options: ImportOptions,
                  topics: Topics, bag: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """A piece's colour and depth fitted to the model's size, and how many of its frames have no depth."""
    w, h = camera.width, camera.height
    rgb, depth = [], []
    missing = 0
    for i in piece.frames:
        img = pixels.colour[int(resampled.order[i])]
        if img.shape[:2] != (h, w):
            raise BagImportError(f'{bag}: {topics.image} changes size from {w}x{h} to {img.shape[1]}x{img.shape[0]}')
        if camera.undistort is not None:
            img = camera.undistort(img)
        rgb.append(camera.fit.image(img))
        entry = pixels.depth.get(int(resampled.stamps[i])) if pixels.has_depth else None
        if entry is None:
            missing += int(pixels.has_depth)
            depth.append(np.full((options.height, options.width), np.nan, np.float32))
        else:
            depth.append(fit_depth(entry[0], w, h, camera.fit, camera.undistort, bag, topics.depth))
    return np.stack(rgb), np.stack(depth), missing


def _bag_meta(bag: Path, options: ImportOptions, topics: Topics, scan: _Scan, poses: CameraPoses,
              camera: _Camera, image_rate: float, has_depth: bool) -> dict[str, Any]:
    """The metadata every episode of the bag shares."""
    return {'kind': 'nav', 'scene_kind': 'real', 'scene_seed': None, 'family': 'rosbag', 'fps': options.fps,
            'format_version': FORMAT_VERSION, 'source': str(bag), 'has_depth': has_depth,
            'image_topic': topics.image, 'camera_info_topic': topics.info, 'depth_topic': topics.depth,
            'pose_source': poses.source, 'world_frame': poses.world, 'camera_frame': scan.camera, 'fit': options.fit,
            'source_size': [camera.width, camera.height], 'source_intrinsics': camera.K_source.tolist(),
            'image_rate_hz': image_rate}


def _episodes(pieces: list[_Piece], pixels: _Pixels, camera: _Camera, resampled: _Resampled, meta: dict[str, Any],
              options: ImportOptions, topics: Topics, bag: Path, out: Path,
              notes: list[str]) -> list[tuple[Path, Episode]]:
    """An episode per piece (`<bag name>[_<k>]`), its actions the velocities between its poses."""
    episodes = []
    missing_depth = 0
    stamps = resampled.stamps
    for k, piece in enumerate(pieces):
        rgb, depth, missing = _piece_images(piece, pixels, camera, resampled, options, topics, bag)
        missing_depth += missing
        rel = [int(stamps[i] - stamps[piece.frames[0]]) for i in piece.frames]
        name = bag.name if len(pieces) == 1 else f'{bag.name}_{k:03d}'
        piece_meta = {**meta, 'start_stamp_ns': int(stamps[piece.frames[0]]), 'stamps_ns': rel, 'piece': k}
        episodes.append((out / f'{name}{EPISODE_SUFFIX}', Episode(
            rgb=rgb, depth=depth, poses=piece.poses, intrinsics=camera.K,
            actions=actions_from_poses(piece.poses, options.fps, height=0.0), meta=piece_meta)))
    if missing_depth:
        notes.append(f'{missing_depth} frames have no depth message near their stamp: their depth is unknown')
    return episodes


def _write(episodes: list[tuple[Path, Episode]], result: ImportResult) -> None:
    """Every episode, or none if any would overwrite a file."""
    for path, _ in episodes:
        if path.exists():
            raise BagImportError(f'{path} exists already: remove it or import into another --out folder')
    for path, episode in episodes:
        write_episode(path, episode)
        result.episodes.append(path)
        result.frames += episode.num_frames


def import_bag(bag: str | Path, out: str | Path, options: ImportOptions) -> ImportResult:
    """Import one rosbag2 into episodes `OUT/<bag name>[_<k>].episode.npz`; returns what was written."""
    options.validate()
    bag, out = Path(bag), Path(out)
    result = ImportResult()
    reader = _reader(bag)
    try:
        topics = choose_topics({c.topic: c.msgtype for c in reader.connections}, options, bag, result.notes)
        # 1. everything but the pixels: stamps, frames, camera_info, TF, odometry
        scan = _scan(reader, topics, options, bag)
        # 2. the frame rate and the frames kept
        resampled = _resample(scan.stamps, options, topics.image, bag)
        result.image_rate = resampled.image_rate
        # 3. a pose for every kept frame
        poses = _camera_poses(scan, topics, options, bag)
        result.pose_source = poses.source
        pieces = _pieces(resampled, poses, options, bag, result.notes)
        # 4. the camera, and the pixels of the kept frames
        K_info = None if scan.info is None else check_K(np.asarray(scan.info.k, dtype=np.float64))
        pixels = _read_pixels(reader, topics, resampled, pieces, bag, result.notes)
    finally:
        reader.close()
    camera = _fit_camera(next(iter(pixels.colour.values())), scan.info, K_info, topics, options, bag)
    # 5. an episode per piece, written only once the whole bag has been checked
    meta = _bag_meta(bag, options, topics, scan, poses, camera, resampled.image_rate, pixels.has_depth)
    _write(_episodes(pieces, pixels, camera, resampled, meta, options, topics, bag, out, result.notes), result)
    return result


def bag_paths(paths: list[str | Path]) -> Iterator[Path]:
    """Bags given directly, or every rosbag2 folder (holding metadata.yaml) under a folder given."""
    for p in map(Path, paths):
        if p.is_dir() and not (p / 'metadata.yaml').is_file():
            found = sorted(m.parent for m in p.rglob('metadata.yaml'))
            if not found:
                raise BagImportError(f'{p}: neither a rosbag2 folder nor a folder holding any')
            yield from found
        else:
            yield p
