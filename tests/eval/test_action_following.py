import math

import numpy as np
import pytest

from worldscape_ros.eval.action_following import action_following, estimate_motion, rotation_angle_deg
from worldscape_ros.model.kinematics import NavAction

STRIDE = 2


def test_ground_truth_frames_follow_actions_near_perfectly(turning_walk):
    af = action_following(turning_walk['rgb'], turning_walk['poses'], turning_walk['K'], stride=STRIDE)
    assert af.recovered.all()
    assert np.median(af.rot_err_deg) < 1.5
    assert np.median(af.trans_err_deg) < 25.0


def test_frozen_first_frame_follows_actions_poorly(turning_walk):
    rgb, poses = turning_walk['rgb'], turning_walk['poses']
    frozen = np.repeat(rgb[:1], len(rgb), axis=0)
    af = action_following(frozen, poses, turning_walk['K'], stride=STRIDE)
    assert not af.recovered.any()
    commanded = 2 * STRIDE  # 20 deg/s at 10 fps
    np.testing.assert_allclose(af.rot_err_deg, commanded, atol=0.05)
    np.testing.assert_allclose(af.trans_err_deg, 90.0)


def test_frames_from_wrong_trajectory_follow_actions_worse(render_walk, turning_walk):
    # The same start, but the frames turn right while the command turns left.
    wrong_rgb = render_walk([NavAction(vx=0.6, yaw_rate=math.radians(-20))] * 11)['rgb']
    good = action_following(turning_walk['rgb'], turning_walk['poses'], turning_walk['K'], stride=STRIDE)
    bad = action_following(wrong_rgb, turning_walk['poses'], turning_walk['K'], stride=STRIDE)
    assert np.median(bad.rot_err_deg) > 3 * max(np.median(good.rot_err_deg), 1.0)
    assert np.median(bad.rot_err_deg) > 5.0


def test_pure_rotation_recovers_rotation_and_leaves_translation_undefined(render_walk):
    walk = render_walk([NavAction(yaw_rate=math.radians(30))] * 4)
    rgb, K = walk['rgb'], walk['K']
    af = action_following(rgb, walk['poses'], K, stride=1)
    assert np.isnan(af.trans_err_deg).all()
    assert np.median(af.rot_err_deg) < 1.0
    est = estimate_motion(rgb[0], rgb[2], K, pure_rotation=True)
    assert est.recovered and abs(rotation_angle_deg(est.R) - 6.0) < 1.0


def test_action_following_rejects_pose_count_mismatch(turning_walk):
    with pytest.raises(ValueError, match='poses must be'):
        action_following(turning_walk['rgb'], turning_walk['poses'][:3], turning_walk['K'])
    with pytest.raises(ValueError, match='stride'):
        action_following(turning_walk['rgb'], turning_walk['poses'], turning_walk['K'], stride=0)
