import numpy as np
import pytest
import torch

from worldscape_ros.model.camera import intrinsics_from_fov, project
from worldscape_ros.model.hands import (
    HAND_BONES,
    NUM_KEYPOINTS,
    default_thickness,
    hand_colour,
    hand_region,
    hand_silhouette,
    keypoint_visibility,
    pose_video,
    project_keypoints,
    validate_keypoints,
)

H, W = 96, 128


def open_hand_cam(z: float = 0.4) -> np.ndarray:
    """An open right hand facing the camera, 21 MediaPipe landmarks in camera coordinates (metres)."""
    kp = np.zeros((NUM_KEYPOINTS, 3))
    kp[0] = [0.0, 0.08, z]  # wrist, below the centre (y down)
    for f, x in enumerate([-0.05, -0.025, 0.0, 0.025, 0.05]):
        for j in range(4):
            kp[1 + 4 * f + j] = [x * (1 + 0.2 * j) - (0.02 if f == 0 else 0.0), 0.04 - 0.025 * j, z]
    return kp


def hand_pixels(T: int = 2) -> torch.Tensor:
    K = intrinsics_from_fov(W, H, 60.0)
    kp = torch.from_numpy(project_keypoints(open_hand_cam(), K)).float()
    return torch.stack([kp + 3.0 * t for t in range(T)])  # (T, 21, 2) moving a little


def test_mediapipe_edges_cover_all_21_keypoints_once_as_a_tree():
    assert len(HAND_BONES) == 21 and len(set(HAND_BONES)) == 21
    assert {i for bone in HAND_BONES for i in bone} == set(range(NUM_KEYPOINTS))
    for finger_base in (1, 5, 9, 13, 17):  # each finger is a chain of three bones out from its base
        chain = [(finger_base + j, finger_base + j + 1) for j in range(3)]
        assert all(b in HAND_BONES for b in chain)


def test_project_keypoints_matches_camera_project_and_keeps_the_array_type():
    K = intrinsics_from_fov(W, H, 60.0)
    kp = open_hand_cam()
    uv = project_keypoints(kp, K)
    assert isinstance(uv, np.ndarray) and uv.shape == (21, 2)
    ref, _ = project(torch.from_numpy(kp), torch.eye(4, dtype=torch.float64), torch.from_numpy(K))
    np.testing.assert_allclose(uv, ref.numpy(), atol=1e-12)
    centre = project_keypoints(np.tile([[0.0, 0.0, 1.0]], (21, 1)), K)
    np.testing.assert_allclose(centre, np.tile([[W / 2, H / 2]], (21, 1)))  # the optical axis hits the centre
    batched = project_keypoints(torch.from_numpy(np.stack([kp, kp])), torch.from_numpy(K))
    assert isinstance(batched, torch.Tensor) and batched.shape == (2, 21, 2)


def test_keypoints_behind_the_camera_project_to_nan_and_are_not_visible():
    K = intrinsics_from_fov(W, H, 60.0)
    kp = open_hand_cam()
    kp[8, 2] = -0.1
    uv = torch.from_numpy(project_keypoints(kp, K))
    vis = keypoint_visibility(uv, H, W)
    assert torch.isnan(uv[8]).all() and not vis[8] and vis.sum() == 20


def test_absent_hands_give_an_empty_pose_video():
    video = pose_video(hand_pixels(3), torch.zeros(3, 21, dtype=torch.bool), H, W)
    assert video.shape == (3, 3, H, W) and video.dtype == torch.float32
    assert video.abs().sum() == 0


def test_pose_video_is_in_unit_range_and_draws_each_visible_frame():
    kp = hand_pixels(2)
    vis = torch.ones(2, 21, dtype=torch.bool)
    vis[1] = False
    video = pose_video(kp, vis, H, W)
    assert video.min() >= 0 and video.max() <= 1
    assert (video[0].sum(0) > 0).sum() > 100 and video[1].abs().sum() == 0


