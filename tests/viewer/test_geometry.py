"""Back-projection, the voxel cloud, keyframes and hands: what the viewer draws, checked against geometry."""

import math

import numpy as np
import pytest
import transforms3d.quaternions as tq
from hypothesis import given, settings
from hypothesis import strategies as st

from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.hands import HAND_BONES
from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.viewer import geometry as geo

K = intrinsics_from_fov(16, 12, 60.0)


WALL_X = 4.0  # the wall x = 4 m of the world (REP-103), seen at a slant by POSE
POSE = camera_pose(BaseState(x=1.0, y=-2.0, yaw=0.4, pitch=0.2, height=1.2))


def wall_view(K: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colours, z-depth and the world point of every pixel of POSE looking at the wall, found by intersecting
    each pixel centre's ray with the plane (not by scaling a unit-depth ray, as the back-projection does)."""
    v, u = np.mgrid[0:height, 0:width]
    pix = np.stack([u + 0.5, v + 0.5, np.ones_like(u, dtype=float)], -1)  # (H, W, 3)
    ray = pix @ np.linalg.inv(K).T @ POSE[:3, :3].T  # world direction of the ray whose optical z grows by 1
    t = (WALL_X - POSE[0, 3]) / ray[..., 0]  # along that ray, t is the z-depth
    assert np.all(t > 0), 'the whole view must see the wall'
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return rgb, t.astype(np.float32), POSE[:3, 3] + t[..., None] * ray


@pytest.mark.parametrize('stride', [1, 2, 3])
def test_backprojected_points_are_where_the_pixel_rays_meet_the_wall(stride):
    rgb, depth, points = wall_view(K, 12, 16)
    pts, cols = geo.backproject(rgb, depth, POSE, K, stride=stride)
    np.testing.assert_allclose(pts, points[::stride, ::stride].reshape(-1, 3), atol=1e-5)
    np.testing.assert_array_equal(cols, rgb[::stride, ::stride].reshape(-1, 3))


def test_backprojected_points_project_back_to_their_pixel_centres_at_their_depth():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 5.0, (12, 16)).astype(np.float32)
    pts, cols = geo.backproject(rgb, depth, POSE, K, stride=2)
    assert pts.shape == (6 * 8, 3) and cols.shape == (6 * 8, 3)
    cam = (pts - POSE[:3, 3]) @ POSE[:3, :3]  # world -> optical frame
    uv = cam @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    v, u = np.mgrid[0:12:2, 0:16:2]
    np.testing.assert_allclose(uv, np.stack([u.ravel() + 0.5, v.ravel() + 0.5], 1), atol=1e-3)
    np.testing.assert_allclose(cam[:, 2], depth[::2, ::2].ravel(), rtol=1e-5)
    np.testing.assert_array_equal(cols, rgb[::2, ::2].reshape(-1, 3))


def test_the_viewers_cloud_of_a_wall_lies_on_the_wall_with_each_pixels_colour():
    from worldscape_ros.viewer.viewer import FrameView, WorldViewer

    K64 = intrinsics_from_fov(64, 48, 60.0)
    rgb, depth, points = wall_view(K64, 48, 64)
    viewer = WorldViewer(port=0, cloud_period=0.0, voxel=0.05)
    try:
        viewer.show(FrameView(rgb=rgb, depth=depth, pose=POSE, K=K64, index=0, sim_time=0.0))
        viewer.cloud.merge()
        cloud, colours = viewer.cloud.points, viewer.cloud.colors
    finally:
        viewer.close()
    np.testing.assert_allclose(cloud[:, 0], WALL_X, atol=1e-4)  # on the wall
    seen = points[::2, ::2].reshape(-1, 3)  # the viewer draws every second pixel
    nearest = np.linalg.norm(cloud[:, None] - seen[None], axis=-1).argmin(1)
    np.testing.assert_allclose(cloud, seen[nearest], atol=1e-4)  # each point is one pixel's ray on the wall
    np.testing.assert_array_equal(colours, rgb[::2, ::2].reshape(-1, 3)[nearest])  # with that pixel's colour
    voxels = np.unique(np.floor(seen / 0.05).astype(np.int64), axis=0)
    assert len(cloud) == len(voxels)  # one point per voxel the wall's pixels fall in


