import dataclasses

import cv2
import numpy as np
import pytest
import torch

from worldscape_ros.errors import ConfigError
from worldscape_ros.eval.baselines import forward_warp
from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.config import ModelConfig, RepeatsConfig
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.grasp import GraspTracker
from worldscape_ros.model.guess import repeated, start_scene
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.repeats import RepeatPlane, SourceView, SurfaceRepeats, planes_from_state, planes_state
from worldscape_ros.model.scene_memory import IMAGINED, OBSERVED, SceneMemory
from worldscape_ros.model.session import load_session, save_session
from worldscape_ros.model.world_model import WorldModel

H, W = 96, 128
K = intrinsics_from_fov(W, H, 60.0)
WALL_X = 3.0  # a wall at x = 3 m, facing the camera at the origin (REP-103: x forward, y left, z up)
PERIOD = 1.5  # m, along the wall and up it
CELLS = 12  # texture cells per period (12.5 cm: about 3.5 pixels at 3 m)


def cells(seed: int, repeating: bool) -> np.ndarray:
    """The wall's paper: a colour per cell, one period of them tiled, or all distinct (no repeat)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.95, (CELLS, CELLS, 3) if repeating else (20 * CELLS, 20 * CELLS, 3))


def wall_view(paper: np.ndarray, y: float = 0.0, size: tuple[int, int] = (H, W)
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a camera at (0, y, 1) looking down +x sees of the wall at `size` (height, width), 60 degrees: rgb (H, W,
    3) float, depth (H, W), pose."""
    c2w = camera_pose(BaseState(x=0.0, y=y, yaw=0.0, height=1.0))
    h, w = size
    k = intrinsics_from_fov(w, h, 60.0)
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1) @ c2w[:3, :3].T
    t = (WALL_X - c2w[0, 3]) / rays[..., 0]
    hit = c2w[:3, 3] + rays * t[..., None]  # (H, W, 3) on the wall
    size = CELLS if len(paper) == CELLS else len(paper)
    cell = PERIOD / CELLS
    iy = np.floor(hit[..., 1] / cell).astype(int) % size
    iz = np.floor(hit[..., 2] / cell).astype(int) % size
    return paper[iy, iz], t.astype(np.float32), c2w  # rays have camera z 1: t is z-depth


def fit(rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray) -> SurfaceRepeats:
    return SurfaceRepeats.from_frame(rgb, depth, c2w, K, RepeatsConfig(enabled=True))


def test_the_period_of_a_repeating_wall_is_found_along_it_and_up_it():
    rgb, depth, c2w = wall_view(cells(0, repeating=True))
    [wall] = fit(rgb, depth, c2w).planes
    assert abs(abs(wall.normal[0]) - 1) < 1e-3  # the wall's plane, x = 3
    lengths = np.array([np.linalg.norm(s) for s in wall.shifts]).reshape(-1, 4)  # per axis: P, -P, 2P, -2P
    # to within about half a pixel at 3 m (1.8 cm)
    assert lengths[:, 0] == pytest.approx([PERIOD, PERIOD], abs=0.03)
    assert np.allclose(lengths, lengths[:, :1] * [1, 1, 2, 2])
    directions = {tuple(np.round(np.abs(s) / np.linalg.norm(s), 3)) for s in wall.shifts}
    assert directions == {(0.0, 1.0, 0.0), (0.0, 0.0, 1.0)}


def test_a_wall_that_does_not_repeat_gives_no_period_and_fills_nothing():
    rgb, depth, c2w = wall_view(cells(1, repeating=False))
    repeats = fit(rgb, depth, c2w)
    assert all(not p.shifts for p in repeats.planes)
    _, moved_depth, moved = wall_view(cells(1, repeating=False), y=1.0)
    seen_rgb, seen = forward_warp((rgb * 255).round().astype(np.uint8), depth, c2w, moved, K)
    seen_rgb = seen_rgb / 255.0
    assert not repeats.fill(seen_rgb, seen, moved, K)[2].any()


