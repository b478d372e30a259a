"""The start depth head: full-resolution depth of a start frame from a reset's features and image, read by a
reset only when no depth is given; everything else the engine makes stays byte for byte what it was."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from worldscape_ros.errors import ConfigError
from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.heads import MAX_DEPTH, MIN_DEPTH
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel


def _with_head(config, channels=8):
    return config.replace(heads=replace(config.heads, start_depth_channels=channels))


def _start(config, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (config.height, config.width, 3), dtype=np.uint8)
    depth = rng.uniform(1.0, 4.0, (config.height, config.width)).astype(np.float32)
    return rgb, np.eye(4), intrinsics_from_fov(config.width, config.height, config.vfov_deg), depth


def _path(step, n=3):
    """Camera poses moving forward and turning a little, as the steps' targets."""
    poses = []
    for i in range(1, n + 1):
        a = 0.05 * i * step
        pose = np.eye(4)
        pose[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
        pose[2, 3] = 0.1 * i
        poses.append(pose)
    return poses


def test_the_head_gives_full_resolution_depth_clamped_as_the_depth_head(micro_config, randomize):
    config = _with_head(micro_config)
    model = WorldModel(config)
    head = randomize(model.start_depth_head)
    N, D = config.grid[0] * config.grid[1], config.dit.dim
    rgb = torch.rand(2, 3, config.height, config.width)
    prior = torch.full((2, config.height, config.width), 2.0)
    with torch.no_grad():
        depth = head(torch.randn(2, N, D), rgb, prior)
        assert depth.shape == (2, config.height, config.width)
        assert depth.min() >= MIN_DEPTH * (1 - 1e-6) and depth.max() <= MAX_DEPTH * (1 + 1e-6)  # exp(log) rounds
        far = head(torch.randn(2, N, D), rgb, torch.full_like(prior, 1e6))  # far beyond the clamp
        assert far.max() <= MAX_DEPTH * (1 + 1e-6)
        head.fuse[-1].bias.fill_(10.0)  # a residual that pushes every pixel past the clamp
        far = head(torch.randn(2, N, D), rgb, torch.full_like(prior, 1e6))
        assert torch.allclose(far, torch.tensor(MAX_DEPTH))
    assert model.num_parameters('start_depth_head') < 1_000_000


def test_a_fresh_head_gives_the_depth_heads_depth_where_that_is_smooth(micro_config):
    model = WorldModel(_with_head(micro_config))  # the output layer starts at zero: a residual of nothing
    config = model.config
    features = torch.randn(1, 1, config.grid[0] * config.grid[1], config.dit.dim)
    with torch.no_grad():
        linear = model.predict_start_depth(features, None)
        fresh = model.predict_start_depth(features, torch.rand(1, 3, config.height, config.width))
    assert torch.allclose(fresh, linear)  # the fresh depth head's depth is 2 m everywhere


def test_a_reset_reads_the_start_head_only_without_given_depth(micro_config, randomize):
    model = WorldModel(_with_head(micro_config))
    randomize(model.start_depth_head)
    engine = WorldEngine(model, EngineOptions(seed=0))
    calls = []
    model.start_depth_head.register_forward_hook(lambda _m, _a, out: calls.append(out.detach().clone()))
    rgb, pose, K, depth = _start(model.config)
    given = engine.reset(rgb, pose, K, depth)
    assert not calls
    np.testing.assert_array_equal(given.depth, depth)
    own = engine.reset(rgb, pose, K)
    assert len(calls) == 1
    np.testing.assert_array_equal(own.depth, calls[0][0].numpy())
    with torch.no_grad():
        video = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)[None]
        features = []
        hook = model.depth_head.register_forward_pre_hook(lambda _m, args: features.append(args[0]))
        engine.reset(rgb, pose, K)
        hook.remove()
        linear = model.predict_start_depth(features[0], None)[0].numpy()
        again = model.predict_start_depth(features[0], video)[0].numpy()
    np.testing.assert_array_equal(own.depth, again)
    assert np.abs(own.depth - linear).max() > 1e-3  # the head's depth, not the linear head's


@pytest.mark.parametrize('depth_given', [True, False])
def test_frames_are_byte_identical_with_the_head_present_or_absent_unless_a_start_has_no_depth(
        micro_config, randomize, depth_given):
    without = randomize(WorldModel(micro_config))
    with_head = WorldModel(_with_head(micro_config))
    missing, unexpected = with_head.load_state_dict(without.state_dict(), strict=False)
    assert not unexpected and all(k.startswith('start_depth_head.') for k in missing)
    randomize(with_head.start_depth_head, seed=1)
    rgb, pose, K, depth = _start(micro_config)
    runs = []
    for model in (without, with_head):
        engine = WorldEngine(model, EngineOptions(seed=3))
        frames = [engine.reset(rgb, pose, K, depth if depth_given else None)]
        frames += [engine.step(p) for p in _path(1)]
        runs.append(frames)
    same = [np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) for a, b in zip(*runs)]
    if depth_given:
        assert all(same)
    else:
        assert not same[0]  # the start depth differs, and with it the scene every step renders


def test_a_negative_start_head_width_is_refused(micro_config):
    with pytest.raises(ConfigError, match='start_depth_channels'):
        _with_head(micro_config, -1).validate()
