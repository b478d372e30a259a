"""Action following: camera motion recovered from generated frames against the commanded motion.

For frames a and b = a + stride, SIFT matches (Lowe ratio test) give an essential matrix with the known
intrinsics (RANSAC), and recoverPose its rotation R and unit translation t, with x_b = R x_a + t in camera
coordinates. The commanded motion is inv(P_b) @ P_a for camera-to-world poses P. Errors: the angle of
R_est^T R_cmd in degrees, and the angle between the recovered and commanded translation directions.

- Pure rotation (commanded baseline below `min_baseline`): the translation direction is undefined (NaN) and
  an essential matrix is degenerate, so the rotation comes from the homography K R K^-1 instead.
- Nothing recovered (too few matches, or no parallax: the frames did not move): the rotation estimate is the
  identity (no motion seen) and the translation direction error is 90 degrees (chance), so frozen frames
  score poorly wherever motion was commanded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from worldscape_ros.model.camera import check_intrinsics


@dataclass(frozen=True)
class MatchConfig:
    """SIFT matching on contrast-equalised (CLAHE) frames upsampled by `upsample`: small, dim renders give a
    dozen matches with OpenCV's defaults and hundreds this way."""

    upsample: int = 2
    contrast_threshold: float = 0.01  # OpenCV's default 0.04 starves 128x96 renders
    clahe_clip: float = 2.0
    ratio: float = 0.8
    min_matches: int = 12
    ransac_px: float = 1.0  # in original pixels
    min_parallax_px: float = 0.3  # median displacement below this: the frames did not move
    min_baseline: float = 0.02  # metres; below this the commanded motion is a pure rotation


@dataclass(frozen=True)
class MotionEstimate:
    R: np.ndarray  # (3, 3), x_b = R x_a + t
    t_dir: np.ndarray | None  # (3,) unit, None when not recovered
    matches: int
    recovered: bool


def rotation_angle_deg(R: np.ndarray) -> float:
    cos = (np.trace(R) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))


def direction_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    a = a / max(np.linalg.norm(a), 1e-12)
    b = b / max(np.linalg.norm(b), 1e-12)
    return math.degrees(math.acos(float(np.clip(a @ b, -1.0, 1.0))))


def _nearest_rotation(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        R = U @ np.diag([1.0, 1.0, -1.0]) @ Vt
    return R


class FeatureMatcher:
    """SIFT keypoints and ratio-test matches between two RGB frames, in our pixel convention (centres +0.5)."""

    def __init__(self, config: MatchConfig | None = None) -> None:
        self.config = config or MatchConfig()
        self._sift = cv2.SIFT_create(contrastThreshold=self.config.contrast_threshold)  # type: ignore[attr-defined]
        self._clahe = cv2.createCLAHE(clipLimit=self.config.clahe_clip, tileGridSize=(4, 4))
        self._matcher = cv2.BFMatcher(cv2.NORM_L2)

    def features(self, frame: np.ndarray) -> tuple[list, np.ndarray | None]:
        """SIFT keypoints and descriptors of one RGB frame (computed once per frame, matched many times)."""
        s = self.config.upsample
        gray = self._clahe.apply(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY))
        if s > 1:
            gray = cv2.resize(gray, (gray.shape[1] * s, gray.shape[0] * s), interpolation=cv2.INTER_CUBIC)
        kp, desc = self._sift.detectAndCompute(gray, None)
        return list(kp), desc

    def match(self, frame_a: np.ndarray | tuple, frame_b: np.ndarray | tuple) -> tuple[np.ndarray, np.ndarray]:
        """Frames (or their features) -> matched pixel coordinates (N, 2) in a and in b."""
        (ka, da), (kb, db) = (f if isinstance(f, tuple) else self.features(f) for f in (frame_a, frame_b))
        if da is None or db is None or len(ka) < 2 or len(kb) < 2:
            return np.zeros((0, 2)), np.zeros((0, 2))
        good = [m for m, n in (p for p in self._matcher.knnMatch(da, db, k=2) if len(p) == 2)
                if m.distance < self.config.ratio * n.distance]
        # OpenCV puts pixel centres at integers in the upsampled image: ours are at +0.5 at native size.
        s = self.config.upsample
        pa = np.array([ka[m.queryIdx].pt for m in good], dtype=np.float64).reshape(-1, 2)
        pb = np.array([kb[m.trainIdx].pt for m in good], dtype=np.float64).reshape(-1, 2)
        return (pa + 0.5) / s, (pb + 0.5) / s


