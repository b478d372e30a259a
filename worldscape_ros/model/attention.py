"""Attention behind one function, with backends: flash-attn (CUDA, installed), FlexAttention (CUDA training
masks; it has no CPU backward), and torch SDPA everywhere else."""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import torch
import torch.nn.functional as F

BACKENDS = ('auto', 'sdpa', 'flash', 'flex')


@functools.cache
def flash_attn_available() -> bool:
    return importlib.util.find_spec('flash_attn') is not None and torch.cuda.is_available()


def block_causal_mask(chunk_q: torch.Tensor, chunk_k: torch.Tensor) -> torch.Tensor:
    """Boolean (Nq, Nk) mask: a query in chunk i sees every key of chunks <= i (True = attend)."""
    return chunk_k[None, :] <= chunk_q[:, None]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any = None,
              backend: str = 'auto') -> torch.Tensor:
    """q (B, H, Nq, d), k and v (B, H, Nk, d) -> (B, H, Nq, d).

    mask: None (full), a boolean (Nq, Nk) tensor (True = attend), or a FlexAttention BlockMask.
    """
    if backend not in BACKENDS:
        raise ValueError(f'attention backend must be one of {BACKENDS}, got {backend!r}')
    is_block_mask = mask is not None and not isinstance(mask, torch.Tensor)
    if backend == 'flex' or is_block_mask:
        if not q.is_cuda:
            raise ValueError('the flex attention backend needs CUDA (FlexAttention has no CPU backward)')
        from torch.nn.attention.flex_attention import flex_attention

        out = flex_attention(q, k, v, block_mask=mask)
        assert isinstance(out, torch.Tensor)
        return out
    use_flash = backend == 'flash' or (
        backend == 'auto' and mask is None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)
        and flash_attn_available())
    if use_flash:
        if mask is not None:
            raise ValueError('the flash backend takes no mask: attend to exactly the keys given')
        from flash_attn import flash_attn_func

        out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
