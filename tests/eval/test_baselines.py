import math

import numpy as np
import pytest

from worldscape_ros.eval import metrics as M
from worldscape_ros.eval.baselines import RepeatFirstFrame, Reprojection, forward_warp
from worldscape_ros.eval.protocol import WorldSystem
from worldscape_ros.model.kinematics import NavAction


def test_baselines_implement_the_world_system_protocol():
    assert isinstance(RepeatFirstFrame(), WorldSystem)
    assert isinstance(Reprojection(), WorldSystem)


def test_repeat_first_frame_repeats_the_start_and_follows_commanded_poses(turning_walk):
    w = turning_walk
    system = RepeatFirstFrame(fps=10.0)
    system.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    for t in range(1, 4):
        frame = system.step(NavAction(vx=0.6, yaw_rate=math.radians(20)))
        np.testing.assert_array_equal(frame.rgb, w['rgb'][0])
        np.testing.assert_allclose(frame.pose, w['poses'][t], atol=1e-9)
        assert frame.index == t


def test_reprojection_into_the_start_camera_is_exact(turning_walk):
    w = turning_walk
    rgb, depth = forward_warp(w['rgb'][0], w['depth'][0], w['poses'][0], w['poses'][0], w['K'])
    np.testing.assert_array_equal(rgb, w['rgb'][0])
    np.testing.assert_allclose(depth, w['depth'][0], rtol=1e-5)


def test_reprojection_matches_the_target_render_where_covered_and_leaves_holes_empty(turning_walk):
    w = turning_walk
    system = Reprojection(fps=10.0)
    system.reset(w['rgb'][0], w['poses'][0], w['K'], w['depth'][0])
    frame = system.step(w['poses'][3])  # a target pose as the action
    covered = frame.depth > 0
    assert 0.8 < covered.mean() < 1.0  # turning left uncovers a strip on the left
    assert not covered[:, :3].any() and (frame.rgb[~covered] == 0).all()
    rel = np.abs(frame.depth[covered] / w['depth'][3][covered] - 1)
    assert np.median(rel) < 0.01 and (rel < 0.05).mean() > 0.9  # off only at occlusion edges
    err = frame.rgb[covered].astype(float) - w['rgb'][3][covered]
    assert 10 * np.log10(255.0**2 / np.mean(err**2)) > 20
    assert M.psnr(frame.rgb[None], w['rgb'][3][None])[0] > M.psnr(w['rgb'][:1], w['rgb'][3][None])[0]


def test_reprojection_needs_the_start_depth(turning_walk):
    with pytest.raises(ValueError, match='needs the start frame.s depth'):
        Reprojection().reset(turning_walk['rgb'][0], turning_walk['poses'][0], turning_walk['K'], None)


def test_baselines_reject_bad_input(turning_walk):
    w = turning_walk
    system = RepeatFirstFrame()
    with pytest.raises(RuntimeError, match='before reset'):
        system.step(NavAction())
    with pytest.raises(ValueError, match=r'first_frame must be \(H, W, 3\) uint8'):
        system.reset(w['rgb'][0].astype(np.float32), w['poses'][0], w['K'])
    system.reset(w['rgb'][0], w['poses'][0], w['K'])
    with pytest.raises(ValueError, match='not orthonormal'):
        system.step(2 * np.eye(4))
    with pytest.raises(ValueError, match='fps must be positive'):
        Reprojection(fps=0)