def estimate_motion(frame_a: np.ndarray | tuple, frame_b: np.ndarray | tuple, K: np.ndarray,
                    pure_rotation: bool = False, matcher: FeatureMatcher | None = None) -> MotionEstimate:
    """Relative camera motion from a to b (see the module docstring for the degenerate cases)."""
    check_intrinsics(K)
    matcher = matcher or FeatureMatcher()
    cfg = matcher.config
    pa, pb = matcher.match(frame_a, frame_b)
    none = MotionEstimate(np.eye(3), None, len(pa), False)
    if len(pa) < cfg.min_matches:
        return none
    if np.median(np.linalg.norm(pb - pa, axis=1)) < cfg.min_parallax_px:
        return none
    K = np.asarray(K, dtype=np.float64)
    if pure_rotation:
        H, inl = cv2.findHomography(pa, pb, cv2.RANSAC, 2.0 * cfg.ransac_px)
        if H is None or inl is None or int(inl.sum()) < cfg.min_matches:
            return none
        M = np.linalg.inv(K) @ H @ K  # = R for a pure rotation, up to scale
        scale = float(np.cbrt(np.linalg.det(M)))
        return MotionEstimate(_nearest_rotation(M / scale), None, int(inl.sum()), True)
    E, inl = cv2.findEssentialMat(pa, pb, K, method=cv2.RANSAC, prob=0.999, threshold=cfg.ransac_px)
    if E is None or inl is None or int(inl.sum()) < cfg.min_matches:
        return none
    E = E[:3]  # several solutions may come back stacked: take the best-supported first
    n, R, t, _ = cv2.recoverPose(E, pa, pb, K, mask=inl.copy())
    if n < cfg.min_matches:
        return none
    return MotionEstimate(R, t.reshape(3) / max(float(np.linalg.norm(t)), 1e-12), int(n), True)


@dataclass(frozen=True)
class ActionFollowing:
    """Per frame pair (b - stride, b): errors against the command, and whether motion was recovered."""

    frame_index: np.ndarray  # (N,) index b of the later frame
    rot_err_deg: np.ndarray  # (N,)
    trans_err_deg: np.ndarray  # (N,) NaN where the commanded motion is a pure rotation (or none at all)
    recovered: np.ndarray  # (N,) bool


def action_following(frames: np.ndarray, poses: np.ndarray, K: np.ndarray, stride: int = 1,
                     config: MatchConfig | None = None) -> ActionFollowing:
    """Compare the motion recovered between frames t - stride and t with the commanded poses, for every t."""
    f = np.asarray(frames)
    P = np.asarray(poses, dtype=np.float64)
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f'frames must be (T, H, W, 3), got shape {f.shape}')
    if P.shape != (len(f), 4, 4):
        raise ValueError(f'poses must be (T, 4, 4) with T = {len(f)} frames, got shape {P.shape}')
    if stride < 1:
        raise ValueError(f'stride must be at least 1, got {stride}')
    matcher = FeatureMatcher(config)
    feats = [matcher.features(frame) for frame in f]
    idx, rot, trans, ok = [], [], [], []
    for b in range(stride, len(f)):
        a = b - stride
        T_cmd = np.linalg.inv(P[b]) @ P[a]  # camera a -> camera b coordinates
        baseline = float(np.linalg.norm(T_cmd[:3, 3]))
        pure_rot = baseline < matcher.config.min_baseline
        est = estimate_motion(feats[a], feats[b], K, pure_rotation=pure_rot, matcher=matcher)
        idx.append(b)
        rot.append(rotation_angle_deg(est.R.T @ T_cmd[:3, :3]))
        if pure_rot:
            trans.append(math.nan)
        elif est.t_dir is None:
            trans.append(90.0)
        else:
            trans.append(direction_angle_deg(est.t_dir, T_cmd[:3, 3]))
        ok.append(est.recovered)
    return ActionFollowing(np.array(idx, dtype=np.int64), np.array(rot), np.array(trans), np.array(ok, bool))
