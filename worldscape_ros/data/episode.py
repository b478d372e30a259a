"""The episode format: frames with ground truth (poses, depth, actions, hand keypoints) in one file.

On disk (docs/episode_format.md): an uncompressed NumPy .npz (a zip; read with allow_pickle=False, so no
pickle) named `*.episode.npz`, holding a JSON header, RGB frames as PNG bytes, depth as 16-bit PNG in
millimetres (lossless, 0.5 mm rounding; 65535 = unknown/NaN), and the small arrays raw. Written atomically:
a temp file in the same folder, fsync, then os.replace, so an interrupted write leaves no half episode.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from worldscape_ros import __version__
from worldscape_ros.errors import EpisodeFormatError
from worldscape_ros.fileio import atomic_path

FORMAT_VERSION = 1
EPISODE_SUFFIX = '.episode.npz'
DEPTH_SCALE = 1000.0  # depth PNG units per metre (millimetres)
DEPTH_UNKNOWN = 65535  # depth PNG value for unknown depth (NaN in memory)
MAX_STORED_DEPTH = (DEPTH_UNKNOWN - 1) / DEPTH_SCALE  # 65.534 m: farther depth is clamped to this
EPISODE_KINDS = ('nav', 'manip')
# Run-length PNG at level 1: on rendered frames it encodes faster and smaller than zlib's default strategy
# (14.5 vs 15.8 kB per 128x96 RGB + depth frame).
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
_REQUIRED = ('header', 'rgb_png', 'rgb_offsets', 'depth_png', 'depth_offsets', 'poses', 'intrinsics', 'actions')


@dataclass
class Episode:
    """One episode of T frames. Poses are OpenCV camera-to-world; depth is metric z-depth (NaN: unknown)."""

    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W) float32, metres
    poses: np.ndarray  # (T, 4, 4) float64
    intrinsics: np.ndarray  # (3, 3) float64
    actions: np.ndarray  # (T, 5) float32: the NavAction that led to frame t; row 0 zeros
    keypoints3d: np.ndarray | None = None  # (T, 21, 3) float32, camera optical frame, metres
    keypoints2d: np.ndarray | None = None  # (T, 21, 2) float32, pixels (centre of pixel u at u + 0.5)
    visibility: np.ndarray | None = None  # (T, 21) bool
    handedness: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rgb = np.asarray(self.rgb)
        if self.rgb.ndim != 4 or self.rgb.shape[-1] != 3 or self.rgb.dtype != np.uint8:
            raise ValueError(f'episode rgb must be (T, H, W, 3) uint8, got {self.rgb.shape} {self.rgb.dtype}')
        T, H, W, _ = self.rgb.shape
        self.depth = np.asarray(self.depth, dtype=np.float32)
        self.poses = np.asarray(self.poses, dtype=np.float64)
        self.intrinsics = np.asarray(self.intrinsics, dtype=np.float64)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        expect = {'depth': (self.depth, (T, H, W)), 'poses': (self.poses, (T, 4, 4)),
                  'intrinsics': (self.intrinsics, (3, 3)), 'actions': (self.actions, (T, 5))}
        if self.keypoints3d is not None:
            self.keypoints3d = np.asarray(self.keypoints3d, dtype=np.float32)
            self.keypoints2d = np.asarray(self.keypoints2d, dtype=np.float32)
            self.visibility = np.asarray(self.visibility, dtype=bool)
            expect.update({'keypoints3d': (self.keypoints3d, (T, 21, 3)), 'keypoints2d': (self.keypoints2d, (T, 21, 2)),
                           'visibility': (self.visibility, (T, 21))})
        elif self.keypoints2d is not None or self.visibility is not None:
            raise ValueError('episode keypoints2d/visibility given without keypoints3d')
        for name, (arr, shape) in expect.items():
            if arr.shape != shape:
                raise ValueError(f'episode {name} must have shape {shape}, got {arr.shape}')

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def has_hands(self) -> bool:
        return self.keypoints3d is not None


def _encode_frames(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """PNG-encode each frame; returns (concatenated bytes uint8, offsets int64 of length T + 1)."""
    chunks = []
    for f in frames:
        ok, buf = cv2.imencode('.png', f, _PNG_PARAMS)
        if not ok:
            raise EpisodeFormatError('OpenCV could not PNG-encode a frame')
        chunks.append(buf.reshape(-1))
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return data, offsets


def depth_to_png_units(depth: np.ndarray) -> np.ndarray:
    """Metres (float) -> uint16 millimetres; NaN -> DEPTH_UNKNOWN; beyond 65.534 m clamped."""
    mm = np.rint(np.clip(np.nan_to_num(depth, nan=0.0, posinf=MAX_STORED_DEPTH), 0.0, MAX_STORED_DEPTH) * DEPTH_SCALE)
    out = mm.astype(np.uint16)
    out[np.isnan(depth)] = DEPTH_UNKNOWN
    return out


def write_episode(path: str | Path, episode: Episode) -> Path:
    """Write atomically to `path` (which should end in .episode.npz); returns the path."""
    path = Path(path)
    header = {
        'format_version': FORMAT_VERSION,
        'generator_version': __version__,
        'num_frames': episode.num_frames,
        'height': int(episode.rgb.shape[1]),
        'width': int(episode.rgb.shape[2]),
        'has_hands': episode.has_hands,
        'handedness': episode.handedness,
        'depth_scale': DEPTH_SCALE,
        'depth_unknown': DEPTH_UNKNOWN,
        'meta': {'format_version': FORMAT_VERSION, 'generator_version': __version__, **episode.meta},
    }
    rgb_png, rgb_off = _encode_frames([np.ascontiguousarray(f[..., ::-1]) for f in episode.rgb])  # OpenCV is BGR
    depth_png, depth_off = _encode_frames([depth_to_png_units(d) for d in episode.depth])
    arrays: dict[str, np.ndarray] = {
        'header': np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8),
        'rgb_png': rgb_png, 'rgb_offsets': rgb_off, 'depth_png': depth_png, 'depth_offsets': depth_off,
        'poses': episode.poses, 'intrinsics': episode.intrinsics, 'actions': episode.actions,
    }
    if episode.keypoints3d is not None and episode.keypoints2d is not None and episode.visibility is not None:
        arrays.update({'keypoints3d': episode.keypoints3d, 'keypoints2d': episode.keypoints2d,
                       'visibility': episode.visibility})
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return path


def _decode(data: np.ndarray, offsets: np.ndarray, index: int, flags: int, path: Path, what: str) -> np.ndarray:
    img = cv2.imdecode(data[offsets[index]:offsets[index + 1]], flags)
    if img is None:
        raise EpisodeFormatError(f'{path}: {what} frame {index} is corrupt (PNG does not decode)')
    return img


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of an episode file (cheap: decodes no frames)."""
    path = Path(path)
    arrays = _open(path)
    try:
        return _header(arrays, path)
    finally:
        arrays.close()


