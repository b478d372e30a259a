import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from worldscape_ros.errors import CheckpointError
from worldscape_ros.model.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from worldscape_ros.model.world_model import WorldModel


def test_checkpoint_round_trip_restores_every_tensor(tmp_path, micro_config, randomize):
    model = randomize(WorldModel(micro_config))
    digest = save_checkpoint(tmp_path / 'm.safetensors', model, {'steps': 3})
    loaded, info = load_checkpoint(tmp_path / 'm.safetensors')
    assert info['weights_sha256'] == digest and info['extra'] == {'steps': 3}
    assert loaded.config == micro_config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_truncated_checkpoint_is_refused(tmp_path, micro_config):
    path = tmp_path / 'm.safetensors'
    save_checkpoint(path, WorldModel(micro_config))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated|corrupt|readable'):
        load_checkpoint(path)


def _rewrite(path, mutate_tensors=None, mutate_meta=None):
    with safe_open(str(path), framework='pt') as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if mutate_tensors:
        mutate_tensors(tensors)
    if mutate_meta:
        mutate_meta(meta)
    save_file(tensors, str(path), metadata=meta)


def test_tensor_with_wrong_shape_is_named(tmp_path, micro_config):
    path = tmp_path / 'm.safetensors'
    save_checkpoint(path, WorldModel(micro_config))
    _rewrite(path, lambda t: t.__setitem__('dit.out.weight', torch.zeros(3, 3)))
    with pytest.raises(CheckpointError, match="'dit.out.weight' has shape"):
        load_checkpoint(path)


def test_missing_tensor_is_named(tmp_path, micro_config):
    path = tmp_path / 'm.safetensors'
    save_checkpoint(path, WorldModel(micro_config))
    _rewrite(path, lambda t: t.pop('dit.out.bias'))
    with pytest.raises(CheckpointError, match="lacks tensor 'dit.out.bias'"):
        load_checkpoint(path)


def test_tampered_tensor_fails_its_hash(tmp_path, micro_config):
    path = tmp_path / 'm.safetensors'
    save_checkpoint(path, WorldModel(micro_config))
    _rewrite(path, lambda t: t['codec.decoder.0.bias'].add_(1.0))
    with pytest.raises(CheckpointError, match="'codec.decoder.0.bias' does not match"):
        load_checkpoint(path)


def test_future_format_version_is_refused(tmp_path, micro_config):
    path = tmp_path / 'm.safetensors'
    save_checkpoint(path, WorldModel(micro_config))
    _rewrite(path, mutate_meta=lambda m: m.__setitem__('format_version', '99'))
    with pytest.raises(CheckpointError, match='format version'):
        read_metadata(path)


def test_checkpoint_of_another_config_is_refused(tmp_path, micro_config):
    path = tmp_path / 'm.safetensors'
    save_checkpoint(path, WorldModel(micro_config))
    bigger = micro_config.replace(dit=micro_config.dit.__class__(**{**micro_config.dit.__dict__, 'dim': 64}))
    with pytest.raises(CheckpointError, match='has shape'):
        load_checkpoint(path, config=bigger)


def test_a_pickle_file_is_never_unpickled(tmp_path):
    path = tmp_path / 'evil.safetensors'
    path.write_bytes(b'\x80\x04\x95' + json.dumps({'x': 1}).encode())
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_export_swaps_in_the_donor_codec_and_keeps_every_other_tensor(tmp_path, micro_config, randomize):
    from worldscape_ros.model.checkpoint import export_checkpoint

    base = randomize(WorldModel(micro_config))
    donor = randomize(WorldModel(micro_config), seed=7)
    assert not torch.equal(next(base.codec.parameters()), next(donor.codec.parameters()))
    save_checkpoint(tmp_path / 'base.safetensors', base, {'steps': 5})
    save_checkpoint(tmp_path / 'donor.safetensors', donor)
    export_checkpoint(tmp_path / 'base.safetensors', tmp_path / 'out.safetensors',
                      codec_from=tmp_path / 'donor.safetensors')
    out, info = load_checkpoint(tmp_path / 'out.safetensors')
    for name, t in out.state_dict().items():
        source = donor if name.startswith('codec.') else base
        assert torch.equal(t, source.state_dict()[name]), name
    assert info['extra']['steps'] == 5
    assert info['extra']['exported_from']['codec_from'].endswith('donor.safetensors')


