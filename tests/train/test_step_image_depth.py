"""The step image depth head's fit: traced with the engine's output frames, fitted alone (tests/model/
test_step_image_depth_head.py: read live)."""

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
from worldscape_ros.train.depth_head import DepthTraces, step_image_depth, trace_depth
from worldscape_ros.train.head_fit import DepthFitConfig, fit_depth_head, samples_absrel, with_new_head

HEAD = 'step_image_depth_head'


@pytest.fixture
def one_pass(micro_config):
    return micro_config.replace(sampler=SamplerConfig(steps=1, cache_from_last_step=True),
                                heads=HeadsConfig(step_depth_hidden=16, gaussian_layers=1))


@pytest.fixture
def traced(tmp_path, one_pass):
    eps = write_walk_and_hand(tmp_path / 'eps', 6, one_pass.height, one_pass.width, step=0.05, yaw=0.1)
    torch.manual_seed(0)
    engine = WorldEngine(WorldModel(one_pass), EngineOptions(seed=0))
    trace_depth(engine, eps, tmp_path / 'traces', frames=6)
    return engine, tmp_path / 'traces'


def with_image_head(one_pass, channels=8):
    return one_pass.replace(heads=HeadsConfig(step_depth_hidden=16, gaussian_layers=1,
                                              step_image_depth_channels=channels))


def test_traces_hold_the_frames_the_engine_output_at_each_step(traced, tmp_path):
    engine, folder = traced
    traces = DepthTraces([folder], rgb=True)
    ep = read_episode(sorted((tmp_path / 'eps').glob('*.episode.npz'))[0])
    e = WorldEngine(engine.model, EngineOptions(seed=0))
    e.reset(ep.rgb[0], ep.poses[0], ep.intrinsics, ep.depth[0])
    first = e.step(ep.poses[1])
    assert traces.rgb.shape == (10, *first.rgb.shape)
    np.testing.assert_array_equal(traces.rgb[0].numpy(), first.rgb)


def test_traces_from_before_the_frames_were_recorded_are_refused_for_the_image_head(traced):
    _, folder = traced
    shard = sorted(folder.glob('*.depth.npz'))[0]
    with np.load(shard) as z:
        old = {k: z[k] for k in z.files if k != 'rgb'}
    np.savez(shard, **old)
    DepthTraces([folder])  # the step depth head's fit does not need them
    with pytest.raises(TrainError, match='no output frames'):
        DepthTraces([folder], rgb=True)


def test_the_fit_moves_only_the_image_heads_tensors_and_lowers_the_error(traced, tmp_path, one_pass):
    engine, folder = traced
    traces = DepthTraces([folder], rgb=True)
    model = with_new_head(engine.model, with_image_head(one_pass), HEAD)
    before = samples_absrel(model, traces, step_image_depth, head=False)
    final, scores = fit_depth_head(model, HEAD, step_image_depth, traces, None, tmp_path / 'fit',
                                   DepthFitConfig(steps=60, batch=8, lr=1e-2))
    assert scores['absrel_before'] == pytest.approx(before)
    assert scores['absrel_after'] < scores['absrel_before']
    loaded, _ = load_checkpoint(final)
    assert loaded.step_image_depth_head is not None
    for k, v in engine.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_a_config_without_the_image_head_is_refused(traced, one_pass):
    engine, _ = traced
    with pytest.raises(TrainError, match='no step image depth head'):
        with_new_head(engine.model, one_pass, HEAD)