def point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = np.clip((p - a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


def test_drawn_pixels_lie_on_segments_between_visible_projected_points():
    kp = hand_pixels(1)
    vis = torch.ones(1, 21, dtype=torch.bool)
    vis[0, 12] = False  # the middle fingertip: bone 11-12 disappears
    video = pose_video(kp, vis, H, W)
    thick = default_thickness(H, W)
    pts = kp[0].double().numpy()
    drawn = [(a, b) for a, b in HAND_BONES if vis[0, a] and vis[0, b]]
    ys, xs = np.nonzero(video[0].sum(0).numpy() > 0)
    for y, x in zip(ys, xs):
        c = np.array([x + 0.5, y + 0.5])
        d = min(point_segment_distance(c, pts[a], pts[b]) for a, b in drawn)
        assert d <= max(thick / 2, 0.75 * thick) + 1e-6
    # Along every drawn bone, its midpoint pixel is painted; the hidden tip's bone is not painted beyond joint 11.
    for a, b in drawn:
        mid = (pts[a] + pts[b]) / 2
        assert video[0, :, int(mid[1]), int(mid[0])].sum() > 0
    tip = pts[12]
    assert video[0, :, int(tip[1]), int(tip[0])].sum() == 0


def test_fingers_have_distinct_colours():
    kp = hand_pixels(1)
    video = pose_video(kp, torch.ones(1, 21, dtype=torch.bool), H, W, joint_radius=0.0)
    pts = kp[0].numpy()
    colours = []
    for a, b in ((2, 3), (6, 7), (10, 11), (14, 15), (18, 19)):  # a middle bone of each finger
        mid = (pts[a] + pts[b]) / 2
        colours.append(tuple(video[0, :, int(mid[1]), int(mid[0])].tolist()))
    assert len(set(colours)) == 5


def test_a_hand_off_the_image_draws_nothing():
    kp = hand_pixels(1) + 1000.0
    video = pose_video(kp, torch.ones(1, 21, dtype=torch.bool), H, W)
    assert video.abs().sum() == 0


@pytest.mark.parametrize(('kp', 'vis', 'match'), [
    (torch.zeros(2, 20, 2), torch.ones(2, 21, dtype=torch.bool), r'keypoints2d must be a tensor of shape \(T, 21, 2\)'),
    (np.zeros((2, 21, 2)), torch.ones(2, 21, dtype=torch.bool), r'keypoints2d must be a tensor'),
    (torch.zeros(2, 21, 2, dtype=torch.long), torch.ones(2, 21, dtype=torch.bool), r'keypoints2d must be floating'),
    (torch.zeros(2, 21, 2), torch.ones(2, 20, dtype=torch.bool), r'visible must be a tensor of shape \(2, 21\)'),
    (torch.zeros(2, 21, 2), torch.ones(2, 21), r'visible must be a bool tensor'),
    (torch.full((2, 21, 2), torch.nan), torch.ones(2, 21, dtype=torch.bool), r'keypoints2d must be finite where'),
])
def test_pose_video_rejects_bad_input_naming_the_argument(kp, vis, match):
    with pytest.raises(ValueError, match=match):
        pose_video(kp, vis, H, W)


def test_pose_video_accepts_nan_for_invisible_points():
    kp = hand_pixels(1)
    kp[0, 4] = torch.nan
    vis = torch.ones(1, 21, dtype=torch.bool)
    vis[0, 4] = False
    assert pose_video(kp, vis, H, W).sum() > 0


def test_validate_keypoints_returns_float_array_and_names_the_argument():
    out = validate_keypoints(open_hand_cam().tolist())
    assert out.dtype == np.float64 and out.shape == (21, 3)
    with pytest.raises(ValueError, match=r'left_hand must have shape \(21, 3\), got \(20, 3\)'):
        validate_keypoints(np.zeros((20, 3)), name='left_hand')
    bad = open_hand_cam()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match='hand_keypoints must be finite'):
        validate_keypoints(bad)
    with pytest.raises(ValueError, match='hand_keypoints must be a numeric'):
        validate_keypoints(np.array(['a'] * 63).reshape(21, 3))


def test_project_keypoints_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r'kp_cam must have shape \(\.\.\., 21, 3\)'):
        project_keypoints(np.zeros((21, 2)), np.eye(3))
    with pytest.raises(ValueError, match=r'K must have shape \(3, 3\)'):
        project_keypoints(np.zeros((21, 3)), np.eye(4))