def test_backprojection_drops_unknown_and_too_far_depth():
    rgb = np.zeros((12, 16, 3), np.uint8)
    depth = np.full((12, 16), 2.0, np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = np.nan, np.inf, 0.0, 50.0
    pts, _ = geo.backproject(rgb, depth, np.eye(4), K, stride=1, max_depth=20.0)
    assert len(pts) == 12 * 16 - 4


def test_backprojection_names_the_argument_that_does_not_fit():
    with pytest.raises(ValueError, match='depth must have the image shape'):
        geo.backproject(np.zeros((12, 16, 3), np.uint8), np.ones((5, 5)), np.eye(4), K)
    with pytest.raises(ValueError, match='rgb must be'):
        geo.backproject(np.zeros((12, 16), np.uint8), np.ones((12, 16)), np.eye(4), K)
    with pytest.raises(ValueError, match='stride'):
        geo.backproject(np.zeros((12, 16, 3), np.uint8), np.ones((12, 16)), np.eye(4), K, stride=0)


def test_voxel_cloud_keeps_one_point_per_voxel_and_the_newest_colour():
    cloud = geo.VoxelCloud(voxel=0.1)
    cloud.add(np.array([[0.01, 0.01, 0.01], [0.5, 0.5, 0.5]], np.float32), np.array([[1, 1, 1], [2, 2, 2]], np.uint8))
    cloud.add(np.array([[0.02, 0.03, 0.04]], np.float32), np.array([[9, 9, 9]], np.uint8))
    assert cloud.dirty and len(cloud) == 0  # nothing is drawn before a merge
    cloud.merge()
    assert len(cloud) == 2 and not cloud.dirty
    by_colour = {int(c[0]) for c in cloud.colors}
    assert by_colour == {9, 2}


def test_voxel_cloud_stays_bounded_by_dropping_the_voxels_seen_longest_ago():
    cloud = geo.VoxelCloud(voxel=1.0, max_points=3)
    for i in range(5):
        cloud.add(np.array([[i + 0.5, 0.5, 0.5]], np.float32), np.full((1, 3), i, np.uint8))
        cloud.merge()
    assert len(cloud) == 3
    assert sorted(int(c[0]) for c in cloud.colors) == [2, 3, 4]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(*[st.floats(-50, 50, allow_nan=False)] * 3), min_size=1, max_size=40))
def test_voxel_cloud_has_as_many_points_as_distinct_voxels(points):
    cloud = geo.VoxelCloud(voxel=0.25)
    p = np.asarray(points, np.float32)
    cloud.add(p, np.zeros_like(p, dtype=np.uint8))
    cloud.merge()
    assert len(cloud) == len({tuple(v) for v in np.floor(p / 0.25).astype(np.int64).tolist()})


def test_voxel_cloud_refuses_bad_settings():
    with pytest.raises(ValueError, match='voxel size'):
        geo.VoxelCloud(voxel=0.0)
    with pytest.raises(ValueError, match='max_points'):
        geo.VoxelCloud(max_points=0)


def test_frustum_quaternion_is_the_pose_rotation():
    pose = camera_pose(BaseState(x=3.0, yaw=-1.1, pitch=0.3))
    wxyz, pos = geo.wxyz_position(pose)
    np.testing.assert_allclose(tq.quat2mat(wxyz), pose[:3, :3], atol=1e-9)
    np.testing.assert_allclose(pos, pose[:3, 3])
    assert geo.vertical_fov(K, 12) == pytest.approx(math.radians(60.0))


def test_keyframes_come_when_the_camera_moved_or_turned_enough_and_stay_bounded():
    trail = geo.KeyframeTrail(min_distance=0.3, min_angle_deg=20.0, max_keyframes=3)
    assert trail.offer(camera_pose(BaseState()), 0)
    assert not trail.offer(camera_pose(BaseState(x=0.1)), 1)  # moved 10 cm
    assert trail.offer(camera_pose(BaseState(x=0.4)), 2)  # moved 40 cm
    assert trail.offer(camera_pose(BaseState(x=0.4, yaw=math.radians(25))), 3)  # turned 25 degrees
    assert trail.offer(camera_pose(BaseState(x=1.0)), 4)
    assert trail.indices == [2, 3, 4]


def test_hand_keypoints_reach_the_world_through_the_camera_pose_and_hidden_ones_are_dropped():
    kp = np.tile(np.array([[0.0, 0.0, 0.5]]), (21, 1))
    kp[:, 0] = np.linspace(-0.1, 0.1, 21)
    kp[20] = 0.0  # absent
    pose = camera_pose(BaseState(x=1.0, yaw=0.5))
    pts, segs = geo.hand_in_world(kp, pose, HAND_BONES)
    assert pts.shape == (20, 3)
    np.testing.assert_allclose(pts[0], pose[:3, :3] @ kp[0] + pose[:3, 3], atol=1e-6)
    assert segs.shape == (len(HAND_BONES) - 1, 2, 3)  # the bone 19-20 is gone
    with pytest.raises(ValueError, match='hand keypoints'):
        geo.hand_in_world(np.full((21, 3), np.nan), pose, HAND_BONES)


def test_path_segments_join_consecutive_positions():
    segs = geo.path_segments(np.arange(9.0).reshape(3, 3))
    assert segs.shape == (2, 2, 3)
    np.testing.assert_array_equal(segs[1, 0], [3, 4, 5])
    assert geo.path_segments(np.zeros((1, 3))).shape == (0, 2, 3)
