import dataclasses
import math
import time

import pytest
import torch

from worldscape_ros.model.camera import intrinsics_from_fov, project
from worldscape_ros.model.splat import (
    ALPHA_MAX,
    ALPHA_MIN,
    Gaussians,
    project_gaussians,
    quaternion_to_rotation,
    rasterize,
)


def camera(width: int, height: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.eye(4, dtype=dtype), torch.tensor(intrinsics_from_fov(width, height, 60.0), dtype=dtype)


def random_gaussians(n: int, seed: int = 0, dtype: torch.dtype = torch.float64, scale: float = 0.05,
                     max_opacity: float = 0.95, channels: int = 3) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g, dtype=dtype) * torch.tensor([2.0, 1.5, 2.0], dtype=dtype)
    means += torch.tensor([-1.0, -0.75, 1.5], dtype=dtype)
    return Gaussians(
        means=means,
        scales=scale * (0.3 + torch.rand(n, 3, generator=g, dtype=dtype)),
        rotations=torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=dtype), dim=-1),
        opacities=0.05 + (max_opacity - 0.05) * torch.rand(n, generator=g, dtype=dtype),
        colors=torch.rand(n, channels, generator=g, dtype=dtype),
    )


def dense_reference(g: Gaussians, c2w: torch.Tensor, K: torch.Tensor, height: int,
                    width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every Gaussian against every pixel, composited in a Python loop front to back: no tiles, no culling."""
    proj = project_gaussians(g, torch.linalg.inv(c2w), K, width, height, near=0.05)
    v, u = torch.meshgrid(torch.arange(height, dtype=g.means.dtype) + 0.5,
                          torch.arange(width, dtype=g.means.dtype) + 0.5, indexing='ij')
    colour = torch.zeros(g.colors.shape[1], height, width, dtype=g.means.dtype)
    depth = torch.zeros(height, width, dtype=g.means.dtype)
    T = torch.ones(height, width, dtype=g.means.dtype)
    for i in torch.argsort(proj.depths).tolist():
        if proj.depths[i] <= 0.05:
            continue
        dx, dy = u - proj.means2d[i, 0], v - proj.means2d[i, 1]
        a, b, c = proj.conics[i]
        alpha = (g.opacities[i] * torch.exp(-0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy)).clamp_max(ALPHA_MAX)
        alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
        colour += T * alpha * g.colors[i][:, None, None]
        depth += T * alpha * proj.depths[i]
        T = T * (1 - alpha)
    acc = 1 - T
    return colour, torch.where(acc > 1e-8, depth / acc.clamp_min(1e-8), torch.zeros_like(acc)), acc


def test_quaternion_to_rotation_is_orthonormal_and_matches_a_known_rotation():
    q = torch.tensor([[math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)], [2.0, 0.0, 0.0, 0.0]],
                     dtype=torch.float64)
    R = quaternion_to_rotation(q)
    torch.testing.assert_close(R[0], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64))
    torch.testing.assert_close(R[1], torch.eye(3, dtype=torch.float64))  # normalised first


@pytest.mark.parametrize('tile', [4, 16])
def test_tiled_rasteriser_equals_dense_compositing_when_3_sigma_bounds_all_visible_mass(tile):
    # Opacity below 0.35 puts every contribution outside 3 sigma under the 1/255 cut, so tile culling loses none.
    H, W = 20, 28
    g = random_gaussians(60, seed=1, max_opacity=0.34, scale=0.08)
    c2w, K = camera(W, H)
    c2w = c2w.clone()
    c2w[:3, 3] = torch.tensor([0.1, -0.05, 0.2], dtype=torch.float64)
    colour, depth, alpha = rasterize(g, c2w, K, H, W, tile=tile)
    ref_c, ref_d, ref_a = dense_reference(g, c2w, K, H, W)
    torch.testing.assert_close(colour, ref_c, rtol=0, atol=1e-10)
    torch.testing.assert_close(alpha, ref_a, rtol=0, atol=1e-10)
    torch.testing.assert_close(depth, ref_d, rtol=0, atol=1e-8)


def test_gradcheck_through_all_gaussian_parameters():
    H, W = 6, 7
    c2w, K = camera(W, H)
    base = random_gaussians(3, seed=2, scale=0.3, max_opacity=0.8)
    base.means[:, 2] = torch.tensor([2.0, 2.5, 3.0], dtype=torch.float64)
    base.means[:, :2] *= 0.3

    def render(means, scales, rotations, opacities, colors):
        g = Gaussians(means, scales, rotations, opacities, colors)
        colour, depth, alpha = rasterize(g, c2w, K, H, W, tile=4, check=False)
        return colour, depth, alpha

    inputs = tuple(t.clone().requires_grad_(True) for t in
                   (base.means, base.scales, base.rotations, base.opacities, base.colors))
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradients_reach_every_parameter_in_float32():
    H, W = 24, 32
    c2w, K = camera(W, H, torch.float32)
    g = random_gaussians(200, seed=3, dtype=torch.float32)
    params = [g.means, g.scales, g.rotations, g.opacities, g.colors]
    for p in params:
        p.requires_grad_(True)
    colour, depth, alpha = rasterize(g, c2w, K, H, W)
    (colour.sum() + depth.sum() + alpha.sum()).backward()
    for name, p in zip(('means', 'scales', 'rotations', 'opacities', 'colors'), params):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_bf16_gaussians_and_autocast_composite_in_float32_with_float32_gradients():
    # A head run under bf16 autocast hands over bf16 Gaussians; the image must come out as the float32 render.
    H, W = 24, 32
    c2w, K = camera(W, H, torch.float32)
    g32 = random_gaussians(200, seed=4, dtype=torch.float32)
    half = Gaussians(*(getattr(g32, f.name).bfloat16() for f in dataclasses.fields(g32)))
    reference = rasterize(Gaussians(*(getattr(half, f.name).float() for f in dataclasses.fields(half))), c2w, K, H, W)
    for p in (half.means, half.colors):
        p.requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = rasterize(half, c2w, K, H, W)
    for a, b in zip(got, reference):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b)
    got[0].sum().backward()
    assert half.means.grad is not None and half.means.grad.dtype == torch.bfloat16
    assert torch.isfinite(half.colors.grad.float()).all()


def test_single_small_gaussian_peaks_at_the_pixel_camera_project_gives():
    H, W = 48, 64
    c2w, K = camera(W, H)
    c2w = c2w.clone()
    c2w[:3, 3] = torch.tensor([0.2, 0.1, -0.5], dtype=torch.float64)
    for mean in ([0.13, -0.07, 2.0], [-0.4, 0.25, 3.1], [0.5, 0.3, 1.7]):
        m = torch.tensor([mean], dtype=torch.float64)
        f64 = dict(dtype=torch.float64)
        g = Gaussians(m, torch.full((1, 3), 0.004, **f64), torch.tensor([[1.0, 0, 0, 0]], **f64),
                      torch.tensor([0.9], **f64), torch.ones(1, 1, **f64))
        _, depth, alpha = rasterize(g, c2w, K, H, W)
        uv, z = project(m, torch.linalg.inv(c2w), K)
        peak = divmod(int(torch.argmax(alpha)), W)
        assert peak == (int(uv[0, 1]), int(uv[0, 0]))
        assert float(depth[peak]) == pytest.approx(float(z[0]))


def test_opaque_near_gaussian_occludes_a_far_one_whatever_the_input_order():
    H, W = 16, 16
    c2w, K = camera(W, H)
    near = [0.0, 0.0, 1.0]
    far = [0.0, 0.0, 3.0]
    for order in ((near, far), (far, near)):
        means = torch.tensor(order, dtype=torch.float64)
        colors = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64) if order[0] is near else \
            torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)  # near is red (channel 0)
        g = Gaussians(means, torch.tensor([[0.5, 0.5, 0.05], [0.5, 0.5, 0.05]], dtype=torch.float64),
                      torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=torch.float64),
                      torch.tensor([1.0, 1.0], dtype=torch.float64), colors)
        colour, depth, alpha = rasterize(g, c2w, K, H, W)
        centre = colour[:, H // 2, W // 2]
        assert centre[0] > 0.98 and centre[1] < 0.011
        assert float(depth[H // 2, W // 2]) == pytest.approx(1.0, abs=0.03)


def test_alpha_is_in_unit_range_and_background_fills_the_rest():
    H, W = 24, 32
    c2w, K = camera(W, H)
    g = random_gaussians(300, seed=4, scale=0.1)
    colour, depth, alpha = rasterize(g, c2w, K, H, W)
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert (depth >= 0).all()
    bg = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64)
    with_bg, _, _ = rasterize(g, c2w, K, H, W, background=bg)
    torch.testing.assert_close(with_bg, colour + (1 - alpha) * bg[:, None, None])


def test_gaussians_behind_the_near_plane_or_outside_the_view_render_nothing():
    H, W = 16, 16
    c2w, K = camera(W, H)
    one = torch.ones(2, 3, dtype=torch.float64)
    g = Gaussians(torch.tensor([[0.0, 0.0, -1.0], [50.0, 0.0, 1.0]], dtype=torch.float64), 0.1 * one,
                  torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=torch.float64),
                  torch.tensor([0.9, 0.9], dtype=torch.float64), one)
    colour, depth, alpha = rasterize(g, c2w, K, H, W)
    assert alpha.abs().sum() == 0 and colour.abs().sum() == 0 and depth.abs().sum() == 0


def test_image_size_not_a_multiple_of_the_tile():
    c2w, K = camera(37, 21)
    g = random_gaussians(50, seed=5)
    colour, depth, alpha = rasterize(g, c2w, K, 21, 37, tile=16)
    ref_c, _, _ = rasterize(g, c2w, K, 21, 37, tile=7)
    assert colour.shape == (3, 21, 37) and depth.shape == alpha.shape == (21, 37)
    torch.testing.assert_close(colour, ref_c, rtol=0, atol=0.02)  # tiles differ only in 3-sigma truncation


@pytest.mark.parametrize(('change', 'match'), [
    (dict(means=torch.zeros(2, 2)), r'Gaussians.means must be a tensor of shape \(N, 3\)'),
    (dict(scales=torch.ones(3, 3)), r'Gaussians.scales must be a tensor of shape \(2, 3\)'),
    (dict(rotations=torch.ones(2, 3)), r'Gaussians.rotations must be a tensor of shape \(2, 4\)'),
    (dict(opacities=torch.ones(2, 1)), r'Gaussians.opacities must be a tensor of shape \(2,\)'),
    (dict(colors=torch.ones(2)), r'Gaussians.colors must be a tensor of shape \(2, C\)'),
])
def test_gaussians_reject_bad_shapes_naming_the_field(change, match):
    fields = dict(means=torch.zeros(2, 3), scales=torch.ones(2, 3), rotations=torch.ones(2, 4),
                  opacities=torch.ones(2) * 0.5, colors=torch.ones(2, 3)) | change
    with pytest.raises(ValueError, match=match):
        Gaussians(**fields)


@pytest.mark.parametrize(('field', 'value', 'match'), [
    ('scales', -torch.ones(2, 3), 'scales must be positive'),
    ('opacities', torch.tensor([0.5, 1.5]), r'opacities must lie in \(0, 1\]'),
    ('means', torch.full((2, 3), torch.nan), 'means must be finite'),
    ('rotations', torch.zeros(2, 4), 'rotations must be nonzero'),
])
def test_rasterize_rejects_bad_values_naming_the_field(field, value, match):
    fields = dict(means=torch.zeros(2, 3), scales=torch.ones(2, 3), rotations=torch.ones(2, 4),
                  opacities=torch.ones(2) * 0.5, colors=torch.ones(2, 3)) | {field: value}
    c2w, K = camera(8, 8, torch.float32)
    with pytest.raises(ValueError, match=match):
        rasterize(Gaussians(**fields), c2w, K, 8, 8)


def test_rasterize_rejects_bad_camera_shapes():
    g = random_gaussians(2)
    c2w, K = camera(8, 8)
    with pytest.raises(ValueError, match='c2w must be a'):
        rasterize(g, c2w[:3], K, 8, 8)
    with pytest.raises(ValueError, match='K must be a'):
        rasterize(g, c2w, K[:2], 8, 8)


def test_twelve_thousand_gaussians_at_128x96_forward_and_backward_in_bounded_time():
    H, W = 96, 128
    c2w, K = camera(W, H, torch.float32)
    g = random_gaussians(12288, seed=6, dtype=torch.float32, scale=0.02)
    for p in (g.means, g.scales, g.rotations, g.opacities, g.colors):
        p.requires_grad_(True)
    t0 = time.perf_counter()
    colour, depth, alpha = rasterize(g, c2w, K, H, W)
    (colour.mean() + depth.mean()).backward()
    seconds = time.perf_counter() - t0
    assert g.means.grad is not None and torch.isfinite(g.means.grad).all()
    assert seconds < 20.0, f'forward + backward took {seconds:.1f} s'


def test_checkpointed_tiles_give_the_same_image_and_gradients():
    H, W = 24, 32
    c2w, K = camera(W, H)
    grads = []
    for checkpoint in (False, True):
        g = random_gaussians(150, seed=7, scale=0.1)
        params = [g.means, g.scales, g.rotations, g.opacities, g.colors]
        for p in params:
            p.requires_grad_(True)
        colour, depth, alpha = rasterize(g, c2w, K, H, W, tile=8, checkpoint=checkpoint)
        (colour.square().sum() + depth.sum() + alpha.sum()).backward()
        grads.append([p.grad for p in params] + [colour.detach()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
