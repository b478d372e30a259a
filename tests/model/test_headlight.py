import math

import numpy as np
import pytest
import torch

from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.config import ConfigError, SceneConfig, load_config
from worldscape_ros.model.headlight import facing, normals, relit, shading
from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.model.scene_memory import IMAGINED, OBSERVED, SceneMemory, ScenePoints

H, W = 24, 32
K = intrinsics_from_fov(W, H, 60.0)
Kt = torch.from_numpy(K).float()


def tilted_plane(angle: float, distance: float = 2.0) -> torch.Tensor:
    """(H, W) z-depth of a plane turned `angle` rad about the camera's vertical axis, `distance` m along its axis."""
    u = torch.arange(W, dtype=torch.float32) + 0.5
    x = (u - K[0, 2]) / K[0, 0]  # x / z along each column
    z = distance * math.cos(angle) / (math.cos(angle) + math.sin(angle) * x)
    return z.expand(H, W).clone()


def pose(yaw: float = 0.0, x: float = 0.0) -> np.ndarray:
    return camera_pose(BaseState(x=x, yaw=yaw, height=1.0))


@pytest.mark.parametrize('angle', [0.0, 0.3, 0.7])
def test_a_plane_faces_the_camera_by_the_cosine_of_its_turn(angle):
    f = -normals(tilted_plane(angle), Kt)[2]
    assert torch.allclose(f[:, 3:-3], torch.full_like(f[:, 3:-3], math.cos(angle)), atol=1e-4)


def test_no_normal_is_made_across_a_depth_edge():
    depth = torch.full((H, W), 1.0)
    depth[:, W // 2:] = 3.0  # two walls, both head-on, one behind the other
    n = normals(depth, Kt)
    assert torch.allclose(n[2], torch.full((H, W), -1.0), atol=1e-5)  # beside the edge too


def test_no_depth_no_normal_and_no_facing():
    depth = tilted_plane(0.2)
    depth[5:9, 5:9] = 0
    n = normals(depth, Kt)
    assert bool((n[:, 5:9, 5:9] == 0).all())
    assert bool((facing(n.permute(1, 2, 0), torch.tensor([0.0, 0.0, 1.0]))[5:9, 5:9] == 0).all())


def test_a_colour_seen_as_it_faces_is_kept_and_otherwise_scaled_by_the_shading():
    rgb = torch.rand(3, H, W) * 0.6
    f = torch.rand(H, W)
    assert torch.equal(relit(rgb, f, f, 0.4), rgb)
    assert torch.allclose(relit(rgb, torch.ones(H, W), f, 0.4), rgb * (0.6 + 0.4 * f))
    assert torch.allclose(shading(torch.tensor([0.0, 1.0]), 0.4), torch.tensor([0.6, 1.0]))


def wall_memory(share: float) -> SceneMemory:
    sm = SceneMemory(SceneConfig(headlight=share, voxel_m=5e-4))
    sm.commit(torch.full((3, H, W), 0.5), torch.full((H, W), 2.0), pose(), K, trust=OBSERVED)
    return sm


def test_a_scene_seen_again_from_where_it_was_seen_is_exactly_as_seen():
    rng = np.random.default_rng(0)
    rgb = torch.from_numpy(rng.integers(0, 256, (3, H, W)).astype(np.float32) / 255)
    depth = torch.from_numpy(2.0 + rng.uniform(0, 1.0, (H, W)).astype(np.float32))
    sm = SceneMemory(SceneConfig(headlight=0.4))
    sm.commit(rgb, depth, pose(yaw=0.3), K, trust=OBSERVED)
    r = sm.render(pose(yaw=0.3), K, H, W)
    assert bool(r.mask.all()) and torch.equal((r.rgb * 255).round(), (rgb * 255).round())


def test_a_wall_seen_at_a_glancing_angle_is_darker_by_the_cameras_share():
    yaw = 0.6
    turned = wall_memory(0.4).render(pose(yaw=yaw), K, H, W)
    plain = wall_memory(0.0).render(pose(yaw=yaw), K, H, W)
    expected = 0.5 * float(shading(torch.tensor(math.cos(yaw)), 0.4))
    assert torch.allclose(turned.rgb[:, turned.mask], torch.full((3, int(turned.mask.sum())), expected), atol=2 / 255)
    assert torch.allclose(plain.rgb[:, plain.mask], torch.full((3, int(plain.mask.sum())), 0.5), atol=1 / 255)


@pytest.mark.parametrize('trust, measured', [(IMAGINED, True), (OBSERVED, False)])
def test_a_wall_whose_depth_is_a_guess_is_drawn_as_committed_from_any_angle(trust, measured):
    sm = SceneMemory(SceneConfig(headlight=0.4, voxel_m=5e-4))
    sm.commit(torch.full((3, H, W), 0.5), torch.full((H, W), 2.0), pose(), K, trust=trust, depth_measured=measured)
    r = sm.render(pose(yaw=0.6), K, H, W)
    assert bool(r.mask.any()) and torch.allclose(r.rgb[:, r.mask], torch.full((3, int(r.mask.sum())), 0.5),
                                                  atol=1 / 255)


def test_walking_straight_at_a_wall_keeps_its_colour():
    r = wall_memory(0.4).render(pose(x=0.5), K, H, W)
    assert bool(r.mask.any()) and torch.allclose(r.rgb[:, r.mask], torch.full((3, int(r.mask.sum())), 0.5),
                                                  atol=1 / 255)


def test_a_session_keeps_the_normals():
    sm = wall_memory(0.4)
    other = SceneMemory(sm.config)
    other.load_state(sm.state())
    a, b = sm.render(pose(yaw=0.3), K, H, W), other.render(pose(yaw=0.3), K, H, W)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.mask, b.mask)


def test_a_session_saved_without_lighting_renders_its_colours_as_held():
    state = {k: v for k, v in wall_memory(0.4).state().items() if k != 'scene.lighting'}
    other = SceneMemory(SceneConfig(headlight=0.4, voxel_m=5e-4))
    other.load_state(state)
    r = other.render(pose(yaw=0.3), K, H, W)
    assert torch.allclose(r.rgb[:, r.mask], torch.full((3, int(r.mask.sum())), 0.5), atol=1 / 255)


def test_moved_points_turn_their_normals_and_keep_how_they_were_seen():
    pts = ScenePoints(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.uint8), torch.zeros(1, dtype=torch.uint8),
                      torch.zeros(1, dtype=torch.int32), torch.tensor([[127, 0, 0, 90]], dtype=torch.int8))
    quarter = torch.eye(4)
    quarter[:2, :2] = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # 90 deg about z
    moved = pts.moved(quarter)
    assert moved.lighting is not None and moved.lighting.tolist() == [[0, 127, 0, 90]]  # as it was seen


def test_the_share_is_checked_and_saved_only_when_set():
    cfg = load_config('ws-tiny')
    plain = cfg.replace(scene=SceneConfig()).to_dict()
    assert 'headlight' not in plain.get('scene', {})
    set_ = cfg.replace(scene=SceneConfig(headlight=0.4))
    assert set_.to_dict()['scene']['headlight'] == 0.4
    with pytest.raises(ConfigError, match=r'scene.headlight must be in \[0, 1\), got 1.0'):
        cfg.replace(scene=SceneConfig(headlight=1.0))
