"""EgoDex-style HDF5 hand poses (with their MP4 video) -> Episode with MediaPipe's 21 keypoints.

The HDF5 holds, per frame, 4x4 world transforms under `transforms/<joint>` (N, 4, 4), the camera's
camera-to-world transform under `transforms/camera` (N, 4, 4), the pinhole intrinsics under
`camera/intrinsic` (3, 3) in pixels of the video, and optionally `confidences/<joint>` (N,). Joints follow
ARKit's hand skeleton, one prefix per hand ('leftHand', 'leftThumbKnuckle', ...; the same with 'right').
The camera transform is in ARKit's axes (x right, y up, z backwards) unless `camera_axes='opencv'`.

ARKit joints -> MediaPipe landmarks: wrist = <side>Hand; thumb CMC, MCP, IP, TIP = ThumbKnuckle,
ThumbIntermediateBase, ThumbIntermediateTip, ThumbTip; each finger's MCP, PIP, DIP, TIP = <Finger>Knuckle,
<Finger>IntermediateBase, <Finger>IntermediateTip, <Finger>Tip, fingers Index, Middle, Ring, Little (pinky).
The metacarpal joints and the forearm have no MediaPipe landmark and are left out.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np

from worldscape_ros.data.episode import FORMAT_VERSION, Episode
from worldscape_ros.errors import EpisodeFormatError

_FINGERS = ('IndexFinger', 'MiddleFinger', 'RingFinger', 'LittleFinger')
MEDIAPIPE_FROM_ARKIT: tuple[str, ...] = (
    'Hand', 'ThumbKnuckle', 'ThumbIntermediateBase', 'ThumbIntermediateTip', 'ThumbTip',
    *(f'{finger}{joint}' for finger in _FINGERS for joint in ('Knuckle', 'IntermediateBase', 'IntermediateTip', 'Tip')),
)
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # ARKit/OpenGL camera axes -> OpenCV camera axes
CONFIDENCE_THRESHOLD = 0.5


def joint_names(side: str) -> list[str]:
    """The 21 ARKit joint names of one hand ('left' or 'right') in MediaPipe's landmark order."""
    return [side + name for name in MEDIAPIPE_FROM_ARKIT]


def _read_video(path: Path) -> tuple[np.ndarray, float]:
    """RGB frames (T, H, W, 3) and the frame rate of a video file."""
    if not path.is_file():
        raise EpisodeFormatError(f'{path}: no such video (EgoDex keeps <episode>.mp4 beside <episode>.hdf5)')
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise EpisodeFormatError(f'{path}: video cannot be opened')
    frames = []
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(bgr[..., ::-1])
    finally:
        cap.release()
    if not frames:
        raise EpisodeFormatError(f'{path}: video has no frames')
    return np.stack(frames), fps


def read_egodex(h5_path: str | Path, video: str | Path | None = None, hand: str = 'auto',
                size: tuple[int, int] | None = None, camera_axes: str = 'arkit') -> Episode:
    """Read one EgoDex-style episode; `hand` is 'left', 'right' or 'auto' (the more confident hand).

    `video` defaults to the .mp4 beside the HDF5; `size` (width, height) resizes frames and intrinsics.
    """
    h5_path = Path(h5_path)
    if hand not in ('left', 'right', 'auto'):
        raise ValueError(f"hand must be 'left', 'right' or 'auto', got {hand!r}")
    if camera_axes not in ('arkit', 'opencv'):
        raise ValueError(f"camera_axes must be 'arkit' or 'opencv', got {camera_axes!r}")
    if not h5_path.is_file():
        raise EpisodeFormatError(f'{h5_path}: no such EgoDex HDF5 file')
    try:
        with h5py.File(h5_path, 'r') as f:
            camera = np.asarray(f['transforms/camera'], dtype=np.float64)  # (N, 4, 4)
            K = np.asarray(f['camera/intrinsic'], dtype=np.float64)
            sides = [hand] if hand != 'auto' else ['right', 'left']
            found = {}
            for side in sides:
                names = joint_names(side)
                if all(f'transforms/{n}' in f for n in names):
                    pos = np.stack([np.asarray(f[f'transforms/{n}'])[:, :3, 3] for n in names], axis=1)  # (N, 21, 3)
                    conf = np.stack([np.asarray(f[f'confidences/{n}']) if f'confidences/{n}' in f
                                     else np.ones(len(pos)) for n in names], axis=1)  # (N, 21)
                    found[side] = (pos, conf)
    except (OSError, KeyError) as exc:
        raise EpisodeFormatError(f'{h5_path}: not a readable EgoDex HDF5 file ({exc})') from None
    if not found:
        raise EpisodeFormatError(f'{h5_path}: no complete {hand if hand != "auto" else "left or right"} hand '
                                 f'(expected transforms/{joint_names(sides[0])[0]} and the other 20 joints)')
    if camera.ndim != 3 or camera.shape[1:] != (4, 4) or K.shape != (3, 3):
        raise EpisodeFormatError(f'{h5_path}: transforms/camera must be (N, 4, 4) and camera/intrinsic (3, 3)')
    side = max(found, key=lambda s: float(found[s][1].mean()))
    world, conf = found[side]
    video_path = Path(video) if video is not None else h5_path.with_suffix('.mp4')
    rgb, fps = _read_video(video_path)
    native_h, native_w = rgb.shape[1:3]
    if size is not None:
        rgb = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in rgb])
    T = min(len(rgb), len(camera))
    if abs(len(rgb) - len(camera)) > 1 or len(world) != len(camera):
        raise EpisodeFormatError(f'{h5_path}: {len(camera)} poses but {len(rgb)} video frames in {video_path}')
    rgb, camera, world, conf = rgb[:T], camera[:T], world[:T], conf[:T]
    H, W = rgb.shape[1:3]
    K = np.diag([W / native_w, H / native_h, 1.0]) @ K
    poses = camera @ _GL_TO_CV if camera_axes == 'arkit' else camera  # (T, 4, 4) OpenCV camera-to-world
    w2c = np.linalg.inv(poses)
    kp3 = np.einsum('tij,tkj->tki', w2c[:, :3, :3], world) + w2c[:, None, :3, 3]  # (T, 21, 3) camera frame
    z = kp3[..., 2]
    kp2 = np.einsum('ij,tkj->tki', K, kp3)[..., :2] / np.maximum(z, 1e-6)[..., None]  # (T, 21, 2)
    inside = (z > 0) & (kp2[..., 0] >= 0) & (kp2[..., 0] < W) & (kp2[..., 1] >= 0) & (kp2[..., 1] < H)
    return Episode(
        rgb=rgb, depth=np.full((T, H, W), np.nan, np.float32), poses=poses, intrinsics=K,
        actions=np.zeros((T, 5), np.float32), keypoints3d=kp3, keypoints2d=kp2,
        visibility=inside & (conf >= CONFIDENCE_THRESHOLD), handedness=side,
        meta={'kind': 'manip', 'scene_kind': 'real', 'scene_seed': None, 'family': 'egodex', 'fps': fps,
              'format_version': FORMAT_VERSION, 'source': str(h5_path), 'has_depth': False},
    )
