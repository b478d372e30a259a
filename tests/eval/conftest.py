"""Ground truth made in the tests: a ray-cast box room with rich random textures (for SIFT), rendered from
camera poses integrated by model.kinematics, so metrics can be validated before and apart from MuJoCo."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose, integrate

ROOM_MIN = np.array([-4.0, -3.5, 0.0])
ROOM_MAX = np.array([4.0, 3.5, 3.0])
PILLARS = ((1.8, 0.9, 0.35), (2.2, -1.4, 0.5), (-1.5, 1.7, 0.4))  # (x, y, half-width) boxes for parallax
PX_PER_M = 40.0


def make_texture(seed: int, size: int = 512) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = np.zeros((size, size, 3), np.float32)
    for sigma, weight in ((8, 0.6), (2.5, 0.4)):
        noise = rng.random((size, size, 3)).astype(np.float32)
        tex += weight * cv2.GaussianBlur(noise, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    img = (tex * 255).astype(np.uint8)
    for _ in range(60):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.circle(img, centre, int(rng.integers(4, 24)), colour, -1)
        else:
            cv2.rectangle(img, centre, tuple(c + int(rng.integers(6, 30)) for c in centre), colour, -1)
    return img


class TexturedRoom:
    """Analytic room (6 planes plus box pillars) with one texture per surface; RGB and metric z-depth."""

    def __init__(self, seed: int = 0, width: int = 128, height: int = 96, vfov_deg: float = 60.0) -> None:
        self.width, self.height = width, height
        self.K = intrinsics_from_fov(width, height, vfov_deg)
        self.textures = [make_texture(seed * 31 + i) for i in range(4)]
        u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        self.rays_cam = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(self.K).T  # (H, W, 3), z = 1

    def _boxes(self) -> list[tuple[np.ndarray, np.ndarray, bool]]:
        boxes = [(ROOM_MIN, ROOM_MAX, True)]  # inside-out room
        for x, y, h in PILLARS:
            boxes.append((np.array([x - h, y - h, 0.0]), np.array([x + h, y + h, 2.0]), False))
        return boxes

    def render(self, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.rays_cam @ c2w[:3, :3].T  # (H, W, 3) world directions with camera z = 1
        o = c2w[:3, 3]
        best_t = np.full(d.shape[:2], np.inf)
        uv = np.zeros(d.shape[:2] + (2,))
        tex_id = np.zeros(d.shape[:2], np.int64)
        for bi, (lo, hi, _inside) in enumerate(self._boxes()):
            for axis in range(3):
                for bound in (lo[axis], hi[axis]):
                    with np.errstate(divide='ignore', invalid='ignore'):
                        t = (bound - o[axis]) / d[..., axis]
                    p = o + t[..., None] * d
                    others = [a for a in range(3) if a != axis]
                    inside = np.ones(t.shape, bool)
                    for a in others:
                        inside &= (p[..., a] >= lo[a] - 1e-9) & (p[..., a] <= hi[a] + 1e-9)
                    hit = (t > 1e-6) & inside & (t < best_t)
                    best_t = np.where(hit, t, best_t)
                    for k, a in enumerate(others):
                        uv[..., k] = np.where(hit, p[..., a], uv[..., k])
                    tex_id = np.where(hit, (bi + axis) % len(self.textures), tex_id)
        rgb = np.zeros(d.shape[:2] + (3,), np.uint8)
        mx = (uv[..., 0] * PX_PER_M).astype(np.float32)
        my = (uv[..., 1] * PX_PER_M).astype(np.float32)
        for i, tex in enumerate(self.textures):
            sample = cv2.remap(tex, mx % tex.shape[1], my % tex.shape[0], cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_WRAP)
            rgb = np.where((tex_id == i)[..., None], sample, rgb)
        depth = np.where(np.isfinite(best_t), best_t, 0.0).astype(np.float32)  # t is z-depth (ray z = 1)
        return rgb, depth


def drive(actions: list[NavAction], fps: float = 10.0, start: BaseState | None = None) -> np.ndarray:
    state = start or BaseState(x=-2.5, y=-0.5, yaw=0.1)
    poses = [camera_pose(state)]
    for a in actions:
        state = integrate(state, a, 1.0 / fps)
        poses.append(camera_pose(state))
    return np.stack(poses)  # (T, 4, 4)


def render_all(room: TexturedRoom, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = [room.render(p) for p in poses]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


@pytest.fixture(scope='session')
def room() -> TexturedRoom:
    return TexturedRoom(seed=3)


@pytest.fixture(scope='session')
def turning_walk(room: TexturedRoom) -> dict:
    """Forward drive while turning: 12 frames at 10 fps, 0.6 m/s and 20 deg/s."""
    actions = [NavAction(vx=0.6, yaw_rate=math.radians(20))] * 11
    poses = drive(actions)
    rgb, depth = render_all(room, poses)
    return {'rgb': rgb, 'depth': depth, 'poses': poses, 'K': room.K}


@pytest.fixture(scope='session')
def render_walk(room: TexturedRoom):
    """Factory: actions -> dict(rgb, depth, poses, K) of the room along the integrated path."""

    def make(actions: list[NavAction], start: BaseState | None = None) -> dict:
        poses = drive(actions, start=start)
        rgb, depth = render_all(room, poses)
        return {'rgb': rgb, 'depth': depth, 'poses': poses, 'K': room.K}

    return make
