"""What the viewer draws, computed from what any frame source gives (RGB, metric depth, camera pose, intrinsics):
coloured points in the world frame, a bounded voxel-downsampled cloud of everything seen, the keyframes of the
trajectory, and hand keypoints in the world. Depth becomes points through the model's own back-projection
(model.camera.unproject_depth), so the cloud shows the geometry the model uses; the ROS adapter and the engine
share this module.

Conventions (DESIGN.md): camera-to-world 4x4 poses with OpenCV axes, pixel centres at +0.5, depth is metric z
along the optical axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import transforms3d.quaternions as tq

from worldscape_ros.model.camera import unproject_depth


def check_frame_geometry(rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> None:
    """Raise ValueError naming the first argument that does not fit (shapes, dtype, finiteness)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
    if depth.shape != rgb.shape[:2]:
        raise ValueError(f'depth must have the image shape {rgb.shape[:2]}, got {depth.shape}')
    if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
        raise ValueError(f'pose must be a finite 4x4 camera-to-world matrix, got shape {c2w.shape}')
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f'intrinsics must be a finite 3x3 K with positive focal lengths, got {K.tolist()}')


def backproject(rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray, K: np.ndarray, stride: int = 2,
                max_depth: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Coloured world points of every `stride`-th pixel with valid depth (finite, in (0, max_depth]).

    Returns points (N, 3) float32 in the world frame and colours (N, 3) uint8.
    """
    rgb, depth = np.asarray(rgb), np.asarray(depth, dtype=np.float32)
    c2w, K = np.asarray(c2w, dtype=np.float64), np.asarray(K, dtype=np.float64)
    check_frame_geometry(rgb, depth, c2w, K)
    if stride < 1:
        raise ValueError(f'stride must be >= 1, got {stride}')
    d = depth[::stride, ::stride]
    valid = np.isfinite(d) & (d > 0) & (d <= max_depth)
    known = torch.from_numpy(np.where(valid, d, 0.0).astype(np.float64))
    world = unproject_depth(known, torch.from_numpy(c2w), torch.from_numpy(strided_intrinsics(K, stride)))
    return world.numpy()[valid].astype(np.float32), rgb[::stride, ::stride][valid].astype(np.uint8)


def strided_intrinsics(K: np.ndarray, stride: int) -> np.ndarray:
    """K of the image made of every `stride`-th pixel: its pixel i (centre i + 0.5) is the full image's pixel
    stride * i (centre stride * i + 0.5), so u' = (u - 0.5) / stride + 0.5. Back-projecting that small image
    costs 1 / stride^2 of the full grid (at 640x480 on one CPU thread: 88 ms for every pixel, 5 ms for
    every second one)."""
    Ks = np.array(K, dtype=np.float64)
    Ks[:2] /= stride
    Ks[:2, 2] += 0.5 - 0.5 / stride
    return Ks


class VoxelCloud:
    """Everything seen so far as one coloured point per occupied voxel; the newest observation of a voxel wins,
    and past `max_points` the voxels observed longest ago are dropped (the cloud stays bounded however long
    the session). Points wait in a buffer until `merge` (merging costs a sort, so the viewer merges only as
    often as it redraws)."""

    def __init__(self, voxel: float = 0.05, max_points: int = 200_000) -> None:
        if not (voxel > 0 and math.isfinite(voxel)):
            raise ValueError(f'voxel size must be positive, got {voxel}')
        if max_points < 1:
            raise ValueError(f'max_points must be >= 1, got {max_points}')
        self.voxel = float(voxel)
        self.max_points = int(max_points)
        self.clear()

    def clear(self) -> None:
        self.points = np.zeros((0, 3), np.float32)
        self.colors = np.zeros((0, 3), np.uint8)
        self._keys = np.zeros(0, np.int64)
        self._age = np.zeros(0, np.int64)  # the add() count when the voxel was last seen
        self._pending: list[tuple[np.ndarray, np.ndarray, int]] = []
        self._adds = 0

    def __len__(self) -> int:
        return len(self.points)

    def add(self, points: np.ndarray, colors: np.ndarray) -> None:
        if points.shape[0] != colors.shape[0]:
            raise ValueError(f'points and colors differ in length: {points.shape[0]} != {colors.shape[0]}')
        self._adds += 1
        if len(points):
            self._pending.append((points.astype(np.float32), colors.astype(np.uint8), self._adds))

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def merge(self) -> None:
        """Fold the buffered points into the cloud."""
        if not self._pending:
            return
        pts = np.concatenate([self.points] + [p for p, _, _ in self._pending])
        cols = np.concatenate([self.colors] + [c for _, c, _ in self._pending])
        age = np.concatenate([self._age] + [np.full(len(p), a, np.int64) for p, _, a in self._pending])
        self._pending.clear()
        keys = self._keys_of(pts)
        # np.unique keeps the first occurrence: reverse so that the newest point of each voxel is kept
        _, first = np.unique(keys[::-1], return_index=True)
        keep = len(keys) - 1 - first
        if len(keep) > self.max_points:
            keep = keep[np.argsort(age[keep], kind='stable')[-self.max_points:]]
        keep.sort()
        self.points, self.colors, self._keys, self._age = pts[keep], cols[keep], keys[keep], age[keep]

    def _keys_of(self, points: np.ndarray) -> np.ndarray:
        # 21 bits per axis: +-1 M voxels (52 km at 5 cm) around the origin
        q = np.floor(points / self.voxel).astype(np.int64) + (1 << 20)
        q = np.clip(q, 0, (1 << 21) - 1)
        return (q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2]


def wxyz_position(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A camera-to-world pose as the unit quaternion (w, x, y, z) and the position viser's scene nodes take."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return tq.mat2quat(c2w[:3, :3]), c2w[:3, 3].copy()


def vertical_fov(K: np.ndarray, height: int) -> float:
    """Vertical field of view in radians of a camera with intrinsics K and `height` rows."""
    return 2.0 * math.atan(0.5 * height / float(K[1, 1]))


def view_change(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Distance (m) and viewing-direction angle (degrees) between two camera poses."""
    dist = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    cos = float(np.clip(a[:3, 2] @ b[:3, 2], -1.0, 1.0))
    return dist, math.degrees(math.acos(cos))


@dataclass
class KeyframeTrail:
    """Which poses of a trajectory get a frustum of their own: a new one once the camera moved `min_distance`
    metres or turned `min_angle_deg` since the last, at most `max_keyframes` (the oldest are dropped)."""

    min_distance: float = 0.3
    min_angle_deg: float = 20.0
    max_keyframes: int = 200

    def __post_init__(self) -> None:
        self.poses: list[np.ndarray] = []
        self.indices: list[int] = []

    def offer(self, pose: np.ndarray, index: int) -> bool:
        """Record the pose if it is a new keyframe; True when it is."""
        if self.poses:
            dist, angle = view_change(self.poses[-1], pose)
            if dist < self.min_distance and angle < self.min_angle_deg:
                return False
        self.poses.append(np.asarray(pose, dtype=np.float64).copy())
        self.indices.append(index)
        if len(self.poses) > self.max_keyframes:
            self.poses.pop(0)
            self.indices.pop(0)
        return True

    def clear(self) -> None:
        self.poses.clear()
        self.indices.clear()


def path_segments(positions: np.ndarray) -> np.ndarray:
    """(N, 3) positions -> (N-1, 2, 3) line segments joining consecutive ones."""
    p = np.asarray(positions, dtype=np.float32).reshape(-1, 3)
    if len(p) < 2:
        return np.zeros((0, 2, 3), np.float32)
    return np.stack([p[:-1], p[1:]], axis=1)


def hand_in_world(keypoints: np.ndarray, c2w: np.ndarray, bones: tuple[tuple[int, int], ...]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Hand keypoints (21, 3) in the camera optical frame -> world points (21, 3) and bone segments (B, 2, 3).
    Keypoints at z <= 0 (absent or behind the camera) are dropped with their bones."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 3 or not np.all(np.isfinite(kp)):
        raise ValueError(f'hand keypoints must be finite (N, 3), got shape {kp.shape}')
    world = kp @ np.asarray(c2w)[:3, :3].T + np.asarray(c2w)[:3, 3]
    seen = kp[:, 2] > 1e-3
    segs = [(world[a], world[b]) for a, b in bones if seen[a] and seen[b]]
    segments = np.asarray(segs, dtype=np.float32).reshape(-1, 2, 3)
    return world[seen].astype(np.float32), segments
