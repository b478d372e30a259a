import math

import numpy as np
import pytest
import torch

from worldscape_ros.model.camera import (
    check_rigid,
    intrinsics_from_fov,
    plucker_rays,
    project,
    unproject_depth,
)


def numpy_plucker(c2w: np.ndarray, K: np.ndarray, h: int, w: int) -> np.ndarray:
    """Independent reference: loop over pixels, d = R K^-1 [u+0.5, v+0.5, 1], normalised; [o x d, d]."""
    out = np.zeros((6, h, w))
    Kinv = np.linalg.inv(K)
    o = c2w[:3, 3]
    for v in range(h):
        for u in range(w):
            d = c2w[:3, :3] @ Kinv @ np.array([u + 0.5, v + 0.5, 1.0])
            d /= np.linalg.norm(d)
            out[:3, v, u] = np.cross(o, d)
            out[3:, v, u] = d
    return out


def rot(axis: str, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return {'x': np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            'y': np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            'z': np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def rigid(R: np.ndarray, t: list[float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


CAMERAS = [
    (np.eye(4), intrinsics_from_fov(8, 6, 60)),
    (rigid(rot('y', 0.4) @ rot('x', -0.2), [1.0, 2.0, -0.5]), np.array([[5.0, 0, 3.7], [0, 6.0, 2.9], [0, 0, 1]])),
    (rigid(rot('z', 2.0), [-3.0, 0.1, 1.2]), intrinsics_from_fov(8, 6, 90)),
]


@pytest.mark.parametrize('c2w,K', CAMERAS)
def test_plucker_matches_independent_numpy_computation(c2w, K):
    ours = plucker_rays(torch.tensor(c2w), torch.tensor(K), 6, 8).numpy()
    assert np.allclose(ours, numpy_plucker(c2w, K, 6, 8), atol=1e-9)


@pytest.mark.parametrize('c2w,K', CAMERAS)
def test_plucker_moment_is_orthogonal_to_direction_and_direction_is_unit(c2w, K):
    emb = plucker_rays(torch.tensor(c2w), torch.tensor(K), 6, 8)
    m, d = emb[:3], emb[3:]
    assert torch.allclose((m * d).sum(0), torch.zeros(6, 8, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(d.norm(dim=0), torch.ones(6, 8, dtype=torch.float64))


def test_centre_pixel_ray_of_identity_camera_points_along_z():
    K = intrinsics_from_fov(9, 7, 60)
    emb = plucker_rays(torch.eye(4, dtype=torch.float64), torch.tensor(K), 7, 9)
    assert torch.allclose(emb[3:, 3, 4], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_unproject_then_project_lands_on_pixel_centres():
    K = torch.tensor(intrinsics_from_fov(8, 6, 70))
    c2w = torch.tensor(CAMERAS[1][0])
    depth = torch.rand(6, 8, dtype=torch.float64) * 3 + 0.5
    pts = unproject_depth(depth, c2w, K)
    uv, z = project(pts.reshape(-1, 3), torch.linalg.inv(c2w), K)
    v, u = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing='ij')
    assert torch.allclose(uv, torch.stack([u + 0.5, v + 0.5], -1).reshape(-1, 2).double())
    assert torch.allclose(z, depth.reshape(-1))


@pytest.mark.parametrize('bad,match', [
    (np.eye(3), 'shape'),
    (np.diag([1.0, 1.0, -1.0, 1.0]), 'determinant'),
    (np.full((4, 4), np.nan), 'finite'),
    (np.diag([2.0, 1.0, 1.0, 1.0]), 'orthonormal'),
])
def test_non_rigid_poses_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        check_rigid(bad)
