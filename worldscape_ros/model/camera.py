"""Pinhole cameras and Plücker ray embeddings.

Conventions (DESIGN.md): camera-to-world 4x4 poses with OpenCV axes (x right, y down, z forward);
pixel (u, v) has its centre at (u + 0.5, v + 0.5); intrinsics K are 3x3 in pixels. ROS's CameraInfo, like OpenCV
and depth_image_proc, puts pixel centres at whole numbers: its K is the model's with the principal point half a
pixel nearer the origin (pixel_convention.py, at every message boundary).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def intrinsics_from_fov(width: int, height: int, vfov_deg: float) -> np.ndarray:
    """K for square pixels and a principal point at the image centre."""
    if width <= 0 or height <= 0:
        raise ValueError(f'image size must be positive, got {width}x{height}')
    if not 0 < vfov_deg < 180:
        raise ValueError(f'vertical field of view must be in (0, 180) degrees, got {vfov_deg}')
    f = 0.5 * height / math.tan(math.radians(vfov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def check_rigid(pose: np.ndarray | torch.Tensor, name: str = 'pose', tol: float = 1e-4) -> None:
    """Raise ValueError unless `pose` is a finite 4x4 (or ...x4x4) rigid transform."""
    p = pose.detach().double().cpu().numpy() if isinstance(pose, torch.Tensor) else np.asarray(pose, float)
    if p.shape[-2:] != (4, 4):
        raise ValueError(f'{name} must be a 4x4 rigid transform, got shape {p.shape}')
    if not np.all(np.isfinite(p)):
        raise ValueError(f'{name} must be finite')
    R = p[..., :3, :3]
    eye = np.broadcast_to(np.eye(3), R.shape)
    if np.abs(R @ np.swapaxes(R, -1, -2) - eye).max() > tol or np.any(np.linalg.det(R) < 0):
        raise ValueError(f'{name} rotation is not orthonormal with determinant +1')
    bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), p[..., 3, :].shape)
    if np.abs(p[..., 3, :] - bottom).max() > tol:
        raise ValueError(f'{name} last row must be [0, 0, 0, 1]')


def check_intrinsics(K: np.ndarray | torch.Tensor, name: str = 'intrinsics') -> None:
    k = K.detach().double().cpu().numpy() if isinstance(K, torch.Tensor) else np.asarray(K, float)
    if k.shape[-2:] != (3, 3) or not np.all(np.isfinite(k)):
        raise ValueError(f'{name} must be a finite 3x3 matrix, got shape {k.shape}')
    if np.any(k[..., 0, 0] <= 0) or np.any(k[..., 1, 1] <= 0):
        raise ValueError(f'{name} focal lengths must be positive')


def pixel_grid(height: int, width: int, device: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Homogeneous pixel centres (H, W, 3): [u + 0.5, v + 0.5, 1]."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                          torch.arange(width, device=device, dtype=dtype), indexing='ij')
    return torch.stack([u + 0.5, v + 0.5, torch.ones_like(u)], dim=-1)


def camera_rays(c2w: torch.Tensor, K: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel ray origins and unit directions in world coordinates.

    c2w: (..., 4, 4), K: (..., 3, 3) -> origins, directions: (..., H, W, 3).
    """
    pix = pixel_grid(height, width, device=c2w.device, dtype=c2w.dtype)  # (H, W, 3)
    K_inv = torch.linalg.inv(K)[..., None, None, :, :]  # (..., 1, 1, 3, 3)
    d_cam = (K_inv @ pix[..., None]).squeeze(-1)  # (..., H, W, 3)
    R = c2w[..., None, None, :3, :3]
    d = torch.nn.functional.normalize((R @ d_cam[..., None]).squeeze(-1), dim=-1)  # (..., H, W, 3)
    o = c2w[..., None, None, :3, 3].expand_as(d)
    return o, d


def plucker_rays(c2w: torch.Tensor, K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Plücker embedding [o x d, d] per pixel: (..., 4, 4), (..., 3, 3) -> (..., 6, H, W)."""
    o, d = camera_rays(c2w, K, height, width)
    emb = torch.cat([torch.linalg.cross(o, d, dim=-1), d], dim=-1)  # (..., H, W, 6)
    return emb.movedim(-1, -3)


def project(points_world: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World points (..., N, 3) -> pixel coordinates (..., N, 2) (continuous, centre at +0.5) and z (..., N)."""
    p = points_world @ w2c[..., :3, :3].transpose(-1, -2) + w2c[..., None, :3, 3]
    z = p[..., 2]
    uv = p @ K.transpose(-1, -2)
    uv = uv[..., :2] / uv[..., 2:3].clamp_min(1e-6)
    return uv, z


def unproject_depth(depth: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Metric z-depth (..., H, W) at pixel centres -> world points (..., H, W, 3)."""
    H, W = depth.shape[-2:]
    pix = pixel_grid(H, W, device=depth.device, dtype=depth.dtype)
    K_inv = torch.linalg.inv(K)[..., None, None, :, :]
    p_cam = (K_inv @ pix[..., None]).squeeze(-1) * depth[..., None]  # (..., H, W, 3), z = depth
    R = c2w[..., None, None, :3, :3]
    return (R @ p_cam[..., None]).squeeze(-1) + c2w[..., None, None, :3, 3]
