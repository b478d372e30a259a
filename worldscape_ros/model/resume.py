"""Resuming a session on an engine: a SessionState (session_state.py) checked against the engine's config and
weights, and its memories and sampling generator rebuilt beside the engine, so a refused or malformed state
changes nothing. One CheckpointError naming what does not fit."""

from __future__ import annotations

import logging

import torch

from worldscape_ros.errors import CheckpointError
from worldscape_ros.model.camera import check_intrinsics, check_rigid
from worldscape_ros.model.config import MemoryConfig, ModelConfig
from worldscape_ros.model.memory import HierarchicalMemory
from worldscape_ros.model.scene_memory import SceneMemory
from worldscape_ros.model.session_state import SessionState

log = logging.getLogger(__name__)


def check_owner(state: SessionState, config: str, weights_sha256: str, allow_other_weights: bool = False) -> None:
    """Refuse a session made by another config than `config`, or (unless allow_other_weights: a warning) by other
    weights than `weights_sha256`: its cached keys mean nothing to these."""
    if state.config != config:
        raise CheckpointError(f'the session was made by config {state.config!r}, this engine runs {config!r}')
    if state.weights_sha256 != weights_sha256:
        what = (f'the session was made with weights sha256 {state.weights_sha256[:12] or "(unknown)"}, this '
                f'engine runs {weights_sha256[:12] or "(unknown)"}')
        if not allow_other_weights:
            raise CheckpointError(f'{what}: its cached keys belong to those weights; load the same checkpoint '
                                  '(or pass allow_other_weights=True)')
        log.warning('%s: loading anyway, the cached keys will not match', what)


def rebuilt(state: SessionState, config: ModelConfig, memory: MemoryConfig, device: torch.device
            ) -> tuple[HierarchicalMemory, SceneMemory, torch.Generator]:
    """The session's KV memory (run with `memory`, the engine's), scene memory and sampling generator, made anew
    from `state` after its cameras are checked."""
    kv_memory = HierarchicalMemory(memory)
    scene = SceneMemory(config.scene, device)
    generator = torch.Generator()
    try:
        check_rigid(state.reference, name='session reference camera')
        check_intrinsics(state.intrinsics, name='session intrinsics')
        kv_memory.load_state(state.memory)
        scene.load_state({k: v.clone() for k, v in state.scene.items()})
        generator.set_state(state.generator)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f'the session state is malformed: {exc}') from None
    return kv_memory, scene, generator
