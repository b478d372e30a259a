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
recover from consecutive camera poses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from worldscape_ros.data.camera_adapt import FIT_MODES, CameraFit, check_K, intrinsics_from_fov, plan_fit
from worldscape_ros.data.episode import EPISODE_SUFFIX, FORMAT_VERSION, Episode, write_episode
from worldscape_ros.errors import WorldScapeError
from worldscape_ros.model.kinematics import R_LINK_OPTICAL, state_from_camera_pose, wrap_angle

log = logging.getLogger(__name__)

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
ODOMETRY = 'nav_msgs/msg/Odometry'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
POSE_SOURCES = ('auto', 'tf', 'odom')
RATE_TOLERANCE = 0.03  # an image rate this fraction below the model's still counts as the model's (clock jitter)
EXTRAPOLATION_NS = 1_000_000  # a stamp this close outside a transform's samples takes the nearest sample (1 ms)


class BagImportError(WorldScapeError):
    """A bag cannot be turned into episodes: a missing topic, a TF gap, a frame rate too low, bad messages."""


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


# ---- rotations and transforms --------------------------------------------------------------------------------
def quat_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    q = np.array([w, x, y, z], dtype=np.float64)
    n = np.linalg.norm(q)
    if not n > 0 or not np.isfinite(n):
        raise BagImportError(f'quaternion ({x}, {y}, {z}, {w}) is not a rotation')
    w, x, y, z = q / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """-> (w, x, y, z), w >= 0."""
    m = np.asarray(R, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2 * math.sqrt(tr + 1)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * math.sqrt(max(1 + m[i, i] - m[j, j] - m[k, k], 1e-300))
        q = np.zeros(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (w, x, y, z) by the shorter arc."""
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    theta = math.acos(min(1.0, d))
    if theta < 1e-9:  # the same rotation: the weights below would divide by ~0
        q = q0 + a * (q1 - q0)
    else:
        q = (math.sin((1 - a) * theta) * q0 + math.sin(a * theta) * q1) / math.sin(theta)
    return q / np.linalg.norm(q)


def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    return quat_to_matrix(q[1], q[2], q[3], q[0])


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """REP-103 fixed-axis roll (x), pitch (y), yaw (z): R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw),
                              math.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def mount_transform(mount: tuple[float, ...]) -> np.ndarray:
    """base -> camera optical frame, from the camera_link pose (x y z roll pitch yaw) on the base."""
    T = np.eye(4)
    T[:3, :3] = rpy_matrix(*mount[3:]) @ R_LINK_OPTICAL
    T[:3, 3] = mount[:3]
    return T


def _transform_of(msg_transform: Any) -> np.ndarray:
    t, r = msg_transform.translation, msg_transform.rotation
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(r.x, r.y, r.z, r.w)
    T[:3, 3] = (t.x, t.y, t.z)
    return T


def _pose_of(msg_pose: Any) -> np.ndarray:
    p, r = msg_pose.position, msg_pose.orientation
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(r.x, r.y, r.z, r.w)
    T[:3, 3] = (p.x, p.y, p.z)
    return T


def stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class TransformBuffer:
    """A TF tree recorded in a bag: static links hold from their stamp until re-sent (the simulator re-sends its
    camera mount when the camera pitches; before its first stamp the first one holds), moving links are
    interpolated (never extrapolated past EXTRAPOLATION_NS), and a lookup names the link and time of any gap."""

    def __init__(self, max_gap_ns: int) -> None:
        self.max_gap_ns = max_gap_ns
        self.parent: dict[str, str] = {}
        self.static: dict[str, list[tuple[int, np.ndarray]]] = {}  # child -> [(stamp, parent_T_child)], sorted
        self._samples: dict[str, list[tuple[int, np.ndarray]]] = {}  # child -> [(stamp, parent_T_child)]
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def add(self, parent: str, child: str, ns: int, T: np.ndarray, static: bool) -> None:
        parent, child = parent.lstrip('/'), child.lstrip('/')
        if self.parent.get(child, parent) != parent:
            raise BagImportError(f'TF frame {child!r} has two parents ({self.parent[child]!r} and {parent!r}): '
                                 'a TF tree gives each frame one parent (REP-105)')
        self.parent[child] = parent
        if static:
            samples = self.static.setdefault(child, [])
            samples.append((ns, T))
            samples.sort(key=lambda s: s[0])
        else:
            self._samples.setdefault(child, []).append((ns, T))
            self._arrays.pop(child, None)

    def _edge(self, child: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if child not in self._arrays:
            samples = sorted(self._samples[child], key=lambda s: s[0])
            stamps = np.array([s[0] for s in samples], dtype=np.int64)
            keep = np.concatenate([[True], np.diff(stamps) > 0])  # one sample per stamp
            stamps = stamps[keep]
            Ts = [s[1] for s, k in zip(samples, keep) if k]
            self._arrays[child] = (stamps, np.stack([T[:3, 3] for T in Ts]),
                                   np.stack([matrix_to_quat(T[:3, :3]) for T in Ts]))
        return self._arrays[child]

    def span(self, child: str) -> tuple[int, int] | None:
        """First and last stamp of a moving link (None for a static one)."""
        if child in self.static or child not in self._samples:
            return None
        stamps = self._edge(child)[0]
        return int(stamps[0]), int(stamps[-1])

    def link(self, child: str, ns: int) -> np.ndarray:
        """parent_T_child at time ns."""
        if child in self.static:
            samples = self.static[child]
            k = int(np.searchsorted([s[0] for s in samples], ns, side='right'))
            return samples[max(k - 1, 0)][1]
        stamps, trans, quats = self._edge(child)
        i = int(np.searchsorted(stamps, ns))
        what = f'TF {self.parent[child]} -> {child}'
        if i < len(stamps) and stamps[i] == ns:
            j, a = i, 0.0
        elif i == 0 or i == len(stamps):
            edge = 0 if i == 0 else len(stamps) - 1
            if abs(int(stamps[edge]) - ns) > EXTRAPOLATION_NS:
                raise TFGapError(f'{what} has no sample around t={ns / 1e9:.3f} s (its samples cover '
                                 f'{stamps[0] / 1e9:.3f} to {stamps[-1] / 1e9:.3f} s)', child, ns)
            j, a = edge, 0.0
        else:
            gap = int(stamps[i] - stamps[i - 1])
            if gap > self.max_gap_ns:
                raise TFGapError(f'{what} has a gap of {gap / 1e9:.3f} s between {stamps[i - 1] / 1e9:.3f} and '
                                 f'{stamps[i] / 1e9:.3f} s (more than max_tf_gap {self.max_gap_ns / 1e9:g} s) at '
                                 f'an image stamped {ns / 1e9:.3f} s', child, ns)
            j, a = i - 1, (ns - int(stamps[i - 1])) / gap
        T = np.eye(4)
        if a == 0.0:
            T[:3, :3] = quat_wxyz_to_matrix(quats[j])
            T[:3, 3] = trans[j]
        else:
            T[:3, :3] = quat_wxyz_to_matrix(slerp(quats[j], quats[j + 1], a))
            T[:3, 3] = (1 - a) * trans[j] + a * trans[j + 1]
        return T

    def chain(self, frame: str) -> list[str]:
        """frame, its parent, ..., the root."""
        out = [frame.lstrip('/')]
        while out[-1] in self.parent:
            out.append(self.parent[out[-1]])
            if len(out) > 1000:
                raise BagImportError(f'TF tree has a cycle through {frame!r}')
        return out

    def lookup(self, world: str, frame: str, ns: int) -> np.ndarray:
        """world_T_frame at time ns (both frames must share a root)."""
        up = self.chain(frame)
        world = world.lstrip('/')
        down = self.chain(world)
        if up[-1] != down[-1]:
            raise BagImportError(f'no TF chain between {world!r} and {frame!r}: {frame!r} hangs from '
                                 f'{up[-1]!r} and {world!r} from {down[-1]!r}')
        root_T_frame = np.eye(4)
        for child in up[:-1]:
            root_T_frame = self.link(child, ns) @ root_T_frame
        root_T_world = np.eye(4)
        for child in down[:-1]:
            root_T_world = self.link(child, ns) @ root_T_world
        return np.linalg.inv(root_T_world) @ root_T_frame

    def moving_links(self, frame: str) -> list[str]:
        return [c for c in self.chain(frame)[:-1] if c not in self.static]


class TFGapError(BagImportError):
    def __init__(self, message: str, child: str, ns: int) -> None:
        super().__init__(message)
        self.child, self.ns = child, ns


# ---- images ----------------------------------------------------------------------------------------------------
def _bytes(data: Any) -> np.ndarray:
    return np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray | memoryview) else \
        np.asarray(data, dtype=np.uint8)


def _rows(msg: Any, channels: int, itemsize: int) -> np.ndarray:
    data = _bytes(msg.data)
    width_bytes = msg.width * channels * itemsize
    if msg.step < width_bytes or data.size < msg.step * msg.height:
        raise BagImportError(f'{msg.encoding} image {msg.width}x{msg.height} has step {msg.step} and '
                             f'{data.size} bytes: too few')
    return data[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :width_bytes]


_COLOUR = {'rgb8': (3, None), 'bgr8': (3, cv2.COLOR_BGR2RGB), 'mono8': (1, cv2.COLOR_GRAY2RGB),
           'rgba8': (4, cv2.COLOR_RGBA2RGB), 'bgra8': (4, cv2.COLOR_BGRA2RGB)}


def decode_colour(msgtype: str, msg: Any) -> np.ndarray:
    """Image or CompressedImage -> (H, W, 3) uint8 RGB."""
    if msgtype == COMPRESSED:
        fmt = str(msg.format).lower()
        if 'compresseddepth' in fmt:
            raise BagImportError(f'compressed image format {msg.format!r} is depth, not colour')
        bgr = cv2.imdecode(_bytes(msg.data), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BagImportError(f'compressed image (format {msg.format!r}) does not decode as JPEG or PNG')
        return np.ascontiguousarray(bgr[..., ::-1])
    enc = str(msg.encoding).lower()
    if enc not in _COLOUR:
        raise BagImportError(f'image encoding {msg.encoding!r} is not supported for colour (use one of '
                             f'{", ".join(_COLOUR)}, or jpeg/png CompressedImage)')
    channels, code = _COLOUR[enc]
    img = _rows(msg, channels, 1).reshape(msg.height, msg.width, channels)
    return np.ascontiguousarray(img if code is None else cv2.cvtColor(img, code))


def decode_depth(msgtype: str, msg: Any) -> np.ndarray:
    """32FC1 metres or 16UC1 millimetres (Image, or a 16-bit PNG CompressedImage) -> (H, W) float32 metres, NaN
    where unknown (0, NaN, +-inf in the message: REP-118)."""
    if msgtype == COMPRESSED:
        if 'compresseddepth' in str(msg.format).lower():
            raise BagImportError(f"depth format {msg.format!r} (image_transport's compressedDepth) is not "
                                 'supported: record raw 16UC1 or 32FC1 depth')
        raw = cv2.imdecode(_bytes(msg.data), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
            raise BagImportError(f'compressed depth (format {msg.format!r}) is not a 16-bit one-channel PNG')
        metres = raw.astype(np.float32) / 1000.0
    else:
        enc = str(msg.encoding).upper()
        if enc == '32FC1':
            metres = _rows(msg, 1, 4).copy().view('>f4' if msg.is_bigendian else '<f4').reshape(
                msg.height, msg.width).astype(np.float32)
        elif enc in ('16UC1', 'MONO16'):
            mm = _rows(msg, 1, 2).copy().view('>u2' if msg.is_bigendian else '<u2').reshape(msg.height, msg.width)
            metres = mm.astype(np.float32) / 1000.0
        else:
            raise BagImportError(f'depth encoding {msg.encoding!r} is not supported (32FC1 metres or 16UC1 mm)')
    return np.where(np.isfinite(metres) & (metres > 0), metres, np.float32(np.nan)).astype(np.float32)


# ---- the import ------------------------------------------------------------------------------------------------
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


def _undistort(K: np.ndarray, info: Any) -> Any:
    """A function undoing the camera_info's distortion (identity when there is none)."""
    d = np.asarray(info.d, dtype=np.float64)
    if d.size == 0 or not np.any(d):
        return None
    model = str(info.distortion_model)
    if model not in ('plumb_bob', 'rational_polynomial'):
        raise BagImportError(f'camera_info distortion model {model!r} is not supported (plumb_bob, '
                             'rational_polynomial, or rectified images with zero distortion)')
    size = (int(info.width), int(info.height))
    maps = cv2.initUndistortRectifyMap(K, d, None, K, size, cv2.CV_32FC1)

    def undo(img: np.ndarray, depth: bool = False) -> np.ndarray:
        return cv2.remap(img, *maps, interpolation=cv2.INTER_NEAREST if depth else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=float('nan') if depth else 0)

    return undo


def import_bag(bag: str | Path, out: str | Path, options: ImportOptions) -> ImportResult:
    """Import one rosbag2 into episodes `OUT/<bag name>[_<k>].episode.npz`; returns what was written."""
    options.validate()
    bag, out = Path(bag), Path(out)
    result = ImportResult()
    reader = _reader(bag)
    try:
        conns = {c.topic: c.msgtype for c in reader.connections}
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
                        result.notes.append(f'several depth topics ({", ".join(depths)}): imported without depth; '
                                            'choose one with --depth-topic')
            else:
                _pick_topic(conns, (IMAGE, COMPRESSED), 'depth', depth_topic)
        tf_topics = [t for t, ty in conns.items() if ty == TF_MESSAGE]
        odom_topic = _pick_topic(conns, (ODOMETRY,), 'odom', options.odom_topic) \
            if options.pose_source != 'tf' else None
        if options.pose_source == 'odom' and odom_topic is None:
            raise BagImportError(f'{bag}: no odometry topic (nav_msgs/Odometry) for --pose odom'
                                 + ('' if options.odom_topic else ' (or several: choose one with --odom-topic)'))

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
                           _transform_of(tr.transform), static)
            elif conn.topic == odom_topic:
                odom.add(str(msg.header.frame_id), str(msg.child_frame_id), stamp_ns(msg.header.stamp),
                         _pose_of(msg.pose.pose), static=False)
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
        undistort = _undistort(K_src, info)
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
                depth.append(_fit_depth(entry[0], w, h, fit, undistort, bag, depth_topic))
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


def _fit_depth(d: np.ndarray, w: int, h: int, fit: CameraFit, undistort: Any, bag: Path, topic: str | None
               ) -> np.ndarray:
    if d.shape != (h, w):  # registered depth at another resolution: same field of view, resampled
        if abs(d.shape[1] / d.shape[0] - w / h) > 0.01:
            raise BagImportError(f'{bag}: depth on {topic} is {d.shape[1]}x{d.shape[0]}, not the colour images\' '
                                 f'{w}x{h} or their aspect: it must be registered to the colour camera')
        d = cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST)
    if undistort is not None:
        d = undistort(d, depth=True)
    return fit.image(d, depth=True)


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
