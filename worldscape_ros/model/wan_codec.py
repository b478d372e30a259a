"""The Wan2.1 video VAE (diffusers' `AutoencoderKLWan`) behind the codec protocol of `ConvCodec`, with causal
chunked streaming.

Wan's VAE is causal in time: its first latent frame encodes one video frame and every later one the next 4
(feature caches of 2 frames carry the past between calls). The world model's codec protocol maps 4k video
frames to k latent frames, so every stream starts from a fixed anchor, one mid-grey frame, which is encoded
(and its latent decoded) first and dropped: latent i then holds video frames 4i..4i+3, conditioned causally on
all earlier frames. A stream continued chunk by chunk computes exactly what one pass over the whole video
computes, so a live rollout decodes each chunk as it leaves the denoiser without seams; `encode` and `decode`
are single-chunk streams (stateless), the protocol the engine and the training batches call.

Latents are normalised per channel by the VAE's latents_mean and latents_std (buffers stored with the weights),
as Wan's pipelines do, so the imported transformer sees the latents it was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from safetensors import SafetensorError, safe_open
from torch import nn

from worldscape_ros.errors import WanImportError
from worldscape_ros.model.config import ModelConfig

TEMPORAL_DOWN = 4  # Wan2.1's VAE: 4 video frames per latent frame after the first


def build_wan_vae(config: ModelConfig) -> Any:
    """diffusers' AutoencoderKLWan (untyped: diffusers' lazy module tree defeats the type checker)."""
    from diffusers import AutoencoderKLWan  # the reference implementation, a dependency of this codec only

    c = config.codec
    return AutoencoderKLWan(base_dim=c.width, z_dim=c.latent_channels, dim_mult=list(c.dim_mult),
                            num_res_blocks=c.res_blocks, attn_scales=[], temperal_downsample=[False, True, True],
                            latents_mean=[0.0] * c.latent_channels, latents_std=[1.0] * c.latent_channels)


class WanEncodeStream:
    """Causal encoding of consecutive chunks of one batch of videos: (B, 4m, 3, H, W) -> (B, m, C, h, w)."""

    def __init__(self, codec: WanCodec) -> None:
        self.codec = codec
        self.cache: list[Any] = [None] * codec.vae._cached_conv_counts['encoder']
        self.started = False

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, n, H, W) in [-1, 1], n = 1 (the anchor) or 4 -> encoder features (B, 2C, 1, h, w)."""
        out: torch.Tensor = self.codec.vae.encoder(x, feat_cache=self.cache, feat_idx=[0])
        return out

    def _latents(self, feats: torch.Tensor) -> torch.Tensor:
        mu = self.codec.vae.quant_conv(feats)[:, : self.codec.latent_channels]  # the posterior's mean
        return rearrange(self.codec.normalise(mu), 'b c t h w -> b t c h w')

    def start(self, like: torch.Tensor) -> torch.Tensor:
        """Encode the anchor, a mid-grey frame of the size of `like` (B, 3, n, H, W); its latent (B, 1, C, h, w)."""
        self.started = True
        return self._latents(self._frames(torch.zeros_like(like[:, :, :1])))

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        T = video.shape[1]
        if T % TEMPORAL_DOWN:
            raise ValueError(f'video length {T} must be a multiple of temporal_down {TEMPORAL_DOWN}')
        x = rearrange(video * 2 - 1, 'b t c h w -> b c t h w')
        if not self.started:
            self.start(x)  # encoded and dropped: the stream's causal past
        feats = torch.cat([self._frames(x[:, :, i:i + TEMPORAL_DOWN]) for i in range(0, T, TEMPORAL_DOWN)], dim=2)
        return self._latents(feats)


class WanDecodeStream:
    """Causal decoding of consecutive latent chunks: (B, m, C, h, w) -> (B, 4m, 3, H, W) in [0, 1]."""

    def __init__(self, codec: WanCodec) -> None:
        self.codec = codec
        self.cache: list[Any] = [None] * codec.vae._cached_conv_counts['decoder']
        self.started = False

    def _latent(self, z: torch.Tensor, first: bool) -> torch.Tensor:
        """z (B, C, 1, h, w) un-normalised -> frames (B, 3, 1 or 4, H, W) in [-1, 1]."""
        vae = self.codec.vae
        out: torch.Tensor = vae.decoder(vae.post_quant_conv(z), feat_cache=self.cache, feat_idx=[0], first_chunk=first)
        return out

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        z = self.codec.denormalise(rearrange(latent, 'b t c h w -> b c t h w'))
        if not self.started:
            B, _, _, h, w = z.shape
            down = self.codec.spatial_down
            like = z.new_zeros(B, 3, 1, h * down, w * down)
            anchor = rearrange(WanEncodeStream(self.codec).start(like), 'b t c h w -> b c t h w')
            self._latent(self.codec.denormalise(anchor), first=True)  # decoded and dropped: the causal past
            self.started = True
        frames = torch.cat([self._latent(z[:, :, i:i + 1], first=False) for i in range(z.shape[2])], dim=2)
        return rearrange((frames.clamp(-1, 1) + 1) / 2, 'b c t h w -> b t c h w')


