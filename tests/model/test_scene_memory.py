import numpy as np
import pytest
import torch

from worldscape_ros.eval.baselines import forward_warp
from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.config import SceneConfig
from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.model.scene_memory import BYTES_PER_POINT, IMAGINED, OBSERVED, SceneMemory

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
