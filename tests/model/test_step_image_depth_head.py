"""The step image depth head, live: it reads a step's denoising-pass features and the frame the step outputs, and
sessions stepped together get the depth each gets alone."""

import numpy as np
import torch

from worldscape_ros.model.batched import BatchedEngine
from worldscape_ros.model.config import HeadsConfig, SamplerConfig
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel


def live_model(micro_config, randomize):
    config = micro_config.replace(sampler=SamplerConfig(steps=1, cache_from_last_step=True),
                                  heads=HeadsConfig(step_depth_hidden=16, gaussian_layers=1,
                                                    step_image_depth_channels=8))
    torch.manual_seed(0)
    return randomize(WorldModel(config), seed=3)


def start(engine, seed=0):
    cfg = engine.config
    img = np.random.default_rng(seed).integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    engine.reset(img, camera_pose(BaseState(height=cfg.camera_height)),
                 depth=np.full((cfg.height, cfg.width), 2.5, np.float32))


def test_a_live_step_reads_its_depth_through_the_image_head_from_the_frame_it_outputs(micro_config, randomize):
    model = live_model(micro_config, randomize)
    seen = []
    model.step_image_depth_head.register_forward_hook(lambda _m, args, out: seen.append((args[1], out)))
    e = WorldEngine(model, EngineOptions(seed=0))
    start(e)
    assert not seen  # a reset's depth is given (or the start head's)
    frame = e.step(NavAction(vx=0.5, yaw_rate=0.6))
    (rgb, out), = seen
    np.testing.assert_allclose((rgb[0].permute(1, 2, 0) * 255).round().numpy(), frame.rgb, atol=1)
    imagined = ~e._guess.mask[0].cpu().numpy()  # where the scene memory covers, its own depth is carried
    assert imagined.any()
    np.testing.assert_allclose(frame.depth[imagined], out[0].numpy()[imagined], rtol=1e-6)


def test_without_the_image_head_the_frames_are_the_step_depth_heads(micro_config, randomize):
    with_head = live_model(micro_config, randomize)
    without = WorldModel(with_head.config.replace(heads=HeadsConfig(step_depth_hidden=16, gaussian_layers=1)))
    missing, unexpected = without.load_state_dict(with_head.state_dict(), strict=False)
    assert not missing and all(k.startswith('step_image_depth_head.') for k in unexpected)
    frames = []
    for model in (with_head, without):
        e = WorldEngine(model, EngineOptions(seed=0))
        start(e)
        frames.append(e.step(NavAction(vx=0.5, yaw_rate=0.6)))
    np.testing.assert_array_equal(frames[0].rgb, frames[1].rgb)  # the head reads the output, it does not form it
    assert not np.array_equal(frames[0].depth, frames[1].depth)


def test_sessions_stepped_together_make_the_depth_each_makes_alone(micro_config, randomize):
    model = live_model(micro_config, randomize)
    alone = [WorldEngine(model, EngineOptions(seed=s)) for s in (0, 1)]
    batch = BatchedEngine.over(model, 2, EngineOptions(seed=0))
    for i, (e, b) in enumerate(zip(alone, batch.sessions, strict=True)):
        start(e, seed=i)
        start(b, seed=i)
    for action in (NavAction(vx=0.4, yaw_rate=0.5), NavAction(yaw_rate=-0.7)):
        together = batch.step([action, action])
        for e, f in zip(alone, together, strict=True):
            np.testing.assert_allclose(f.depth, e.step(action).depth, rtol=1e-4, atol=1e-4)


def test_the_step_image_head_moves_the_step_heads_depth_by_its_bound_at_most(micro_config, randomize):
    import math

    from worldscape_ros.model.world_model import STEP_IMAGE_DEPTH_BOUND

    head = live_model(micro_config, randomize).step_image_depth_head
    with torch.no_grad():
        for p in head.parameters():
            p.mul_(50.0)  # a residual far beyond the bound before it is squashed
    cfg = head.config
    n = cfg.grid[0] * cfg.grid[1]
    prior = torch.full((2, cfg.height, cfg.width), 2.0)
    out = head(torch.randn(2, n, cfg.dit.dim), torch.rand(2, 3, cfg.height, cfg.width), prior)
    moved, bound = (out / prior).log().abs().max(), math.log(STEP_IMAGE_DEPTH_BOUND)
    assert moved <= bound + 1e-5 and moved > 0.5 * bound
