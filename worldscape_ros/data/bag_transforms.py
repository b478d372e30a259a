"""A bag's TF tree and the rotation arithmetic it needs: quaternions, slerp, REP-103 roll-pitch-yaw, a camera
mount, and `TransformBuffer`, which answers world_T_frame at any image stamp (static links held, moving links
interpolated, gaps refused with the link and time named)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from worldscape_ros.errors import BagImportError
from worldscape_ros.model.kinematics import R_LINK_OPTICAL

EXTRAPOLATION_NS = 1_000_000  # a stamp this close outside a transform's samples takes the nearest sample (1 ms)


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


def _rigid(xyz: Any, q: Any) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(q.x, q.y, q.z, q.w)
    T[:3, 3] = (xyz.x, xyz.y, xyz.z)
    return T


def transform_matrix(msg_transform: Any) -> np.ndarray:
    """A geometry_msgs/Transform as a 4x4 matrix."""
    return _rigid(msg_transform.translation, msg_transform.rotation)


def pose_matrix(msg_pose: Any) -> np.ndarray:
    """A geometry_msgs/Pose as a 4x4 matrix."""
    return _rigid(msg_pose.position, msg_pose.orientation)


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
    """A moving link has no sample near a stamp; names the link and the time."""

    def __init__(self, message: str, child: str, ns: int) -> None:
        super().__init__(message)
        self.child, self.ns = child, ns
