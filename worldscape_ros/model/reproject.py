"""Geometric conditioning: render the accumulated scene (coloured points, or views unprojected by their depth)
into the target camera with a z-buffer, giving the DiT a geometric guess and its coverage mask.

The splat is a forward z-buffered nearest splat: each point lands in the pixel containing its projection and
the nearest point wins (vectorised with scatter_reduce 'amin'; no loop over points). A forward splat leaves
one-pixel cracks where the camera moves forward and the surface is magnified; they are closed by one cheap
hole-filling step limited to empty pixels whose two neighbours on a row or on a column are both covered, which
take the farther of those two neighbours (background-first, so object edges do not grow); it runs twice, so that
the pixel where a crack row crosses a crack column closes too. Holes two or more pixels wide stay holes. A fully
covered render, such as a frame rendered into its own camera, is left exactly as splatted. Bleed-through (a far
point showing through a crack in a nearer surface) is not corrected.

Conventions (camera.py): camera-to-world 4x4 poses with OpenCV axes, pixel centres at +0.5, metric z-depth.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from worldscape_ros.model.camera import check_rigid, pixel_grid


def _rigid_inverse(c2w: torch.Tensor) -> torch.Tensor:
    R, t = c2w[..., :3, :3], c2w[..., :3, 3:]
    w2c = torch.zeros_like(c2w)
    w2c[..., :3, :3] = R.transpose(-1, -2)
    w2c[..., :3, 3:] = -R.transpose(-1, -2) @ t
    w2c[..., 3, 3] = 1.0
    return w2c


def _inverse_3x3(K: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of (..., 3, 3) matrices: rows are cross products of columns over the determinant
    (LAPACK's call overhead dominates torch.linalg.inv at this size)."""
    c0, c1, c2 = K[..., :, 0], K[..., :, 1], K[..., :, 2]
    rows = torch.stack([torch.linalg.cross(c1, c2), torch.linalg.cross(c2, c0), torch.linalg.cross(c0, c1)], -2)
    det = (c0 * rows[..., 0, :]).sum(-1)
    return rows / det[..., None, None]


def _check(t: torch.Tensor, name: str, shape: tuple[int | None, ...]) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f'{name} must be a torch.Tensor, got {type(t).__name__}')
    if t.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = 'x'.join('*' if s is None else str(s) for s in shape)
        raise ValueError(f'{name} must have shape ({want}), got {tuple(t.shape)}')
    if not t.is_floating_point():
        raise ValueError(f'{name} must be a floating-point tensor, got {t.dtype}')


