"""The start depth head fits on the engine's own resets: trace (resets only) -> fit the head alone -> a checkpoint
whose only new tensors are the head's, which a reset without depth then reads."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from train_clips import write_walk_and_hand

from worldscape_ros.data.episode import read_episode
from worldscape_ros.errors import TrainError
from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.head_fit import DepthFitConfig
from worldscape_ros.train.start_depth import (
    StartTraces,
    fit_start_depth_head,
    start_depth,
    trace_starts,
    with_start_head,
)


@pytest.fixture
def traced(tmp_path, micro_config):
    eps = write_walk_and_hand(tmp_path / 'eps', 6, micro_config.height, micro_config.width, step=0.05, yaw=0.1)
    torch.manual_seed(0)
    engine = WorldEngine(WorldModel(micro_config), EngineOptions(seed=0))
    n = trace_starts(engine, eps, tmp_path / 'traces', every=2, frames=6)
    return engine, eps, tmp_path / 'traces', n


def _head_config(config, channels=8):
    return config.replace(heads=replace(config.heads, start_depth_channels=channels))


def test_tracing_records_each_resets_features_beside_its_frames_rgb_and_true_depth(traced, micro_config):
    engine, eps, folder, n = traced
    assert n == 2 * 3  # frames 0, 2 and 4 of each episode
    traces = StartTraces([folder])
    N = micro_config.grid[0] * micro_config.grid[1]
    H, W = micro_config.height, micro_config.width
    assert traces.features.shape == (6, N, micro_config.dit.dim)
    assert traces.rgb.shape == (6, H, W, 3) and traces.rgb.dtype == torch.uint8
    assert traces.depth.shape == (6, H, W)
    assert not engine.model.depth_head._forward_pre_hooks  # the recorder is gone after the trace
    ep = read_episode(eps[0])
    np.testing.assert_array_equal(traces.rgb[1].numpy(), ep.rgb[2])
    np.testing.assert_allclose(traces.depth[1].numpy(), ep.depth[2].astype(np.float16).astype(np.float32))
    got = []  # what a start without depth gives the depth head, live
    hook = engine.model.depth_head.register_forward_pre_hook(lambda _m, args: got.append(args[0][0, -1]))
    engine.reset(ep.rgb[2], ep.poses[2], ep.intrinsics)
    hook.remove()
    assert torch.allclose(traces.features[1].float(), got[0], rtol=2e-3, atol=2e-3)  # float16 storage


def test_a_rerun_writes_only_the_shards_not_yet_written(traced):
    engine, eps, folder, _ = traced
    assert trace_starts(engine, eps, folder, every=2, frames=6) == 0
    shards = sorted(folder.glob('*.start.npz'))
    kept = shards[1].read_bytes()
    shards[0].unlink()
    assert trace_starts(engine, eps, folder, every=2, frames=6) == 3
    assert shards[1].read_bytes() == kept


def test_the_fit_moves_only_the_start_heads_tensors_and_lowers_the_error(traced, tmp_path, micro_config):
    engine, eps, folder, _ = traced
    traces = StartTraces([folder])
    model = with_start_head(engine.model, _head_config(micro_config))
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    final, scores = fit_start_depth_head(model, traces, None, tmp_path / 'fit',
                                         DepthFitConfig(steps=60, batch=4, lr=1e-2, score_every=30))
    assert scores['start_absrel_after'] < scores['start_absrel_before']
    loaded, _ = load_checkpoint(final)
    state = loaded.state_dict()
    assert set(state) - set(engine.model.state_dict()) == {k for k in state if k.startswith('start_depth_head.')}
    for k, v in engine.model.state_dict().items():  # everything else is the source model's
        assert torch.equal(state[k], v), k
    assert any(not torch.equal(state[k], fresh[k]) for k in state if k.startswith('start_depth_head.'))
    assert all(p.requires_grad for p in model.parameters())  # the fit leaves the model as it found it
    # live, a start without depth gives what the fit scored
    ep = read_episode(eps[0])
    frame = WorldEngine(loaded, EngineOptions(seed=0)).reset(ep.rgb[0], ep.poses[0], ep.intrinsics)
    with torch.no_grad():
        fitted = start_depth(loaded, traces, slice(0, 1))[0].numpy()
    np.testing.assert_allclose(frame.depth, fitted, rtol=1e-2, atol=1e-2)  # float16 storage of the features


def test_a_config_without_a_start_head_or_with_other_weights_is_refused(traced, micro_config):
    engine, _, _, _ = traced
    with pytest.raises(TrainError, match='no start depth head'):
        with_start_head(engine.model, micro_config)
    wider = _head_config(micro_config.replace(heads=replace(micro_config.heads, gaussian_layers=2)))
    with pytest.raises(TrainError, match='beyond the start depth head'):
        with_start_head(engine.model, wider)


def test_an_empty_trace_folder_is_one_clear_error(tmp_path):
    with pytest.raises(TrainError, match='no \\*.start.npz'):
        StartTraces([tmp_path])
