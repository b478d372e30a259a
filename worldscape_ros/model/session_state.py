"""A streaming session as a value: what WorldEngine.session_state() gives and load_session_state() takes back,
and what model/session.py writes to a file. Everything a session is beyond the weights: the KV memory with its
cached keys, the scene memory, the base and camera, the frame count and the sampling seed and generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldscape_ros.model.frames import ChunkPayload
from worldscape_ros.model.kinematics import BaseState
from worldscape_ros.model.memory import MemoryState


@dataclass
class SessionState:
    config: str  # the model config's name: cached keys have its shapes
    weights_sha256: str  # the weights whose cached keys the memory holds ('random-init': a random model)
    seed: int  # the sampling seed a later reset starts from
    generator: torch.Tensor  # (N,) uint8, the sampling generator's state: the next noise drawn
    frame_index: int  # frames since the reset
    chunk_id: int  # the id the next chunk handed to memory gets
    base: BaseState  # what the commands move
    reference: np.ndarray  # (4, 4) the reset camera, which the Plücker rays are relative to
    intrinsics: np.ndarray  # (3, 3) the session's camera
    memory: MemoryState[ChunkPayload]  # HierarchicalMemory.state(): sink, window and pool, each chunk's keys
    scene: dict[str, torch.Tensor]  # SceneMemory.state(): its points