def test_a_strafe_reveals_wall_that_the_fill_copies_from_a_period_away_as_the_truth():
    paper = cells(2, repeating=True)
    rgb, depth, c2w = wall_view(paper)
    truth, true_depth, moved = wall_view(paper, y=1.0)  # a metre left: a strip at the left edge is new
    seen_rgb, seen = forward_warp((rgb * 255).round().astype(np.uint8), depth, c2w, moved, K)
    seen_rgb = seen_rgb / 255.0
    holes = ~(seen > 0)
    assert holes.mean() > 0.1
    copy, copy_depth, filled = fit(rgb, depth, c2w).fill(seen_rgb, seen, moved, K)
    assert not (filled & ~holes).any()  # what is covered is never drawn over
    assert filled[holes].mean() > 0.9
    assert np.abs(copy_depth[filled] - true_depth[filled]).max() < 1e-3
    # the copy is the truth but where a sample falls on a cell's edge
    assert np.median(np.abs(copy[filled] - truth[filled])) < 0.01


def test_the_local_check_refuses_a_copy_whose_covered_neighbours_disagree_with_their_shifted_places():
    paper = cells(7, repeating=True)
    rgb, depth, c2w = wall_view(paper)
    _, _, moved = wall_view(paper, y=1.0)
    seen_rgb, seen = forward_warp((rgb * 255).round().astype(np.uint8), depth, c2w, moved, K)
    seen_rgb = seen_rgb / 255.0
    planes = fit(rgb, depth, c2w).planes
    source = fit(rgb, depth, c2w).source
    strict = SurfaceRepeats(planes, source, RepeatsConfig(enabled=True, local_score=0.5))
    assert strict.fill(seen_rgb, seen, moved, K)[2].mean() > 0.1  # the true period
    wrong = [RepeatPlane(p.normal, p.offset, tuple(s * 0.77 for s in p.shifts)) for p in planes]
    assert SurfaceRepeats(wrong, source, RepeatsConfig(enabled=True)).fill(  # unchecked, a wrong period is copied
        seen_rgb, seen, moved, K)[2].mean() > 0.1
    assert not SurfaceRepeats(wrong, source, RepeatsConfig(enabled=True, local_score=0.5)).fill(
        seen_rgb, seen, moved, K)[2].any()


def test_the_local_check_refuses_only_where_covered_neighbours_in_view_disagree():
    rgb, depth, c2w = wall_view(cells(8, repeating=True))
    repeats = SurfaceRepeats([], fit(rgb, depth, c2w).source, RepeatsConfig(enabled=True, local_score=0.5))
    contrast = np.abs(rgb - cv2.blur(rgb, (9, 9))).mean(-1)
    everywhere, nowhere = np.ones((H, W), bool), np.zeros((H, W), bool)
    assert repeats._agrees(rgb, contrast, rgb, everywhere).all()  # their places show what they show
    wrong = np.roll(rgb, 5, axis=1)  # a shift that is not the paper's period
    assert repeats._agrees(rgb, contrast, wrong, everywhere)[:, 10:-10].mean() < 0.05
    # the start frame saw none of their places a period along: nothing refutes the copy
    assert repeats._agrees(rgb, contrast, wrong, nowhere).all()