def _open(path: Path) -> Any:
    if not path.is_file():
        raise EpisodeFormatError(f'{path}: no such episode file')
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise EpisodeFormatError(f'{path}: corrupt or truncated episode ({exc})') from None


def _header(arrays: Any, path: Path) -> dict[str, Any]:
    missing = [k for k in _REQUIRED if k not in arrays.files]
    if missing:
        raise EpisodeFormatError(f'{path}: not an episode file (missing {", ".join(missing)})')
    try:
        header = json.loads(arrays['header'].tobytes().decode())
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as exc:
        raise EpisodeFormatError(f'{path}: corrupt episode header ({exc})') from None
    version = header.get('format_version')
    if not isinstance(version, int):
        raise EpisodeFormatError(f'{path}: episode header has no integer format_version')
    if version > FORMAT_VERSION:
        raise EpisodeFormatError(f'{path}: episode format version {version} is from the future '
                                 f'(this reader knows up to {FORMAT_VERSION}); upgrade worldscape_ros')
    return header


class EpisodeFile:
    """An episode loaded with its frames still PNG-encoded: frames are decoded only when asked for.

    Training reads a clip of a few frames from each episode, so it keeps these (small) in memory instead of
    whole decoded episodes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        arrays = _open(self.path)
        try:
            self.header = _header(arrays, self.path)
            try:
                self._arrays = {k: arrays[k] for k in arrays.files}
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
                raise EpisodeFormatError(f'{self.path}: corrupt or truncated episode ({exc})') from None
        finally:
            arrays.close()
        T = self.num_frames
        for key, n in (('rgb_offsets', T + 1), ('depth_offsets', T + 1), ('poses', T), ('actions', T)):
            if self._arrays[key].shape[0] != n:
                raise EpisodeFormatError(f'{self.path}: {key} has {self._arrays[key].shape[0]} rows, header says {n}')
        self.poses: np.ndarray = self._arrays['poses']  # (T, 4, 4)
        self.intrinsics: np.ndarray = self._arrays['intrinsics']  # (3, 3)
        self.actions: np.ndarray = self._arrays['actions']  # (T, 5)
        self.keypoints3d: np.ndarray | None = self._arrays.get('keypoints3d')  # (T, 21, 3)
        self.keypoints2d: np.ndarray | None = self._arrays.get('keypoints2d')  # (T, 21, 2)
        self.visibility: np.ndarray | None = self._arrays.get('visibility')  # (T, 21)
        self.meta: dict[str, Any] = dict(self.header['meta'])

    @property
    def num_frames(self) -> int:
        return int(self.header['num_frames'])

    def rgb(self, frames: Sequence[int] | np.ndarray) -> np.ndarray:
        """RGB frames (len(frames), H, W, 3) uint8."""
        out = np.empty((len(frames), self.header['height'], self.header['width'], 3), np.uint8)
        for i, t in enumerate(frames):
            out[i] = _decode(self._arrays['rgb_png'], self._arrays['rgb_offsets'], int(t), cv2.IMREAD_COLOR,
                             self.path, 'rgb')[..., ::-1]
        return out

    def depth(self, frames: Sequence[int] | np.ndarray) -> np.ndarray:
        """Metric depth (len(frames), H, W) float32, NaN where unknown."""
        out = np.empty((len(frames), self.header['height'], self.header['width']), np.float32)
        for i, t in enumerate(frames):
            units = _decode(self._arrays['depth_png'], self._arrays['depth_offsets'], int(t), cv2.IMREAD_UNCHANGED,
                            self.path, 'depth')
            out[i] = units.astype(np.float32) / np.float32(self.header['depth_scale'])
            out[i][units == self.header['depth_unknown']] = np.nan
        return out

    def episode(self) -> Episode:
        every = np.arange(self.num_frames)
        try:
            return Episode(
                rgb=self.rgb(every), depth=self.depth(every), poses=self.poses, intrinsics=self.intrinsics,
                actions=self.actions, keypoints3d=self.keypoints3d, keypoints2d=self.keypoints2d,
                visibility=self.visibility, handedness=self.header.get('handedness'), meta=dict(self.meta),
            )
        except ValueError as exc:
            raise EpisodeFormatError(f'{self.path}: inconsistent episode ({exc})') from None


def read_episode(path: str | Path) -> Episode:
    """Read an episode; raises EpisodeFormatError naming the file and the cause when it cannot."""
    return EpisodeFile(path).episode()
