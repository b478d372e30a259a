"""3D rotary positions applied at attention time from explicit (t, h, w) positions.

Keys are cached without rotation; any mix of sink, memory and local chunks can then be placed at whatever
positions the attention call chooses, however long the rollout runs (no position table to overflow).
"""

from __future__ import annotations

import torch


def axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Rotation pairs given to the t, h and w axes."""
    pairs = head_dim // 2
    hw = pairs // 3
    return pairs - 2 * hw, hw, hw


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """positions (N, 3) integer or float (t, h, w) -> angles (N, head_dim // 2)."""
    parts = []
    for axis, n in enumerate(axis_pairs(head_dim)):
        freqs = theta ** (-torch.arange(n, device=positions.device, dtype=torch.float64) / max(n, 1))
        parts.append(positions[:, axis, None].double() * freqs[None, :])  # (N, n)
    return torch.cat(parts, dim=-1)


def rope_cos_sin(angles: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Computed once per forward and shared by every block."""
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, angles: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate channel pairs (2i, 2i+1) of x (..., N, d) by angles (N, d/2) (or their precomputed cos, sin)."""
    cos, sin = angles if isinstance(angles, tuple) else rope_cos_sin(angles, x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)