def test_the_hand_colour_is_what_the_frame_shows_inside_the_keypoints_and_unknown_off_screen():
    K = intrinsics_from_fov(W, H, 60.0)
    kp = open_hand_cam()
    rgb = np.full((H, W, 3), 40, np.uint8)  # a dark table
    rgb[hand_region(kp, K, H, W, margin=0.0)] = (230, 180, 150)  # a skin-coloured hand
    assert np.allclose(hand_colour(rgb, kp, K), np.array([230, 180, 150]) / 255)
    away = kp + np.array([5.0, 0.0, 0.0])  # far to the right of the view
    assert hand_colour(rgb, away, K) is None


def test_the_hand_colour_read_over_the_silhouette_leaves_out_what_shows_between_the_fingers():
    K = intrinsics_from_fov(W, H, 60.0)
    kp = open_hand_cam()
    rgb = np.full((H, W, 3), 40, np.uint8)
    rgb[hand_region(kp, K, H, W, margin=0.0)] = (40, 200, 40)  # a green object between the spread fingers
    rgb[hand_silhouette(kp, K, H, W)] = (230, 180, 150)
    skin = np.array([230, 180, 150]) / 255
    assert np.allclose(hand_colour(rgb, kp, K, where='silhouette'), skin)
    with pytest.raises(ValueError, match="the hand colour is read over one of hull, silhouette, got 'palm'"):
        hand_colour(rgb, kp, K, where='palm')


def test_the_silhouette_holds_every_joint_and_lies_inside_the_hands_region():
    K = intrinsics_from_fov(W, H, 60.0)
    kp = open_hand_cam()
    sil = hand_silhouette(kp, K, H, W)
    uv = np.floor(project_keypoints(kp, K)).astype(int)
    assert sil[uv[:, 1], uv[:, 0]].all()
    assert not (sil & ~hand_region(kp, K, H, W, margin=1.0)).any()  # capsules of a finger's radius: within its width
    assert sil.sum() < hand_region(kp, K, H, W, margin=0.0).sum()  # the gaps between spread fingers are not hand


def test_a_silhouette_grown_by_a_margin_is_the_silhouette_dilated_by_that_disc():
    import cv2

    K = intrinsics_from_fov(W, H, 60.0)
    kp = open_hand_cam()
    sil = hand_silhouette(kp, K, H, W)
    assert np.array_equal(hand_silhouette(kp, K, H, W, margin_px=0), sil)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    grown = hand_silhouette(kp, K, H, W, margin_px=2)
    assert np.array_equal(grown, cv2.dilate(sil.astype(np.uint8), disc).astype(bool))
    assert grown.sum() > sil.sum()


def test_a_farther_hand_has_a_smaller_silhouette_and_one_behind_the_camera_none():
    K = intrinsics_from_fov(W, H, 60.0)
    near, far = hand_silhouette(open_hand_cam(0.4), K, H, W), hand_silhouette(open_hand_cam(0.8), K, H, W)
    assert 0 < far.sum() < near.sum()
    behind = open_hand_cam()
    behind[:, 2] = -0.4
    assert not hand_silhouette(behind, K, H, W).any()
    assert not hand_silhouette(open_hand_cam() + np.array([5.0, 0.0, 0.0]), K, H, W).any()  # off the image


def test_a_finger_bone_draws_a_band_two_finger_radii_wide():
    K = intrinsics_from_fov(W, H, 60.0)
    kp = np.full((NUM_KEYPOINTS, 3), [0.0, 0.0, -1.0])  # all behind the camera: not drawn
    kp[9:13] = [[-0.06, 0.0, 0.5], [-0.02, 0.0, 0.5], [0.02, 0.0, 0.5], [0.06, 0.0, 0.5]]  # a level middle finger
    sil = hand_silhouette(kp, K, H, W, finger_radius_m=0.01)
    column = sil[:, W // 2]
    width_px = 2 * K[0, 0] * 0.01 / 0.5
    assert abs(int(column.sum()) - width_px) <= 1.0
