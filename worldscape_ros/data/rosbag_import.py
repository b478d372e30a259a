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
recover from consecutive camera poses. The TF tree is data.bag_transforms, the decoding of camera messages
data.bag_images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldscape_ros.data.bag_images import COMPRESSED, IMAGE, decode_colour, decode_depth, fit_depth, undistorter
from worldscape_ros.data.bag_transforms import (
    EXTRAPOLATION_NS,
    TransformBuffer,
    mount_transform,
    pose_matrix,
    stamp_ns,
    transform_matrix,
)
from worldscape_ros.data.camera_adapt import FIT_MODES, check_K, intrinsics_from_fov, plan_fit
from worldscape_ros.data.episode import EPISODE_SUFFIX, FORMAT_VERSION, Episode, write_episode
from worldscape_ros.errors import BagImportError
from worldscape_ros.model.kinematics import state_from_camera_pose, wrap_angle

CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
ODOMETRY = 'nav_msgs/msg/Odometry'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
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


def _pick_topic(conns: dict[str, str], types: tuple[str, ...], what: str, given: str | None,
                near: str | None = None, exclude: str = '') -> str | None:
    """The topic given (checked), else the one beside `near` named like `what`, else the only candidate."""
    candidates = sorted(t for t, ty in conns.items() if ty in types and not (exclude and exclude in t))
    if given is not None:
        if given not in conns:
            raise BagImportError(f'topic {given} is not in the bag (its topics: {", ".join(sorted(conns))})')
        if conns[given] not in types:
            raise BagImportError(f'topic {given} has type {conns[given]}, not {" or ".join(types)}')
        return given
    if near is not None:
        beside = near.rsplit('/', 1)[0] + '/' + what
        if beside in candidates:
            return beside
    return candidates[0] if len(candidates) == 1 else None


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
class _Topics:
    image: str
    info: str | None  # None: intrinsics from the options' field of view
    depth: str | None
    tf: list[str]
    odom: str | None


def _choose_topics(conns: dict[str, str], options: ImportOptions, bag: Path, notes: list[str]) -> _Topics:
    """The topics to read, as given in the options or found beside the colour images; refuses what is missing
    or ambiguous, naming the option that settles it."""
    image_topic = _pick_topic(conns, (IMAGE, COMPRESSED), 'image_raw', options.image_topic, exclude='depth')
    if image_topic is None:
        topics = sorted(t for t, ty in conns.items() if ty in (IMAGE, COMPRESSED) and 'depth' not in t)
        raise BagImportError(f'{bag}: ' + ('no colour image topic (sensor_msgs/Image or CompressedImage)'
                                           if not topics else f'several image topics ({", ".join(topics)}): '
                                           'choose one with --image-topic'))
    info_topic = _pick_topic(conns, (CAMERA_INFO,), 'camera_info', options.camera_info_topic, near=image_topic,
                             exclude='depth')
    if info_topic is None and options.vfov_deg is None and options.hfov_deg is None:
        raise BagImportError(f'{bag}: images on {image_topic} have no camera_info (none beside them, or '
                             'several): name one with --camera-info-topic, or give the camera\'s --vfov/--hfov')
    depth_topic = None
    if options.depth_topic != '':
        depth_topic = options.depth_topic
        if depth_topic is None:
            for name in ('depth/image_raw', 'depth/image_rect_raw', 'depth/image_rect', 'depth/image'):
                candidate = image_topic.rsplit('/', 1)[0] + '/' + name
                if conns.get(candidate) in (IMAGE, COMPRESSED):
                    depth_topic = candidate
                    break
            else:  # e.g. /camera/aligned_depth_to_color/image_raw beside /camera/color/image_raw
                depths = sorted(t for t, ty in conns.items() if ty == IMAGE and 'depth' in t)
                if len(depths) == 1:
                    depth_topic = depths[0]
                elif depths:
                    notes.append(f'several depth topics ({", ".join(depths)}): imported without depth; '
                                 'choose one with --depth-topic')
        else:
            _pick_topic(conns, (IMAGE, COMPRESSED), 'depth', depth_topic)
    tf_topics = [t for t, ty in conns.items() if ty == TF_MESSAGE]
    odom_topic = _pick_topic(conns, (ODOMETRY,), 'odom', options.odom_topic) if options.pose_source != 'tf' else None
    if options.pose_source == 'odom' and odom_topic is None:
        raise BagImportError(f'{bag}: no odometry topic (nav_msgs/Odometry) for --pose odom'
                             + ('' if options.odom_topic else ' (or several: choose one with --odom-topic)'))
    return _Topics(image_topic, info_topic, depth_topic, tf_topics, odom_topic)


