import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from worldscape_ros.errors import TrainError
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.config import RunConfig
from worldscape_ros.train.runtime import setup_runtime
from worldscape_ros.train.state import (
    STATE_FILE,
    TrainState,
    flatten_optimizer,
    latest_save,
    load_state,
    save_state,
    unflatten_optimizer,
)


def _stepped(model: WorldModel) -> torch.optim.AdamW:
    params = [p for n, p in model.named_parameters() if n.startswith('dit.')]
    opt = torch.optim.AdamW(params, lr=1e-3)
    sum(p.square().sum() for p in params).backward()
    opt.step()
    return opt


def test_optimizer_state_round_trips_keyed_by_dotted_parameter_names(micro_config):
    torch.manual_seed(0)
    rt = setup_runtime(RunConfig(device='cpu'))
    model = WorldModel(micro_config)
    opt = _stepped(model)
    tensors, meta = flatten_optimizer('model', rt.optimizer_state(model, opt))
    assert any(k.startswith('optim.model.dit.blocks.0.qkv.weight.') for k in tensors)

    other = WorldModel(micro_config)
    other.load_state_dict(model.state_dict())
    fresh = torch.optim.AdamW([p for n, p in other.named_parameters() if n.startswith('dit.')], lr=5.0)
    rt.load_optimizer(other, fresh, unflatten_optimizer('model', tensors, meta))
    a, b = opt.state_dict(), fresh.state_dict()
    assert b['param_groups'][0]['lr'] == 1e-3
    for pid, st in a['state'].items():
        for key, value in st.items():
            assert torch.equal(value, b['state'][pid][key]), (pid, key)


def test_resume_of_an_index_keyed_save_names_the_old_format(micro_config, tmp_path):
    rt = setup_runtime(RunConfig(device='cpu'))
    model = WorldModel(micro_config)
    opt = _stepped(model)
    save_state(tmp_path, TrainState(1, {}, 'fp', {}), {'model': model}, {'model': rt.optimizer_state(model, opt)})
    path = latest_save(tmp_path) / STATE_FILE
    with safe_open(str(path), framework='pt') as f:
        meta = {k: v for k, v in (f.metadata() or {}).items() if k != 'optimizer_keys'}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(TrainError, match='by index'):
        load_state(path.parent, 'fp', {'model': micro_config}, ['model'])
