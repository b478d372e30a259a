"""The paper's three-level KV-cache memory: a permanent sink, a global pool and a local sliding window.

Memory is payload-agnostic: it stores whatever the engine hands it (per-layer K/V tensors, geometry) with the
camera pose of the chunk and an optional content summary, and decides what to keep and what to attend to:

- sink: the first `sink_chunks` chunks of the session, never evicted;
- window: the most recent `window_chunks` chunks;
- pool: chunks that left the window and passed the information-gain gate (MDL-style: a chunk is not admitted
  when a held chunk already explains it: camera near in position and view direction, and content summary
  nearly the same). Over budget (chunks or bytes) the pool is thinned by farthest-point sampling over camera
  poses: the pooled chunk nearest to its nearest neighbour (among the pool and the sink) goes first, which is
  the point FPS would pick last, so a spread of views stays.

Retrieval for the next chunk scores each pooled chunk's camera against the target camera: frustum overlap when
intrinsics are given, else view-direction agreement and distance.

Poses are camera-to-world 4x4 with OpenCV axes (z forward), so the view direction is the third rotation column.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

import numpy as np

from worldscape_ros.model.camera import check_intrinsics
from worldscape_ros.model.config import MemoryConfig

FRUSTUM_DEPTHS_M = (0.5, 1.0, 2.0, 4.0)  # where the target frustum is sampled for the overlap score
FRUSTUM_GRID = 5  # samples per image axis at each depth


@dataclass
class MemoryEntry:
    chunk_id: int  # monotonically increasing per session
    pose: np.ndarray  # (4, 4) camera-to-world of the chunk's (last) frame, OpenCV axes
    payload: Any  # opaque to memory (the engine stores per-layer K/V tensors and geometry)
    nbytes: int  # bytes the payload holds
    summary: np.ndarray | None = None  # (D,) content descriptor for the gate (e.g. pooled latent)


Payload = TypeVar('Payload')
Level = Literal['sink', 'window', 'pool']
LEVELS: tuple[Level, ...] = ('sink', 'window', 'pool')


class SavedChunk(TypedDict, Generic[Payload]):
    """One held chunk as HierarchicalMemory.state() gives it and load_state() takes it: a MemoryEntry's fields."""

    chunk_id: int
    pose: np.ndarray  # (4, 4) camera-to-world
    payload: Payload  # what the engine handed memory (a session's: the chunk's ChunkPayload)
    nbytes: int
    summary: np.ndarray | None  # (D,) content descriptor


class MemoryState(TypedDict, Generic[Payload]):
    """Everything a HierarchicalMemory holds: each level's chunks, oldest first, and the last chunk id it took."""

    last_chunk_id: int | None
    sink: list[SavedChunk[Payload]]
    window: list[SavedChunk[Payload]]
    pool: list[SavedChunk[Payload]]
    config: NotRequired[dict[str, Any]]  # the config it ran with: state() gives it, load_state() ignores it


# ----------------------------------------------------------------------------------------------------------------
# Pose geometry (plain functions, testable alone)