def test_the_source_view_samples_between_pixel_centres_and_only_where_it_sees_the_plane():
    rgb, depth, c2w = wall_view(cells(0, repeating=True))
    [wall] = fit(rgb, depth, c2w).planes
    u = np.arange(W) + 0.5  # pixel centres
    ramp = np.broadcast_to((u / W)[None, :, None], (H, W, 3)).astype(np.float32)  # red = horizontal position
    source = SourceView(ramp, depth, c2w, K)
    on_plane = source.on_plane(wall, 0.03)
    assert on_plane.all()

    def on_wall(x_px: float, y_px: float) -> np.ndarray:
        """The wall's point seen at image position (x_px, y_px), pixel centres at +0.5."""
        ray = c2w[:3, :3] @ np.array([(x_px - K[0, 2]) / K[0, 0], (y_px - K[1, 2]) / K[1, 1], 1.0])
        return c2w[:3, 3] + ray * (WALL_X - c2w[0, 3]) / ray[0]

    points = np.array([on_wall(10.25, 48.5), on_wall(60.5, 48.5)])  # between two centres; on one
    colour, seen = source.sample(points, on_plane)
    assert seen.all()
    np.testing.assert_allclose(colour[:, 0], [10.25 / W, 60.5 / W], atol=1e-4)
    hidden = on_plane.copy()
    hidden[40:56, 55:66] = False  # something in front of the wall there
    assert list(source.sample(points, hidden)[1]) == [True, False]


def test_a_view_with_nothing_covered_has_nothing_to_continue_and_fills_nothing():
    rgb, depth, c2w = wall_view(cells(6, repeating=True))
    repeats = fit(rgb, depth, c2w)
    _, _, filled = repeats.fill(np.zeros((H, W, 3)), np.zeros((H, W)), c2w, K)
    assert not filled.any()


def test_the_scene_memory_render_takes_the_copy_as_imagined_and_keeps_what_was_observed():
    cfg = ModelConfig(height=H, width=W, repeats=RepeatsConfig(enabled=True))
    paper = cells(3, repeating=True)
    rgb, depth, c2w = wall_view(paper)
    scene = SceneMemory(cfg.scene)
    start_scene(cfg, scene, GraspTracker(cfg), torch.from_numpy(rgb).float().permute(2, 0, 1),
                torch.from_numpy(depth), c2w, K, None)
    assert scene.repeat_planes and scene.repeat_planes[0].shifts
    truth, _, moved = wall_view(paper, y=1.0)
    render = scene.render(moved, K, H, W)
    out = repeated(cfg, scene, render, moved, K)
    new = out.mask & ~render.mask
    assert new.float().mean() > 0.1
    assert bool((out.trust[new] == IMAGINED).all())
    kept = render.mask
    assert torch.equal(out.rgb[:, kept], render.rgb[:, kept]) and bool((out.trust[kept] == OBSERVED).all())
    err = (out.rgb.permute(1, 2, 0)[new] - torch.from_numpy(truth).float()[new]).abs()
    assert float(err.median()) < 0.01
    again = repeated(cfg, scene, scene.render(moved, K, H, W), moved, K)  # a second look: the same
    assert torch.equal(again.rgb, out.rgb)


def test_repeat_planes_ride_in_the_scene_memory_state_and_come_back_equal():
    cfg = RepeatsConfig(enabled=True)
    rgb, depth, c2w = wall_view(cells(4, repeating=True))
    scene = SceneMemory()
    scene.commit(torch.from_numpy(rgb).float().permute(2, 0, 1), torch.from_numpy(depth), c2w, K, trust=OBSERVED)
    repeats = SurfaceRepeats.from_frame(rgb, depth, c2w, K, cfg)
    scene.repeat_planes, scene.repeat_source = repeats.planes, repeats.source
    back = SceneMemory()
    back.load_state(scene.state())
    assert len(back.repeat_planes) == len(scene.repeat_planes)
    for a, b in zip(back.repeat_planes, scene.repeat_planes):
        assert np.array_equal(a.normal, b.normal) and a.offset == b.offset
        assert np.array_equal(np.array(a.shifts), np.array(b.shifts))
    assert back.repeat_source is not None
    for name in ('rgb', 'depth', 'c2w', 'K'):
        assert np.array_equal(getattr(back.repeat_source, name), getattr(repeats.source, name))
    # the same copies from the loaded session as from the live one
    _, _, moved = wall_view(cells(4, repeating=True), y=1.0)
    seen_rgb, seen = forward_warp((rgb * 255).round().astype(np.uint8), depth, c2w, moved, K)
    live = repeats.fill(seen_rgb / 255.0, seen, moved, K)
    loaded = SurfaceRepeats(back.repeat_planes, back.repeat_source, cfg).fill(seen_rgb / 255.0, seen, moved, K)
    assert live[2].any() and all(np.array_equal(a, b) for a, b in zip(live, loaded))
    state = scene.state()
    for key in [k for k in state if k.startswith('scene.repeat_')]:
        del state[key]
    back.load_state(state)  # a session saved without repeats
    assert back.repeat_planes == [] and back.repeat_source is None


