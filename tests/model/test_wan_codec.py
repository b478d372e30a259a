"""The Wan VAE codec against diffusers' AutoencoderKLWan on a tiny random reference."""

import json
import shutil
from pathlib import Path

import diffusers
import pytest
import torch
from safetensors.torch import load_file, save_file

from worldscape_ros.model.config import load_config
from worldscape_ros.model.wan_codec import WanCodec, load_wan_vae, read_wan_vae
from worldscape_ros.model.wan_import import WanImportError
from worldscape_ros.model.wan_reference import write_reference

TOLERANCE = 1e-5


@pytest.fixture(scope='module')
def vae_folder(tmp_path_factory) -> Path:
    return write_reference(tmp_path_factory.mktemp('wan') / 'pipe', 'tiny', seed=5) / 'vae'


@pytest.fixture(scope='module')
def codec_and_reference(vae_folder):
    codec = WanCodec(load_config('ws-wan-tiny')).eval()
    arch, files = read_wan_vae(vae_folder)
    load_wan_vae(codec, arch, files)
    cfg = {k: v for k, v in json.loads((vae_folder / 'config.json').read_text()).items() if not k.startswith('_')}
    ref = diffusers.AutoencoderKLWan(**cfg)
    ref.load_state_dict(load_file(str(vae_folder / 'diffusion_pytorch_model.safetensors')))
    stats = [torch.tensor(arch[k]).view(1, -1, 1, 1, 1) for k in ('latents_mean', 'latents_std')]
    return codec, ref.eval(), stats


def _video(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, frames, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _reference_latents(ref, stats, video: torch.Tensor) -> torch.Tensor:
    """diffusers' encode of [mid-grey anchor, video], normalised, the anchor's latent dropped: (B, T/4, C, h, w)."""
    mean, std = stats
    x = torch.cat([torch.zeros_like(video[:, :1]), video * 2 - 1], 1).permute(0, 2, 1, 3, 4)
    mu = ref.encode(x).latent_dist.mode()
    return ((mu - mean) / std)[:, :, 1:].permute(0, 2, 1, 3, 4)


def test_encode_equals_the_vaes_full_encode_and_streams_chunk_by_chunk(codec_and_reference, capsys):
    codec, ref, stats = codec_and_reference
    video = _video(16)
    with torch.no_grad():
        expected = _reference_latents(ref, stats, video)
        full = codec.encode(video)
        stream = codec.encoder_stream()
        streamed = torch.cat([stream.encode(video[:, i:i + 8]) for i in range(0, 16, 8)], 1)
    assert full.shape == (1, 4, 4, 8, 8)
    d_full, d_stream = (full - expected).abs().max().item(), (streamed - expected).abs().max().item()
    with capsys.disabled():
        print(f'\n[wan vae] encode vs diffusers: max abs diff {d_full:.2e}; streamed in 2 chunks {d_stream:.2e}')
    assert d_full < TOLERANCE and d_stream < TOLERANCE


def test_streaming_decode_equals_the_vaes_full_decode(codec_and_reference, capsys):
    codec, ref, stats = codec_and_reference
    mean, std = stats
    with torch.no_grad():
        z = codec.encode(_video(24, seed=1))  # 6 latent frames: 3 chunks of ws-wan-tiny's 2
        anchor = ref.encode(torch.zeros(1, 3, 1, 64, 64)).latent_dist.mode()
        full = ref.decode(torch.cat([anchor, z.permute(0, 2, 1, 3, 4) * std + mean], 2)).sample[:, :, 1:]
        expected = ((full + 1) / 2).permute(0, 2, 1, 3, 4)  # (1, 24, 3, 64, 64) in [0, 1]
        stream = codec.decoder_stream()
        cf = load_config('ws-wan-tiny').chunk_frames
        streamed = torch.cat([stream.decode(z[:, i:i + cf]) for i in range(0, 6, cf)], 1)
        whole = codec.decode(z)
    assert streamed.shape == expected.shape == (1, 24, 3, 64, 64)
    d_stream, d_whole = (streamed - expected).abs().max().item(), (whole - expected).abs().max().item()
    with capsys.disabled():
        print(f'\n[wan vae] streaming decode (3 chunks) vs diffusers full decode: max abs diff {d_stream:.2e}; '
              f'one call {d_whole:.2e}')
    assert d_stream < TOLERANCE and d_whole < TOLERANCE


def test_a_chunk_decoded_alone_differs_from_the_stream_only_by_its_missing_past(codec_and_reference):
    codec, _, _ = codec_and_reference
    with torch.no_grad():
        z = codec.encode(_video(16, seed=2))
        stream = codec.decoder_stream()
        first, second = stream.decode(z[:, :2]), stream.decode(z[:, 2:])
        assert torch.equal(first, codec.decode(z[:, :2]))  # the first chunk has no past
        assert not torch.allclose(second, codec.decode(z[:, 2:]))  # later chunks need the stream's past


def test_a_video_that_does_not_fill_whole_latent_frames_is_refused(codec_and_reference):
    codec, _, _ = codec_and_reference
    with pytest.raises(ValueError, match='video length 6 must be a multiple of temporal_down 4'):
        codec.encode(_video(6))


def test_a_bad_vae_folder_is_refused_with_its_reason(vae_folder, tmp_path):
    folder = Path(shutil.copytree(vae_folder, tmp_path / 'vae'))
    config = json.loads((folder / 'config.json').read_text())
    (folder / 'config.json').write_text(json.dumps({**config, '_class_name': 'AutoencoderKLCogVideoX'}))
    with pytest.raises(WanImportError, match="'AutoencoderKLCogVideoX', not AutoencoderKLWan"):
        read_wan_vae(folder)
    (folder / 'config.json').write_text(json.dumps({**config, 'is_residual': True}))
    with pytest.raises(WanImportError, match='Wan2.2-style VAE'):
        read_wan_vae(folder)
    (folder / 'config.json').write_text(json.dumps(config))
    weights = folder / 'diffusion_pytorch_model.safetensors'
    state = load_file(str(weights))
    state['decoder.conv_out.weight'] = torch.zeros(3, 8, 1, 1, 1)
    save_file(state, str(weights))
    codec = WanCodec(load_config('ws-wan-tiny'))
    with pytest.raises(WanImportError, match="'decoder.conv_out.weight' has shape"):
        load_wan_vae(codec, *read_wan_vae(folder))


def test_a_vae_of_other_latent_channels_than_the_transformer_is_refused(tmp_path):
    from worldscape_ros.model.wan_checkpoint import import_wan

    pipe = write_reference(tmp_path / 'pipe', 'tiny')
    config = json.loads((pipe / 'vae' / 'config.json').read_text())
    (pipe / 'vae' / 'config.json').write_text(json.dumps({**config, 'z_dim': 8, 'latents_mean': [0.0] * 8,
                                                          'latents_std': [1.0] * 8}))
    with pytest.raises(WanImportError, match='the Wan VAE has 8 latent channels, the transformer takes 4'):
        import_wan(pipe, 'ws-wan-tiny', tmp_path / 'm.safetensors')
    (pipe / 'vae' / 'config.json').write_text(json.dumps({**config, 'latents_std': [1.0, 0.0, 1.0, 1.0]}))
    with pytest.raises(WanImportError, match='latents_std must be positive'):
        read_wan_vae(pipe / 'vae')
