"""The light that rides on the camera. The synthetic worlds (MuJoCo's headlight) and a robot with a lamp beside its
camera light each surface partly from the camera itself: a directional light along the camera's forward axis, whose
share of a surface's light falls with the cosine between the surface's normal and that axis. A wall seen head-on
and seen again at a glancing angle differs in colour by that share, so the start frame warped into a turned camera
carries the old view's shading.

The scene memory holds each point's colour as seen, with its surface normal and how it faced the camera that saw
it, and lights it again for each camera it renders into (`relit`):

    shading(facing) = (1 - share) + share * facing,   facing = max(0, -n . forward)

n the surface normal facing the camera that saw it, made from that view's metric z-depth. `share` is
scene.headlight: the camera's share of the light on a surface it faces head-on (0: none, colours as seen).
"""

from __future__ import annotations

import torch

EDGE = 0.05  # a step in depth of more than this fraction of the depth (per pixel) is a depth edge
STEP = 2  # pixels: differences over this many pixels each way, so a splatted render's blocky depth averages out


def normals(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(H, W) metric z-depth (<= 0: none), K (3, 3) -> (3, H, W) unit surface normals in camera axes, facing the
    camera (z <= 0); 0 where there is no depth. Along each axis the tangent is the central difference over STEP
    pixels each way, or one side's where the other crosses a depth edge."""
    H, W = depth.shape
    z = depth.float()
    v, u = torch.meshgrid(torch.arange(H, device=z.device, dtype=torch.float32) + 0.5,
                          torch.arange(W, device=z.device, dtype=torch.float32) + 0.5, indexing='ij')
    p = torch.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z])  # (3, H, W) camera metres
    n = torch.linalg.cross(_tangent(p, 2), _tangent(p, 1), dim=0)  # (3, H, W)
    n = n / n.norm(dim=0).clamp_min(1e-12)
    n = torch.where(n[2:] > 0, -n, n)
    return torch.where(z > 0, n, 0.0)


def _tangent(p: torch.Tensor, dim: int) -> torch.Tensor:
    """(3, H, W) points -> (3, H, W) the surface's tangent along dim (1: rows, 2: columns): from the point STEP
    pixels behind to the one STEP ahead, or from the point itself to the side without a depth edge (the smaller
    step where both have one); the image's border replicated."""
    size = p.shape[dim]
    index = torch.arange(size, device=p.device)
    ahead = p.index_select(dim, (index + STEP).clamp_max(size - 1)) - p
    behind = p - p.index_select(dim, (index - STEP).clamp_min(0))
    limit = EDGE * STEP * p[2].abs()
    edge_ahead, edge_behind = ahead[2].abs() > limit, behind[2].abs() > limit
    one_side = torch.where(ahead[2].abs() <= behind[2].abs(), ahead, behind)
    out = torch.where(edge_ahead & ~edge_behind, behind, torch.where(edge_behind & ~edge_ahead, ahead, ahead + behind))
    return torch.where(edge_ahead & edge_behind, one_side, out)


def facing(normal: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit normals (0: unknown), forward (3,) the camera's forward axis in the same frame -> (...) in
    [0, 1]: 1 head-on, 0 edge-on, behind, or unknown."""
    return (-(normal @ forward)).clamp(0, 1)


def shading(facing: torch.Tensor, share: float) -> torch.Tensor:
    """(...) facing -> (...): the light a surface gets as a share of what it gets head-on (1 - share edge-on)."""
    return (1 - share) + share * facing


def relit(rgb: torch.Tensor, seen: torch.Tensor, faces: torch.Tensor, share: float) -> torch.Tensor:
    """Colours (3, ...) as a camera that faced them as `seen` (...) saw them -> as one that faces them as `faces`
    (...) sees them, in [0, 1]."""
    return (rgb * (shading(faces, share) / shading(seen, share))).clamp(0, 1)
