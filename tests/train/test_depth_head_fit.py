"""The step depth head fits on the features the engine gives it live: trace -> fit -> a checkpoint with the head."""

import numpy as np
import pytest
import torch
from train_clips import write_walk_and_hand

from worldscape_ros.data.episode import read_episode
from worldscape_ros.errors import TrainError
from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.model.config import HeadsConfig, SamplerConfig
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.depth_head import (
    DepthFitConfig,
    DepthTraces,
    absrel,
    fit_step_depth_head,
    trace_depth,
    with_step_head,
)


@pytest.fixture
def one_pass(micro_config):
    return micro_config.replace(sampler=SamplerConfig(steps=1, cache_from_last_step=True))


@pytest.fixture
def traced(tmp_path, one_pass):
    eps = write_walk_and_hand(tmp_path / 'eps', 6, one_pass.height, one_pass.width, step=0.05, yaw=0.1)
    torch.manual_seed(0)
    engine = WorldEngine(WorldModel(one_pass), EngineOptions(seed=0))
    n = trace_depth(engine, eps, tmp_path / 'traces', frames=6)
    return engine, tmp_path / 'traces', n


def test_tracing_records_the_live_steps_depth_head_inputs_beside_their_true_depth(traced, one_pass):
    engine, folder, n = traced
    assert n == 2 * 6  # the reset's clean pass is recorded too, and left out of the traces read back
    traces = DepthTraces([folder])
    N = one_pass.grid[0] * one_pass.grid[1]
    assert traces.features.shape == (10, N, one_pass.dit.dim)
    assert traces.depth.shape == (10, one_pass.height, one_pass.width)
    assert not engine.model.depth_head._forward_pre_hooks  # the recorder is gone after the trace


def test_a_traced_step_holds_what_the_head_was_given_live(traced, tmp_path):
    engine, folder, _ = traced
    ep = read_episode(sorted((tmp_path / 'eps').glob('*.episode.npz'))[0])
    got = []
    hook = engine.model.depth_head.register_forward_hook(lambda _m, _a, out: got.append(out.detach()))
    engine.reset(ep.rgb[0], ep.poses[0], ep.intrinsics, ep.depth[0])
    engine.step(ep.poses[1])
    hook.remove()
    traces = DepthTraces([folder])
    with torch.no_grad():
        again = engine.model.depth_head(traces.features[:1].float()[:, None])[0, 0]
    assert torch.allclose(again, got[1][0, -1], rtol=2e-3, atol=2e-3)  # float16 storage of the features
    np.testing.assert_allclose(traces.depth[0].numpy(), ep.depth[1].astype(np.float16).astype(np.float32))


def test_a_rerun_of_the_trace_keeps_the_shards_already_written(traced, tmp_path):
    engine, folder, _ = traced
    eps = sorted((tmp_path / 'eps').glob('*.episode.npz'))
    assert trace_depth(engine, eps, folder, frames=6) == 0


def test_the_fit_lowers_the_error_and_ships_a_checkpoint_whose_steps_read_depth_with_it(traced, tmp_path, one_pass):
    engine, folder, _ = traced
    traces = DepthTraces([folder])
    config = one_pass.replace(heads=HeadsConfig(step_depth_hidden=16, gaussian_layers=1))
    model = with_step_head(engine.model, config)
    final, scores = fit_step_depth_head(model, traces, None, tmp_path / 'fit',
                                        DepthFitConfig(steps=80, batch=8, lr=1e-2))
    assert scores['step_absrel_before'] == pytest.approx(absrel(engine.model.depth_head, traces))
    assert scores['step_absrel_after'] < scores['step_absrel_before']
    loaded, _ = load_checkpoint(final)
    assert loaded.step_depth_head is not None
    for k, v in engine.model.state_dict().items():  # everything else is the source model's
        assert torch.equal(loaded.state_dict()[k], v), k
    # live, the step's depth is the step head's reading of the last denoising pass; a reset keeps the clean head
    ep = read_episode(sorted((tmp_path / 'eps').glob('*.episode.npz'))[0])
    e = WorldEngine(loaded, EngineOptions(seed=0))
    calls = {'depth_head': 0, 'step_depth_head': 0}
    for name in calls:
        getattr(loaded, name).register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    e.reset(ep.rgb[0], ep.poses[0], ep.intrinsics)
    assert calls == {'depth_head': 1, 'step_depth_head': 0}
    e.step(ep.poses[1])
    e.step(ep.poses[2])
    assert calls == {'depth_head': 1, 'step_depth_head': 2}


def test_a_config_without_a_step_head_or_with_other_weights_is_refused(traced, one_pass):
    engine, _, _ = traced
    with pytest.raises(TrainError, match='no step depth head'):
        with_step_head(engine.model, one_pass)
    wider = one_pass.replace(heads=HeadsConfig(step_depth_hidden=16, gaussian_layers=2))
    with pytest.raises(TrainError, match='beyond the step depth head'):
        with_step_head(engine.model, wider)


def test_an_empty_trace_folder_is_one_clear_error(tmp_path):
    with pytest.raises(TrainError, match='no \\*.depth.npz'):
        DepthTraces([tmp_path])