class WanCodec(nn.Module):
    """The LatentCodec protocol over Wan2.1's VAE: encode (B, 4k, 3, H, W) in [0, 1] -> (B, k, C, H/8, W/8)."""

    vae: Any
    latents_mean: torch.Tensor
    latents_std: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.codec
        self.latent_channels = c.latent_channels
        self.temporal_down = c.temporal_down
        self.spatial_down = c.spatial_down
        self.vae = build_wan_vae(config)
        self.register_buffer('latents_mean', torch.zeros(c.latent_channels))
        self.register_buffer('latents_std', torch.ones(c.latent_channels))

    def normalise(self, mu: torch.Tensor) -> torch.Tensor:
        """(B, C, T, h, w) posterior mean -> the latents the transformer sees."""
        shape = (1, -1, 1, 1, 1)
        return (mu - self.latents_mean.view(shape).to(mu)) / self.latents_std.view(shape).to(mu)

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1, 1)
        return z * self.latents_std.view(shape).to(z) + self.latents_mean.view(shape).to(z)

    def encoder_stream(self) -> WanEncodeStream:
        """A causal encoder for one batch of videos, fed chunk after chunk."""
        return WanEncodeStream(self)

    def decoder_stream(self) -> WanDecodeStream:
        """A causal decoder for one batch of latent videos, fed chunk after chunk (a live rollout's chunks)."""
        return WanDecodeStream(self)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.encoder_stream().encode(video)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder_stream().decode(latent)


def read_wan_vae(path: str | Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """The config and tensor files of a diffusers-format AutoencoderKLWan folder (or a pipeline's `vae/`)."""
    folder = Path(path)
    if not (folder / 'config.json').is_file() and (folder / 'vae' / 'config.json').is_file():
        folder = folder / 'vae'
    try:
        cfg = json.loads((folder / 'config.json').read_text())
    except FileNotFoundError:
        raise WanImportError(f'{folder}: no config.json (a Wan VAE in diffusers format)') from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WanImportError(f'{folder}/config.json: not readable JSON: {exc}') from None
    if not isinstance(cfg, dict) or cfg.get('_class_name') != 'AutoencoderKLWan':
        name = cfg.get('_class_name') if isinstance(cfg, dict) else None
        raise WanImportError(f'{folder}/config.json describes {name or "an unknown model"!r}, not AutoencoderKLWan')
    if cfg.get('is_residual') or cfg.get('patch_size') or cfg.get('attn_scales') or cfg.get('decoder_base_dim'):
        raise WanImportError(f'{folder}: a Wan2.2-style VAE (residual, patchified or with attention scales); the '
                             'world model takes the Wan2.1 VAE')
    if cfg.get('temperal_downsample', [False, True, True]) != [False, True, True]:
        raise WanImportError(f'{folder}: temperal_downsample {cfg.get("temperal_downsample")}; the Wan2.1 VAE has '
                             '[false, true, true] (4 frames per latent frame)')
    try:
        arch: dict[str, Any] = {'base_dim': int(cfg.get('base_dim', 96)), 'z_dim': int(cfg.get('z_dim', 16)),
                                'dim_mult': [int(m) for m in cfg.get('dim_mult', [1, 2, 4, 4])],
                                'num_res_blocks': int(cfg.get('num_res_blocks', 2)),
                                'latents_mean': [float(v) for v in cfg.get('latents_mean', [])],
                                'latents_std': [float(v) for v in cfg.get('latents_std', [])]}
    except (TypeError, ValueError, OverflowError) as exc:
        raise WanImportError(f'{folder}/config.json: malformed setting ({type(exc).__name__}: {exc})') from None
    if arch['z_dim'] < 1 or arch['base_dim'] < 1 or arch['num_res_blocks'] < 1 or len(arch['dim_mult']) != 4 \
            or min(arch['dim_mult']) < 1:
        raise WanImportError(f'{folder}/config.json: z_dim {arch["z_dim"]}, base_dim {arch["base_dim"]}, dim_mult '
                             f'{arch["dim_mult"]}, num_res_blocks {arch["num_res_blocks"]}: not a Wan2.1 VAE shape')
    if min(arch['latents_std'], default=1.0) <= 0:
        raise WanImportError(f'{folder}/config.json: latents_std must be positive, got {arch["latents_std"]}')
    for key in ('latents_mean', 'latents_std'):
        if len(arch[key]) != arch['z_dim']:
            raise WanImportError(f'{folder}/config.json: {key} has {len(arch[key])} values for z_dim {arch["z_dim"]}')
    shards = sorted(folder.glob('*.safetensors'))
    if not shards:
        raise WanImportError(f'{folder}: no .safetensors weights (pickle files are never loaded)')
    files: dict[str, Path] = {}
    for shard in shards:
        try:
            with safe_open(str(shard), framework='pt') as f:
                for name in f.keys():
                    files[name] = shard
        except (SafetensorError, OSError) as exc:
            raise WanImportError(f'{shard}: not a readable safetensors file: {exc}') from None
    return arch, files


def load_wan_vae(codec: WanCodec, arch: dict[str, Any], files: dict[str, Path]) -> None:
    """Copy a Wan VAE's tensors into `codec` (every one, each of the right shape) and its latent statistics."""
    state = codec.vae.state_dict()
    missing = sorted(set(state) - set(files))
    unexpected = sorted(set(files) - set(state))
    if missing:
        raise WanImportError(f'the Wan VAE lacks tensor {missing[0]!r} ({len(missing)} missing)')
    if unexpected:
        raise WanImportError(f'the Wan VAE has unexpected tensor {unexpected[0]!r} ({len(unexpected)} unexpected)')
    with torch.no_grad():
        for shard in sorted(set(files.values())):
            with safe_open(str(shard), framework='pt', device='cpu') as f:
                for name in sorted(n for n, p in files.items() if p == shard):
                    t, target = f.get_tensor(name), state[name]
                    if t.shape != target.shape:
                        raise WanImportError(f'the Wan VAE tensor {name!r} has shape {tuple(t.shape)}, the model '
                                             f'config needs {tuple(target.shape)}')
                    target.copy_(t)
        codec.latents_mean.copy_(torch.tensor(arch['latents_mean']))
        codec.latents_std.copy_(torch.tensor(arch['latents_std']))
