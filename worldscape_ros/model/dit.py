"""The causal video DiT: per-frame adaLN timestep modulation, QK-norm, 3D rotary positions applied at
attention time, block-causal attention over chunks, Plücker camera, pose-video and geometry conditioning.

Token layout of F latent frames: for each frame, its N video tokens then its Np pose-video tokens
(the pose video is concatenated with the input along the frame axis, as in the paper).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from worldscape_ros.model.attention import attention
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.rope import apply_rope, rope_angles, rope_cos_sin


@dataclass
class Conditioning:
    plucker: torch.Tensor | None = None  # (B, F, 6, H, W) rays relative to the session's reference camera
    pose: torch.Tensor | None = None  # (B, F, C, h, w) codec latent of the pose video
    geometry: torch.Tensor | None = None  # (B, F, C, h, w) codec latent of the geometric render
    coverage: torch.Tensor | None = None  # (B, F, 1, h, w) fraction of each latent pixel the render covers

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Conditioning:
        """`fn` applied to every stream present (absent streams stay None): slicing, repeating, zeroing."""
        return Conditioning(*(None if c is None else fn(c) for c in (self.plucker, self.pose, self.geometry,
                                                                      self.coverage)))

    @staticmethod
    def cat(parts: Sequence[Conditioning]) -> Conditioning:
        """Consecutive frames' conditioning joined along the frame axis; a stream absent from any part is None."""
        def join(name: str) -> torch.Tensor | None:
            streams = [getattr(c, name) for c in parts]
            return None if any(x is None for x in streams) else torch.cat(streams, dim=1)

        return Conditioning(*(join(n) for n in ('plucker', 'pose', 'geometry', 'coverage')))


@dataclass
class LayerKV:
    k: torch.Tensor  # (B, H, M, d)
    v: torch.Tensor  # (B, H, M, d)
    tail: int = 0  # free slots at the end, filled in place by the attending chunk's own keys (no copy)

    def followed_by(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """These cached keys and values with a chunk's own (B, H, L, d) after them: written into the free tail
        when it holds exactly L (no copy), else concatenated."""
        L = k.shape[2]
        if self.tail == L:
            self.k[:, :, -L:] = k
            self.v[:, :, -L:] = v
            return self.k, self.v
        return torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)


