"""Wan2.1's transformer as the world model's DiT.

`WanDiT` computes what diffusers' `WanTransformer3DModel` computes (text-to-video Wan2.1: patch embedding,
sinusoidal timestep -> shared 6-way modulation plus a per-block table, self-attention with RMS QK-norm across
heads and 3D rotary positions, cross-attention to a text embedding, GELU FFN, modulated output), with the
world model's streaming machinery inherited from `CausalDiT` (un-rotated KV cache, positions at attention time,
block-causal masks) and its own inputs added through zero-initialised layers: the Plücker camera encoder, the
geometric render and the pose video (added to the video tokens, not joining the sequence). With those at zero,
imported weights (`model/wan_import.py`) reproduce Wan's forward.

The text is a fixed conditioning embedding stored in the checkpoint (`text_embedding`, text_len x text_dim, the
text encoder's output): a world model conditions on actions, not prompts, so no text encoder runs. It defaults
to zeros, which is what Wan's pipeline feeds at every padded text position (it pads the encoder's output to
text_len with zeros), and a user may store the umT5 embedding of a prompt computed once; it is a parameter, so
the teacher's fine-tuning learns it further.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from worldscape_ros.model.attention import attention
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.dit import CameraEncoder, CausalDiT, Conditioning, DiTOutput, LayerKV
from worldscape_ros.model.rope import apply_rope


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
        if context is not None:
            k, v = context.followed_by(k, v)
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
        tok = self.conditioned(self.patch_embedding(rearrange(x, patch, p=self.ph, q=self.pw)), cond, patch)
        if cfg.conditioning.hands and cond.pose is not None:
            tok = tok + self.pose_embed(rearrange(cond.pose, patch, p=self.ph, q=self.pw))
        h = tok.flatten(1, 2)  # (B, L = F * N, D)

        emb = self.condition_embedder
        sinus = wan_timestep_embedding(t, cfg.dit.freq_dim)  # (B, F, freq_dim)
        temb = emb.time_embedder(sinus.to(emb.time_embedder.linear_1.weight.dtype)).type_as(h)  # (B, F, D)
        tproj = emb.time_proj(F.silu(temb)).unflatten(-1, (6, -1))  # (B, F, 6, D)
        text = emb.text_embedder(self.text_embedding.to(h.dtype))[None].expand(B, -1, -1)  # (B, Lt, D)

        h, kvs = self.run_blocks(h, (tproj, text), Fr, first_frame, frame_index, context, mask, return_kv)
        shift, scale = (self.scale_shift_table[None] + temb[:, :, None]).unbind(2)  # (B, F, D) each
        video = rearrange(self.norm_out(h), 'b (f l) d -> b f l d', f=Fr)
        video = (video * (1 + scale[:, :, None]) + shift[:, :, None]).type_as(h)  # (B, F, N, D)
        gh, gw = cfg.grid
        vel = rearrange(self.proj_out(video), 'b f (h w) (p q c) -> b f c (h p) (w q)', h=gh, w=gw, p=self.ph,
                        q=self.pw)
        return DiTOutput(velocity=vel, features=video, kv=kvs if return_kv else None)
