import mujoco
import numpy as np
import pytest
import torch

from worldscape_ros.model.camera import intrinsics_from_fov, project, unproject_depth
from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.synthetic.builder import FreeSpace, SceneSpec
from worldscape_ros.synthetic.episodes import nav_episode
from worldscape_ros.synthetic.render import SceneRenderer
from worldscape_ros.synthetic.scenes import make_scene


def _pose(x=0.0, y=0.0, yaw=0.3, pitch=0.1):
    return camera_pose(BaseState(x=x, y=y, yaw=yaw, pitch=pitch, height=1.0))


def test_depth_is_metric_z_depth_against_mujoco_ray_casts():
    scene = make_scene('room', 2)
    W, H = 64, 48
    c2w = _pose(*scene.free_space.sample(np.random.default_rng(1)))
    with SceneRenderer(scene, W, H) as r:
        _, depth = r.render(c2w)
        K = r.intrinsics
        errors = []
        for v in range(2, H, 5):
            for u in range(2, W, 5):
                d_cam = np.linalg.inv(K) @ np.array([u + 0.5, v + 0.5, 1.0])  # z = 1
                d_world = c2w[:3, :3] @ d_cam
                geom = np.zeros(1, np.int32)
                dist = mujoco.mj_ray(r.model, r.data, c2w[:3, 3], d_world / np.linalg.norm(d_world), None, 1, -1,
                                     geom)
                assert geom[0] >= 0
                errors.append(depth[v, u] - dist / np.linalg.norm(d_world))  # distance along the ray -> z
    errors = np.abs(np.array(errors))
    assert np.median(errors) < 2e-3
    assert np.quantile(errors, 0.9) < 1e-2  # pixels on object edges may differ


def _marker_scene() -> SceneSpec:
    mjcf = """<mujoco><statistic extent="10" center="0 0 0"/><visual><map znear="0.002" zfar="2"/>
      <headlight ambient="1 1 1" diffuse="0 0 0" specular="0 0 0"/></visual><worldbody>
      <geom name="marker" type="sphere" size="0.1" pos="3.0 0.7 1.4" rgba="1 1 1 1"/></worldbody></mujoco>"""
    free = FreeSpace((-5, 5, -5, 5), np.zeros((0, 5)), np.zeros((0, 3)))
    return SceneSpec('room', 0, mjcf, {}, free, max_depth=20.0)


@pytest.mark.parametrize('size', [(96, 72), (160, 90)])
def test_project_lands_on_the_pixel_mujoco_draws_a_point_at(size):
    W, H = size
    c2w = _pose(yaw=0.1, pitch=-0.05)
    with SceneRenderer(_marker_scene(), W, H, vfov_deg=50.0) as r:
        rgb, depth = r.render(c2w)
        assert np.allclose(r.intrinsics, intrinsics_from_fov(W, H, 50.0))
        mask = rgb[..., 0] > 128
        v, u = np.nonzero(mask)
        drawn = np.array([u.mean() + 0.5, v.mean() + 0.5])  # centroid of the marker's pixel centres
        uv, z = project(torch.tensor([[3.0, 0.7, 1.4]], dtype=torch.float64), torch.linalg.inv(torch.tensor(c2w)),
                        torch.tensor(r.intrinsics))
    assert np.abs(uv[0].numpy() - drawn).max() < 1.0
    assert depth[mask].min() == pytest.approx(float(z[0]) - 0.1, abs=0.01)  # nearest surface of the sphere


