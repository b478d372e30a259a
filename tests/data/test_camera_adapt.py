"""Fitting camera images to the model: the adjusted K projects the same 3D points to the pixels where the fitted
image shows them; crops, letterboxes and resizes compose; starts far from the training data are reported."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldscape_ros.data.camera_adapt import (
    CameraFitError,
    fit_image,
    fit_start,
    fov_deg,
    intrinsics_from_fov,
    plan_fit,
    start_warnings,
)


def project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:]


@pytest.mark.parametrize('src,mode', [((640, 480), 'crop'), ((1280, 720), 'crop'), ((424, 240), 'crop'),
                                      ((300, 400), 'crop'), ((1280, 720), 'letterbox'), ((64, 48), 'crop'),
                                      ((128, 96), 'crop')])
def test_a_point_lands_where_the_fitted_image_shows_it(src, mode):
    """Paint one source pixel; after the fit, the fitted K projects its 3D ray to the pixel that lit up."""
    w, h = src
    rng = np.random.default_rng(w * h)
    K = np.array([[0.9 * w, 0.0, 0.52 * w], [0.0, 0.9 * w, 0.47 * h], [0.0, 0.0, 1.0]])
    fit = plan_fit(w, h, 128, 96, mode)
    K2 = fit.intrinsics(K)
    for _ in range(5):
        u, v = int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4))
        ray = np.linalg.solve(K, [u + 0.5, v + 0.5, 1.0])  # the pixel centre's ray
        uv = project(K2, ray[None])[0]
        # a block of source pixels around (u, v) big enough to survive shrinking
        r = max(1, math.ceil(1 / min(fit.scale_x, fit.scale_y)))
        img = np.zeros((h, w), np.float32)
        img[max(0, v - r):v + r + 1, max(0, u - r):u + r + 1] = 1.0
        out = fit.image(img, depth=False)
        ys, xs = np.nonzero(out > 0.25)
        if not len(xs):
            assert not (0 <= uv[0] < 128 and 0 <= uv[1] < 96)  # cropped away: K says outside too
            continue
        centre = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
        assert np.abs(centre - uv).max() < 0.75, (centre, uv)


def test_the_model_size_passes_through_unchanged():
    img = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    K = intrinsics_from_fov(128, 96, vfov_deg=60)
    out, K2, fit = fit_image(img, K, 128, 96)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(K2, K)
    assert fit.kept_fraction == 1.0


def test_crop_keeps_the_vertical_fov_of_a_wider_image_and_letterbox_its_horizontal():
    K = intrinsics_from_fov(1280, 720, vfov_deg=60)
    crop = plan_fit(1280, 720, 128, 96, 'crop').intrinsics(K)
    box = plan_fit(1280, 720, 128, 96, 'letterbox').intrinsics(K)
    assert fov_deg(crop, 128, 96)[1] == pytest.approx(60, abs=0.1)
    hfov_src = fov_deg(K, 1280, 720)[0]
    # the letterboxed image spans the whole source width
    assert 2 * math.degrees(math.atan(0.5 * 128 / box[0, 0])) == pytest.approx(hfov_src, abs=0.1)


def test_depth_is_resampled_by_nearest_sample_and_letterbox_bands_are_unknown():
    depth = np.full((720, 1280), 2.0, np.float32)
    depth[:, 640:] = 5.0
    out = plan_fit(1280, 720, 128, 96, 'letterbox').image(depth, depth=True)
    finite = out[np.isfinite(out)]
    assert set(np.unique(finite)) == {2.0, 5.0}  # no averaged depth across the edge
    assert np.isnan(out[0]).all() and np.isnan(out[-1]).all()


def test_fit_start_takes_the_camera_from_k_then_a_fov_then_the_models_and_says_so():
    rgb = np.zeros((480, 640, 3), np.uint8)
    K = intrinsics_from_fov(640, 480, vfov_deg=45)
    a = fit_start(rgb, 128, 96, 60.0, K=K)
    b = fit_start(rgb, 128, 96, 60.0, vfov_deg=45)
    np.testing.assert_allclose(a.K, b.K)
    c = fit_start(rgb, 128, 96, 60.0)
    np.testing.assert_allclose(c.K, intrinsics_from_fov(128, 96, vfov_deg=60))
    assert any('assumed' in n for n in c.notes) and not any('assumed' in n for n in a.notes)
    with pytest.raises(CameraFitError, match='registered'):
        fit_start(rgb, 128, 96, 60.0, depth=np.ones((96, 128), np.float32))
    with pytest.raises(CameraFitError, match='not both'):
        fit_start(rgb, 128, 96, 60.0, K=K, vfov_deg=45)


def test_start_warnings_name_a_different_fov_a_large_upscale_and_an_untrained_depth():
    small = plan_fit(32, 24, 128, 96)
    K = small.intrinsics(intrinsics_from_fov(32, 24, vfov_deg=100))
    text = ' '.join(start_warnings(small, K, 60.0, depth=np.full((96, 128), 0.3)))
    assert '100 deg' in text and 'enlarged 4.0x' in text and 'median of 0.30 m' in text
    good = plan_fit(640, 480, 128, 96)
    assert start_warnings(good, good.intrinsics(intrinsics_from_fov(640, 480, vfov_deg=60)), 60.0,
                          depth=np.full((96, 128), 3.0)) == []


@pytest.mark.parametrize('bad', [dict(src_width=0), dict(width=-1), dict(mode='stretch')])
def test_bad_sizes_and_modes_are_refused_by_name(bad):
    args = dict(src_width=640, src_height=480, width=128, height=96, mode='crop') | bad
    with pytest.raises(CameraFitError):
        plan_fit(**args)


def test_a_rollout_starts_from_an_image_of_another_size_and_fov_with_the_fitted_camera(tmp_path, caplog):
    import cv2

    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions
    from worldscape_ros.model.pixel_convention import k_from_ros
    from worldscape_ros.tools.bag import read_bag
    from worldscape_ros.tools.rollout import Start, offline_rollout
    from worldscape_ros.tools.scripts import ActionScript

    rng = np.random.default_rng(1)
    image = tmp_path / 'phone.png'
    cv2.imwrite(str(image), rng.integers(0, 255, (180, 320, 3), dtype=np.uint8))
    engine = WorldEngine.from_pretrained('random', options=EngineOptions(seed=0))
    with caplog.at_level('WARNING'):
        offline_rollout(engine, Start(image=image, vfov_deg=45.0), ActionScript(np.zeros((2, 5))), tmp_path / 'out',
                        mp4=False)
    want = plan_fit(320, 180, 128, 96).intrinsics(intrinsics_from_fov(320, 180, vfov_deg=45.0))
    np.testing.assert_allclose(engine.intrinsics, want)
    infos = [m.msg for m in read_bag(tmp_path / 'out' / 'bag', ['/camera/camera_info'])]
    assert len(infos) == 2 and np.allclose(k_from_ros(np.asarray(infos[0].k).reshape(3, 3)), want)
    assert 'the model was trained on 75x60 deg' in caplog.text
    # too small to enlarge honestly: refused, naming the model's size
    tiny = tmp_path / 'tiny.png'
    cv2.imwrite(str(tiny), np.zeros((12, 16, 3), np.uint8))
    with pytest.raises(ValueError, match='needs 128x96'):
        offline_rollout(engine, Start(image=tiny), ActionScript(np.zeros((1, 5))), tmp_path / 'o2', mp4=False)
