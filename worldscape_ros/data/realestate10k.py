"""RealEstate10K camera files with their frame folders -> Episode.

A camera file is one text file per clip: the first line is the video URL, then one line per frame:
`timestamp_us fx fy cx cy 0 0 r00 r01 r02 t0 r10 r11 r12 t1 r20 r21 r22 t2` with intrinsics normalised by
the image width (fx, cx) and height (fy, cy), and the 3x4 world-to-camera matrix row-major in OpenCV camera
axes. Frames are images named by timestamp (`<timestamp>.png|jpg`) in a folder, by default the folder beside
the camera file with the same stem.

The clips have no depth and no actions: depth is NaN (unknown, as REP-118 has it) and actions are zeros;
meta['has_depth'] is False so training can mask the depth loss.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from worldscape_ros.data.episode import FORMAT_VERSION, Episode
from worldscape_ros.errors import EpisodeFormatError
from worldscape_ros.fileio import atomic_write_bytes

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
_VALUES_PER_LINE = 19


def parse_camera_file(path: str | Path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """-> (url, timestamps (T,) int64 microseconds, normalised intrinsics (T, 4), w2c (T, 3, 4))."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EpisodeFormatError(f'{path}: cannot read RealEstate10K camera file ({exc})') from None
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) < 2:
        raise EpisodeFormatError(f'{path}: a RealEstate10K camera file needs a URL line and at least one frame')
    stamps, intr, w2c = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if len(fields) != _VALUES_PER_LINE:
            raise EpisodeFormatError(f'{path}:{number}: expected {_VALUES_PER_LINE} values, got {len(fields)}')
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise EpisodeFormatError(f'{path}:{number}: non-numeric value in {line!r}') from None
        if not np.all(np.isfinite(values)):
            raise EpisodeFormatError(f'{path}:{number}: non-finite value')
        stamps.append(int(fields[0]))
        intr.append(values[1:5])
        w2c.append(np.array(values[7:19]).reshape(3, 4))
    return lines[0].strip(), np.array(stamps, np.int64), np.array(intr), np.stack(w2c)


def _find_frame(folder: Path, stamp: int) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f'{stamp}{suffix}'
        if candidate.is_file():
            return candidate
    return None


def read_realestate10k(camera_file: str | Path, frames_dir: str | Path | None = None,
                       size: tuple[int, int] | None = None) -> Episode:
    """Read a clip; `size` (width, height) resizes frames and scales the intrinsics with them."""
    camera_file = Path(camera_file)
    url, stamps, intr, w2c = parse_camera_file(camera_file)
    folder = Path(frames_dir) if frames_dir is not None else camera_file.with_suffix('')
    if not folder.is_dir():
        raise EpisodeFormatError(f'{camera_file}: frame folder {folder} does not exist')
    frames: list[np.ndarray] = []
    for stamp in stamps:
        image_path = _find_frame(folder, int(stamp))
        if image_path is None:
            raise EpisodeFormatError(f'{camera_file}: no image for timestamp {stamp} in {folder}')
        bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise EpisodeFormatError(f'{image_path}: image does not decode')
        if size is not None:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        if frames and bgr.shape != frames[0].shape:
            raise EpisodeFormatError(f'{image_path}: size {bgr.shape[1]}x{bgr.shape[0]} differs from the first frame')
        frames.append(bgr[..., ::-1])
    rgb = np.stack(frames)  # (T, H, W, 3)
    T, H, W = rgb.shape[:3]
    fx, fy, cx, cy = intr[0]
    K = np.array([[fx * W, 0.0, cx * W], [0.0, fy * H, cy * H], [0.0, 0.0, 1.0]])
    w2c_h = np.tile(np.eye(4), (T, 1, 1))
    w2c_h[:, :3, :] = w2c
    poses = np.linalg.inv(w2c_h)  # (T, 4, 4) camera-to-world, OpenCV axes
    dt = np.diff(stamps) / 1e6
    fps = float(1.0 / np.median(dt)) if len(dt) and np.median(dt) > 0 else 30.0
    return Episode(
        rgb=rgb, depth=np.full((T, H, W), np.nan, np.float32), poses=poses, intrinsics=K,
        actions=np.zeros((T, 5), np.float32),
        meta={'kind': 'nav', 'scene_kind': 'real', 'scene_seed': None, 'family': 'realestate10k', 'fps': fps,
              'format_version': FORMAT_VERSION, 'source': str(camera_file), 'url': url, 'has_depth': False,
              'timestamps_us': stamps.tolist()},
    )


def write_realestate10k(camera_file: str | Path, url: str, timestamps: np.ndarray, intrinsics: np.ndarray,
                        poses: np.ndarray, width: int, height: int) -> None:
    """Write a camera file (the inverse of parse_camera_file) from pixel intrinsics and c2w poses."""
    K = np.asarray(intrinsics, float)
    norm = [K[0, 0] / width, K[1, 1] / height, K[0, 2] / width, K[1, 2] / height]
    lines = [url]
    for stamp, c2w in zip(timestamps, poses):
        w2c = np.linalg.inv(c2w)[:3, :4].reshape(-1)
        lines.append(' '.join([str(int(stamp))] + [repr(float(v)) for v in norm] + ['0', '0'] +
                              [repr(float(v)) for v in w2c]))
    atomic_write_bytes(camera_file, ('\n'.join(lines) + '\n').encode())