def test_points_seen_in_two_frames_reproject_within_one_pixel():
    ep = nav_episode(4, 'random_walk', 6, 96, 72)
    d0, d1 = torch.tensor(ep.depth[0], dtype=torch.float64), torch.tensor(ep.depth[5], dtype=torch.float64)
    c0, c1 = torch.tensor(ep.poses[0]), torch.tensor(ep.poses[5])
    K = torch.tensor(ep.intrinsics)
    assert not torch.allclose(c0, c1)
    pts = unproject_depth(d0, c0, K).reshape(-1, 3)  # (H*W, 3) world points seen in frame 0
    uv1, z1 = project(pts, torch.linalg.inv(c1), K)
    H, W = d1.shape
    ui, vi = uv1[:, 0].floor().long(), uv1[:, 1].floor().long()
    inside = (z1 > 0.1) & (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    idx = torch.nonzero(inside).squeeze(1)
    seen = (d1[vi[idx], ui[idx]] - z1[idx]).abs() < 0.02  # not occluded in frame 1
    idx = idx[seen]
    assert len(idx) > 0.3 * H * W
    back = unproject_depth(d1, c1, K)[vi[idx], ui[idx]]  # frame 1's surface at those pixels
    uv0, _ = project(back, torch.linalg.inv(c0), K)
    v0, u0 = idx // W, idx % W
    err = (uv0 - torch.stack([u0 + 0.5, v0 + 0.5], -1).double()).norm(dim=-1)
    assert torch.quantile(err, 0.95) < 1.0


def test_rerendering_a_seed_is_byte_identical():
    c2w = _pose()
    with SceneRenderer(make_scene('yard', 5), 48, 32) as a:
        rgb_a, depth_a = a.render(c2w)
    with SceneRenderer(make_scene('yard', 5), 48, 32) as b:
        rgb_b, depth_b = b.render(c2w)
    assert rgb_a.tobytes() == rgb_b.tobytes() and depth_a.tobytes() == depth_b.tobytes()


def test_sky_and_far_leaks_are_clamped_to_the_scene_maximum_depth():
    scene = make_scene('yard', 1)
    with SceneRenderer(scene, 32, 24) as r:
        _, depth = r.render(camera_pose(BaseState(pitch=-0.5, height=1.0)))
    assert np.isfinite(depth).all() and depth.max() <= scene.max_depth + 1e-3


def test_bad_sizes_poses_and_use_after_close_are_errors():
    scene = make_scene('room', 0)
    with pytest.raises(ValueError, match='render size must be positive'):
        SceneRenderer(scene, 0, 10)
    r = SceneRenderer(scene, 16, 12)
    with pytest.raises(ValueError, match='c2w'):
        r.render(np.eye(3))
    r.close()
    with pytest.raises(RuntimeError, match='after close'):
        r.render(np.eye(4))


def test_textures_give_sift_enough_matches_between_nearby_views():
    import cv2

    scene = make_scene('room', 6)
    x, y = scene.free_space.sample(np.random.default_rng(6))
    with SceneRenderer(scene, 256, 192) as r:
        a, _ = r.render(_pose(x, y, yaw=0.0, pitch=0.0))
        b, _ = r.render(_pose(x + 0.2, y + 0.05, yaw=0.1, pitch=0.0))
        K = r.intrinsics
    sift = cv2.SIFT_create()
    ka, da = sift.detectAndCompute(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), None)
    kb, db = sift.detectAndCompute(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)
    pairs = cv2.BFMatcher().knnMatch(da, db, k=2)
    good = [m for m, n in pairs if m.distance < 0.75 * n.distance]
    pa = np.float64([ka[m.queryIdx].pt for m in good])
    pb = np.float64([kb[m.trainIdx].pt for m in good])
    _, inliers = cv2.findEssentialMat(pa, pb, K, method=cv2.RANSAC, threshold=1.0)
    assert int(inliers.sum()) >= 30, f'{int(inliers.sum())} inliers of {len(good)} matches'


def test_renderers_sharing_the_process_gl_context_do_not_disturb_each_other():
    c2w = _pose()
    with SceneRenderer(make_scene('room', 1), 40, 30) as a, SceneRenderer(make_scene('yard', 1), 56, 42) as b:
        first = a.render(c2w)
        other = b.render(c2w)
        again = a.render(c2w)
    assert other[0].shape == (42, 56, 3)
    assert first[0].tobytes() == again[0].tobytes() and first[1].tobytes() == again[1].tobytes()
