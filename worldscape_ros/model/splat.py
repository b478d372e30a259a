"""Differentiable 3D Gaussian splatting rasteriser in pure torch (runs on CPU; gsplat may serve on CUDA).

Follows 3DGS (Kerbl et al. 2023): each Gaussian's 3D covariance R S S^T R^T is projected to the image by the
Jacobian of the pinhole (EWA splatting), dilated by a 0.3 px low-pass filter, and bounded by a 3-sigma radius;
the image is cut into tiles, each Gaussian is listed in the tiles its 3-sigma box touches, and every tile
composites its own Gaussians front to back, sorted by depth:

    colour = sum_i c_i a_i T_i,   T_i = prod_{j<i} (1 - a_j),   a_i = min(0.99, o_i exp(-d^T conic_i d / 2))

with a_i dropped below 1/255 as in 3DGS. Work and memory scale with (Gaussian, tile) pairs times tile pixels
rather than Gaussians times image pixels; tiles are processed in groups of similar list length so padding
stays small and each group's tensors stay under a fixed element budget. Autograd does the backward pass, so
gradients reach means, scales, rotations, opacities and colours (and the camera pose).

Conventions (camera.py): camera-to-world 4x4 poses with OpenCV axes, pixel (u, v) centred at (u + 0.5, v + 0.5),
metric z-depth; quaternions are w, x, y, z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.utils.checkpoint

LOW_PASS = 0.3  # px^2 added to the projected covariance's diagonal (anti-aliasing, as 3DGS)
ALPHA_MIN = 1.0 / 255.0  # contributions below this are dropped
ALPHA_MAX = 0.99  # keeps every Gaussian from blocking the view entirely (and log(1 - a) finite)
FOV_GUARD = 1.3  # the Jacobian is evaluated with x/z, y/z clamped to 1.3x the half field of view
POWER_FLOOR = 30.0  # exp(-30) ~ 1e-13
GROUP_ELEMENTS = 1 << 21  # (tiles x list length x tile pixels) elements per processing group


@dataclass
class Gaussians:
    means: torch.Tensor  # (N, 3) world, metres
    scales: torch.Tensor  # (N, 3) standard deviations along the local axes, positive, metres
    rotations: torch.Tensor  # (N, 4) unit quaternions w, x, y, z (normalised again here)
    opacities: torch.Tensor  # (N,) in (0, 1)
    colors: torch.Tensor  # (N, C)

    def __post_init__(self) -> None:
        m = self.means
        n = m.shape[0] if isinstance(m, torch.Tensor) and m.ndim == 2 and m.shape[1] == 3 else -1
        for name, shape in (('means', (n, 3)), ('scales', (n, 3)), ('rotations', (n, 4)), ('opacities', (n,))):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape or n < 0:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f'Gaussians.{name} must be a tensor of shape {shape if n >= 0 else "(N, 3)"}, '
                                 f'got {got}')
            if not value.is_floating_point():
                raise ValueError(f'Gaussians.{name} must be floating point, got {value.dtype}')
        if not isinstance(self.colors, torch.Tensor) or self.colors.ndim != 2 or self.colors.shape[0] != n:
            got = tuple(self.colors.shape) if isinstance(self.colors, torch.Tensor) else type(self.colors).__name__
            raise ValueError(f'Gaussians.colors must be a tensor of shape ({n}, C), got {got}')

    def __len__(self) -> int:
        return self.means.shape[0]

    def check_values(self) -> None:
        """Raise ValueError unless values are finite, scales positive, opacities in (0, 1], quaternions nonzero."""
        for name in ('means', 'scales', 'rotations', 'opacities', 'colors'):
            if not torch.isfinite(getattr(self, name)).all():
                raise ValueError(f'Gaussians.{name} must be finite')
        if (self.scales <= 0).any():
            raise ValueError('Gaussians.scales must be positive')
        if ((self.opacities <= 0) | (self.opacities > 1)).any():
            raise ValueError('Gaussians.opacities must lie in (0, 1]')
        if (self.rotations.norm(dim=-1) < 1e-8).any():
            raise ValueError('Gaussians.rotations must be nonzero quaternions')


def quaternion_to_rotation(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions w, x, y, z (any norm) -> (N, 3, 3) rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).view(-1, 3, 3)


@dataclass
class Projected:
    """Gaussians in the image: what the tile compositor needs."""

    means2d: torch.Tensor  # (N, 2) pixels (continuous, centres at +0.5)
    conics: torch.Tensor  # (N, 3) inverse 2D covariance [a, b, c] for a dx^2 + 2 b dx dy + c dy^2
    depths: torch.Tensor  # (N,) camera z
    radii: torch.Tensor  # (N,) 3-sigma radius in pixels (detached); 0 for culled Gaussians


def project_gaussians(g: Gaussians, w2c: torch.Tensor, K: torch.Tensor, width: int, height: int,
                      near: float) -> Projected:
    """EWA projection: cov2d = J W Sigma W^T J^T + low-pass, J the pinhole Jacobian at the mean."""
    R, t = w2c[:3, :3], w2c[:3, 3]
    p = g.means @ R.T + t  # (N, 3) camera coordinates
    x, y, z = p.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    zs = torch.where(z > near, z, torch.ones_like(z))  # culled ones get a harmless value
    u = (K[0, 0] * x + K[0, 1] * y) / zs + cx
    v = fy * y / zs + cy
    # Jacobian of (fx x/z, fy y/z) with x/z, y/z clamped a little outside the view (3DGS does the same).
    gx, gy = (FOV_GUARD - 1) * 0.5 * width, (FOV_GUARD - 1) * 0.5 * height  # guard band in pixels
    tx = torch.clamp(x / zs, (-cx - gx) / fx, (width - cx + gx) / fx) * zs
    ty = torch.clamp(y / zs, (-cy - gy) / fy, (height - cy + gy) / fy) * zs
    zero = torch.zeros_like(zs)
    J = torch.stack([fx / zs, zero, -fx * tx / zs**2, zero, fy / zs, -fy * ty / zs**2], -1).view(-1, 2, 3)
    M = quaternion_to_rotation(g.rotations) * g.scales[:, None, :]  # (N, 3, 3) = R S, so Sigma = M M^T
    T = (J @ R) @ M  # (N, 2, 3)
    cov = T @ T.transpose(-1, -2)  # (N, 2, 2)
    a = cov[:, 0, 0] + LOW_PASS
    b = cov[:, 0, 1]
    c = cov[:, 1, 1] + LOW_PASS
    det = (a * c - b * b).clamp_min(1e-12)
    conics = torch.stack([c / det, -b / det, a / det], -1)  # (N, 3)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt((mid * mid - det).clamp_min(0.1))
        radii = torch.where(z > near, 3.0 * torch.sqrt(lam), torch.zeros_like(lam))
    return Projected(torch.stack([u, v], -1), conics, z, radii)


def _tile_lists(proj: Projected, width: int, height: int, tile: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(Gaussian, tile) pairs sorted by tile then depth: gauss_ids (M,), tile_ids (M,), number of tiles."""
    ntx, nty = math.ceil(width / tile), math.ceil(height / tile)
    with torch.no_grad():
        uv, r = proj.means2d.detach(), proj.radii
        ok = (r > 0) & (uv[:, 0] + r >= 0) & (uv[:, 0] - r < width) & (uv[:, 1] + r >= 0) & (uv[:, 1] - r < height)
        ok &= torch.isfinite(uv).all(-1)
        uvc = torch.where(ok[:, None], uv, torch.zeros_like(uv))
        rc = torch.where(ok, r, torch.zeros_like(r))
        x0 = ((uvc[:, 0] - rc) / tile).floor().clamp(0, ntx - 1).long()
        x1 = ((uvc[:, 0] + rc) / tile).floor().clamp(0, ntx - 1).long()
        y0 = ((uvc[:, 1] - rc) / tile).floor().clamp(0, nty - 1).long()
        y1 = ((uvc[:, 1] + rc) / tile).floor().clamp(0, nty - 1).long()
        w = x1 - x0 + 1
        counts = torch.where(ok, w * (y1 - y0 + 1), torch.zeros_like(w))  # (N,) tiles per Gaussian
        gauss = torch.repeat_interleave(torch.arange(len(counts), device=uv.device), counts)  # (M,)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(len(gauss), device=uv.device) - first[gauss]
        tiles = (y0[gauss] + local // w[gauss]) * ntx + x0[gauss] + local % w[gauss]  # (M,)
        rank = torch.empty_like(counts)
        rank[torch.argsort(proj.depths.detach(), stable=True)] = torch.arange(len(counts), device=uv.device)
        order = torch.argsort(tiles * len(counts) + rank[gauss])  # by tile, then front to back
    return gauss[order], tiles[order], ntx * nty


def pixel_features(tile: int, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """(6, tile*tile) monomials [1, u, v, u^2, v^2, u v] of the pixel centres inside a tile (tile-local)."""
    v, u = torch.meshgrid(torch.arange(tile, device=device, dtype=dtype) + 0.5,
                          torch.arange(tile, device=device, dtype=dtype) + 0.5, indexing='ij')
    u, v = u.reshape(-1), v.reshape(-1)
    return torch.stack([torch.ones_like(u), u, v, u * u, v * v, u * v])


def _composite(mx: torch.Tensor, my: torch.Tensor, conic: torch.Tensor, opac: torch.Tensor, values: torch.Tensor,
               features: torch.Tensor) -> torch.Tensor:
    """Front-to-back compositing of G tiles, each with a depth-sorted list of K Gaussians (padding: opacity ~0).

    mx, my (G, K) means relative to the tile origin; conic (G, K, 3); opac (G, K); values (G, K, V) what is
    composited (colour, depth, 1); features (6, P) from pixel_features -> (G, V, P).

    The Gaussian exponent is a quadratic in the pixel coordinates, so it is one GEMM of per-pair coefficients
    (G, K, 6) with the pixel monomials (6, P), instead of a dozen elementwise passes over (G, K, P).
    """
    a, b, c = conic.unbind(-1)  # (G, K) each
    coeffs = torch.stack([
        -0.5 * (a * mx * mx + c * my * my) - b * mx * my + torch.log(opac.clamp_min(1e-20)),  # opacity folded in
        a * mx + b * my,
        c * my + b * mx,
        -0.5 * a,
        -0.5 * c,
        -b,
    ], -1)  # (G, K, 6)
    log_alpha = coeffs @ features  # (G, K, P) = log(opacity) - d^T conic d / 2
    # Floor: far under the 1/255 cut and keeps exp out of denormals (slow on x86); cap: alpha <= ALPHA_MAX.
    alpha = torch.exp(log_alpha.clamp(-POWER_FLOOR, math.log(ALPHA_MAX)))
    alpha = torch.nn.functional.threshold(alpha, ALPHA_MIN, 0.0)  # one fused pass (a where() costs three)
    log_keep = torch.log1p(-alpha)
    transmittance = torch.exp(torch.cumsum(log_keep, dim=1) - log_keep)  # exclusive product over nearer ones
    weight = alpha * transmittance  # (G, K, P)
    return values.transpose(1, 2) @ weight  # (G, V, P)


def rasterize(g: Gaussians, c2w: torch.Tensor, K: torch.Tensor, height: int, width: int, tile: int = 16,
              near: float = 0.05, background: torch.Tensor | None = None, check: bool = True,
              checkpoint: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render Gaussians into the camera c2w (4, 4) with intrinsics K (3, 3).

    Returns colour (C, H, W) (composited over `background` (C,), default black), depth (H, W) (the expected z
    of the visible Gaussians: alpha-weighted z over alpha, 0 where alpha is 0) and alpha (H, W) in [0, 1].
    Gaussians whose centre is nearer than `near` are culled. check=False skips the value checks (a sync on GPU).
    checkpoint=True recomputes each tile group in the backward pass instead of keeping its (pairs x pixels)
    intermediates: training memory drops to about one group's worth for roughly one more forward pass of time.
    """
    if not isinstance(c2w, torch.Tensor) or c2w.shape != (4, 4):
        raise ValueError(f'c2w must be a (4, 4) tensor, got {getattr(c2w, "shape", type(c2w).__name__)}')
    if not isinstance(K, torch.Tensor) or K.shape != (3, 3):
        raise ValueError(f'K must be a (3, 3) tensor, got {getattr(K, "shape", type(K).__name__)}')
    if height <= 0 or width <= 0 or tile <= 0:
        raise ValueError(f'height, width and tile must be positive, got {height}, {width}, {tile}')
    C = g.colors.shape[1]
    if background is not None and background.shape != (C,):
        raise ValueError(f'background must have shape ({C},), got {tuple(background.shape)}')
    if check:
        g.check_values()
    # Composite in float32 (or wider) outside autocast: bf16 transmittance products lose the far Gaussians, and
    # under CUDA autocast the tile groups' results would come back in a dtype other than the image's.
    dtype = torch.promote_types(g.means.dtype, torch.float32)
    g = Gaussians(*(getattr(g, f.name).to(dtype) for f in fields(g)))
    with torch.autocast(g.means.device.type, enabled=False):
        return _rasterize(g, c2w.to(dtype), K.to(dtype), height, width, tile, near, background, checkpoint)


def _rasterize(g: Gaussians, c2w: torch.Tensor, K: torch.Tensor, height: int, width: int, tile: int, near: float,
               background: torch.Tensor | None, checkpoint: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    C = g.colors.shape[1]
    dtype, device = g.means.dtype, g.means.device
    R, t = c2w[:3, :3], c2w[:3, 3]
    w2c = torch.cat([torch.cat([R.T, -(R.T @ t)[:, None]], 1), c2w[3:]], 0)
    proj = project_gaussians(g, w2c, K, width, height, near)
    gauss, tiles, n_tiles = _tile_lists(proj, width, height, tile)
    ntx = math.ceil(width / tile)
    P = tile * tile

    # Per-Gaussian attributes with one padding row (opacity ~0, an identity conic) at index N.
    N = len(g)
    pad = torch.zeros(1, device=device, dtype=dtype)
    mx = torch.cat([proj.means2d[:, 0], pad])
    my = torch.cat([proj.means2d[:, 1], pad])
    conic = torch.cat([proj.conics, torch.tensor([[1.0, 0.0, 1.0]], device=device, dtype=dtype)])
    opac = torch.cat([g.opacities.to(dtype), pad + 1e-20])
    col = torch.cat([g.colors.to(dtype), pad.expand(1, C)])
    z = torch.cat([proj.depths, pad])

    counts = torch.bincount(tiles, minlength=n_tiles)  # (T,)
    starts = torch.cumsum(counts, 0) - counts
    busy = torch.nonzero(counts).squeeze(1)
    busy = busy[torch.argsort(counts[busy], stable=True)]  # similar list lengths share a group
    busy_counts = counts[busy].tolist()
    busy_starts = starts[busy]

    features = pixel_features(tile, dtype, device)  # (6, P)
    values = torch.cat([col, z[:, None], torch.ones_like(z)[:, None]], 1)  # (N + 1, C + 2): colour, z, 1

    results, done = [], []
    i = 0
    while i < len(busy_counts):
        # Largest group (in sorted order) whose padded size fits the element budget; at least one tile.
        j = i + 1
        while j < len(busy_counts) and (j + 1 - i) * busy_counts[j] * P <= GROUP_ELEMENTS:
            j += 1
        k = busy_counts[j - 1]
        ids = busy[i:j]  # (G,)
        slot = busy_starts[i:j, None] + torch.arange(k, device=device)  # (G, k) positions in the pair list
        real = torch.arange(k, device=device) < counts[ids][:, None]
        idx = torch.where(real, gauss[slot.clamp_max(len(gauss) - 1)], torch.full_like(slot, N))  # (G, k)
        x0 = (ids % ntx).to(dtype)[:, None] * tile  # (G, 1) tile origins
        y0 = (ids // ntx).to(dtype)[:, None] * tile
        args = (mx[idx] - x0, my[idx] - y0, conic[idx], opac[idx], values[idx], features)
        if checkpoint and torch.is_grad_enabled():
            results.append(torch.utils.checkpoint.checkpoint(_composite, *args, use_reentrant=False))
        else:
            results.append(_composite(*args))
        done.append(ids)
        i = j

    nty = n_tiles // ntx
    out = torch.zeros(n_tiles, C + 2, P, device=device, dtype=dtype)
    if done:
        out = out.index_copy(0, torch.cat(done), torch.cat(results))

    def untile(x: torch.Tensor) -> torch.Tensor:  # (T, ..., P) -> (..., H, W)
        lead = x.shape[1:-1]
        x = x.view(nty, ntx, *lead, tile, tile).movedim((0, 1), (-4, -2))  # (..., nty, tile, ntx, tile)
        return x.reshape(*lead, nty * tile, ntx * tile)[..., :height, :width]

    out = untile(out)  # (C + 2, H, W)
    colour, depth_sum, alpha = out[:C], out[C], out[C + 1]
    depth = torch.where(alpha > 1e-8, depth_sum / alpha.clamp_min(1e-8), torch.zeros_like(alpha))
    if background is not None:
        colour = colour + (1 - alpha) * background.to(dtype)[:, None, None]
    return colour, depth, alpha
