"""Wan2.1's transformer as the world model's DiT, and the import of its pretrained weights.

`WanDiT` computes what diffusers' `WanTransformer3DModel` computes (text-to-video Wan2.1: patch embedding,
sinusoidal timestep -> shared 6-way modulation plus a per-block table, self-attention with RMS QK-norm across
heads and 3D rotary positions, cross-attention to a text embedding, GELU FFN, modulated output), with the
world model's streaming machinery inherited from `CausalDiT` (un-rotated KV cache, positions at attention time,
block-causal masks) and its own inputs added through zero-initialised layers: the Plücker camera encoder, the
geometric render and the pose video (added to the video tokens, not joining the sequence). With those at zero,
imported weights reproduce Wan's forward.

The text is a fixed conditioning embedding stored in the checkpoint (`text_embedding`, text_len x text_dim, the
text encoder's output): a world model conditions on actions, not prompts, so no text encoder runs. It defaults
to zeros, which is what Wan's pipeline feeds at every padded text position (it pads the encoder's output to
text_len with zeros), and a user may store the umT5 embedding of a prompt computed once; it is a parameter, so
the teacher's fine-tuning learns it further.

`import_wan` reads a diffusers-format folder (config.json, safetensors shards with or without an index) or the
original Wan layout (config.json with `_class_name: WanModel`, `diffusion_pytorch_model*.safetensors`) and
refuses any missing, unexpected or misshaped tensor, naming it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors import SafetensorError, safe_open
from torch import nn

from worldscape_ros.errors import CheckpointError
from worldscape_ros.model.attention import attention
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.dit import CameraEncoder, CausalDiT, Conditioning, DiTOutput, LayerKV
from worldscape_ros.model.rope import apply_rope, rope_angles, rope_cos_sin


class WanImportError(CheckpointError):
    """A Wan2.1 folder cannot be imported: wrong architecture, missing shard, or a tensor missing, extra or of the
    wrong shape."""


def wan_timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Wan's sinusoid (diffusers `Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0)`) of 1000 t: cos, sin."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[..., None] * freqs
    return torch.cat([args.cos(), args.sin()], dim=-1)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 (diffusers' FP32LayerNorm): Wan normalises in float32 under bf16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps)


class WanAttention(nn.Module):
    """Projections of one Wan attention (self or cross); the RMS norms of q and k span all heads."""

    def __init__(self, dim: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(x, 'b l (h d) -> b h l d', h=self.heads)


class GELUProjection(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate='tanh')


class WanFeedForward(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([GELUProjection(dim, inner), nn.Identity(), nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class WanBlock(nn.Module):
    """One Wan2.1 block; self-attention takes the cache (un-rotated keys, as CausalDiT's blocks)."""

    def __init__(self, dim: int, heads: int, ffn: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = LayerNorm32(dim, eps=eps, elementwise_affine=False)
        self.attn1 = WanAttention(dim, heads, eps)
        self.attn2 = WanAttention(dim, heads, eps)
        self.norm2 = LayerNorm32(dim, eps=eps, elementwise_affine=True)
        self.ffn = WanFeedForward(dim, ffn)
        self.norm3 = LayerNorm32(dim, eps=eps, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, tproj: torch.Tensor, text: torch.Tensor,
                rope: tuple[torch.Tensor, torch.Tensor], context: LayerKV | None,
                mask: torch.Tensor | None) -> tuple[torch.Tensor, LayerKV]:
        """x (B, L = F * N, D); tproj (B, F, 6, D) per-frame modulation; text (B, Lt, D) projected text."""
        B, L, D = x.shape
        Fr = tproj.shape[1]
        mod = (self.scale_shift_table[None] + tproj.float())[:, :, :, None]  # (B, F, 6, 1, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.unbind(2)  # each (B, F, 1, D): spread over tokens

        def frames(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(B, Fr, L // Fr, -1)

        h = (frames(self.norm1(x)) * (1 + scale1) + shift1).flatten(1, 2).type_as(x)
        a = self.attn1
        q, k, v = a.split(a.norm_q(a.to_q(h))), a.split(a.norm_k(a.to_k(h))), a.split(a.to_v(h))
        own = LayerKV(k, v)  # cached un-rotated: positions are chosen at attention time
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        if context is not None and context.tail == L:
            context.k[:, :, -L:] = k
            context.v[:, :, -L:] = v
            k, v = context.k, context.v
        elif context is not None:
            k = torch.cat([context.k, k], dim=2)
            v = torch.cat([context.v, v], dim=2)
        out = a.to_out[0](rearrange(attention(q, k, v, mask), 'b h l d -> b l (h d)'))
        x = (frames(x.float()) + frames(out) * gate1).flatten(1, 2).type_as(x)

        c = self.attn2
        h = self.norm2(x).type_as(x)
        q = c.split(c.norm_q(c.to_q(h)))
        k, v = c.split(c.norm_k(c.to_k(text))), c.split(c.to_v(text))
        x = x + c.to_out[0](rearrange(attention(q, k, v), 'b h l d -> b l (h d)'))

        h = (frames(self.norm3(x)) * (1 + scale2) + shift2).flatten(1, 2).type_as(x)
        x = (frames(x.float()) + frames(self.ffn(h).float()) * gate2).flatten(1, 2).type_as(x)
        return x, own


class TimestepMLP(nn.Module):
    def __init__(self, dim_in: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(dim_in, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class TextProjection(nn.Module):
    def __init__(self, dim_in: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(dim_in, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x), approximate='tanh'))


class ConditionEmbedder(nn.Module):
    def __init__(self, dim: int, freq_dim: int, text_dim: int) -> None:
        super().__init__()
        self.time_embedder = TimestepMLP(freq_dim, dim)
        self.time_proj = nn.Linear(dim, 6 * dim)
        self.text_embedder = TextProjection(text_dim, dim)


def _zero_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


# The world model's own parameters in WanDiT: zero-initialised, absent from a Wan checkpoint.
WORLD_MODEL_PARTS = ('camera.', 'geo_embed.', 'pose_embed.', 'text_embedding')


class WanDiT(CausalDiT):
    """Wan2.1's transformer with the world model's inputs; parameter names follow diffusers' so that a diffusers
    state dict maps one to one (the patch embedding is a Linear over flattened patches, not a Conv3d).

    Token layout: each latent frame's N video tokens; the pose video does not join the sequence. Positions,
    context rotation and masks are CausalDiT's.
    """

    def __init__(self, config: ModelConfig) -> None:
        nn.Module.__init__(self)  # CausalDiT's modules are not built: this is Wan's module tree
        if config.dit.layout != 'wan' or config.conditioning.pose_tokens:
            raise ValueError("WanDiT needs dit.layout 'wan' and conditioning.pose_tokens false")
        self.config = config
        d = config.dit
        C = config.codec.latent_channels
        _, ph, pw = d.patch
        self.ph, self.pw = ph, pw
        self.patch_embedding = nn.Linear(C * ph * pw, d.dim)
        self.condition_embedder = ConditionEmbedder(d.dim, d.freq_dim, d.text_dim)
        self.blocks = nn.ModuleList(WanBlock(d.dim, d.heads, d.ffn) for _ in range(d.depth))
        self.norm_out = LayerNorm32(d.dim, eps=1e-6, elementwise_affine=False)
        self.proj_out = nn.Linear(d.dim, C * ph * pw)  # outputs in (p, q, c) order, as Wan's
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, d.dim) / d.dim**0.5)
        self.text_embedding = nn.Parameter(torch.zeros(d.text_len, d.text_dim))
        self.camera = CameraEncoder(config.codec.spatial_down * ph, d.camera_width, d.dim)
        self.geo_embed = _zero_linear((C + 1) * ph * pw, d.dim)
        self.pose_embed = _zero_linear(C * ph * pw, d.dim)

    def token_positions(self, frames: int, first_frame: int = 0, device: torch.device | None = None,
                        frame_index: torch.Tensor | None = None) -> torch.Tensor:
        """(t, h, w) of every video token (no pose tokens in this layout)."""
        gh, gw = self.config.grid
        ii, jj = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing='ij')
        hw = torch.stack([ii.flatten(), jj.flatten()], dim=-1).float()  # (N, 2)
        index = frame_index.float().cpu() if frame_index is not None else first_frame + torch.arange(frames).float()
        t = index[:, None, None].expand(frames, hw.shape[0], 1)
        return torch.cat([t, hw[None].expand(frames, -1, -1)], dim=-1).flatten(0, 1).to(device)  # (F * N, 3)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning, *,
                context: list[LayerKV] | None = None, mask: torch.Tensor | None = None,
                first_frame: int = 0, frame_index: torch.Tensor | None = None, return_kv: bool = False) -> DiTOutput:
        """As CausalDiT.forward: x (B, F, C, h, w) noisy latents at flow times t (B, F)."""
        cfg = self.config
        B, Fr = x.shape[:2]
        patch = 'b f c (h p) (w q) -> b f (h w) (c p q)'
        tok = self.patch_embedding(rearrange(x, patch, p=self.ph, q=self.pw))  # (B, F, N, D)
        if cfg.conditioning.plucker and cond.plucker is not None:
            tok = tok + self.camera(cond.plucker)
        if cfg.conditioning.geometry and cond.geometry is not None:
            cov = cond.coverage if cond.coverage is not None else torch.ones_like(cond.geometry[:, :, :1])
            geo = torch.cat([cond.geometry * cov, cov], dim=2)
            tok = tok + self.geo_embed(rearrange(geo, patch, p=self.ph, q=self.pw))
        if cfg.conditioning.hands and cond.pose is not None:
            tok = tok + self.pose_embed(rearrange(cond.pose, patch, p=self.ph, q=self.pw))
        h = tok.flatten(1, 2)  # (B, L = F * N, D)

        emb = self.condition_embedder
        sinus = wan_timestep_embedding(t, cfg.dit.freq_dim)  # (B, F, freq_dim)
        temb = emb.time_embedder(sinus.to(emb.time_embedder.linear_1.weight.dtype)).type_as(h)  # (B, F, D)
        tproj = emb.time_proj(F.silu(temb)).unflatten(-1, (6, -1))  # (B, F, 6, D)
        text = emb.text_embedder(self.text_embedding.to(h.dtype))[None].expand(B, -1, -1)  # (B, Lt, D)

        positions = self.token_positions(Fr, first_frame, x.device, frame_index)
        rope = rope_cos_sin(rope_angles(positions, cfg.head_dim), h.dtype)
        kvs: list[LayerKV] = []
        for i, block in enumerate(self.blocks):
            h, own = block(h, tproj, text, rope, context[i] if context is not None else None, mask)
            if return_kv:
                kvs.append(own)
        shift, scale = (self.scale_shift_table[None] + temb[:, :, None]).unbind(2)  # (B, F, D) each
        video = rearrange(self.norm_out(h), 'b (f l) d -> b f l d', f=Fr)
        video = (video * (1 + scale[:, :, None]) + shift[:, :, None]).type_as(h)  # (B, F, N, D)
        gh, gw = cfg.grid
        vel = rearrange(self.proj_out(video), 'b f (h w) (p q c) -> b f c (h p) (w q)', h=gh, w=gw, p=self.ph,
                        q=self.pw)
        return DiTOutput(velocity=vel, features=video, kv=kvs if return_kv else None)


# ---- the Wan2.1 folders ------------------------------------------------------------------------------------

@dataclass
class WanSource:
    """A Wan2.1 transformer on disk: its architecture and where each tensor lives (diffusers names)."""

    folder: Path
    layout: str  # 'diffusers' or 'original'
    arch: dict[str, Any]  # dim, depth, heads, ffn, patch, in_channels, out_channels, freq_dim, text_dim
    files: dict[str, tuple[Path, str]]  # diffusers name -> (file, name in that file)


# The original Wan layout (Wan-AI's `WanModel`) -> diffusers names; the cross-attention norm is norm3 there.
_ORIGINAL_RULES = (
    (r'^time_embedding\.0\.', 'condition_embedder.time_embedder.linear_1.'),
    (r'^time_embedding\.2\.', 'condition_embedder.time_embedder.linear_2.'),
    (r'^text_embedding\.0\.', 'condition_embedder.text_embedder.linear_1.'),
    (r'^text_embedding\.2\.', 'condition_embedder.text_embedder.linear_2.'),
    (r'^time_projection\.1\.', 'condition_embedder.time_proj.'),
    (r'^head\.modulation$', 'scale_shift_table'),
    (r'^head\.head\.', 'proj_out.'),
    (r'^(blocks\.\d+\.)modulation$', r'\1scale_shift_table'),
    (r'^(blocks\.\d+\.)self_attn\.([qkv])\.', r'\1attn1.to_\2.'),
    (r'^(blocks\.\d+\.)self_attn\.o\.', r'\1attn1.to_out.0.'),
    (r'^(blocks\.\d+\.)self_attn\.norm_([qk])\.', r'\1attn1.norm_\2.'),
    (r'^(blocks\.\d+\.)cross_attn\.([qkv])\.', r'\1attn2.to_\2.'),
    (r'^(blocks\.\d+\.)cross_attn\.o\.', r'\1attn2.to_out.0.'),
    (r'^(blocks\.\d+\.)cross_attn\.norm_([qk])\.', r'\1attn2.norm_\2.'),
    (r'^(blocks\.\d+\.)norm3\.', r'\1norm2.'),
    (r'^(blocks\.\d+\.)ffn\.0\.', r'\1ffn.net.0.proj.'),
    (r'^(blocks\.\d+\.)ffn\.2\.', r'\1ffn.net.2.'),
)


def original_to_diffusers(name: str) -> str:
    """A tensor name of the original Wan2.1 checkpoint in diffusers' naming (unchanged when no rule applies)."""
    for pattern, repl in _ORIGINAL_RULES:
        new, n = re.subn(pattern, repl, name)
        if n:
            return new
    return name


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise WanImportError(f'{path.parent}: no {path.name} ({what})') from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WanImportError(f'{path}: not readable JSON ({what}): {exc}') from None
    if not isinstance(data, dict):
        raise WanImportError(f'{path}: {what} must be a JSON object')
    return data


def wan_architecture(folder: str | Path, cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The layout and the transformer's shape from config.json; refuses what is not a text-to-video Wan2.1."""
    try:
        return _parse_architecture(folder, cfg)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # a value missing or of the wrong type
        raise WanImportError(f'{folder}/config.json: missing or malformed setting ({type(exc).__name__}: {exc})') \
            from None


def _parse_architecture(folder: str | Path, cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    cls = cfg.get('_class_name', '')
    if cls == 'WanTransformer3DModel':
        unsupported = {k: cfg.get(k) for k in ('image_dim', 'added_kv_proj_dim', 'pos_embed_seq_len')
                       if cfg.get(k) is not None}
        if unsupported:
            raise WanImportError(f'{folder}: an image-conditioned Wan transformer ({unsupported}); the world model '
                                 'imports text-to-video Wan2.1 (no image cross-attention)')
        if cfg.get('qk_norm', 'rms_norm_across_heads') != 'rms_norm_across_heads' or not cfg.get('cross_attn_norm',
                                                                                                   True):
            raise WanImportError(f'{folder}: qk_norm {cfg.get("qk_norm")!r} / cross_attn_norm '
                                 f'{cfg.get("cross_attn_norm")!r}; Wan2.1 has rms_norm_across_heads and true')
        heads, head_dim = int(cfg.get('num_attention_heads', 40)), int(cfg.get('attention_head_dim', 128))
        arch = {'dim': heads * head_dim, 'depth': int(cfg.get('num_layers', 40)), 'heads': heads,
                'ffn': int(cfg.get('ffn_dim', 13824)), 'patch': tuple(cfg.get('patch_size', (1, 2, 2))),
                'in_channels': int(cfg.get('in_channels', 16)),
                'out_channels': int(cfg.get('out_channels') or cfg.get('in_channels', 16)),
                'freq_dim': int(cfg.get('freq_dim', 256)), 'text_dim': int(cfg.get('text_dim', 4096)),
                'eps': float(cfg.get('eps', 1e-6))}
        return 'diffusers', arch
    if cls == 'WanModel' or ('dim' in cfg and 'num_heads' in cfg and 'model_type' in cfg):
        if cfg.get('model_type', 't2v') != 't2v':
            raise WanImportError(f'{folder}: Wan model_type {cfg.get("model_type")!r}; the world model imports '
                                 "text-to-video Wan2.1 ('t2v')")
        arch = {'dim': int(cfg['dim']), 'depth': int(cfg['num_layers']), 'heads': int(cfg['num_heads']),
                'ffn': int(cfg['ffn_dim']), 'patch': tuple(cfg.get('patch_size', (1, 2, 2))),
                'in_channels': int(cfg.get('in_dim', 16)), 'out_channels': int(cfg.get('out_dim', 16)),
                'freq_dim': int(cfg.get('freq_dim', 256)), 'text_dim': int(cfg.get('text_dim', 4096)),
                'eps': float(cfg.get('eps', 1e-6))}
        return 'original', arch
    raise WanImportError(f'{folder}/config.json describes {cls or "an unknown model"!r}, not a Wan2.1 transformer '
                         '(WanTransformer3DModel in diffusers format, or the original WanModel)')


def read_wan_folder(path: str | Path) -> WanSource:
    """Index a Wan2.1 transformer folder (or a diffusers pipeline folder holding `transformer/`) without
    reading its tensors; every shard an index names must exist, and weights are read from safetensors only."""
    folder = Path(path)
    if not folder.is_dir():
        raise WanImportError(f'{folder} is not a folder (a Wan2.1 transformer in diffusers or original layout)')
    if not (folder / 'config.json').is_file() and (folder / 'transformer' / 'config.json').is_file():
        folder = folder / 'transformer'
    layout, arch = wan_architecture(folder, _read_json(folder / 'config.json', 'the transformer config'))
    indexes = sorted(folder.glob('*.safetensors.index.json'))
    weight_map: dict[str, str] = {}
    if indexes:
        if len(indexes) > 1:
            raise WanImportError(f'{folder}: more than one shard index ({", ".join(p.name for p in indexes)})')
        data = _read_json(indexes[0], 'the shard index')
        raw = data.get('weight_map')
        if not isinstance(raw, dict) or not raw:
            raise WanImportError(f'{indexes[0]}: no weight_map')
        weight_map = {str(k): str(v) for k, v in raw.items()}
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if not (folder / shard).is_file():
                count = sum(1 for v in weight_map.values() if v == shard)
                raise WanImportError(f'{folder}: missing shard {shard} (the index places {count} tensors in it)')
    else:
        shards = sorted(p.name for p in folder.glob('*.safetensors'))
        if not shards:
            pickles = sorted(p.name for p in folder.iterdir() if p.suffix in ('.bin', '.pt', '.pth', '.ckpt'))
            hint = f' (found {", ".join(pickles)}: pickle files are never loaded)' if pickles else ''
            raise WanImportError(f'{folder}: no .safetensors weights{hint}')
    files: dict[str, tuple[Path, str]] = {}
    for shard in shards:
        try:
            with safe_open(str(folder / shard), framework='pt') as f:
                names = list(f.keys())
        except (SafetensorError, OSError) as exc:
            raise WanImportError(f'{folder / shard}: not a readable safetensors file: {exc}') from None
        for name in names:
            if weight_map and weight_map.get(name) != shard:
                raise WanImportError(f'{folder / shard}: tensor {name!r} is not placed in this shard by the index')
            key = original_to_diffusers(name) if layout == 'original' else name
            if key in files:
                raise WanImportError(f'{folder}: tensor {name!r} appears in {files[key][0].name} and {shard}')
            files[key] = (folder / shard, name)
    for name, shard in weight_map.items():
        key = original_to_diffusers(name) if layout == 'original' else name
        if key not in files:
            raise WanImportError(f'{folder}: the index places tensor {name!r} in {shard}, which does not hold it')
    return WanSource(folder=folder, layout=layout, arch=arch, files=files)


def wan_model_config(base: ModelConfig, arch: dict[str, Any], vae: dict[str, Any] | None = None) -> ModelConfig:
    """`base` (its resolution, chunking, conditioning, heads, sampler, memory) in the 'wan' layout with the Wan
    transformer's shape (and the Wan VAE's as its codec); refuses a base whose DiT shape differs."""
    d = base.dit
    checks = [('dit.dim', d.dim, arch['dim']), ('dit.depth', d.depth, arch['depth']),
              ('dit.heads', d.heads, arch['heads']), ('dit.ffn', d.ffn, arch['ffn']),
              ('dit.patch', tuple(d.patch), tuple(arch['patch'])),
              ('codec.latent_channels', base.codec.latent_channels, arch['in_channels'])]
    for what, ours, theirs in checks:
        if ours != theirs:
            raise WanImportError(f'model config {base.name!r} has {what} {ours}, the Wan transformer has {theirs}')
    if arch['out_channels'] != arch['in_channels']:
        raise WanImportError(f'the Wan transformer maps {arch["in_channels"]} latent channels to '
                             f'{arch["out_channels"]}; a flow model needs the same number')
    if abs(arch.get('eps', 1e-6) - 1e-6) > 1e-12:
        raise WanImportError(f'the Wan transformer normalises with eps {arch["eps"]}; WanDiT uses 1e-6')
    dit = replace(d, layout='wan', freq_dim=arch['freq_dim'], text_dim=arch['text_dim'], qk_norm=True)
    codec = base.codec
    if vae is not None:
        if vae['z_dim'] != arch['in_channels']:
            raise WanImportError(f'the Wan VAE has {vae["z_dim"]} latent channels, the transformer takes '
                                 f'{arch["in_channels"]}')
        codec = replace(codec, kind='wan', latent_channels=vae['z_dim'], width=vae['base_dim'],
                        dim_mult=tuple(vae['dim_mult']), res_blocks=vae['num_res_blocks'],
                        spatial_down=2 ** (len(vae['dim_mult']) - 1), temporal_down=4)
    return base.replace(dit=dit, codec=codec, conditioning=replace(base.conditioning, pose_tokens=False))


def wan_state_names(model: WanDiT) -> dict[str, torch.Size]:
    """The WanDiT parameters a Wan checkpoint must provide, with their shapes in diffusers' layout."""
    out = {}
    for name, p in model.state_dict().items():
        if name.startswith(WORLD_MODEL_PARTS):
            continue
        shape = p.shape
        if name == 'patch_embedding.weight':
            _, ph, pw = model.config.dit.patch
            shape = torch.Size((shape[0], shape[1] // (ph * pw), 1, ph, pw))  # the Conv3d's kernel
        out[name] = shape
    return out


def load_wan_weights(model: WanDiT, source: WanSource) -> int:
    """Copy every tensor of `source` into `model` (the world model's own parts keep their zero init); refuses a
    missing, unexpected or misshaped tensor. Returns the number of values copied."""
    expected = wan_state_names(model)
    missing = sorted(set(expected) - set(source.files))
    unexpected = sorted(set(source.files) - set(expected))
    where = f'{source.folder} ({source.layout} layout)'
    if missing:
        raise WanImportError(f'{where} lacks tensor {missing[0]!r} ({len(missing)} missing)')
    if unexpected:
        raise WanImportError(f'{where} has tensor {unexpected[0]!r}, which Wan2.1 text-to-video does not have '
                             f'({len(unexpected)} unexpected)')
    state = model.state_dict()
    copied = 0
    by_file: dict[Path, list[str]] = {}
    for name, (file, _) in source.files.items():
        by_file.setdefault(file, []).append(name)
    with torch.no_grad():
        for file, names in by_file.items():
            with safe_open(str(file), framework='pt', device='cpu') as f:
                for name in sorted(names):
                    t = f.get_tensor(source.files[name][1])
                    if t.shape != expected[name]:
                        raise WanImportError(f'{where}: tensor {name!r} has shape {tuple(t.shape)}, the model config '
                                             f'needs {tuple(expected[name])}')
                    if not t.is_floating_point():
                        raise WanImportError(f'{where}: tensor {name!r} has dtype {t.dtype}, not floating point')
                    target = state[name]
                    target.copy_(t.reshape(target.shape))
                    copied += t.numel()
    return copied


def read_text_embedding(path: str | Path, text_len: int, text_dim: int) -> torch.Tensor:
    """A fixed text embedding (the text encoder's output for one prompt) from a safetensors file holding one
    tensor of shape (L, text_dim) or (1, L, text_dim), L <= text_len; padded with zeros to text_len as Wan's
    pipeline pads it."""
    path = Path(path)
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            names = list(f.keys())
            if len(names) != 1:
                raise WanImportError(f'{path}: a text embedding file holds one tensor, found {len(names)}')
            t = f.get_tensor(names[0]).float()
    except (SafetensorError, OSError) as exc:
        raise WanImportError(f'{path}: not a readable safetensors file: {exc}') from None
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2 or t.shape[1] != text_dim or t.shape[0] > text_len:
        raise WanImportError(f'{path}: text embedding of shape {tuple(t.shape)}; needs (L <= {text_len}, {text_dim})')
    out = torch.zeros(text_len, text_dim)
    out[: t.shape[0]] = t
    return out


# ---- the import ------------------------------------------------------------------------------------------

WAN21_T2V_1_3B = {  # diffusers' config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers (transformer/)
    '_class_name': 'WanTransformer3DModel', 'patch_size': [1, 2, 2], 'num_attention_heads': 12,
    'attention_head_dim': 128, 'in_channels': 16, 'out_channels': 16, 'text_dim': 4096, 'freq_dim': 256,
    'ffn_dim': 8960, 'num_layers': 30, 'cross_attn_norm': True, 'qk_norm': 'rms_norm_across_heads', 'eps': 1e-6,
    'image_dim': None, 'added_kv_proj_dim': None, 'rope_max_seq_len': 1024,
}


def find_vae(path: str | Path, vae: str | Path | None) -> Path | None:
    """The VAE folder: `vae` when given, else the `vae/` beside (or inside) a diffusers pipeline folder."""
    if vae:
        return Path(vae)
    folder = Path(path)
    for candidate in (folder / 'vae', folder.parent / 'vae'):
        if (candidate / 'config.json').is_file():
            return candidate
    return None


def compare_with_diffusers(dit: WanDiT, source: WanSource, frames: int = 1, seed: int = 0) -> tuple[float, float]:
    """Run diffusers' WanTransformer3DModel on `source`'s tensors and `dit` on one random input (`frames` latent
    frames at the config's resolution, one flow time per frame, the world model's inputs absent); return the
    max abs difference of the velocities and the largest velocity. Both run in float32 on the CPU."""
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    a = source.arch
    kwargs = {'patch_size': tuple(a['patch']), 'num_attention_heads': a['heads'],
              'attention_head_dim': a['dim'] // a['heads'], 'in_channels': a['in_channels'],
              'out_channels': a['out_channels'], 'text_dim': a['text_dim'], 'freq_dim': a['freq_dim'],
              'ffn_dim': a['ffn'], 'num_layers': a['depth'], 'cross_attn_norm': True,
              'qk_norm': 'rms_norm_across_heads', 'eps': a['eps']}
    with torch.device('meta'):
        ref: Any = WanTransformer3DModel(**kwargs)  # untyped: diffusers' lazy modules defeat the type checker
    state: dict[str, torch.Tensor] = {}
    for name, (file, stored) in source.files.items():
        with safe_open(str(file), framework='pt', device='cpu') as f:
            state[name] = f.get_tensor(stored).float()
    ref.load_state_dict(state, assign=True)  # the files' tensors themselves: no second copy
    ref.rope = WanRotaryPosEmbed(kwargs['attention_head_dim'], kwargs['patch_size'], 1024)  # not in the state
    ref.eval()
    cfg = dit.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, frames, cfg.codec.latent_channels, cfg.latent_height, cfg.latent_width, generator=g)
    t = torch.rand(1, frames, generator=g)
    with torch.no_grad():
        ours = dit.float().eval()(x, t, Conditioning()).velocity
        timestep = (1000 * t).repeat_interleave(cfg.tokens_per_frame, dim=1)
        theirs = ref(x.permute(0, 2, 1, 3, 4), timestep, dit.text_embedding[None]).sample.permute(0, 2, 1, 3, 4)
    return (ours - theirs).abs().max().item(), theirs.abs().max().item()


def import_wan(path: str | Path, config: str, out: str | Path, vae: str | Path | None = None,
               text_embedding: str | Path | None = None, seed: int = 0, check: bool = False) -> dict[str, Any]:
    """Build the world model of `config` in the 'wan' layout from a Wan2.1 transformer (and its VAE as the
    codec), check every tensor, and save it as a checkpoint. The parts Wan does not have (the depth and Gaussian
    heads, the camera encoder's hidden layer) are initialised from `seed`, so an import is reproducible.
    check: before saving, run diffusers' forward on the same tensors and refuse a difference above 1e-3 times the
    largest velocity. Returns what was done, for the report."""
    from worldscape_ros.model.checkpoint import save_checkpoint
    from worldscape_ros.model.config import load_config
    from worldscape_ros.model.wan_codec import WanCodec, load_wan_vae, read_wan_vae
    from worldscape_ros.model.world_model import WorldModel

    source = read_wan_folder(path)
    vae_folder = find_vae(path, vae)
    if vae_folder is None:
        raise WanImportError(f'{path}: no Wan VAE found beside the transformer; give --vae FOLDER (a diffusers '
                             "AutoencoderKLWan folder, the pipeline's vae/): the transformer works in its latents")
    vae_arch, vae_files = read_wan_vae(vae_folder)
    cfg = wan_model_config(load_config(config), source.arch, vae_arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WorldModel(cfg)
    assert isinstance(model.dit, WanDiT) and isinstance(model.codec, WanCodec)
    copied = load_wan_weights(model.dit, source)
    load_wan_vae(model.codec, vae_arch, vae_files)
    prompt = 'zeros (the padded positions of an empty prompt)'
    if text_embedding:
        with torch.no_grad():
            model.dit.text_embedding.copy_(read_text_embedding(text_embedding, cfg.dit.text_len, cfg.dit.text_dim))
        prompt = str(text_embedding)
    origin: dict[str, Any] = {'wan_transformer': str(source.folder), 'layout': source.layout,
                              'wan_vae': str(vae_folder), 'text_embedding': prompt, 'base_config': config}
    extra = {'imported_from': origin}
    difference = None
    if check:
        diff, scale = compare_with_diffusers(model.dit, source)
        difference = {'max_abs_diff': diff, 'max_abs_velocity': scale}
        if not diff <= 1e-3 * max(scale, 1.0):
            raise WanImportError(f'{source.folder}: the imported model differs from diffusers\' Wan by {diff:.3g} '
                                 f'(velocities up to {scale:.3g}); nothing written')
        origin['check'] = difference
    digest = save_checkpoint(out, model, extra)
    added = sum(p.numel() for n, p in model.dit.named_parameters() if n.startswith(WORLD_MODEL_PARTS))
    return {'config': cfg, 'layout': source.layout, 'tensors': len(source.files), 'values': copied,
            'vae_tensors': len(vae_files), 'world_model_parameters': added, 'weights_sha256': digest,
            'parameters': {part: model.num_parameters(part) for part in ('codec', 'dit', 'depth_head',
                                                                         'gaussian_head')
                           if getattr(model, part) is not None},
            'text_embedding': prompt, 'check': difference}


def parameter_comparison(config: ModelConfig, wan_config: dict[str, Any]) -> dict[str, Any]:
    """Tensor for tensor, the WanDiT of `config` against diffusers' WanTransformer3DModel of `wan_config`, both
    built on the meta device (no memory): equal shapes for every Wan tensor, and the counts."""
    from diffusers import WanTransformer3DModel

    kwargs = {k: v for k, v in wan_config.items() if not k.startswith('_')}
    with torch.device('meta'):
        ref: Any = WanTransformer3DModel(**kwargs)  # untyped: diffusers' lazy modules defeat the type checker
        ours = WanDiT(config)
    theirs = {n: p.shape for n, p in ref.state_dict().items()}
    expected = wan_state_names(ours)
    mismatched = sorted(n for n in set(theirs) | set(expected) if theirs.get(n) != expected.get(n))
    own = {n: p.numel() for n, p in ours.named_parameters() if n.startswith(WORLD_MODEL_PARTS)}
    return {'wan_tensors': len(theirs), 'wan_parameters': sum(p.numel() for p in ref.parameters()),
            'dit_parameters': sum(p.numel() for p in ours.parameters()),
            'mapped_parameters': sum(math.prod(s) for s in expected.values()),
            'world_model_parts': own, 'mismatched': mismatched}


# ---- random reference models (tests, smoke runs, and full-size checks without the real weights) ------------

REFERENCE_TRANSFORMERS: dict[str, dict[str, Any]] = {
    'tiny': {'patch_size': (1, 2, 2), 'num_attention_heads': 2, 'attention_head_dim': 8, 'in_channels': 4,
             'out_channels': 4, 'text_dim': 16, 'freq_dim': 16, 'ffn_dim': 32, 'num_layers': 2,
             'cross_attn_norm': True, 'qk_norm': 'rms_norm_across_heads', 'rope_max_seq_len': 32},
    '1.3b': {k: v for k, v in WAN21_T2V_1_3B.items() if not k.startswith('_')},
}
REFERENCE_VAES: dict[str, dict[str, Any]] = {
    'tiny': {'base_dim': 8, 'z_dim': 4, 'dim_mult': [1, 1, 1, 1], 'num_res_blocks': 1,
             'temperal_downsample': [False, True, True], 'latents_mean': [0.1, -0.2, 0.3, 0.0],
             'latents_std': [1.5, 0.5, 2.0, 1.0]},
    '1.3b': {},  # diffusers' defaults are the Wan2.1 VAE's architecture and latent statistics
}


def write_reference(out: str | Path, size: str = 'tiny', seed: int = 0, max_shard_size: str | None = None) -> Path:
    """A randomly initialised Wan2.1 pipeline folder in diffusers format (`transformer/`, `vae/`, safetensors):
    what `import-wan` reads, without the real weights. Norm weights are perturbed so that every tensor matters."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    if size not in REFERENCE_TRANSFORMERS:
        raise ValueError(f'reference size must be one of {sorted(REFERENCE_TRANSFORMERS)}, got {size!r}')
    out = Path(out)
    torch.manual_seed(seed)
    transformer: Any = WanTransformer3DModel(**REFERENCE_TRANSFORMERS[size])  # untyped, as above
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if 'norm' in name:
                p.add_(0.1 * torch.randn_like(p))
    shard = {'max_shard_size': max_shard_size} if max_shard_size else {}
    transformer.save_pretrained(out / 'transformer', safe_serialization=True, **shard)
    vae: Any = AutoencoderKLWan(**REFERENCE_VAES[size])
    vae.save_pretrained(out / 'vae', safe_serialization=True)
    return out