def check_pose(pose: np.ndarray, name: str, tol: float = 1e-4) -> np.ndarray:
    """A finite 4x4 rigid transform as float64, else ValueError naming it (camera.check_rigid's rules, for one
    pose at a fraction of its cost: memory checks a pose on every append and query)."""
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (4, 4):
        raise ValueError(f'{name} must be a 4x4 rigid transform, got shape {p.shape}')
    if not np.isfinite(p).all():
        raise ValueError(f'{name} must be finite')
    R = p[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > tol or np.linalg.det(R) < 0:
        raise ValueError(f'{name} rotation is not orthonormal with determinant +1')
    if np.abs(p[3] - (0.0, 0.0, 0.0, 1.0)).max() > tol:
        raise ValueError(f'{name} last row must be [0, 0, 0, 1]')
    return p


def _positions_directions(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    return poses[:, :3, 3], poses[:, :3, 2]  # camera centres (N, 3), unit view directions (N, 3)


def _angles(d: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip(dirs @ d, -1.0, 1.0))  # (N,) radians between view directions


def pose_distances(pose: np.ndarray, poses: np.ndarray, angle_weight_m: float = 1.0) -> np.ndarray:
    """Distance from one camera to each of `poses` (N, 4, 4): metres apart + angle_weight_m * view angle."""
    p, d = _positions_directions(pose)
    P, D = _positions_directions(poses)
    return np.linalg.norm(P - p[0], axis=1) + angle_weight_m * _angles(d[0], D)


def farthest_point_indices(poses: np.ndarray, k: int, keep: Sequence[int] = (),
                           angle_weight_m: float = 1.0) -> np.ndarray:
    """Farthest-point sampling over camera poses (N, 4, 4): k indices, the `keep` ones first.

    Each further pick is the pose whose distance (position + angle_weight_m * view angle) to the picked set is
    largest; without `keep` it starts from pose 0. Ties go to the lower index. O(N k).
    """
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    n = len(poses)
    if not 0 <= k <= n:
        raise ValueError(f'k must be in [0, {n}], got {k}')
    keep = [int(i) for i in keep]
    if any(not 0 <= i < n for i in keep) or len(set(keep)) != len(keep):
        raise ValueError(f'keep must hold distinct indices in [0, {n}), got {keep}')
    if k < len(keep):
        raise ValueError(f'k={k} is smaller than the {len(keep)} indices to keep')
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    picked = keep if keep else [0]
    min_dist = np.full(n, np.inf)
    for i in picked:
        min_dist = np.minimum(min_dist, pose_distances(poses[i], poses, angle_weight_m))
    min_dist[picked] = -np.inf
    while len(picked) < k:
        i = int(np.argmax(min_dist))
        picked.append(i)
        min_dist = np.minimum(min_dist, pose_distances(poses[i], poses, angle_weight_m))
        min_dist[i] = -np.inf
    return np.asarray(picked, dtype=np.int64)


def frustum_overlap(target_pose: np.ndarray, poses: np.ndarray, intrinsics: np.ndarray,
                    depths: Sequence[float] = FRUSTUM_DEPTHS_M, grid: int = FRUSTUM_GRID) -> np.ndarray:
    """Fraction of sample points of the target frustum that each camera (N, 4, 4) also sees, in [0, 1].

    The target frustum is sampled at a grid of pixels (image size 2 cx x 2 cy) and a few depths; all cameras
    share the intrinsics. Occlusion is unknown here, so this is field-of-view overlap as in WorldMem.
    """
    K = np.asarray(intrinsics, dtype=np.float64)
    width, height = 2 * K[0, 2], 2 * K[1, 2]
    pts_cam = _frustum_samples(K.tobytes(), tuple(float(d) for d in depths), grid)  # (M, 3)
    tp = np.asarray(target_pose, dtype=np.float64)
    pts = pts_cam @ tp[:3, :3].T + tp[:3, 3]  # (M, 3) world
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    R, t = poses[:, :3, :3], poses[:, :3, 3]
    local = pts @ R - (t[:, None, :] @ R)  # (N, M, 3) = R^T (p - t) in each camera
    z = local[..., 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        u = (K[0, 0] * local[..., 0] + K[0, 1] * local[..., 1]) / z + K[0, 2]
        v = K[1, 1] * local[..., 1] / z + K[1, 2]
    inside = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return inside.mean(axis=1)


@functools.lru_cache(maxsize=8)
def _frustum_samples(K_bytes: bytes, depths: tuple[float, ...], grid: int) -> np.ndarray:
    """Sample points (M, 3) of a camera frustum in its own coordinates (cached: one K per session)."""
    K = np.frombuffer(K_bytes, dtype=np.float64).reshape(3, 3)
    width, height = 2 * K[0, 2], 2 * K[1, 2]
    us = (np.arange(grid) + 0.5) / grid * width
    vs = (np.arange(grid) + 0.5) / grid * height
    pix = np.stack(np.meshgrid(us, vs, indexing='xy'), -1).reshape(-1, 2)
    rays = np.concatenate([pix, np.ones((len(pix), 1))], 1) @ np.linalg.inv(K).T  # (G, 3), z = 1
    pts = (np.asarray(depths)[:, None, None] * rays).reshape(-1, 3)
    pts.flags.writeable = False
    return pts


def retrieval_scores(target_pose: np.ndarray, poses: np.ndarray, intrinsics: np.ndarray | None = None,
                     angle_weight_m: float = 1.0) -> np.ndarray:
    """Geometry-aware relevance of each stored camera (N, 4, 4) to the target camera; higher is better.

    Without intrinsics: minus the pose distance (metres + angle_weight_m * view angle), so an identical camera
    scores 0, the maximum. With intrinsics: frustum overlap in [0, 1], ties broken by the pose distance
    (weighted 1e-3 per metre, far below one overlap sample).
    """
    dist = pose_distances(target_pose, poses, angle_weight_m)
    if intrinsics is None:
        return -dist
    return frustum_overlap(target_pose, poses, intrinsics) - 1e-3 * dist / (1.0 + dist)


# ----------------------------------------------------------------------------------------------------------------
# The memory


class HierarchicalMemory:
    """Sink + global pool + local window of chunk entries, bounded in chunks and (pool) bytes.

    append and context cost O(pool) (eviction keeps a pairwise pose-distance matrix of the pool up to date).
    """

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self.config = config or MemoryConfig()
        self.reset()

    # -- state --------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._sink: list[MemoryEntry] = []
        self._window: deque[MemoryEntry] = deque()
        self._pool: list[MemoryEntry] = []
        self._pool_bytes = 0
        self._last_chunk_id: int | None = None
        self._summary_dim: int | None = None
        # Pool geometry caches, row i <-> self._pool[i].
        self._poses = np.zeros((0, 4, 4))
        self._pos = np.zeros((0, 3))
        self._dir = np.zeros((0, 3))
        self._dist = np.zeros((0, 0))  # (P, P) pairwise pose distances, inf on the diagonal
        self._sink_dist = np.zeros(0)  # (P,) distance to the nearest sink camera (inf without a sink)

    @property
    def sink(self) -> tuple[MemoryEntry, ...]:
        return tuple(self._sink)

    @property
    def window(self) -> tuple[MemoryEntry, ...]:
        return tuple(self._window)

    @property
    def pool(self) -> tuple[MemoryEntry, ...]:
        return tuple(self._pool)

    @property
    def nbytes(self) -> int:
        """Bytes of all held payloads (sink + window + pool)."""
        return sum(e.nbytes for e in self._sink) + sum(e.nbytes for e in self._window) + self._pool_bytes

    @property
    def pool_nbytes(self) -> int:
        return self._pool_bytes

    def __len__(self) -> int:
        return len(self._sink) + len(self._window) + len(self._pool)

    # -- writing ------------------------------------------------------------------------------------------------
    def append(self, entry: MemoryEntry) -> None:
        """Store the newest chunk: sink until full, then the window; the chunk pushed out of the window is gated
        into the pool, which is thinned by farthest-point sampling when over budget."""
        self._validate(entry)
        self._last_chunk_id = entry.chunk_id
        if len(self._sink) < self.config.sink_chunks:
            self._sink.append(entry)
            return
        self._window.append(entry)
        while len(self._window) > self.config.window_chunks:
            self._admit(self._window.popleft())

    def _validate(self, entry: MemoryEntry) -> None:
        if not isinstance(entry, MemoryEntry):
            raise ValueError(f'entry must be a MemoryEntry, got {type(entry).__name__}')
        cid = entry.chunk_id
        if not isinstance(cid, (int, np.integer)) or isinstance(cid, bool):
            raise ValueError(f'chunk_id must be an int, got {cid!r}')
        if self._last_chunk_id is not None and cid <= self._last_chunk_id:
            raise ValueError(f'chunk_id must increase monotonically: got {cid} after {self._last_chunk_id}')
        entry.pose = check_pose(entry.pose, f'pose of chunk {cid}')
        nb = entry.nbytes
        if not isinstance(nb, (int, np.integer)) or isinstance(nb, bool) or nb < 0:
            raise ValueError(f'nbytes of chunk {cid} must be a non-negative int, got {nb!r}')
        if entry.summary is not None:
            s = np.asarray(entry.summary, dtype=np.float64)
            if s.ndim != 1 or not np.all(np.isfinite(s)):
                raise ValueError(f'summary of chunk {cid} must be a finite 1-D vector, got shape {s.shape}')
            if self._summary_dim is not None and len(s) != self._summary_dim:
                raise ValueError(f'summary of chunk {cid} has {len(s)} values, earlier chunks {self._summary_dim}')
            self._summary_dim = len(s)
            entry.summary = s

    def explains(self, held: MemoryEntry, entry: MemoryEntry) -> bool:
        """The gate's test: `held` makes `entry` redundant (near camera and, when both have one, near content)."""
        cfg = self.config
        if np.linalg.norm(held.pose[:3, 3] - entry.pose[:3, 3]) > cfg.gate_distance_m:
            return False
        cos_view = float(np.clip(held.pose[:3, 2] @ entry.pose[:3, 2], -1.0, 1.0))
        if math.degrees(math.acos(cos_view)) > cfg.gate_angle_deg:
            return False
        if held.summary is None or entry.summary is None:
            return True  # no content to compare: geometry alone decides
        a, b = held.summary, entry.summary
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        cos_content = float(a @ b) / denom if denom > 0 else float(np.array_equal(a, b))
        return cos_content >= cfg.gate_content

    def _admit(self, entry: MemoryEntry) -> None:
        cfg = self.config
        if cfg.pool_chunks == 0 or (cfg.pool_bytes is not None and entry.nbytes > cfg.pool_bytes):
            return
        # Information-gain gate: only the candidates near in position can explain it (vectorised pre-filter).
        p = entry.pose[:3, 3]
        near = np.flatnonzero(np.linalg.norm(self._pos - p, axis=1) <= cfg.gate_distance_m)  # (P,) -> indices
        if any(self.explains(self._pool[i], entry) for i in near) or any(self.explains(s, entry) for s in self._sink):
            return
        self._pool_insert(entry)
        while len(self._pool) > cfg.pool_chunks or (cfg.pool_bytes is not None and self._pool_bytes > cfg.pool_bytes):
            self._pool_remove(self._fps_victim())

    def _pool_insert(self, entry: MemoryEntry) -> None:
        w = self.config.fps_angle_weight_m
        p, d = entry.pose[:3, 3], entry.pose[:3, 2]
        row = np.linalg.norm(self._pos - p, axis=1) + w * _angles(d, self._dir)  # (P,)
        n = len(self._pool)
        dist = np.full((n + 1, n + 1), np.inf)
        dist[:n, :n] = self._dist
        dist[n, :n] = dist[:n, n] = row
        self._dist = dist
        self._poses = np.concatenate([self._poses, entry.pose[None]])
        self._pos = np.concatenate([self._pos, p[None]])
        self._dir = np.concatenate([self._dir, d[None]])
        sink_d = pose_distances(entry.pose, np.stack([s.pose for s in self._sink]), w).min() if self._sink else np.inf
        self._sink_dist = np.append(self._sink_dist, sink_d)
        self._pool.append(entry)
        self._pool_bytes += entry.nbytes

    def _pool_remove(self, i: int) -> None:
        keep = np.arange(len(self._pool)) != i
        self._dist = self._dist[keep][:, keep]
        self._poses, self._pos, self._dir = self._poses[keep], self._pos[keep], self._dir[keep]
        self._sink_dist = self._sink_dist[keep]
        self._pool_bytes -= self._pool[i].nbytes
        del self._pool[i]

    def _fps_victim(self) -> int:
        """The pooled chunk farthest-point sampling would pick last: the smallest distance to its nearest
        neighbour among the pool and the sink. Of a tied pair, the older goes (pool order is chunk order)."""
        nearest = np.minimum(self._dist.min(axis=1), self._sink_dist)  # (P,)
        return int(np.argmin(nearest))

    # -- reading ------------------------------------------------------------------------------------------------
    def retrieve(self, target_pose: np.ndarray, intrinsics: np.ndarray | None = None) -> list[MemoryEntry]:
        """Up to retrieve_chunks pooled entries, best score first (chunks with no frustum overlap are skipped)."""
        target_pose = check_pose(target_pose, 'target_pose')
        if intrinsics is not None:
            check_intrinsics(np.asarray(intrinsics), name='intrinsics')
        k = min(self.config.retrieve_chunks, len(self._pool))
        if k == 0:
            return []
        scores = retrieval_scores(target_pose, self._poses, intrinsics, self.config.fps_angle_weight_m)
        order = np.argsort(-scores, kind='stable')[:k]
        if intrinsics is not None:
            order = order[scores[order] > 0]
        return [self._pool[i] for i in order]

    def context(self, target_pose: np.ndarray, intrinsics: np.ndarray | None = None,
                retrieve: bool = True) -> list[MemoryEntry]:
        """What the next chunk attends to: sink + retrieved pool chunks (retrieve=False: none) + window, ordered
        by chunk_id."""
        pooled = self.retrieve(target_pose, intrinsics) if retrieve else []
        entries = {e.chunk_id: e for e in (*self._sink, *pooled, *self._window)}
        return [entries[c] for c in sorted(entries)]

    # -- save / restore -----------------------------------------------------------------------------------------
    def state(self) -> MemoryState[Any]:
        """Everything needed to restore this memory; payloads are returned as-is (the caller serialises them)."""

        def rows(entries: Sequence[MemoryEntry]) -> list[SavedChunk[Any]]:
            return [{'chunk_id': int(e.chunk_id), 'pose': e.pose.copy(), 'payload': e.payload, 'nbytes': int(e.nbytes),
                     'summary': None if e.summary is None else e.summary.copy()} for e in entries]

        return {'config': asdict(self.config), 'last_chunk_id': self._last_chunk_id,
                'sink': rows(self._sink), 'window': rows(self._window), 'pool': rows(self._pool)}

    def load_state(self, state: MemoryState[Any]) -> None:
        """Restore from state(); a pool over this config's budget is thinned by farthest-point sampling."""
        for key in LEVELS:
            if not isinstance(state.get(key), list):
                raise ValueError(f'memory state lacks the list {key!r}')
        cfg = self.config
        if len(state['sink']) > cfg.sink_chunks or len(state['window']) > cfg.window_chunks:
            raise ValueError(f'memory state holds {len(state["sink"])} sink and {len(state["window"])} window chunks, '
                             f'more than this config allows ({cfg.sink_chunks}, {cfg.window_chunks})')
        try:
            levels = {key: [MemoryEntry(**row) for row in state[key]] for key in LEVELS}
        except TypeError as exc:
            raise ValueError(f'memory state has a malformed entry: {exc}') from None
        self.reset()
        ordered = sorted((*levels['sink'], *levels['pool'], *levels['window']), key=lambda e: e.chunk_id)
        for e in ordered:  # validates poses, bytes, summaries and that chunk ids are distinct
            self._validate(e)
            self._last_chunk_id = e.chunk_id
        self._sink = list(levels['sink'])
        self._window = deque(levels['window'])
        pool = sorted(levels['pool'], key=lambda e: e.chunk_id)
        if len(pool) > cfg.pool_chunks and pool:
            poses = np.stack([e.pose for e in (*self._sink, *pool)])
            ns = len(self._sink)
            picked = farthest_point_indices(poses, ns + cfg.pool_chunks, keep=range(ns),
                                            angle_weight_m=cfg.fps_angle_weight_m)
            chosen = sorted(int(i) - ns for i in picked[ns:])
            pool = [pool[i] for i in chosen]
        for e in pool:
            self._pool_insert(e)
        while cfg.pool_bytes is not None and self._pool_bytes > cfg.pool_bytes:
            self._pool_remove(self._fps_victim())
        last = state.get('last_chunk_id')
        if last is not None:
            if self._last_chunk_id is not None and last < self._last_chunk_id:
                raise ValueError(f'memory state last_chunk_id {last} is older than its entries')
            self._last_chunk_id = int(last)
