import math

import numpy as np

from worldscape_ros.eval.revealed import revealed_masks, revealed_scores
from worldscape_ros.model.camera import intrinsics_from_fov

H, W = 48, 64


def _yaw(deg: float, forward: float = 0.0) -> np.ndarray:
    a = math.radians(deg)
    pose = np.eye(4)
    pose[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    pose[2, 3] = forward
    return pose


def test_turning_reveals_the_side_turned_to_and_driving_straight_at_a_wall_reveals_nothing():
    K = intrinsics_from_fov(W, H, 60.0)
    wall = np.full((H, W), 3.0, np.float32)
    turn = revealed_masks(wall, np.stack([_yaw(0), _yaw(10), _yaw(20)]), K)
    assert not turn[0].any()
    assert 0 < turn[1].mean() < turn[2].mean() < 0.6
    # yaw about +y turns the optical axis towards +x: the new columns are on the right
    assert turn[2][:, -1].all() and not turn[2][:, 0].any()
    ahead = revealed_masks(wall, np.stack([_yaw(0), _yaw(0, 0.5), _yaw(0, 1.0)]), K)
    assert not ahead.any()


def test_revealed_scores_reward_the_truth_and_see_an_empty_fill_as_structureless():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    masks = np.zeros((3, H, W), bool)
    masks[1:, :, -16:] = True
    exact = revealed_scores(truth, truth, masks)
    assert exact['revealed_psnr'] == 100.0 and exact['revealed_structure'] == 1.0
    assert exact['revealed_fraction'] == 0.25
    empty = truth.copy()
    empty[masks] = 0
    black = revealed_scores(empty, truth, masks)
    assert black['revealed_structure'] < 0.5 and black['revealed_psnr'] < 10  # only the edge column has gradient
    nothing = revealed_scores(truth, truth, np.zeros((3, H, W), bool))
    assert math.isnan(nothing['revealed_psnr']) and nothing['revealed_fraction'] == 0.0
