"""The KV memory as the engine runs it (steps 3 and 8 of engine.py): its config under the engine's options, a
clean chunk made a memory entry, and the context a window attends to: the entries' cached keys joined and
rotated to consecutive positions, with free room after them for the attending chunks' own keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from worldscape_ros.model.config import MemoryConfig, ModelConfig
from worldscape_ros.model.dit import CausalDiT, LayerKV
from worldscape_ros.model.frames import ChunkPayload
from worldscape_ros.model.memory import MemoryEntry


def memory_config(config: ModelConfig, memory: bool, pool_bytes: int | None = None) -> MemoryConfig:
    """The model's memory config as an engine runs it: memory off (the ablation) keeps the sink and the local
    window only, no global pool; pool_bytes (when given) bounds the pool instead of the config's budget."""
    m = config.memory
    if not memory:
        m = replace(m, pool_chunks=0, retrieve_chunks=0)
    return m if pool_bytes is None else replace(m, pool_bytes=pool_bytes)


def memory_entry(chunk_id: int, pose: np.ndarray, kv: list[LayerKV], x0: torch.Tensor) -> MemoryEntry:
    """A clean chunk as the KV memory holds it: its keys and values, its last camera (retrieval, the pool's
    gate) and a summary of its last latent frame x0 (B, F, C, h, w) (the gate's content check). B clips that
    attend together (training's self-rollout) share one entry: keys and values (B, H, L, d), the first clip's
    camera and summary (only the pool reads them)."""
    payload = ChunkPayload(kv=kv)
    summary = F.adaptive_avg_pool2d(x0[0, -1].float(), (3, 4)).flatten().cpu().numpy()
    return MemoryEntry(chunk_id=chunk_id, pose=np.asarray(pose, dtype=np.float64), payload=payload,
                       nbytes=payload.nbytes, summary=summary)


def context_kv(dit: CausalDiT, sessions: Sequence[list[MemoryEntry]], chunks: int, device: torch.device
               ) -> list[LayerKV] | None:
    """The context of B sessions that attend together, each holding as many entries: per block, their cached
    keys and values (B, H, M + tail, d), keys rotated to consecutive positions from 0, with room for the keys
    of the `chunks` chunks that attend to them (None: no context). chunks 0 leaves no room: the attending chunks'
    keys are concatenated after them (training: its graph, and activation checkpointing's recompute, see no
    in-place writes)."""
    if not sessions[0]:
        return None
    cfg = dit.config

    def joined(parts: list[torch.Tensor], dim: int) -> torch.Tensor:
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim)  # one part: no copy

    merged = [LayerKV(joined([joined([e.payload.kv[i].k for e in entries], 2) for entries in sessions], 0),
                      joined([joined([e.payload.kv[i].v for e in entries], 2) for entries in sessions], 0))
              for i in range(len(dit.blocks))]
    positions = dit.token_positions(len(sessions[0]) * cfg.chunk_frames, 0, device)
    return dit.rotate_context(merged, positions, tail=chunks * cfg.tokens_per_chunk)
