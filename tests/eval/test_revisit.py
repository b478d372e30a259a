import math

import numpy as np
import pytest

from worldscape_ros.eval.revealed import revealed_masks
from worldscape_ros.eval.revisit import return_pairs, revisit_scores
from worldscape_ros.model.kinematics import NavAction

TURN = NavAction(yaw_rate=math.radians(45))  # 360 deg in 80 frames at 10 fps


@pytest.fixture(scope='module')
def spin(render_walk):
    """A turn in place by 360 deg and 90 deg more: frames 81-100 look where frames 1-20 looked."""
    return render_walk([TURN] * 100)


def test_return_pairs_match_the_same_pose_a_turn_later_and_never_neighbours(spin):
    pairs = return_pairs(spin['poses'])
    assert pairs == [(k, k + 80) for k in range(1, 21)]
    straight = np.stack([np.eye(4)] * 3)
    straight[:, 2, 3] = [0.0, 0.01, 0.02]  # creeping forward: every frame near the last, none a revisit
    assert return_pairs(straight, min_gap=10) == []


def test_return_pairs_pick_the_nearest_earlier_pose():
    poses = np.stack([np.eye(4)] * 30)
    poses[:, 0, 3] = np.r_[np.arange(15) * 0.02, np.arange(15)[::-1] * 0.02]  # out 28 cm and back, 2 cm a frame
    pairs = dict((j, i) for i, j in return_pairs(poses, min_gap=5))
    assert pairs[29] == 1  # back at the start: frame 0 is the given start, never a first look; frame 1 is 2 cm off
    assert all(np.isclose(poses[i, 0, 3], poses[j, 0, 3]) for j, i in pairs.items() if j < 29)
    assert 16 not in pairs  # its own pose is only 3 frames back; the next nearest is 4 cm away


def test_revisit_scores_are_perfect_on_ground_truth(spin):
    unseen = revealed_masks(spin['depth'][0], spin['poses'], spin['K'])
    s = revisit_scores(spin['rgb'], spin['rgb'], unseen, return_pairs(spin['poses']))
    assert s['return_unseen_psnr'] == 100.0 and s['revisit_psnr'] == 100.0
    assert s['revisit_ssim'] == pytest.approx(1.0, abs=1e-6)
    assert 0.1 < s['return_unseen_fraction'] < 1 and s['unseen_pairs'] > 5  # early returns see the start's view


def test_a_frozen_frame_agrees_with_itself_but_not_with_the_truth(spin):
    """Why consistency is read beside the return PSNR: a frozen frame is perfectly self-consistent."""
    unseen = revealed_masks(spin['depth'][0], spin['poses'], spin['K'])
    pairs = return_pairs(spin['poses'])
    frozen = np.repeat(spin['rgb'][:1], len(spin['rgb']), 0)
    s = revisit_scores(frozen, spin['rgb'], unseen, pairs)
    assert s['revisit_psnr'] == 100.0 and s['return_unseen_psnr'] < 20


def test_a_system_that_forgets_scores_low_consistency_and_one_that_remembers_scores_high(spin):
    unseen = revealed_masks(spin['depth'][0], spin['poses'], spin['K'])
    pairs = return_pairs(spin['poses'])
    rng = np.random.default_rng(0)
    forgetful = rng.integers(0, 256, spin['rgb'].shape, dtype=np.uint8)  # new noise at every look
    remembering = forgetful.copy()
    for i, j in pairs:
        remembering[j] = remembering[i]  # the same (wrong) picture at the second look
    a = revisit_scores(forgetful, spin['rgb'], unseen, pairs)
    b = revisit_scores(remembering, spin['rgb'], unseen, pairs)
    assert a['revisit_psnr'] < 15 and a['revisit_ssim'] < 0.1
    assert b['revisit_psnr'] == 100.0 and b['return_unseen_psnr'] == pytest.approx(a['return_unseen_psnr'], abs=1)


def test_no_revisit_of_unseen_places_gives_nan_and_bad_poses_are_refused(spin):
    unseen = np.zeros(spin['rgb'].shape[:3], bool)
    s = revisit_scores(spin['rgb'], spin['rgb'], unseen, return_pairs(spin['poses']))
    assert s['unseen_pairs'] == 0 and math.isnan(s['revisit_psnr']) and math.isnan(s['return_unseen_psnr'])
    with pytest.raises(ValueError, match=r'poses must be \(T, 4, 4\)'):
        return_pairs(np.eye(4))
    with pytest.raises(ValueError, match='min_gap must be at least 1'):
        return_pairs(spin['poses'], min_gap=0)
