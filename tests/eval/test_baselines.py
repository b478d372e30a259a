import math

import cv2
import numpy as np
import pytest
import torch

from tests.eval.conftest import TexturedRoom, drive, make_texture, render_all
from worldscape_ros.eval import metrics as M
from worldscape_ros.eval.baselines import (
    RepeatFirstFrame,
    Reprojection,
    ReprojectionInpaint,
    ReprojectionInpaintMean,
    ReprojectionRelit,
    ReprojectionRepeats,
    fade_to_mean,
    forward_warp,
    inpaint_holes,
)
from worldscape_ros.eval.protocol import WorldSystem
from worldscape_ros.model.headlight import normals, shading
from worldscape_ros.model.kinematics import BaseState, NavAction


def test_baselines_implement_the_world_system_protocol():
    assert isinstance(RepeatFirstFrame(), WorldSystem)
    assert isinstance(Reprojection(), WorldSystem)


def test_repeat_first_frame_repeats_the_start_and_follows_commanded_poses(turning_walk):
    w = turning_walk
    system = RepeatFirstFrame(fps=10.0)
    system.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    for t in range(1, 4):
        frame = system.step(NavAction(vx=0.6, yaw_rate=math.radians(20)))
        np.testing.assert_array_equal(frame.rgb, w['rgb'][0])
        np.testing.assert_allclose(frame.pose, w['poses'][t], atol=1e-9)
        assert frame.index == t


def test_reprojection_into_the_start_camera_is_exact(turning_walk):
    w = turning_walk
    rgb, depth = forward_warp(w['rgb'][0], w['depth'][0], w['poses'][0], w['poses'][0], w['K'])
    np.testing.assert_array_equal(rgb, w['rgb'][0])
    np.testing.assert_allclose(depth, w['depth'][0], rtol=1e-5)


def test_reprojection_matches_the_target_render_where_covered_and_leaves_holes_empty(turning_walk):
    w = turning_walk
    system = Reprojection(fps=10.0)
    system.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    frame = system.step(w['poses'][3])  # a target pose as the action
    covered = frame.depth > 0
    assert 0.8 < covered.mean() < 1.0  # turning left uncovers a strip on the left
    assert not covered[:, :3].any() and (frame.rgb[~covered] == 0).all()
    rel = np.abs(frame.depth[covered] / w['depth'][3][covered] - 1)
    assert np.median(rel) < 0.01 and (rel < 0.05).mean() > 0.9  # off only at occlusion edges
    err = frame.rgb[covered].astype(float) - w['rgb'][3][covered]
    assert 10 * np.log10(255.0**2 / np.mean(err**2)) > 20
    assert M.psnr(frame.rgb[None], w['rgb'][3][None])[0] > M.psnr(w['rgb'][:1], w['rgb'][3][None])[0]


def test_reprojection_needs_the_start_depth(turning_walk):
    with pytest.raises(ValueError, match='needs the start frame.s depth'):
        Reprojection().reset(turning_walk['rgb'][0], turning_walk['poses'][0], turning_walk['K'], None)


def test_baselines_reject_bad_input(turning_walk):
    w = turning_walk
    system = RepeatFirstFrame()
    with pytest.raises(RuntimeError, match='before reset'):
        system.step(NavAction())
    with pytest.raises(ValueError, match=r'first_frame must be \(H, W, 3\) uint8'):
        system.reset(w['rgb'][0].astype(np.float32), w['poses'][0], w['K'])
    system.reset(w['rgb'][0], w['poses'][0], w['K'])
    with pytest.raises(ValueError, match='not orthonormal'):
        system.step(2 * np.eye(4))
    with pytest.raises(ValueError, match='fps must be positive'):
        Reprojection(fps=0)


def test_reprojection_inpaint_implements_the_protocol_and_returns_its_start_as_frame_zero(turning_walk):
    w = turning_walk
    system = ReprojectionInpaint()
    assert isinstance(system, WorldSystem)
    start = system.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    assert start.index == 0
    np.testing.assert_array_equal(start.rgb, w['rgb'][0])
    np.testing.assert_array_equal(start.depth, w['depth'][0])


def test_reprojection_inpaint_keeps_every_warped_pixel_and_fills_every_hole(turning_walk):
    w = turning_walk
    holes, filled = Reprojection(), ReprojectionInpaint()
    for s in (holes, filled):
        s.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    for t in (3, 8, 11):
        a, b = holes.step(w['poses'][t]), filled.step(w['poses'][t])
        covered = a.depth > 0
        assert 0.05 < (~covered).mean() < 0.6  # turning left uncovers a growing strip
        np.testing.assert_array_equal(b.rgb[covered], a.rgb[covered])  # what geometry gives is kept exactly
        np.testing.assert_array_equal(b.depth[covered], a.depth[covered])
        assert (b.depth > 0).all() and np.isfinite(b.depth).all()  # no hole left, in colour or depth
        psnr = M.psnr(np.stack([a.rgb, b.rgb]), np.stack([w['rgb'][t]] * 2))
        assert psnr[1] > psnr[0] + 3  # a smooth fill beats black holes by far
        lo, hi = a.depth[covered].min(), a.depth[covered].max()  # filled depth comes from the covered depths
        assert (b.depth[~covered] >= lo).all() and (b.depth[~covered] <= hi).all()