@dataclass
class DiTOutput:
    velocity: torch.Tensor  # (B, F, C, h, w)
    features: torch.Tensor  # (B, F, N, D) final video-token features (for the heads)
    kv: list[LayerKV] | None  # this call's keys (un-rotated) and values, one per block


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow time t in [0, 1] (scaled to [0, 1000])."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[..., None] * freqs
    return torch.cat([args.cos(), args.sin()], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm: nn.Module = nn.RMSNorm(dim // heads, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.RMSNorm(dim // heads, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(approximate='tanh'), nn.Linear(ffn, dim))
        self.ada = nn.Linear(dim, 6 * dim)  # adaLN-Zero: shift, scale, gate for attention and MLP
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, token_mod: torch.Tensor,
                rope: tuple[torch.Tensor, torch.Tensor], context: LayerKV | None,
                mask: torch.Tensor | None) -> tuple[torch.Tensor, LayerKV]:
        """x (B, L, D) tokens of the chunk; context: the cached keys and values it attends to before its own."""
        mod = self.ada(F.silu(temb))[:, token_mod]  # (B, L, 6D): per-frame modulation spread to its tokens
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        q, k, v = rearrange(self.qkv(h), 'b l (three h d) -> three b h l d', three=3, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)
        own = LayerKV(k, v)  # cached un-rotated: positions are chosen at attention time
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        if context is not None:
            k, v = context.followed_by(k, v)
        a = attention(q, k, v, mask)  # (B, H, L, d)
        x = x + gate1 * self.proj(rearrange(a, 'b h l d -> b l (h d)'))
        x = x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x, own


class CameraEncoder(nn.Module):
    """Lightweight encoder of per-pixel Plücker rays into token space through a zero-initialised output."""

    def __init__(self, pixel_patch: int, width: int, dim: int) -> None:
        super().__init__()
        self.p = pixel_patch
        out = nn.Linear(width, dim)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(nn.Linear(6 * pixel_patch * pixel_patch, width), nn.SiLU(), out)

    def forward(self, plucker: torch.Tensor) -> torch.Tensor:
        x = rearrange(plucker, 'b f c (h p) (w q) -> b f (h w) (c p q)', p=self.p, q=self.p)
        return self.net(x)  # (B, F, N, D)


class CausalDiT(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dit
        C = config.codec.latent_channels
        _, ph, pw = d.patch
        self.ph, self.pw = ph, pw
        self.x_embed = nn.Linear(C * ph * pw, d.dim)  # shared by video and pose-video latents
        self.type_embed = nn.Parameter(torch.zeros(2, d.dim))  # video, pose video
        self.geo_embed = nn.Linear((C + 1) * ph * pw, d.dim)
        nn.init.zeros_(self.geo_embed.weight)
        nn.init.zeros_(self.geo_embed.bias)
        self.camera = CameraEncoder(config.codec.spatial_down * ph, d.camera_width, d.dim)
        self.t_embed = nn.Sequential(nn.Linear(d.dim, d.dim), nn.SiLU(), nn.Linear(d.dim, d.dim))
        self.blocks = nn.ModuleList(Block(d.dim, d.heads, d.ffn, d.qk_norm) for _ in range(d.depth))
        self.norm_out = nn.LayerNorm(d.dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d.dim, 2 * d.dim)
        self.out = nn.Linear(d.dim, C * ph * pw)
        for layer in (self.ada_out, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ---- positions -------------------------------------------------------------------------------------
    def token_positions(self, frames: int, first_frame: int = 0, device: torch.device | None = None,
                        frame_index: torch.Tensor | None = None) -> torch.Tensor:
        """(t, h, w) of every token of `frames` latent frames starting at temporal index first_frame (or at the
        temporal indices `frame_index` (frames,) when given)."""
        cfg = self.config
        gh, gw = cfg.grid
        ii, jj = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing='ij')
        video_hw = torch.stack([ii.flatten(), jj.flatten()], dim=-1)  # (N, 2)
        per_frame = [video_hw]
        if cfg.conditioning.hands:
            p = cfg.conditioning.pose_pool
            ph_, pw_ = cfg.pose_grid
            pi, pj = torch.meshgrid(torch.arange(ph_), torch.arange(pw_), indexing='ij')
            per_frame.append(torch.stack([pi.flatten(), pj.flatten()], dim=-1) * p + (p - 1) / 2)
        hw = torch.cat(per_frame).float()  # (N + Np, 2)
        out = []
        for f in range(frames):
            index = float(frame_index[f]) if frame_index is not None else float(first_frame + f)
            t = torch.full((hw.shape[0], 1), index)
            out.append(torch.cat([t, hw], dim=-1))
        return torch.cat(out).to(device)  # (F * (N + Np), 3)

    def rotate_context(self, kv: list[LayerKV], positions: torch.Tensor, tail: int = 0) -> list[LayerKV]:
        """Rotate cached keys to the positions the next attention call gives them; with `tail`, leave that many
        slots at the end for the attending chunk's own keys and values."""
        angles = rope_angles(positions, self.config.head_dim)
        out = []
        for layer in kv:
            B, H, M, d = layer.k.shape
            k = layer.k.new_empty(B, H, M + tail, d)
            v = layer.v.new_empty(B, H, M + tail, d)
            k[:, :, :M] = apply_rope(layer.k, angles)
            v[:, :, :M] = layer.v
            out.append(LayerKV(k, v, tail))
        return out

    # ---- forward ---------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning, *,
                context: list[LayerKV] | None = None, mask: torch.Tensor | None = None,
                first_frame: int = 0, frame_index: torch.Tensor | None = None, return_kv: bool = False) -> DiTOutput:
        """x (B, F, C, h, w) noisy latents at flow times t (B, F). `context`: already rotated cached keys per
        block; `mask`: (L, L + M) attention mask or None (bidirectional); first_frame: temporal position of the
        first frame (or frame_index (F,): each frame's temporal position)."""
        cfg = self.config
        B, Fr = x.shape[:2]
        N, Np = cfg.tokens_per_frame, cfg.pose_tokens_per_frame
        patch = 'b f c (h p) (w q) -> b f (h w) (c p q)'
        tok = self.x_embed(rearrange(x, patch, p=self.ph, q=self.pw)) + self.type_embed[0]  # (B, F, N, D)
        parts = [self.conditioned(tok, cond, patch)]
        if Np:
            pose = cond.pose if cond.pose is not None else torch.zeros_like(x)
            pool = cfg.conditioning.pose_pool
            pose = F.avg_pool2d(rearrange(pose, 'b f c h w -> (b f) c h w'), pool)
            pose = rearrange(pose, '(b f) c h w -> b f c h w', b=B)
            parts.append(self.x_embed(rearrange(pose, patch, p=self.ph, q=self.pw)) + self.type_embed[1])
        h = torch.cat(parts, dim=2).flatten(1, 2)  # (B, L = F * (N + Np), D)

        # Per-frame timestep embeddings: video tokens at their frame's t, pose tokens clean (t = 0).
        times = torch.stack([t, torch.zeros_like(t)], dim=-1).flatten(1)  # (B, 2F)
        temb = self.t_embed(timestep_embedding(times, cfg.dit.dim))  # (B, 2F, D)
        kind = torch.cat([torch.zeros(N, dtype=torch.long), torch.ones(Np, dtype=torch.long)])
        token_mod = (torch.arange(Fr)[:, None] * 2 + kind[None, :]).flatten().to(x.device)  # (L,)

        h, kvs = self.run_blocks(h, (temb, token_mod), Fr, first_frame, frame_index, context, mask, return_kv)
        shift, scale = self.ada_out(F.silu(temb))[:, token_mod].chunk(2, dim=-1)
        h = modulate(self.norm_out(h), shift, scale)
        video = rearrange(h, 'b (f l) d -> b f l d', f=Fr)[:, :, :N]  # (B, F, N, D)
        gh, gw = cfg.grid
        vel = rearrange(self.out(video), 'b f (h w) (c p q) -> b f c (h p) (w q)', h=gh, w=gw, p=self.ph, q=self.pw)
        return DiTOutput(velocity=vel, features=video, kv=kvs if return_kv else None)

    # ---- shared by the layouts (model/wan.py) -----------------------------------------------------------------
    def conditioned(self, tok: torch.Tensor, cond: Conditioning, patch: str) -> torch.Tensor:
        """Video tokens (B, F, N, D) with the cameras' Plücker rays and the geometric guess (its latent weighted by
        its coverage, and the coverage) added; `patch`: the einops pattern that cuts a latent into patches."""
        cfg = self.config
        if cfg.conditioning.plucker and cond.plucker is not None:
            tok = tok + self.camera(cond.plucker)
        if cfg.conditioning.geometry and cond.geometry is not None:
            cov = cond.coverage if cond.coverage is not None else torch.ones_like(cond.geometry[:, :, :1])
            geo = torch.cat([cond.geometry * cov, cov], dim=2)
            tok = tok + self.geo_embed(rearrange(geo, patch, p=self.ph, q=self.pw))
        return tok

    def run_blocks(self, h: torch.Tensor, modulation: tuple[torch.Tensor, ...], frames: int, first_frame: int,
                   frame_index: torch.Tensor | None, context: list[LayerKV] | None, mask: torch.Tensor | None,
                   return_kv: bool) -> tuple[torch.Tensor, list[LayerKV]]:
        """The blocks over the tokens h (B, L, D) of `frames` latent frames, placed from first_frame (or at
        frame_index), each block given `modulation` (its layout's inputs before the rotary angles) and block i
        context[i]; -> the tokens and, with return_kv, each block's own un-rotated keys and values."""
        positions = self.token_positions(frames, first_frame, h.device, frame_index)
        rope = rope_cos_sin(rope_angles(positions, self.config.head_dim), h.dtype)
        kvs: list[LayerKV] = []
        for i, block in enumerate(self.blocks):
            h, own = block(h, *modulation, rope, context[i] if context is not None else None, mask)
            if return_kv:
                kvs.append(own)
        return h, kvs

    def teacher_forcing_mask(self, frames: int, device: torch.device | None = None) -> torch.Tensor:
        """Mask over [clean frames; noisy frames] (2F frames): clean chunk c sees clean chunks <= c (what the
        cache holds), noisy chunk c sees clean chunks < c and itself, exactly as a chunk at inference sees
        the clean passes of earlier chunks. (2L, 2L) bool, True = attend."""
        ids = self.chunk_ids(frames, device)
        clean_q = torch.cat([ids, torch.full_like(ids, -1)])  # the clean half's chunk (noisy rows: none)
        noisy_q = torch.cat([torch.full_like(ids, -1), ids])
        clean_k, noisy_k = clean_q, noisy_q
        sees_clean = (clean_k[None, :] >= 0) & (
            ((clean_q[:, None] >= 0) & (clean_k[None, :] <= clean_q[:, None]))
            | ((noisy_q[:, None] >= 0) & (clean_k[None, :] < noisy_q[:, None])))
        sees_self = (noisy_q[:, None] >= 0) & (noisy_k[None, :] == noisy_q[:, None])
        return sees_clean | sees_self

    def chunk_ids(self, frames: int, device: torch.device | None = None) -> torch.Tensor:
        """Chunk index of every token of `frames` latent frames (for the block-causal mask)."""
        per_frame = self.config.tokens_per_frame + self.config.pose_tokens_per_frame
        frame_of_token = torch.arange(frames, device=device).repeat_interleave(per_frame)
        return frame_of_token // self.config.chunk_frames
