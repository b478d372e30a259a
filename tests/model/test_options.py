"""Engine options: bad values are one ConfigError naming the option; the engine runs with what it is given."""

import dataclasses

import pytest
import torch

from worldscape_ros.errors import ConfigError
from worldscape_ros.model.batched import BatchedEngine
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel


@pytest.mark.parametrize('changes, match', [
    ({'dtype': 'float64'}, "dtype must be one of .* got 'float64'"),
    ({'steps': 0}, 'steps must be an int >= 1'),
    ({'steps': 1.5}, 'steps must be an int >= 1'),
    ({'window': 0}, 'window must be an int >= 1'),
    ({'seed': '3'}, "seed must be an int, got '3'"),
    ({'seed': True}, 'seed must be an int'),
    ({'pool_bytes': -1}, 'pool_bytes must be None or an int >= 0'),
    ({'device': 'tpu'}, "device 'tpu' is not a torch device"),
])
def test_a_bad_option_is_one_config_error_naming_it(changes, match):
    with pytest.raises(ConfigError, match=match):
        EngineOptions(**changes)


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EngineOptions().seed = 1  # type: ignore[misc]


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without a GPU')
def test_an_absent_gpu_is_refused_before_the_weights_load(tmp_path):
    with pytest.raises(ConfigError, match='no CUDA GPU'):
        WorldEngine.from_pretrained(str(tmp_path / 'missing.safetensors'), options=EngineOptions(device='cuda'))


def test_the_engine_runs_with_its_options_and_resolves_the_config_defaults(micro_config):
    net = WorldModel(micro_config)
    default = WorldEngine(net)
    assert default.options == EngineOptions()
    assert (default.steps, default.window) == (micro_config.sampler.steps, max(1, micro_config.sampler.rolling_window))
    e = WorldEngine(net, EngineOptions(dtype='bfloat16', steps=3, window=2, seed=9, memory=False, pool_bytes=1000))
    assert (e.dtype, e.steps, e.window, e.seed) == (torch.bfloat16, 3, 2, 9)
    assert e.memory.config.pool_chunks == e.memory.config.retrieve_chunks == 0  # memory off: no global pool
    assert e.memory.config.pool_bytes == 1000 and not e.commit_imagined


def test_from_pretrained_passes_the_options_whole():
    options = EngineOptions(steps=1, seed=4, window=1)
    engine = WorldEngine.from_pretrained('random', 'ws-tiny', options)
    assert engine.options is options and engine.sha256 == 'random-init'


def test_batched_sessions_share_the_options_and_count_their_seeds_from_its_seed(micro_config):
    batch = BatchedEngine.over(WorldModel(micro_config), 3, EngineOptions(steps=1, seed=10))
    assert [s.seed for s in batch.sessions] == [10, 11, 12]
    assert all(s.options == EngineOptions(steps=1, seed=s.seed) for s in batch.sessions)
