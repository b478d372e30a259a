"""A session as a value on an engine: the snapshot WorldEngine.session_state takes, and resuming one: a
SessionState (session_state.py) checked against the engine's config and weights, and its memories and sampling
generator rebuilt beside the engine, so a refused or malformed state changes nothing. One CheckpointError naming
what does not fit."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from worldscape_ros.errors import CheckpointError
from worldscape_ros.model.camera import check_intrinsics, check_rigid
from worldscape_ros.model.config import MemoryConfig, ModelConfig
from worldscape_ros.model.grasp import GraspTracker
from worldscape_ros.model.kinematics import BaseState
from worldscape_ros.model.memory import HierarchicalMemory
from worldscape_ros.model.options import EngineOptions
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


class ResumableSession:
    """WorldEngine's session as a value: the snapshot it takes and the state it continues (the engine, a subclass,
    holds everything these read and set)."""

    config: ModelConfig
    sha256: str
    options: EngineOptions
    device: torch.device
    state: BaseState
    intrinsics: np.ndarray
    memory: HierarchicalMemory
    scene: SceneMemory
    grasp: GraspTracker
    _generator: torch.Generator
    _frame_index: int
    _chunk_id: int
    _reference: np.ndarray | None

    def session_state(self) -> SessionState:
        """The session as it stands, a snapshot that later steps leave alone (model/session.py saves it)."""
        if self._reference is None:
            raise ValueError('reset() the engine with a first frame before taking its session state')
        return SessionState(
            config=self.config.name, weights_sha256=self.sha256, seed=self.options.seed,
            generator=self._generator.get_state(), frame_index=self._frame_index, chunk_id=self._chunk_id,
            base=replace(self.state), reference=self._reference.copy(), intrinsics=self.intrinsics.copy(),
            memory=self.memory.state(), scene={k: v.clone() for k, v in self.scene.state().items()})

    def load_session_state(self, state: SessionState, allow_other_weights: bool = False) -> None:
        """Continue `state`'s session: the next frames are the ones its engine would have made next, and a later
        reset reseeds with its seed. Refused (CheckpointError, the engine unchanged) when another config made it
        or, unless `allow_other_weights`, other weights: its cached keys mean nothing to these."""
        check_owner(state, self.config.name, self.sha256, allow_other_weights)
        # built beside the engine first: a malformed state changes nothing
        self.memory, self.scene, self._generator = rebuilt(state, self.config, self.memory.config, self.device)
        self.options = replace(self.options, seed=int(state.seed))
        self._frame_index, self._chunk_id = int(state.frame_index), int(state.chunk_id)
        self.state = replace(state.base)
        self._reference = np.asarray(state.reference, dtype=np.float64).copy()
        self.intrinsics = np.asarray(state.intrinsics, dtype=np.float64).copy()
        self.grasp.reset()  # a loaded session starts with nothing in the hand
