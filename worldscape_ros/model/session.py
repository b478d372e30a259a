"""Session files: an engine's SessionState (memory with its cached keys, scene memory, base, camera, frame count,
sampling seed and generator) as one safetensors file, tensors plus JSON metadata, written atomically, never
unpickled. The engine checks what it is given (config, weights hash); this module owns the file and its version.

    save_session(engine, 'run.safetensors')
    load_session(fresh_engine, 'run.safetensors')   # the same weights: its next frames are the saved engine's
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from worldscape_ros.errors import CheckpointError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.dit import LayerKV
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.frames import ChunkPayload
from worldscape_ros.model.kinematics import BaseState
from worldscape_ros.model.memory import LEVELS, MemoryState, SavedChunk
from worldscape_ros.model.session_state import SessionState

SESSION_VERSION = 3  # 2: the scene memory's points; 3: chunks hold their keys and values only


def save_session(engine: WorldEngine, path: str | Path) -> None:
    """Write `engine`'s session to `path` (replaced atomically)."""
    write_session(engine.session_state(), Path(path))


def load_session(engine: WorldEngine, path: str | Path, allow_other_weights: bool = False) -> None:
    """Continue the session saved at `path` in `engine`. Refused (CheckpointError naming the file, the engine
    unchanged) when the file is missing, corrupt or of another version, or the engine refuses the session
    (another config; other weights unless `allow_other_weights`)."""
    path = Path(path)
    state = read_session(path, engine.device)
    try:
        engine.load_session_state(state, allow_other_weights=allow_other_weights)
    except CheckpointError as exc:
        raise CheckpointError(f'session {path}: {exc}') from None


def write_session(state: SessionState, path: Path) -> None:
    tensors: dict[str, torch.Tensor] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for level in LEVELS:
        rows[level] = []
        for row in state.memory[level]:
            cid = row['chunk_id']
            payload = row['payload']
            for i, layer in enumerate(payload.kv):
                tensors[f'{cid}.k{i}'] = layer.k.contiguous().cpu()
                tensors[f'{cid}.v{i}'] = layer.v.contiguous().cpu()
            rows[level].append({'chunk_id': cid, 'pose': row['pose'].tolist(), 'nbytes': row['nbytes'],
                                'layers': len(payload.kv),
                                'summary': None if row['summary'] is None else row['summary'].tolist()})
    tensors.update(state.scene)
    meta = {
        'session_version': str(SESSION_VERSION),
        'config': state.config,
        'weights_sha256': state.weights_sha256,
        'rows': json.dumps(rows),
        'last_chunk_id': json.dumps(state.memory['last_chunk_id']),
        'engine': json.dumps({'frame_index': state.frame_index, 'chunk_id': state.chunk_id,
                              'state': vars(state.base), 'reference': state.reference.tolist(),
                              'intrinsics': state.intrinsics.tolist(), 'seed': state.seed}),
        'rng': json.dumps(state.generator.tolist()),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def read_session(path: Path, device: torch.device | str = 'cpu') -> SessionState:
    """The session saved at `path`, its cached keys on `device`."""
    if not path.is_file():
        raise CheckpointError(f'session file {path} does not exist')
    try:
        with safe_open(str(path), framework='pt', device=str(device)) as f:
            meta = f.metadata() or {}
            if meta.get('session_version') != str(SESSION_VERSION):
                raise CheckpointError(f'session {path} has version {meta.get("session_version")!r}, '
                                      f'expected {SESSION_VERSION}')
            rows = json.loads(meta['rows'])
            memory: MemoryState[ChunkPayload] = {'last_chunk_id': json.loads(meta['last_chunk_id']),
                                                 'sink': [], 'window': [], 'pool': []}
            for level in LEVELS:
                for r in rows[level]:
                    cid = r['chunk_id']
                    kv = [LayerKV(f.get_tensor(f'{cid}.k{i}'), f.get_tensor(f'{cid}.v{i}')) for i in range(r['layers'])]
                    chunk: SavedChunk[ChunkPayload] = {
                        'chunk_id': cid, 'pose': np.array(r['pose']), 'payload': ChunkPayload(kv=kv),
                        'nbytes': r['nbytes'], 'summary': None if r['summary'] is None else np.array(r['summary'])}
                    memory[level].append(chunk)
            eng = json.loads(meta['engine'])
            return SessionState(
                config=str(meta.get('config')), weights_sha256=str(meta.get('weights_sha256', '')),
                seed=int(eng['seed']), generator=torch.tensor(json.loads(meta['rng']), dtype=torch.uint8),
                frame_index=int(eng['frame_index']), chunk_id=int(eng['chunk_id']), base=BaseState(**eng['state']),
                reference=np.array(eng['reference'], dtype=np.float64),
                intrinsics=np.array(eng['intrinsics'], dtype=np.float64), memory=memory,
                scene={k: f.get_tensor(k) for k in f.keys() if k.startswith('scene.')})
    except (SafetensorError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'session {path} is truncated or corrupt: {exc}') from None
