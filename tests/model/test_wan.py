"""The Wan2.1 import: WanDiT against diffusers' WanTransformer3DModel on tiny random reference models."""

import json
import shutil
from pathlib import Path

import diffusers
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from worldscape_ros.cli import main
from worldscape_ros.errors import ConfigError
from worldscape_ros.model.attention import block_causal_mask
from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.model.config import ModelConfig, load_config
from worldscape_ros.model.dit import Conditioning, LayerKV
from worldscape_ros.model.wan import WORLD_MODEL_PARTS, WanDiT
from worldscape_ros.model.wan_checkpoint import import_wan
from worldscape_ros.model.wan_import import (
    WanImportError,
    original_to_diffusers,
    wan_architecture,
    wan_model_config,
)
from worldscape_ros.model.wan_reference import WAN21_T2V_1_3B, parameter_comparison, write_reference

# float32 on CPU: the two implementations differ only in the order of float operations
TOLERANCE = 1e-5


@pytest.fixture(scope='module')
def reference(tmp_path_factory) -> Path:
    """A random tiny Wan2.1 pipeline folder (transformer/ and vae/) in diffusers format."""
    return write_reference(tmp_path_factory.mktemp('wan') / 'pipe', 'tiny', seed=3)


@pytest.fixture(scope='module')
def imported(reference, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('ckpt') / 'ws-wan-tiny.safetensors'
    assert main(['import-wan', str(reference), '--config', 'ws-wan-tiny', '--out', str(out)]) == 0
    return out


def _load_reference(folder: Path):
    """diffusers' model from its own folder (from_pretrained needs accelerate for fp32-kept modules)."""
    cfg = {k: v for k, v in json.loads((folder / 'config.json').read_text()).items() if not k.startswith('_')}
    ref = diffusers.WanTransformer3DModel(**cfg)
    ref.load_state_dict(load_file(str(folder / 'diffusion_pytorch_model.safetensors')))
    return ref.eval()


def _diffusers_velocity(ref, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, tokens_per_frame: int):
    """diffusers' forward on our layout: x (B, F, C, h, w), per-frame t in [0, 1] (per token for diffusers)."""
    timestep = (1000 * t).repeat_interleave(tokens_per_frame, dim=1)  # (B, F * N)
    out = ref(x.permute(0, 2, 1, 3, 4), timestep, text.expand(x.shape[0], -1, -1)).sample
    return out.permute(0, 2, 1, 3, 4)


def _randomize_world_model_parts(dit: WanDiT, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if name.startswith(WORLD_MODEL_PARTS):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_imported_model_computes_what_diffusers_wan_computes(reference, imported, capsys):
    model, info = load_checkpoint(imported)
    assert isinstance(model.dit, WanDiT) and info['extra']['imported_from']['layout'] == 'diffusers'
    ref = _load_reference(reference / 'transformer')
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    B, Fr = 2, 4
    x = torch.randn(B, Fr, cfg.codec.latent_channels, cfg.latent_height, cfg.latent_width, generator=g)
    t = torch.rand(B, Fr, generator=g)  # one flow time per frame
    with torch.no_grad():
        # the world model's inputs given, their layers at zero as imported
        cond = Conditioning(plucker=torch.randn(B, Fr, 6, cfg.height, cfg.width, generator=g),
                            pose=torch.randn_like(x), geometry=torch.randn_like(x),
                            coverage=torch.rand(B, Fr, 1, cfg.latent_height, cfg.latent_width, generator=g))
        ours = model.dit.eval()(x, t, cond).velocity
        theirs = _diffusers_velocity(ref, x, t, model.dit.text_embedding[None], cfg.tokens_per_frame)
        diff = (ours - theirs).abs().max().item()
        # a non-zero text embedding exercises the cross-attention
        model.dit.text_embedding.normal_(generator=g)
        diff_text = (model.dit(x, t, cond).velocity
                     - _diffusers_velocity(ref, x, t, model.dit.text_embedding[None], cfg.tokens_per_frame)).abs().max()
    with capsys.disabled():
        print(f'\n[wan] bidirectional forward vs diffusers: max abs diff {diff:.2e} (zero text), '
              f'{diff_text.item():.2e} (random text); |v| max {theirs.abs().max().item():.2f}')
    assert diff < TOLERANCE and diff_text.item() < TOLERANCE
    # and the additions do change the output once they move
    _randomize_world_model_parts(model.dit)
    with torch.no_grad():
        assert (model.dit(x, t, cond).velocity - ours).abs().max() > 1e-3


def test_streaming_forward_with_the_kv_cache_equals_the_full_block_causal_forward(imported, capsys):
    model, _ = load_checkpoint(imported)
    dit = model.dit.eval()
    _randomize_world_model_parts(dit)  # every conditioning path carries signal
    cfg = model.config
    g = torch.Generator().manual_seed(1)
    B, chunks, cf = 1, 3, cfg.chunk_frames
    Fr = chunks * cf
    x = torch.randn(B, Fr, cfg.codec.latent_channels, cfg.latent_height, cfg.latent_width, generator=g)
    t = torch.rand(B, Fr, generator=g)
    cond = Conditioning(plucker=torch.randn(B, Fr, 6, cfg.height, cfg.width, generator=g), pose=torch.randn_like(x),
                        geometry=torch.randn_like(x))
    ids = dit.chunk_ids(Fr)
    with torch.no_grad():
        full = dit(x, t, cond, mask=block_causal_mask(ids, ids)).velocity
        cache: list[list[LayerKV]] = []
        outs = []
        for c in range(chunks):
            part = slice(c * cf, (c + 1) * cf)
            context = None
            if cache:  # every earlier chunk's un-rotated keys, positioned at attention time
                merged = [LayerKV(torch.cat([kv[i].k for kv in cache], 2), torch.cat([kv[i].v for kv in cache], 2))
                          for i in range(len(dit.blocks))]
                context = dit.rotate_context(merged, dit.token_positions(c * cf, 0), tail=cfg.tokens_per_chunk)
            out = dit(x[:, part], t[:, part], cond.map(lambda s, p=part: s[:, p]), context=context,
                      first_frame=c * cf, return_kv=True)
            assert out.kv is not None
            cache.append(out.kv)
            outs.append(out.velocity)
    diff = (torch.cat(outs, 1) - full).abs().max().item()
    with capsys.disabled():
        print(f'\n[wan] streaming (KV cache) vs full block-causal forward: max abs diff {diff:.2e}')
    assert diff < TOLERANCE


def test_sharded_folder_with_an_index_imports_the_same_tensors(reference, imported, tmp_path):
    sharded = write_reference(tmp_path / 'sharded', 'tiny', seed=3, max_shard_size='20KB')
    index = json.loads((sharded / 'transformer' / 'diffusion_pytorch_model.safetensors.index.json').read_text())
    assert len(set(index['weight_map'].values())) > 1
    import_wan(sharded, 'ws-wan-tiny', tmp_path / 'm.safetensors')
    a, b = load_file(str(imported)), load_file(str(tmp_path / 'm.safetensors'))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers names -> the original Wan checkpoint's, written out independently of the importer's rules."""
    table = [('condition_embedder.time_embedder.linear_1.', 'time_embedding.0.'),
             ('condition_embedder.time_embedder.linear_2.', 'time_embedding.2.'),
             ('condition_embedder.text_embedder.linear_1.', 'text_embedding.0.'),
             ('condition_embedder.text_embedder.linear_2.', 'text_embedding.2.'),
             ('condition_embedder.time_proj.', 'time_projection.1.'), ('proj_out.', 'head.head.'),
             ('attn1.to_out.0.', 'self_attn.o.'), ('attn2.to_out.0.', 'cross_attn.o.'),
             ('attn1.to_', 'self_attn.'), ('attn2.to_', 'cross_attn.'), ('attn1.', 'self_attn.'),
             ('attn2.', 'cross_attn.'), ('ffn.net.0.proj.', 'ffn.0.'), ('ffn.net.2.', 'ffn.2.'), ('norm2.', 'norm3.')]
    out = {}
    for name, t in state.items():
        new = 'head.modulation' if name == 'scale_shift_table' else name.replace('scale_shift_table', 'modulation')
        for a, b in table:
            if a in new:
                new = new.replace(a, b)
                break
        out[new] = t
    return out


def test_original_wan_layout_imports_to_the_same_weights(reference, imported, tmp_path):
    folder = tmp_path / 'original'
    folder.mkdir()
    state = load_file(str(reference / 'transformer' / 'diffusion_pytorch_model.safetensors'))
    original = _to_original(state)
    assert 'blocks.0.self_attn.q.weight' in original and 'blocks.1.norm3.weight' in original
    assert all(original_to_diffusers(k) in state for k in original)
    save_file(original, str(folder / 'diffusion_pytorch_model.safetensors'))
    (folder / 'config.json').write_text(json.dumps({
        '_class_name': 'WanModel', 'model_type': 't2v', 'dim': 16, 'ffn_dim': 32, 'freq_dim': 16, 'in_dim': 4,
        'out_dim': 4, 'num_heads': 2, 'num_layers': 2, 'text_len': 8, 'text_dim': 16, 'eps': 1e-6}))
    import_wan(folder, 'ws-wan-tiny', tmp_path / 'm.safetensors', vae=reference / 'vae')
    a, b = load_file(str(imported)), load_file(str(tmp_path / 'm.safetensors'))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _copy(reference: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(reference, tmp_path / 'pipe'))


def _rewrite(path: Path, change) -> None:
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


def test_a_missing_shard_is_refused_with_its_name(tmp_path):
    pipe = write_reference(tmp_path / 'pipe', 'tiny', max_shard_size='20KB')
    shard = sorted((pipe / 'transformer').glob('*-of-*.safetensors'))[-1]
    shard.unlink()
    with pytest.raises(WanImportError, match=f'missing shard {shard.name}'):
        import_wan(pipe, 'ws-wan-tiny', tmp_path / 'm.safetensors')


def test_a_misshaped_tensor_is_refused_with_its_name_and_shapes(reference, tmp_path):
    pipe = _copy(reference, tmp_path)
    weights = pipe / 'transformer' / 'diffusion_pytorch_model.safetensors'
    _rewrite(weights, lambda s: s.update({'blocks.1.ffn.net.2.weight': torch.zeros(16, 30)}))
    with pytest.raises(WanImportError, match=r"'blocks.1.ffn.net.2.weight' has shape \(16, 30\).*\(16, 32\)"):
        import_wan(pipe, 'ws-wan-tiny', tmp_path / 'm.safetensors')


def test_a_missing_or_extra_tensor_is_refused(reference, tmp_path):
    pipe = _copy(reference, tmp_path)
    weights = pipe / 'transformer' / 'diffusion_pytorch_model.safetensors'
    _rewrite(weights, lambda s: s.pop('blocks.0.attn2.norm_k.weight'))
    with pytest.raises(WanImportError, match="lacks tensor 'blocks.0.attn2.norm_k.weight'"):
        import_wan(pipe, 'ws-wan-tiny', tmp_path / 'm.safetensors')
    _rewrite(weights, lambda s: s.update({'blocks.0.attn2.norm_k.weight': torch.ones(16),
                                          'blocks.0.attn2.add_k_proj.weight': torch.ones(16, 16)}))
    with pytest.raises(WanImportError, match="has tensor 'blocks.0.attn2.add_k_proj.weight'"):
        import_wan(pipe, 'ws-wan-tiny', tmp_path / 'm.safetensors')


@pytest.mark.parametrize('config, reason', [
    ({'_class_name': 'CogVideoXTransformer3DModel'}, 'not a Wan2.1 transformer'),
    ({'_class_name': 'WanTransformer3DModel', 'image_dim': 1280}, 'image-conditioned'),
    ({'_class_name': 'WanModel', 'model_type': 'i2v', 'dim': 16, 'num_heads': 2}, "model_type 'i2v'"),
])
def test_another_architecture_is_refused_with_its_reason(reference, tmp_path, config, reason):
    pipe = _copy(reference, tmp_path)
    (pipe / 'transformer' / 'config.json').write_text(json.dumps(config))
    with pytest.raises(WanImportError, match=reason):
        import_wan(pipe, 'ws-wan-tiny', tmp_path / 'm.safetensors')


def test_pickle_weights_are_never_loaded(reference, tmp_path):
    pipe = _copy(reference, tmp_path)
    weights = pipe / 'transformer' / 'diffusion_pytorch_model.safetensors'
    weights.rename(weights.with_suffix('.bin'))
    with pytest.raises(WanImportError, match='no .safetensors weights.*pickle files are never loaded'):
        import_wan(pipe, 'ws-wan-tiny', tmp_path / 'm.safetensors')


def test_a_config_of_another_shape_or_no_vae_is_refused(reference, tmp_path):
    with pytest.raises(WanImportError, match="'ws-tiny' has dit.dim 256, the Wan transformer has 16"):
        import_wan(reference, 'ws-tiny', tmp_path / 'm.safetensors')
    alone = Path(shutil.copytree(reference / 'transformer', tmp_path / 'alone' / 'transformer'))
    with pytest.raises(WanImportError, match='no Wan VAE found'):
        import_wan(alone, 'ws-wan-tiny', tmp_path / 'm.safetensors')


def test_the_command_refuses_a_bad_folder_in_one_line(reference, tmp_path, capsys):
    pipe = _copy(reference, tmp_path)
    (pipe / 'transformer' / 'config.json').write_text('{"_class_name": "UNet3DConditionModel"}')
    assert main(['import-wan', str(pipe), '--config', 'ws-wan-tiny', '--out', str(tmp_path / 'm.safetensors')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and "'UNet3DConditionModel', not a Wan2.1 transformer" in err
    assert not (tmp_path / 'm.safetensors').exists()


def test_a_stored_text_embedding_is_padded_with_zeros_as_wan_pads_prompts(reference, tmp_path):
    emb = torch.randn(1, 3, 16)
    save_file({'prompt_embeds': emb}, str(tmp_path / 'text.safetensors'))
    import_wan(reference, 'ws-wan-tiny', tmp_path / 'm.safetensors', text_embedding=tmp_path / 'text.safetensors')
    model, _ = load_checkpoint(tmp_path / 'm.safetensors')
    stored = model.dit.text_embedding
    assert torch.equal(stored[:3], emb[0]) and stored.shape == (8, 16) and not stored[3:].any()
    save_file({'prompt_embeds': torch.randn(3, 15)}, str(tmp_path / 'bad.safetensors'))
    with pytest.raises(WanImportError, match=r'shape \(3, 15\); needs \(L <= 8, 16\)'):
        import_wan(reference, 'ws-wan-tiny', tmp_path / 'm.safetensors', text_embedding=tmp_path / 'bad.safetensors')


def test_ws_1_3b_in_the_wan_layout_holds_wan2_1_t2v_1_3b_tensor_for_tensor():
    _, arch = wan_architecture('Wan2.1-T2V-1.3B', WAN21_T2V_1_3B)
    vae = {'base_dim': 96, 'z_dim': 16, 'dim_mult': [1, 2, 4, 4], 'num_res_blocks': 2}
    derived = wan_model_config(load_config('ws-1.3b'), arch, vae)
    assert derived.replace(name='ws-wan-1.3b') == load_config('ws-wan-1.3b')  # the registered config is the import's
    r = parameter_comparison(derived, WAN21_T2V_1_3B)
    assert r['mismatched'] == [] and r['wan_tensors'] == 825
    assert r['mapped_parameters'] == r['wan_parameters'] == 1_418_996_800
    assert r['dit_parameters'] == r['wan_parameters'] + sum(r['world_model_parts'].values())


def test_the_wan_layout_is_opt_in_and_validated():
    tiny = load_config('ws-tiny')
    assert tiny.dit.layout == 'worldscape' and tiny.codec.kind == 'conv' and tiny.conditioning.pose_tokens
    assert 'layout' not in tiny.to_dict()['dit']  # configs at the defaults serialise as before
    d = tiny.to_dict()
    with pytest.raises(ConfigError, match="pose_tokens false needs dit.layout 'wan'"):
        ModelConfig.from_dict({**d, 'conditioning': {**d['conditioning'], 'pose_tokens': False}})
    with pytest.raises(ConfigError, match='the wan codec is the Wan2.1 VAE'):
        ModelConfig.from_dict({**d, 'codec': {**d['codec'], 'kind': 'wan', 'dim_mult': [1, 2, 4]}})


def test_import_check_runs_diffusers_on_the_same_tensors_and_refuses_a_difference(reference, tmp_path, capsys,
                                                                                 monkeypatch):
    assert main(['import-wan', str(reference), '--config', 'ws-wan-tiny', '--out', str(tmp_path / 'a.safetensors'),
                 '--check']) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if 'checked against' in x)
    assert float(line.split('max abs difference ')[1].split()[0]) < TOLERANCE
    monkeypatch.setattr('worldscape_ros.model.wan_checkpoint.compare_with_diffusers', lambda dit, source: (0.5, 2.0))
    with pytest.raises(WanImportError, match='differs from diffusers.* by 0.5.*nothing written'):
        import_wan(reference, 'ws-wan-tiny', tmp_path / 'b.safetensors', check=True)
    assert not (tmp_path / 'b.safetensors').exists()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3), max_leaves=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.fixed_dictionaries({'_class_name': st.sampled_from(['WanTransformer3DModel', 'WanModel', 'Other'])},
                                    optional={k: _json_values for k in (
                                        'num_attention_heads', 'attention_head_dim', 'num_layers', 'ffn_dim',
                                        'patch_size', 'in_channels', 'out_channels', 'dim', 'num_heads',
                                        'model_type', 'qk_norm', 'image_dim', 'eps')}))
def test_any_transformer_config_is_imported_or_refused_with_an_import_error(reference, tmp_path, config):
    folder = tmp_path / 'pipe'
    if not folder.exists():
        shutil.copytree(reference, folder)
    (folder / 'transformer' / 'config.json').write_text(json.dumps(config))
    try:
        import_wan(folder, 'ws-wan-tiny', tmp_path / 'm.safetensors')
    except WanImportError:
        pass