def import_bag(bag: str | Path, out: str | Path, options: ImportOptions) -> ImportResult:
    """Import one rosbag2 into episodes `OUT/<bag name>[_<k>].episode.npz`; returns what was written."""
    options.validate()
    bag, out = Path(bag), Path(out)
    result = ImportResult()
    reader = _reader(bag)
    try:
        conns = {c.topic: c.msgtype for c in reader.connections}
        topics = _choose_topics(conns, options, bag, result.notes)
        image_topic, info_topic, depth_topic, odom_topic = topics.image, topics.info, topics.depth, topics.odom
        tf_topics = topics.tf

        # 1. everything but the pixels: stamps, frames, camera_info, TF, odometry
        max_gap = round(options.max_tf_gap * 1e9)
        tf = TransformBuffer(max_gap)
        odom = TransformBuffer(max_gap)
        stamps: list[int] = []
        image_frames: set[str] = set()
        info = None
        wanted = [c for c in reader.connections if c.topic in {image_topic, info_topic, odom_topic, *tf_topics}]
        for conn, _, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == image_topic:
                stamps.append(stamp_ns(msg.header.stamp))
                image_frames.add(str(msg.header.frame_id))
            elif conn.topic == info_topic:
                if info is None:
                    info = msg
                elif list(msg.k) != list(info.k) or (msg.width, msg.height) != (info.width, info.height):
                    raise BagImportError(f'{bag}: camera_info on {info_topic} changes during the recording '
                                         '(a zoom or a resolution change): import the pieces separately')
            elif conn.msgtype == TF_MESSAGE:
                static = conn.topic.endswith('tf_static')
                for tr in msg.transforms:
                    tf.add(str(tr.header.frame_id), str(tr.child_frame_id), stamp_ns(tr.header.stamp),
                           transform_matrix(tr.transform), static)
            elif conn.topic == odom_topic:
                odom.add(str(msg.header.frame_id), str(msg.child_frame_id), stamp_ns(msg.header.stamp),
                         pose_matrix(msg.pose.pose), static=False)
        if not stamps:
            raise BagImportError(f'{bag}: topic {image_topic} has no messages')
        if info_topic is not None and info is None:
            raise BagImportError(f'{bag}: camera_info topic {info_topic} has no messages')
        if len(image_frames) > 1:
            raise BagImportError(f'{bag}: images on {image_topic} come in several frames {sorted(image_frames)}')
        camera = (options.camera_frame or image_frames.pop()).lstrip('/')

        # 2. the frame rate and the frames kept
        order = np.argsort(np.array(stamps, dtype=np.int64), kind='stable')
        sorted_stamps = np.array(stamps, dtype=np.int64)[order]
        diffs = np.diff(sorted_stamps)
        diffs = diffs[diffs > 0]
        if diffs.size == 0:
            raise BagImportError(f'{bag}: {image_topic} has {len(stamps)} image(s) at one stamp: no frame rate')
        result.image_rate = 1e9 / float(np.median(diffs))
        if result.image_rate < options.fps * (1 - RATE_TOLERANCE):
            raise BagImportError(f'{bag}: images on {image_topic} arrive at {result.image_rate:.2f} Hz, below the '
                                 f"model's {options.fps:g} fps: record at {options.fps:g} Hz or more, or train a "
                                 'model at a lower rate')
        segments = _segments(sorted_stamps, options.fps, float(np.median(diffs)))

        # 3. a pose for every kept frame
        source = options.pose_source
        if source == 'auto':
            source = 'tf' if tf.moving_links(camera) and tf.chain(camera)[-1] != camera else 'odom'
            if source == 'odom' and odom_topic is None:
                known = ', '.join(sorted(set(tf.parent) | set(tf.parent.values()))) or 'none'
                raise BagImportError(f'{bag}: no pose for the camera: TF has no moving chain to {camera!r} '
                                     f'(TF frames: {known}) and there is no odometry topic')
        result.pose_source = source
        if source == 'tf':
            world = options.world_frame or tf.chain(camera)[-1]

            def pose_at(ns: int) -> np.ndarray:
                return tf.lookup(world, camera, ns)

            spans = [s for s in (tf.span(c) for c in tf.moving_links(camera)) if s is not None]
        else:
            base = next(iter(odom.parent), None)
            if base is None:
                raise BagImportError(f'{bag}: odometry topic {odom_topic} has no messages')
            world = odom.parent[base]
            mount: np.ndarray | None = None
            if options.mount is not None:
                mount = mount_transform(options.mount)
            else:
                try:
                    mount = tf.lookup(base, camera, 0) if not tf.moving_links(camera) else None
                except BagImportError:
                    mount = None
                if mount is None:
                    raise BagImportError(f'{bag}: no fixed mount from the odometry frame {base!r} to the camera '
                                         f'{camera!r} on /tf_static: give it with --mount "x y z roll pitch yaw"')
            if options.world_frame and options.world_frame.lstrip('/') != world:
                raise BagImportError(f'{bag}: odometry is in {world!r}, not the --world-frame asked for')

            fixed = mount

            def pose_at(ns: int) -> np.ndarray:
                return odom.link(base, ns) @ fixed

            spans = [s for s in (odom.span(base),) if s is not None]
        lo = max((s[0] for s in spans), default=None)
        hi = min((s[1] for s in spans), default=None)
        pieces: list[tuple[list[int], np.ndarray]] = []
        dropped = 0
        for seg in segments:
            keep = [i for i in seg if lo is None or hi is None
                    or lo - EXTRAPOLATION_NS <= sorted_stamps[i] <= hi + EXTRAPOLATION_NS]
            dropped += len(seg) - len(keep)
            if len(keep) < options.min_frames:
                dropped += len(keep)
                continue
            poses = np.stack([pose_at(int(sorted_stamps[i])) for i in keep])
            step = options.max_frames or len(keep)
            for s in range(0, len(keep), step):
                if len(keep[s:s + step]) >= options.min_frames:
                    pieces.append((keep[s:s + step], poses[s:s + step]))
                else:
                    dropped += len(keep[s:s + step])
        if dropped:
            result.notes.append(f'{dropped} resampled frames dropped (outside the pose source\'s time span, or in '
                                f'pieces shorter than {options.min_frames} frames)')
        if not pieces:
            raise BagImportError(f'{bag}: no piece of at least {options.min_frames} frames with images and poses')

        # 4. the camera, and the pixels of the kept frames
        if info is not None:
            K_src = check_K(np.asarray(info.k, dtype=np.float64))
        wanted_index = {int(order[i]): None for piece, _ in pieces for i in piece}  # message index -> image
        colour: dict[int, np.ndarray] = {}
        depth_by_stamp: dict[int, tuple[np.ndarray, int]] = {}  # image stamp -> (depth, its stamp)
        needed = np.array(sorted({int(sorted_stamps[i]) for piece, _ in pieces for i in piece}), dtype=np.int64)
        depth_tol = round(0.5e9 / result.image_rate)
        conns_2 = [c for c in reader.connections if c.topic in {image_topic, depth_topic}]
        index = 0
        for conn, _, raw in reader.messages(connections=conns_2):
            if conn.topic == image_topic:
                if index in wanted_index:
                    msg = reader.deserialize(raw, conn.msgtype)
                    try:
                        colour[index] = decode_colour(conn.msgtype, msg)
                    except BagImportError as exc:
                        raise BagImportError(f'{bag}: {image_topic} message {index}: {exc}') from None
                index += 1
            else:
                msg = reader.deserialize(raw, conn.msgtype)
                ns = stamp_ns(msg.header.stamp)
                near = needed[np.searchsorted(needed, ns - depth_tol):np.searchsorted(needed, ns + depth_tol, 'right')]
                if near.size:
                    try:
                        d = decode_depth(conn.msgtype, msg)
                    except BagImportError as exc:
                        raise BagImportError(f'{bag}: {depth_topic}: {exc}') from None
                    for s in near.tolist():
                        best = depth_by_stamp.get(s)
                        if best is None or abs(best[1] - s) > abs(ns - s):
                            depth_by_stamp[s] = (d, ns)
    finally:
        reader.close()

    first = next(iter(colour.values()))
    h, w = first.shape[:2]
    if info is not None:
        if (int(info.width), int(info.height)) not in ((w, h), (0, 0)):
            raise BagImportError(f'{bag}: camera_info on {info_topic} is for {info.width}x{info.height} images but '
                                 f'{image_topic} has {w}x{h}')
        undistort = undistorter(K_src, info)
    else:
        K_src = intrinsics_from_fov(w, h, options.hfov_deg, options.vfov_deg)
        undistort = None
    fit = plan_fit(w, h, options.width, options.height, options.fit)
    K = fit.intrinsics(K_src)
    has_depth = depth_topic is not None and bool(depth_by_stamp)
    if depth_topic is not None and not depth_by_stamp:
        result.notes.append(f'depth topic {depth_topic} has no frame near the kept images: imported without depth')

    episodes = []
    missing_depth = 0
    for k, (piece, poses) in enumerate(pieces):
        rgb, depth = [], []
        for i in piece:
            img = colour[int(order[i])]
            if img.shape[:2] != (h, w):
                raise BagImportError(f'{bag}: {image_topic} changes size from {w}x{h} to {img.shape[1]}x{img.shape[0]}')
            if undistort is not None:
                img = undistort(img)
            rgb.append(fit.image(img))
            entry = depth_by_stamp.get(int(sorted_stamps[i])) if has_depth else None
            if entry is None:
                missing_depth += int(has_depth)
                depth.append(np.full((options.height, options.width), np.nan, np.float32))
            else:
                depth.append(fit_depth(entry[0], w, h, fit, undistort, bag, depth_topic))
        frames = np.stack(rgb)
        rel = [int(sorted_stamps[i] - sorted_stamps[piece[0]]) for i in piece]
        name = bag.name if len(pieces) == 1 else f'{bag.name}_{k:03d}'
        meta = {'kind': 'nav', 'scene_kind': 'real', 'scene_seed': None, 'family': 'rosbag', 'fps': options.fps,
                'format_version': FORMAT_VERSION, 'source': str(bag), 'has_depth': has_depth,
                'image_topic': image_topic, 'camera_info_topic': info_topic, 'depth_topic': depth_topic,
                'pose_source': source, 'world_frame': world, 'camera_frame': camera, 'fit': options.fit,
                'source_size': [w, h], 'source_intrinsics': K_src.tolist(), 'image_rate_hz': result.image_rate,
                'start_stamp_ns': int(sorted_stamps[piece[0]]), 'stamps_ns': rel, 'piece': k}
        episodes.append((out / f'{name}{EPISODE_SUFFIX}', Episode(
            rgb=frames, depth=np.stack(depth), poses=poses, intrinsics=K,
            actions=actions_from_poses(poses, options.fps, height=0.0), meta=meta)))
    if missing_depth:
        result.notes.append(f'{missing_depth} frames have no depth message near their stamp: their depth is unknown')
    for path, _ in episodes:
        if path.exists():
            raise BagImportError(f'{path} exists already: remove it or import into another --out folder')
    for path, episode in episodes:
        write_episode(path, episode)
        result.episodes.append(path)
        result.frames += episode.num_frames
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