def good_state() -> dict[str, np.ndarray]:
    rgb, depth, c2w = wall_view(cells(5, repeating=True))
    return planes_state(*(lambda r: (r.planes, r.source))(fit(rgb, depth, c2w)))


def test_an_engine_session_saved_after_copies_continues_with_the_frames_of_the_uninterrupted_run(
        micro_config, randomize, tmp_path):
    cfg = dataclasses.replace(micro_config, repeats=RepeatsConfig(enabled=True, share_periods=True, local_score=0.5))
    rgb, depth, c2w = wall_view(cells(9, repeating=True), size=(cfg.height, cfg.width))
    strafe = [NavAction(vy=0.5)] * 3

    def engine(seed: int) -> WorldEngine:
        torch.manual_seed(0)
        return WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=seed), weights_sha256='a' * 64)

    live = engine(5)
    live.reset((rgb * 255).round().astype(np.uint8), c2w, depth=depth)
    assert live.scene.repeat_planes and live.scene.repeat_planes[0].shifts  # the wall's period was found
    for a in strafe:
        live.step(a)
    save_session(live, tmp_path / 'session.safetensors')
    uninterrupted = [live.step(a) for a in strafe]
    fresh = engine(11)
    load_session(fresh, tmp_path / 'session.safetensors')
    assert fresh.scene.repeat_source is not None and len(fresh.scene.repeat_planes) == len(live.scene.repeat_planes)
    for a, b in zip([fresh.step(a) for a in strafe], uninterrupted, strict=True):
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)


@pytest.mark.parametrize('change, match', [
    ({'planes': np.zeros((2, 3))}, 'must be'),
    ({'shifts': np.array([[1.0, 0, 1, 0]])}, 'outside'),
    ({'shifts': np.array([[0.5, 0, 1, 0]])}, 'outside'),
    ({'planes': np.full((1, 4), np.nan)}, 'non-finite'),
    ({'source_rgb': np.zeros((4, 4, 3))}, 'source view must be'),
    ({'source_pose': np.full((4, 4), np.inf)}, 'source view holds non-finite'),
    ({'source_depth': None}, 'lacks source_depth'),
])
def test_malformed_repeat_planes_are_refused_naming_what_is_wrong(change, match):
    state = {**good_state(), **change}
    state = {k: v for k, v in state.items() if v is not None}
    with pytest.raises(ValueError, match=match):
        planes_from_state(state)


def test_planes_state_round_trips():
    rgb, depth, c2w = wall_view(cells(5, repeating=True))
    repeats = fit(rgb, depth, c2w)
    planes, source = planes_from_state(planes_state(repeats.planes, repeats.source))
    assert [p.offset for p in planes] == [p.offset for p in repeats.planes]
    assert np.array_equal(source.rgb, repeats.source.rgb)


@pytest.mark.parametrize('field, value', [('max_planes', 0), ('period_step_m', 0.0), ('depth_tol', float('nan')),
                                          ('max_period_m', 0.5), ('min_pairs', True), ('local_score', -1.0),
                                          ('reach_px', float('inf'))])
def test_bad_repeats_settings_are_refused(field, value):
    with pytest.raises(ConfigError, match=f'repeats.{field}|max_period_m'):
        RepeatsConfig(**{field: value})