def _zbuffer(cam: torch.Tensor, K: torch.Tensor, height: int, width: int,
             valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched z-buffer of points already in target-camera coordinates.

    cam (B, 3, N) channels first (a 3x3 @ 3xN product is an order of magnitude faster on CPU than Nx3 @ 3x3),
    K (B, 3, 3), valid (B, N) bool or None -> owner (B, H, W) long (index of the winning point, -1 where empty)
    and depth (B, H, W) (0 where empty).
    """
    B = cam.shape[0]
    HW = height * width
    z = cam[:, 2]  # (B, N)
    uvw = K @ cam  # (B, 3, N)
    zs = z.clamp_min(1e-12)
    u, v = uvw[:, 0] / zs, uvw[:, 1] / zs
    ok = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)  # NaN compares False: dropped too
    if valid is not None:
        ok &= valid
    # Dropped points go to a spare bin at index B*HW instead of being compacted out (cheaper on CPU).
    offset = torch.arange(B, device=cam.device)[:, None] * HW
    flat = torch.where(ok, offset + v.clamp(0, height - 1).long() * width + u.clamp(0, width - 1).long(), B * HW)
    flat = flat.view(-1)  # (B*N,)
    zk = torch.where(ok, z, torch.inf).view(-1)
    zbuf = torch.full((B * HW + 1,), torch.inf, dtype=z.dtype, device=z.device)
    zbuf = zbuf.scatter_reduce(0, flat, zk, reduce='amin', include_self=True)  # nearest depth per pixel
    winner = ok.view(-1) & (zk == zbuf[flat])
    # Equal depths: the highest point index wins, so the result never depends on scatter order.
    n_idx = torch.arange(cam.shape[-1], device=cam.device).expand(B, -1).reshape(-1)
    owner = torch.full((B * HW + 1,), -1, dtype=torch.long, device=z.device)
    owner = owner.scatter_reduce(0, flat, torch.where(winner, n_idx, -1), reduce='amax', include_self=True)[:-1]
    depth = torch.where(owner >= 0, zbuf[:-1], torch.zeros_like(zbuf[:-1]))
    return owner.view(B, height, width), depth.view(B, height, width)


def zbuffer_by_key(cam: torch.Tensor, K: torch.Tensor, height: int, width: int, valid: torch.Tensor,
                    keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """_zbuffer of one camera, equal depths won by the highest voxel key (what the scene memory's
    sorted order gave) instead of the highest index, so the points may come in any order.

    cam (3, M) target camera coordinates, K (3, 3), valid (M,) bool, keys (M,) distinct -> owner (H, W) long
    (index of the winning point, -1 where empty) and depth (H, W) (0 where empty).
    """
    HW = height * width
    z = cam[2]
    uvw = (K[None] @ cam[None])[0]  # batched, as _zbuffer projects (the view test's own numbers)
    zs = z.clamp_min(1e-12)
    u, v = uvw[0] / zs, uvw[1] / zs
    ok = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height) & valid
    flat = torch.where(ok, v.clamp(0, height - 1).long() * width + u.clamp(0, width - 1).long(), HW)  # spare bin
    zk = torch.where(ok, z, torch.inf)
    zbuf = torch.full((HW + 1,), torch.inf, dtype=z.dtype, device=z.device)
    zbuf = zbuf.scatter_reduce(0, flat, zk, reduce='amin', include_self=True)  # nearest depth per pixel
    winner = ok & (zk == zbuf[flat])
    none = torch.full((HW + 1,), -1, dtype=torch.long, device=z.device)
    top = none.scatter_reduce(0, flat, torch.where(winner, keys, -1), reduce='amax', include_self=True)
    winner &= keys == top[flat]  # one per pixel: keys are distinct
    owner = none.scatter_reduce(0, flat, torch.where(winner, torch.arange(len(z), device=z.device), -1),
                                reduce='amax', include_self=True)[:-1]
    depth = torch.where(owner >= 0, zbuf[:-1], torch.zeros_like(zbuf[:-1]))
    return owner.view(height, width), depth.view(height, width)


def _finish(owner: torch.Tensor, depth: torch.Tensor, gather: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
            channels: int, dtype: torch.dtype,
            fill_cracks: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Colour the z-buffer: gather(b_idx, point_idx) -> (M, C) colours of the winning points."""
    B, H, W = owner.shape
    mask = owner >= 0
    b_idx, v_idx, u_idx = mask.nonzero(as_tuple=True)
    image = torch.zeros(B, H, W, channels, dtype=dtype, device=owner.device)
    image[b_idx, v_idx, u_idx] = gather(b_idx, owner[b_idx, v_idx, u_idx]).to(dtype)
    image = image.permute(0, 3, 1, 2)  # (B, C, H, W)
    if fill_cracks:
        for _ in range(2):  # the second pass closes where a crack row meets a crack column
            image, depth, mask = fill_one_pixel_cracks(image, depth, mask)
    return image.contiguous(), depth, mask


def fill_one_pixel_cracks(image: torch.Tensor, depth: torch.Tensor,
                          mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fill empty pixels whose left and right (or upper and lower) neighbours are both covered with the farther
    of the two (rows win over columns). image (B, C, H, W), depth (B, H, W), mask (B, H, W) bool."""
    out_image, out_depth, out_mask = image.clone(), depth.clone(), mask.clone()
    for dim in (1, 2):  # columns first, then rows, so rows have the last word; dims of depth and mask
        n = depth.shape[dim]
        if n < 3:
            continue
        lo, mid, hi = slice(0, n - 2), slice(1, n - 1), slice(2, n)

        def part(t: torch.Tensor, sl: slice, d: int) -> torch.Tensor:
            return t[(slice(None),) * d + (sl,)]

        crack = ~part(mask, mid, dim) & part(mask, lo, dim) & part(mask, hi, dim)  # from the splat's own coverage
        d_lo, d_hi = part(depth, lo, dim), part(depth, hi, dim)
        take_hi = d_hi > d_lo
        d_fill = torch.where(take_hi, d_hi, d_lo)
        c_fill = torch.where(take_hi[:, None], part(image, hi, dim + 1), part(image, lo, dim + 1))
        part(out_depth, mid, dim)[...] = torch.where(crack, d_fill, part(out_depth, mid, dim))
        part(out_image, mid, dim + 1)[...] = torch.where(crack[:, None], c_fill, part(out_image, mid, dim + 1))
        part(out_mask, mid, dim)[...] |= crack
    return out_image, out_depth, out_mask


def within_cracks(mask: torch.Tensor, reach: int) -> torch.Tensor:
    """(H, W) bool covered -> (H, W) bool: the empty pixels with a covered pixel at most `reach` pixels away on
    both sides along their row, or on both sides along their column (a crack up to 2 reach - 1 pixels wide)."""
    H, W = mask.shape
    crack = torch.zeros_like(mask)
    for dim, n in ((0, H), (1, W)):
        before, after = torch.zeros_like(mask), torch.zeros_like(mask)
        for s in range(1, min(reach, n - 1) + 1):
            if dim == 0:
                before[s:] |= mask[:-s]
                after[:-s] |= mask[s:]
            else:
                before[:, s:] |= mask[:, :-s]
                after[:, :-s] |= mask[:, s:]
        crack |= before & after
    return crack & ~mask


def render_points(points: torch.Tensor, colors: torch.Tensor, target_c2w: torch.Tensor, K: torch.Tensor,
                  height: int, width: int, fill_cracks: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Z-buffered nearest splat of world points into the target camera.

    points (N, 3) world, colors (N, C), target_c2w (4, 4), K (3, 3) -> colour (C, H, W), z-depth (H, W) and
    coverage mask (H, W) bool. Points behind the camera or outside the image are dropped; empty pixels have
    colour 0, depth 0 and mask False.
    """
    _check(points, 'points', (None, 3))
    _check(colors, 'colors', (points.shape[0], None))
    _check(target_c2w, 'target_c2w', (4, 4))
    _check(K, 'K', (3, 3))
    check_rigid(target_c2w, 'target_c2w')
    if height <= 0 or width <= 0:
        raise ValueError(f'height and width must be positive, got {height}x{width}')
    if not torch.isfinite(colors).all():
        raise ValueError('colors must be finite')
    w2c = _rigid_inverse(target_c2w.to(points.dtype))
    cam = w2c[:3, :3] @ points.T + w2c[:3, 3:]  # (3, N) target-camera coordinates
    owner, depth = _zbuffer(cam[None], K.to(points.dtype)[None], height, width)
    image, depth, mask = _finish(owner, depth, lambda b, n: colors[n], colors.shape[1], colors.dtype, fill_cracks)
    return image[0], depth[0], mask[0]


def render_views(rgb: torch.Tensor, depth: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, target_c2w: torch.Tensor,
                 height: int | None = None, width: int | None = None, target_K: torch.Tensor | None = None,
                 fill_cracks: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unproject every source view by its depth and render them all into the target camera.

    rgb (S, C, H, W), depth (S, H, W) metric z (<= 0 or non-finite: no point), c2w (S, 4, 4), K (3, 3) or
    (S, 3, 3), target_c2w (4, 4) -> colour (C, H', W'), depth (H', W'), mask (H', W') bool.
    A leading batch dimension B on rgb, depth, c2w and target_c2w (and K, target_K) renders B targets at once.
    target_K defaults to K (of the first view when K is per view); H', W' default to the source size.
    """
    batched = rgb.ndim == 5
    if not batched:
        _check(rgb, 'rgb', (None, None, None, None))
        rgb, depth, c2w, target_c2w, K = rgb[None], depth[None], c2w[None], target_c2w[None], K[None]
        target_K = None if target_K is None else target_K[None]
    _check(rgb, 'rgb', (None, None, None, None, None))
    B, S, C, H, W = rgb.shape
    _check(depth, 'depth', (B, S, H, W))
    _check(c2w, 'c2w', (B, S, 4, 4))
    _check(target_c2w, 'target_c2w', (B, 4, 4))
    check_rigid(c2w, 'c2w')
    check_rigid(target_c2w, 'target_c2w')
    if batched and K.ndim == 2:
        K = K.expand(B, 3, 3)  # one camera model for the whole batch
    if K.shape[-2:] != (3, 3) or K.ndim not in (3, 4) or K.shape[0] != B or (K.ndim == 4 and K.shape[1] != S):
        raise ValueError(f'K must have shape (3, 3) or (S, 3, 3) (or (B, 3, 3), (B, S, 3, 3) when batched), '
                         f'got {tuple(K.shape)}')
    height, width = height or H, width or W
    dtype = rgb.dtype
    K_src = (K if K.ndim == 4 else K[:, None]).to(dtype)  # (B, S|1, 3, 3)
    tK = (target_K if target_K is not None else K_src[:, 0]).to(dtype)  # (B, 3, 3)
    if batched and tK.ndim == 2:
        tK = tK.expand(B, 3, 3)
    if tK.shape != (B, 3, 3):
        raise ValueError(f'target_K must have shape (3, 3), got {tuple(tK.shape)}')
    depth = depth.to(dtype)
    # Unproject (camera.unproject_depth, written as one GEMM per view) straight into the target camera:
    # x_target = A x_source + b with A, b from w2c_target @ c2w_source.
    rays = _inverse_3x3(K_src) @ pixel_grid(H, W, device=rgb.device, dtype=dtype).view(H * W, 3).T  # (B,S|1,3,HW)
    rel = _rigid_inverse(target_c2w.to(dtype))[:, None] @ c2w.to(dtype)  # (B, S, 4, 4) source -> target camera
    x_src = rays * depth.reshape(B, S, 1, H * W)  # (B, S, 3, HW) source-camera points, z = depth
    cam = rel[..., :3, :3] @ x_src + rel[..., :3, 3:]  # (B, S, 3, HW) target-camera points
    cam = cam.transpose(1, 2).reshape(B, 3, S * H * W)  # (B, 3, S*HW): point n = s * HW + pixel
    valid = (depth > 0) & torch.isfinite(depth)  # (B, S, H, W)
    owner, d = _zbuffer(cam, tK, height, width, valid.view(B, S * H * W))
    flat_rgb = rgb.reshape(B, S, C, H * W)

    def gather(b: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return flat_rgb[b, n // (H * W), :, n % (H * W)]  # (M, C)

    image, d, m = _finish(owner, d, gather, C, dtype, fill_cracks)
    return (image, d, m) if batched else (image[0], d[0], m[0])