def test_export_swaps_in_a_refiner_from_a_file_of_its_tensors_alone(tmp_path, micro_config, randomize):
    from safetensors.torch import save_file

    from worldscape_ros.model.checkpoint import export_checkpoint

    base = randomize(WorldModel(micro_config))
    donor = randomize(WorldModel(micro_config), seed=7)
    save_checkpoint(tmp_path / 'base.safetensors', base)
    save_file({f'refiner.{k}': v.contiguous() for k, v in donor.refiner.state_dict().items()},
              str(tmp_path / 'refiner.safetensors'))
    export_checkpoint(tmp_path / 'base.safetensors', tmp_path / 'out.safetensors',
                      refiner_from=tmp_path / 'refiner.safetensors')
    out, info = load_checkpoint(tmp_path / 'out.safetensors')
    for name, t in out.state_dict().items():
        source = donor if name.startswith('refiner.') else base  # the hand refiner stays the base's
        assert torch.equal(t, source.state_dict()[name]), name
    assert info['extra']['exported_from']['refiner_from'].endswith('refiner.safetensors')


@pytest.mark.parametrize('damage, message', [
    ('none', 'holds no refiner'), ('shape', 'has shape'), ('missing', 'lacks tensor'), ('extra', 'unexpected'),
])
def test_export_refuses_a_refiner_file_that_does_not_fit_the_model(tmp_path, micro_config, damage, message):
    from safetensors.torch import save_file

    from worldscape_ros.model.checkpoint import export_checkpoint

    model = WorldModel(micro_config)
    save_checkpoint(tmp_path / 'base.safetensors', model)
    tensors = {f'refiner.{k}': v.clone() for k, v in model.refiner.state_dict().items()}
    first = next(iter(tensors))
    if damage == 'none':
        tensors = {'codec.x': torch.zeros(1)}
    elif damage == 'shape':
        tensors[first] = torch.zeros(3)
    elif damage == 'missing':
        del tensors[first]
    else:
        tensors['refiner.stray'] = torch.zeros(1)
    save_file(tensors, str(tmp_path / 'refiner.safetensors'))
    with pytest.raises(CheckpointError, match=message):
        export_checkpoint(tmp_path / 'base.safetensors', tmp_path / 'out.safetensors',
                          refiner_from=tmp_path / 'refiner.safetensors')
    assert not (tmp_path / 'out.safetensors').exists()


def test_export_under_a_config_of_another_architecture_is_refused(tmp_path, micro_config):
    from worldscape_ros.model.checkpoint import export_checkpoint

    save_checkpoint(tmp_path / 'base.safetensors', WorldModel(micro_config))
    with pytest.raises(CheckpointError, match='shape|lacks|unexpected'):
        export_checkpoint(tmp_path / 'base.safetensors', tmp_path / 'out.safetensors', config='ws-tiny')
    assert not (tmp_path / 'out.safetensors').exists()


def test_export_in_half_precision_halves_the_file_and_loads_back_the_rounded_weights(tmp_path, micro_config,
                                                                                    randomize):
    from worldscape_ros.model.checkpoint import export_checkpoint

    base = randomize(WorldModel(micro_config))
    save_checkpoint(tmp_path / 'base.safetensors', base)
    digest = export_checkpoint(tmp_path / 'base.safetensors', tmp_path / 'half.safetensors', dtype=torch.float16)
    ratio = (tmp_path / 'half.safetensors').stat().st_size / (tmp_path / 'base.safetensors').stat().st_size
    assert 0.4 < ratio < 0.6
    with safe_open(str(tmp_path / 'half.safetensors'), framework='pt') as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64, torch.bool}
    loaded, info = load_checkpoint(tmp_path / 'half.safetensors')  # verified against the recorded hashes
    assert info['weights_sha256'] == digest and info['extra']['exported_from']['dtype'] == 'float16'
    for name, t in loaded.state_dict().items():
        ref = base.state_dict()[name]
        assert t.dtype == ref.dtype, name
        if t.is_floating_point():
            assert torch.equal(t, ref.half().to(ref.dtype)), name


def test_a_weight_beyond_half_precision_is_refused_not_stored_as_inf(tmp_path, micro_config):
    from worldscape_ros.model.checkpoint import export_checkpoint

    model = WorldModel(micro_config)
    with torch.no_grad():
        next(model.dit.parameters()).view(-1)[0] = 1e6
    save_checkpoint(tmp_path / 'base.safetensors', model)
    with pytest.raises(CheckpointError, match=r'up to 1e\+06, beyond torch.float16'):
        export_checkpoint(tmp_path / 'base.safetensors', tmp_path / 'half.safetensors', dtype=torch.float16)
    assert not (tmp_path / 'half.safetensors').exists()
