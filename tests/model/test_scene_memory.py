import numpy as np
import pytest
import torch

from worldscape_ros.eval.baselines import forward_warp
from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.config import SceneConfig
from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.model.reproject import _rigid_inverse, _zbuffer
from worldscape_ros.model.scene_memory import BYTES_PER_POINT, IMAGINED, OBSERVED, SceneMemory, ScenePoints

H, W = 24, 32
K = intrinsics_from_fov(W, H, 60.0)


def frame(seed: int = 0, depth: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    rgb = torch.from_numpy(rng.integers(0, 256, (3, H, W)).astype(np.float32) / 255)
    d = torch.from_numpy(depth + rng.uniform(0, 1.0, (H, W)).astype(np.float32))
    return rgb, d


def pose(x: float = 0.0, y: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    return camera_pose(BaseState(x=x, y=y, yaw=yaw, height=1.0))


def test_a_committed_frame_renders_back_into_its_own_camera_exactly():
    rgb, d = frame()
    sm = SceneMemory()
    sm.commit(rgb, d, pose(), K, trust=OBSERVED)
    r = sm.render(pose(), K, H, W)
    assert bool(r.mask.all())
    assert torch.equal((r.rgb * 255).round(), (rgb * 255).round())
    assert torch.allclose(r.depth, d, atol=1e-4)
    assert bool((r.trust == OBSERVED).all()) and bool((r.born == 0).all())


def test_the_render_into_another_camera_equals_the_supersampled_forward_warp():
    rgb, d = frame(1)
    sm = SceneMemory(SceneConfig(voxel_m=1e-4))  # no voxel merges: the warp's points exactly
    sm.commit(rgb, d, pose(), K)
    target = pose(x=0.1, yaw=0.2)
    r = sm.render(target, K, H, W, fill_cracks=False)
    img = (rgb * 255).round().byte().permute(1, 2, 0).numpy()
    warp, warp_depth = forward_warp(img, d.numpy(), pose(), target, K)
    assert np.array_equal(r.mask.numpy(), warp_depth > 0)
    mine = (r.rgb * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(mine[r.mask.numpy()], warp[warp_depth > 0])


def test_looking_again_adds_no_points():
    rgb, d = frame()
    sm = SceneMemory()
    n = sm.commit(rgb, d, pose(), K)
    assert n > 0 and len(sm) == n
    assert sm.commit(rgb, d, pose(), K) == 0
    assert len(sm) == n and sm.nbytes == n * BYTES_PER_POINT


def test_the_older_point_wins_a_voxel():
    rgb, d = frame()
    sm = SceneMemory()
    sm.commit(rgb, d, pose(), K, trust=OBSERVED)
    sm.commit(torch.zeros_like(rgb), d, pose(), K, trust=IMAGINED, frame_index=5)
    r = sm.render(pose(), K, H, W)
    assert torch.equal((r.rgb * 255).round(), (rgb * 255).round())


def test_over_budget_imagined_points_go_before_observed_ones():
    rgb, d = frame()
    per_frame = H * W * 4
    sm = SceneMemory(SceneConfig(budget_mb=1.5 * per_frame * BYTES_PER_POINT / 2**20))
    sm.commit(rgb, d, pose(), K, trust=OBSERVED)
    observed = len(sm)
    sm.commit(rgb, d + 5.0, pose(yaw=0.1), K, trust=IMAGINED, frame_index=1)
    assert len(sm) <= sm.max_points and sm.pruned > 0
    assert int((sm.trust == round(OBSERVED * 255)).sum()) == observed


def test_only_masked_pixels_are_committed():
    rgb, d = frame()
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[:, : W // 2] = True
    sm = SceneMemory()
    sm.commit(rgb, d, pose(), K, mask=mask)
    r = sm.render(pose(), K, H, W, fill_cracks=False)
    assert torch.equal(r.mask, mask)


def test_state_round_trips():
    rgb, d = frame()
    sm = SceneMemory()
    sm.commit(rgb, d, pose(), K)
    other = SceneMemory()
    other.load_state(sm.state())
    a, b = sm.render(pose(x=0.2), K, H, W), other.render(pose(x=0.2), K, H, W)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.mask, b.mask)
    assert other.commit(rgb, d, pose(), K) == 0  # the voxel index came back too


@pytest.mark.parametrize('call, match', [
    (lambda sm, rgb, d: sm.commit(rgb[:2], d, pose(), K), 'rgb must be'),
    (lambda sm, rgb, d: sm.commit(rgb, d[:5], pose(), K), 'depth must be'),
    (lambda sm, rgb, d: sm.commit(rgb, d, pose(), K, trust=0.0), 'trust'),
    (lambda sm, rgb, d: sm.commit(rgb, d, np.full((4, 4), np.nan), K), 'c2w'),
    (lambda sm, rgb, d: sm.load_state({}), 'lacks'),
])
def test_bad_input_is_one_clear_value_error(call, match):
    rgb, d = frame()
    with pytest.raises(ValueError, match=match):
        call(SceneMemory(), rgb, d)


def test_far_and_invalid_depth_is_not_committed():
    rgb, d = frame()
    d[0, :] = float('inf')
    d[1, :] = -1.0
    d[2, :] = 1e4
    sm = SceneMemory()
    sm.commit(rgb, d, pose(), K)
    r = sm.render(pose(), K, H, W, fill_cracks=False)
    assert not bool(r.mask[:3].any()) and bool(r.mask[3:].all())


def test_an_imagined_point_never_hides_an_observed_one():
    rgb, d = frame()
    sm = SceneMemory()
    sm.commit(rgb, d, pose(), K, trust=OBSERVED)
    # an imagined surface half way to the camera, seen from a little aside so its voxels are new
    sm.commit(torch.zeros_like(rgb), d / 2, pose(x=0.05), K, trust=IMAGINED, frame_index=1)
    r = sm.render(pose(), K, H, W)
    assert bool((r.trust[r.mask] == OBSERVED).all())
    assert torch.equal((r.rgb * 255).round(), (rgb * 255).round())


@pytest.mark.parametrize('crack_px, drawn', [(0, True), (3, False)])
def test_imagined_points_behind_a_crack_in_an_observed_surface_are_not_drawn_with_crack_px(crack_px, drawn):
    rgb, d = frame()
    seen = torch.ones(H, W, dtype=torch.bool)
    seen[:, 14:17] = False  # a crack three pixels wide
    seen[:, :3] = False  # an open strip at the border: no crack
    sm = SceneMemory(SceneConfig(crack_px=crack_px))
    sm.commit(rgb, d, pose(), K, mask=seen, trust=OBSERVED)
    sm.commit(torch.zeros_like(rgb), d * 2, pose(), K, trust=IMAGINED, frame_index=1)  # a surface behind it all
    r = sm.render(pose(), K, H, W)
    crack = r.mask[:, 14:17]
    assert bool(crack.all()) if drawn else not bool(crack.any())
    if not drawn:
        assert bool((r.depth[:, 14:17] == 0).all())  # empty, for the refiner to fill
    assert bool(((r.trust[:, :3] - IMAGINED).abs() < 0.01).all())  # the open strip shows the imagined surface
    assert bool((r.trust[seen] == OBSERVED).all())


def test_a_view_of_nothing_held_renders_empty():
    rgb, d = frame()
    sm = SceneMemory()
    sm.commit(rgb, d, pose(), K)
    r = sm.render(pose(yaw=np.pi), K, H, W)  # looking the other way
    assert not bool(r.mask.any()) and bool((r.born == -1).all())


def test_a_store_built_by_many_commits_holds_and_renders_what_one_sort_of_all_their_points_does():
    # the reference: each frame's points alone, joined in commit order, the first per voxel kept (the older
    # point wins), then sorted by voxel as load_state does; no merge involved
    sm, frames = SceneMemory(), []
    for i in range(12):
        j = i % 5  # each place looked at again, other pixels masked, under another trust and age
        rgb, d = frame(seed=j, depth=1.5 + 0.1 * j)
        c2w, trust = pose(x=0.15 * j, y=0.05 * (j % 3), yaw=0.3 * np.sin(j)), OBSERVED if i % 4 == 0 else IMAGINED
        mask = torch.from_numpy(np.random.default_rng(100 + i).random((H, W)) < 0.7)
        sm.commit(rgb, d, c2w, K, mask=mask, trust=trust, frame_index=i)
        alone = SceneMemory()
        alone.commit(rgb, d, c2w, K, mask=mask, trust=trust, frame_index=i)
        frames.append(alone.points())
    joined = {k: torch.cat([getattr(p, k) for p in frames]) for k in ('xyz', 'rgb', 'trust', 'born')}
    keys = sm._voxel_keys(joined['xyz'])
    _, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(keys)).scatter_reduce(
        0, inverse, torch.arange(len(keys)), reduce='amin')
    reference = SceneMemory()
    reference.load_state({f'scene.{k}': v[first] for k, v in joined.items()})
    assert len(sm) == len(reference) < sum(len(p) for p in frames)  # some voxels were seen twice
    for k in ('xyz', 'rgb', 'trust', 'born'):
        assert torch.equal(getattr(sm.points(), k), getattr(reference.points(), k)), k
    for c2w in (pose(), pose(x=0.8, yaw=0.4), pose(x=1.5, y=0.1, yaw=-0.5)):
        a, b = sm.render(c2w, K, H, W), reference.render(c2w, K, H, W)
        for k in ('rgb', 'depth', 'mask', 'trust', 'born'):
            assert torch.equal(getattr(a, k), getattr(b, k)), k


def full_render(sm: SceneMemory, c2w: np.ndarray, k: np.ndarray = K, h: int = H, w: int = W) -> dict[str, torch.Tensor]:
    """The render as a single sorted store made it: every point projected in voxel key order, equal depths won by
    the highest index (no side store, no cells), before crack filling."""
    p = sm.points()
    w2c = _rigid_inverse(torch.from_numpy(np.asarray(c2w, np.float64)).float())
    cam = (w2c[:3, :3] @ p.xyz.T + w2c[:3, 3:])[None]
    Kt = torch.from_numpy(np.asarray(k, np.float64)).float()[None]
    observed = (p.trust == round(OBSERVED * 255))[None]
    owner, depth = _zbuffer(cam, Kt, h, w, observed)
    owner_i, depth_i = _zbuffer(cam, Kt, h, w, ~observed)
    depth, owner = torch.where(owner >= 0, depth, depth_i)[0], torch.where(owner >= 0, owner, owner_i)[0]
    mask, i = owner >= 0, owner.clamp_min(0)
    return {'rgb': torch.where(mask, p.rgb[i].permute(2, 0, 1).float() / 255, 0.0), 'depth': depth, 'mask': mask,
            'trust': torch.where(mask, p.trust[i].float() / 255, 0.0), 'born': torch.where(mask, p.born[i].long(), -1)}


def tour(frames: int) -> list[tuple]:
    """Commits of a tour of overlapping frames along a corridor, some observed, under masks, at several ages:
    (rgb, depth, c2w, keyword arguments) each."""
    out = []
    for i in range(frames):
        rgb, d = frame(seed=i % 7, depth=1.2 + 0.1 * (i % 4))
        mask = torch.from_numpy(np.random.default_rng(200 + i).random((H, W)) < 0.8)
        out.append((rgb, d, pose(x=0.12 * i, y=0.04 * (i % 3), yaw=0.5 * np.sin(0.7 * i)),
                    dict(mask=mask, trust=OBSERVED if i % 5 == 0 else IMAGINED, frame_index=i)))
    return out


def toured(sm: SceneMemory, frames: int) -> SceneMemory:
    for rgb, d, c2w, kw in tour(frames):
        sm.commit(rgb, d, c2w, K, **kw)
    return sm


def random_pose(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = q, rng.uniform([-1.0, -1.5, -0.5], [6.0, 1.5, 2.5])
    return c2w


def test_a_store_built_through_side_merges_and_prunes_holds_and_renders_what_one_sorted_store_does():
    per_frame = H * W * 4
    config = SceneConfig(budget_mb=12 * per_frame * BYTES_PER_POINT / 2**20)
    sm = SceneMemory(config, side_fraction=0.4)  # the side store joins every few commits
    single = SceneMemory(config, side_fraction=0.0)  # merged at every commit
    merges, sides = 0, []
    for rgb, d, c2w, kw in tour(40):
        side = len(sm._side)
        assert sm.commit(rgb, d, c2w, K, **kw) == single.commit(rgb, d, c2w, K, **kw)
        merges += len(sm._side) < side
        sides.append(len(sm._side))
        assert len(sm) == len(single) and sm.pruned == single.pruned
    assert merges >= 3 and sm.pruned > 0 and max(sides) > 0  # the side store filled, joined, and pruning ran
    views = [pose(x=0.12 * i, yaw=0.3 * np.cos(i)) for i in range(0, 40, 3)] + [random_pose(np.random.default_rng(1))]
    for c2w in views:
        a, b = sm.render(c2w, K, H, W, fill_cracks=False), full_render(single, c2w)
        for k in ('rgb', 'depth', 'mask', 'trust', 'born'):
            assert torch.equal(getattr(a, k), b[k]), k
        a, b = sm.render(c2w, K, H, W), single.render(c2w, K, H, W)
        for k in ('rgb', 'depth', 'mask', 'trust', 'born'):
            assert torch.equal(getattr(a, k), getattr(b, k)), k
    for k in ('xyz', 'rgb', 'trust', 'born'):  # read last: reading joins the side store
        assert torch.equal(getattr(sm.points(), k), getattr(single.points(), k)), k


def test_equal_depths_go_to_the_higher_voxel_key_whichever_store_holds_it():
    k = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])  # one pixel: every point in view lands on it
    a = ScenePoints(torch.tensor([[0.001, 0.0, 2.0]]), torch.tensor([[10, 0, 0]], dtype=torch.uint8),
                    torch.tensor([255], dtype=torch.uint8), torch.tensor([1], dtype=torch.int32))
    b = ScenePoints(torch.tensor([[0.0031, 0.0, 2.0]]), torch.tensor([[20, 0, 0]], dtype=torch.uint8),
                    torch.tensor([255], dtype=torch.uint8), torch.tensor([2], dtype=torch.int32))
    for first, second in ((a, b), (b, a)):
        sm = SceneMemory(side_fraction=1.0)  # the side store joins when read, not at a commit
        sm.put(first)
        sm.points()
        sm.put(second)
        assert len(sm._main) == 1 and len(sm._side) == 1
        r = sm.render(np.eye(4), k, 1, 1, fill_cracks=False)
        assert int(r.born[0, 0]) == 2 and float(r.depth[0, 0]) == 2.0  # b: the higher x voxel, the higher key


def test_the_cells_out_of_view_hold_nothing_the_full_projection_draws():
    sm = toured(SceneMemory(side_fraction=0.0), 30)  # everything in the main store, under the cell index
    rng = np.random.default_rng(0)
    dropped = 0
    for _ in range(150):
        c2w = random_pose(rng)
        a, b = sm.render(c2w, K, H, W, fill_cracks=False), sm.render(c2w, K, H, W, fill_cracks=False, cull=False)
        for k in ('rgb', 'depth', 'mask', 'trust', 'born'):
            assert torch.equal(getattr(a, k), getattr(b, k)), k
        w2c = _rigid_inverse(torch.from_numpy(c2w).float())
        dropped += len(sm._index.visible(w2c, torch.from_numpy(K).float(), H, W, sm.config.voxel_m)) < len(sm)
    assert dropped > 100  # most views leave cells out


def test_a_point_beyond_the_voxel_grid_is_still_drawn():
    sm = SceneMemory()  # voxel keys reach +-2 km at 2 mm and clamp beyond: the clamped cell's box misses it
    far = ScenePoints(torch.tensor([[3000.0, 0.0, 0.0]]), torch.tensor([[9, 9, 9]], dtype=torch.uint8),
                      torch.tensor([255], dtype=torch.uint8), torch.tensor([3], dtype=torch.int32))
    sm.put(far)
    sm.put(ScenePoints(torch.zeros(1, 3), far.rgb, far.trust, torch.tensor([4], dtype=torch.int32)))
    c2w = np.eye(4)
    c2w[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # looking along +x
    c2w[:3, 3] = [2990.0, 0.0, 0.0]
    r = sm.render(c2w, K, H, W, fill_cracks=False)
    assert bool(r.mask.any()) and set(r.born[r.mask].tolist()) == {3}


def test_state_round_trips_with_points_still_in_the_side_store():
    sm = toured(SceneMemory(side_fraction=1.0), 3)
    sm.points()  # joined
    for rgb, d, c2w, kw in tour(6)[3:]:  # these stay in the side store
        sm.commit(rgb, d, c2w, K, **kw)
    assert len(sm._side) > 0 and len(sm._main) > 0
    seen = [sm.render(c2w, K, H, W) for c2w in (pose(x=0.3), pose(x=0.5, yaw=0.2))]
    other = SceneMemory()
    other.load_state(sm.state())
    assert len(other) == len(sm)
    for k in ('xyz', 'rgb', 'trust', 'born'):
        assert torch.equal(getattr(other.points(), k), getattr(sm.points(), k)), k
    for r, c2w in zip(seen, (pose(x=0.3), pose(x=0.5, yaw=0.2))):
        for got in (sm.render(c2w, K, H, W), other.render(c2w, K, H, W)):
            for k in ('rgb', 'depth', 'mask', 'trust', 'born'):
                assert torch.equal(getattr(got, k), getattr(r, k)), k
    rgb, d, c2w, kw = tour(1)[0]
    assert other.commit(rgb, d, c2w, K, **kw) == 0  # the voxel keys came back too


def test_a_negative_side_fraction_is_refused():
    with pytest.raises(ValueError, match='side_fraction'):
        SceneMemory(side_fraction=-0.1)


def test_the_observed_colour_is_the_mean_of_the_observed_points_alone_in_both_stores():
    sm = SceneMemory(side_fraction=1.0)  # what comes after the first join stays in the side store
    assert sm.observed_colour() is None
    red = torch.tensor([0.8, 0.2, 0.0])[:, None, None].expand(3, H, W)
    sm.commit(red, torch.full((H, W), 2.0), pose(), K, trust=OBSERVED)
    sm.points()  # joined: the red wall is in the main store
    sm.commit(torch.ones(3, H, W), torch.full((H, W), 3.0), pose(yaw=0.6), K, trust=IMAGINED, frame_index=1)
    blue = torch.tensor([0.0, 0.2, 0.8])[:, None, None].expand(3, H, W)
    sm.commit(blue, torch.full((H, W), 2.0), pose(yaw=-0.6), K, trust=OBSERVED, frame_index=2)
    assert len(sm._main) > 0 and len(sm._side) > 0
    joined = sm.points()
    seen = joined.trust == round(OBSERVED * 255)
    expected = joined.rgb[seen].double().mean(0) / 255
    assert torch.allclose(sm.observed_colour().double(), expected, atol=1e-6)
    assert 0.3 < float(sm.observed_colour()[0]) < 0.5  # red and blue, the white imagined points left out


def _observed_mean(sm: SceneMemory) -> torch.Tensor | None:
    p = sm.points()
    seen = p.trust == round(OBSERVED * 255)
    return (p.rgb[seen].double().sum(0) / (255 * int(seen.sum()))).float() if bool(seen.any()) else None


def test_the_running_observed_colour_follows_takes_puts_prunes_and_reloads():
    per_frame = H * W * 4
    sm = toured(SceneMemory(SceneConfig(budget_mb=6 * per_frame * BYTES_PER_POINT / 2**20)), 16)
    assert sm.pruned > 0  # the budget dropped points, observed ones among them
    assert torch.equal(sm.observed_colour(), _observed_mean(sm))
    held = sm.take(sm.points().trust == round(OBSERVED * 255))  # every observed point picked up
    assert len(held) > 0 and sm.observed_colour() is None and _observed_mean(sm) is None
    sm.put(held.moved(torch.eye(4)))
    assert torch.equal(sm.observed_colour(), _observed_mean(sm))
    other = SceneMemory(SceneConfig(budget_mb=6 * per_frame * BYTES_PER_POINT / 2**20))
    other.load_state(sm.state())
    assert torch.equal(other.observed_colour(), sm.observed_colour())
    sm.reset()
    assert sm.observed_colour() is None