def test_inpaint_mean_is_telea_beside_the_boundary_and_the_start_mean_far_from_it(turning_walk):
    w = turning_walk
    holes, telea, mean = Reprojection(), ReprojectionInpaint(), ReprojectionInpaintMean(reach_px=4)
    for s in (holes, telea, mean):
        s.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    colour = w['rgb'][0].reshape(-1, 3).mean(0)
    for t in (3, 11):
        a, b, c = holes.step(w['poses'][t]), telea.step(w['poses'][t]), mean.step(w['poses'][t])
        covered = a.depth > 0
        np.testing.assert_array_equal(c.rgb[covered], a.rgb[covered])  # what geometry gives is kept exactly
        np.testing.assert_array_equal(c.depth, b.depth)  # the depth is Telea's
        d = cv2.distanceTransform((~covered).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # exact
        w_telea = np.exp(-d / 4)[..., None]
        expected = np.round(w_telea * b.rgb + (1 - w_telea) * colour).clip(0, 255)
        np.testing.assert_allclose(c.rgb[~covered], expected[~covered], atol=1)
        far = d > 28  # exp(-7): within half a grey level of the mean
        assert far.any() or t == 3
        if far.any():
            np.testing.assert_allclose(c.rgb[far].mean(0), colour, atol=1)


def test_repeats_baseline_copies_a_repeating_paper_and_is_inpaint_mean_elsewhere():
    room = TexturedRoom(seed=5)
    room.textures = [make_texture(50 + i, size=80) for i in range(4)]  # 40 px a metre: the paper repeats every 2 m
    poses = drive([NavAction(vy=0.5)] * 11, start=BaseState(x=-1.0, y=0.0, yaw=0.0))  # strafe left, facing a wall
    truth, depth = render_all(room, poses)
    mean, rep = ReprojectionInpaintMean(), ReprojectionRepeats()
    for s in (mean, rep):
        s.reset(truth[0], poses[0], room.K, depth[0])
    assert rep._repeats is not None and any(p.shifts for p in rep._repeats.planes)
    t = 11
    a, b = mean.step(poses[t]), rep.step(poses[t])
    covered = rep.warp(poses[t])[1] > 0
    np.testing.assert_array_equal(b.rgb[covered], a.rgb[covered])  # what geometry gives is kept exactly
    warped, warped_depth = rep.warp(poses[t])
    _, _, copied = rep._repeats.fill(warped / 255.0, warped_depth, poses[t], room.K)
    assert copied.sum() > 0.3 * (~covered).sum()
    err = lambda f: np.abs(f.astype(float) - truth[t].astype(float))[copied].mean()  # noqa: E731
    assert err(b.rgb) < 0.3 * err(a.rgb)  # the copy is the paper; the mean fill is a blur of it
    # a copied pixel changes what the fill continues from, so only far from any copy is the frame the same
    near = cv2.dilate(copied.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=40) > 0
    np.testing.assert_array_equal(b.rgb[~near], a.rgb[~near])


def lit_by_the_camera(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, share: float) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a room lit evenly -> as a camera carrying a light of that share sees them."""
    out = []
    for frame, d in zip(rgb, depth):
        faces = -normals(torch.from_numpy(d.astype(np.float32)), torch.from_numpy(K).float())[2].numpy()
        out.append(np.round(frame * shading(torch.from_numpy(faces), share).numpy()[..., None]).clip(0, 255))
    return np.stack(out).astype(np.uint8)


def test_the_relit_warp_follows_a_camera_borne_light_and_is_the_repeats_baseline_without_one(turning_walk):
    w = turning_walk
    truth = lit_by_the_camera(w['rgb'], w['depth'], w['K'], 0.4)
    plain, relit, unlit = ReprojectionRepeats(), ReprojectionRelit(share=0.4), ReprojectionRelit(share=0.0)
    starts = [s.reset(truth[0], w['poses'][0], w['K'], w['depth'][0]) for s in (plain, relit, unlit)]
    np.testing.assert_array_equal(starts[1].rgb, truth[0])
    t = 11  # 22 deg turned
    a, b, c = (s.step(w['poses'][t]) for s in (plain, relit, unlit))
    np.testing.assert_array_equal(c.rgb, a.rgb)  # no light of its own: the repeats baseline
    inside = cv2.erode((plain.warp(w['poses'][t])[1] > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    blur = lambda f: cv2.GaussianBlur(f.astype(np.float32), (0, 0), 3)  # noqa: E731  the shading, not the texture
    err = lambda f: np.abs(blur(f) - blur(truth[t]))[inside].mean()  # noqa: E731
    assert err(b.rgb) < 0.5 * err(a.rgb)  # the turn changes how each wall faces the camera's light
    np.testing.assert_array_equal(relit.step(w['poses'][0]).rgb, truth[0])  # back where it started: as seen
    guessed = ReprojectionRelit(share=0.4, start_depth=lambda rgb, c2w, K: w['depth'][0])  # an RGB-only start
    guessed.reset(truth[0], w['poses'][0], w['K'])
    np.testing.assert_array_equal(guessed.step(w['poses'][t]).rgb, a.rgb)  # a guessed depth: warped as it is
    with pytest.raises(ValueError, match="share must be in"):
        ReprojectionRelit(share=1.0)


def test_fading_to_the_mean_changes_nothing_without_holes_and_fills_an_all_hole_frame_with_it():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    assert fade_to_mean(rgb, np.zeros((8, 10), bool), np.array([1.0, 2, 3]), 16) is rgb
    out = fade_to_mean(rgb, np.ones((8, 10), bool), np.array([10.4, 20.6, 30.0]), 16)
    assert (out == np.array([10, 21, 30], np.uint8)).all()
    with pytest.raises(ValueError, match='reach must be a positive number of pixels'):
        ReprojectionInpaintMean(reach_px=0)


def test_inpainting_a_frame_without_holes_or_without_anything_changes_nothing():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    full = np.ones((8, 10), np.float32)
    assert inpaint_holes(rgb, full)[0] is rgb
    empty = np.zeros((8, 10), np.float32)
    out_rgb, out_depth = inpaint_holes(rgb, empty)
    assert out_rgb is rgb and out_depth is empty


def test_supersampled_warp_leaves_no_cracks_when_driving_towards_a_wall():
    """Magnification up to the supersampling factor: every pixel a start pixel covers in the scene is hit."""
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    wall = np.full((48, 64), 2.0, np.float32)
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    closer = np.eye(4)
    closer[2, 3] = 0.9  # 1.1 m from the wall: x1.8 zoom
    _, depth = forward_warp(rgb, wall, np.eye(4), closer, K, supersample=2)
    assert (depth > 0).all()
    _, depth1 = forward_warp(rgb, wall, np.eye(4), closer, K, supersample=1)
    assert (depth1 <= 0).mean() > 0.2  # without supersampling, cracks


def test_reprojections_take_a_predicted_start_depth_for_an_rgb_only_start(turning_walk):
    w = turning_walk
    calls = []

    def predicted(rgb, pose, K):
        calls.append(rgb)
        return w['depth'][0] * 1.1  # a start depth off by 10%

    system = ReprojectionInpaint(start_depth=predicted)
    start = system.reset(w['rgb'][0], w['poses'][0], w['K'])
    assert len(calls) == 1 and np.array_equal(calls[0], w['rgb'][0])
    np.testing.assert_allclose(start.depth, w['depth'][0] * 1.1, rtol=1e-6)
    truth = ReprojectionInpaint()
    truth.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    a, b = system.step(w['poses'][6]), truth.step(w['poses'][6])
    assert not np.array_equal(a.rgb, b.rgb)  # the predicted depth is what it warps by
    system.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])  # a given depth wins over the predictor
    assert len(calls) == 1


def test_reprojections_refuse_an_rgb_only_start_without_a_predictor_and_bad_settings(turning_walk):
    w = turning_walk
    with pytest.raises(ValueError, match="reprojection_inpaint baseline needs the start frame's depth"):
        ReprojectionInpaint().reset(w['rgb'][0], w['poses'][0], w['K'])
    with pytest.raises(ValueError, match='inpainting radius must be at least 1'):
        ReprojectionInpaint(radius=0)
    with pytest.raises(ValueError, match='supersample must be at least 1'):
        Reprojection(supersample=0)
    with pytest.raises(RuntimeError, match='before reset'):
        ReprojectionInpaint().step(NavAction())


def test_model_start_depth_is_the_depth_the_engine_predicts_at_reset(turning_walk):
    from worldscape_ros.eval.baselines import model_start_depth, model_system

    w = turning_walk
    engine = model_system('random', 'ws-tiny')
    depth = model_start_depth(engine)(w['rgb'][0], w['poses'][0], w['K'])
    frame = engine.reset(w['rgb'][0], w['poses'][0], w['K'])
    assert depth.shape == w['rgb'].shape[1:3] and depth.dtype == np.float32
    np.testing.assert_array_equal(depth, frame.depth)
