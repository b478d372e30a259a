"""The depth head fits alone on the features the engine gives it: trace -> fit -> a checkpoint with the new head."""

import numpy as np
import pytest
import torch
from train_clips import forward_poses, make_episode

from worldscape_ros.data.episode import write_episode
from worldscape_ros.errors import TrainError
from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.depth_head import (
    START,
    STEP,
    DepthFitConfig,
    DepthTraces,
    absrel,
    fit_depth_head,
    trace_depth,
)


@pytest.fixture
def traced(tmp_path, micro_config):
    eps = []
    for seed, hands in ((0, False), (1, True)):
        ep = make_episode(seed, 6, micro_config.height, micro_config.width, hands=hands)
        ep.poses = forward_poses(6, step=0.05, yaw=0.1)
        eps.append(write_episode(tmp_path / 'eps' / f'ep{seed}.episode.npz', ep))
    cfg = micro_config.replace(sampler=micro_config.sampler.__class__(steps=1, cache_from_last_step=True))
    torch.manual_seed(0)
    engine = WorldEngine(WorldModel(cfg), EngineOptions(seed=0))
    n = trace_depth(engine, eps, tmp_path / 'traces', frames=6, starts=2)
    return engine, tmp_path / 'traces', n


def test_tracing_records_every_input_of_the_depth_head_beside_its_frames_true_depth(traced, micro_config):
    engine, folder, n = traced
    assert n == 2 * (6 + 2)
    traces = DepthTraces([folder])
    N = micro_config.grid[0] * micro_config.grid[1]
    assert traces.features.shape == (16, N, micro_config.dit.dim)
    assert traces.depth.shape == (16, micro_config.height, micro_config.width)
    assert traces.kind.tolist() == 2 * ([START] + [STEP] * 5 + [START] * 2)
    assert not engine.model.depth_head._forward_pre_hooks  # the recorder is gone after the trace


def test_a_traced_step_holds_what_the_head_was_given_live(traced, micro_config, tmp_path):
    """The recorded features, put through the head, give the depth head's output of the same live step."""
    engine, folder, _ = traced
    ep = sorted((tmp_path / 'eps').glob('*.episode.npz'))[0]
    from worldscape_ros.data.episode import read_episode
    e = read_episode(ep)
    got = []
    hook = engine.model.depth_head.register_forward_hook(lambda _m, _a, out: got.append(out.detach()))
    engine.reset(e.rgb[0], e.poses[0], e.intrinsics, e.depth[0])
    engine.step(e.poses[1])
    hook.remove()
    traces = DepthTraces([folder])
    with torch.no_grad():
        again = engine.model.depth_head(traces.features[1:2].float()[:, None])[0, 0]
    assert torch.allclose(again, got[1][0, -1], rtol=2e-3, atol=2e-3)  # float16 storage of the features


def test_a_rerun_of_the_trace_keeps_the_shards_already_written(traced, tmp_path):
    engine, folder, _ = traced
    eps = sorted((tmp_path / 'eps').glob('*.episode.npz'))
    assert trace_depth(engine, eps, folder, frames=6, starts=2) == 0


def test_the_fit_lowers_the_error_and_ships_a_checkpoint_with_the_fitted_head(traced, tmp_path):
    engine, folder, _ = traced
    traces = DepthTraces([folder])
    before = absrel(engine.model.depth_head, traces, STEP)
    final, scores = fit_depth_head(engine, traces, None, tmp_path / 'fit', DepthFitConfig(steps=60, batch=8, lr=3e-2))
    assert scores['step_absrel_before'] == pytest.approx(before)
    assert scores['step_absrel_after'] < before
    assert scores['start_absrel_after'] < scores['start_absrel_before']
    model, _ = load_checkpoint(final)
    for name, p in engine.model.depth_head.state_dict().items():
        assert torch.equal(model.depth_head.state_dict()[name], p), name
    dit = {k: v for k, v in engine.model.state_dict().items() if not k.startswith('depth_head.')}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in dit.items())  # only the head moved
    assert (tmp_path / 'fit' / 'fit.json').exists()


def test_a_model_without_a_depth_head_is_refused(tmp_path, micro_config):
    cfg = micro_config.replace(heads=micro_config.heads.__class__(depth=False, gaussians=False))
    engine = WorldEngine(WorldModel(cfg), EngineOptions(seed=0))
    with pytest.raises(TrainError, match='no depth head'):
        trace_depth(engine, [], tmp_path, frames=4, starts=0)


def test_an_empty_trace_folder_is_one_clear_error(tmp_path):
    with pytest.raises(TrainError, match='no \\*.depth.npz'):
        DepthTraces([tmp_path])


def test_the_start_frames_are_spread_over_the_episode(tmp_path, micro_config):
    ep = make_episode(3, 8, micro_config.height, micro_config.width, hands=False)
    path = write_episode(tmp_path / 'eps' / 'ep.episode.npz', ep)
    engine = WorldEngine(WorldModel(micro_config), EngineOptions(seed=0))
    trace_depth(engine, [path], tmp_path / 't', frames=8, starts=3)
    with np.load(tmp_path / 't' / 'ep.depth.npz') as z:
        depth = z['depth'].astype(np.float32)
    # the starts are frames 2, 4 and 5 (evenly spaced between the first and the last), with their true depth
    for i, t in zip(range(8, 11), (2, 4, 5), strict=True):
        np.testing.assert_allclose(depth[i], ep.depth[t].astype(np.float16).astype(np.float32))
