"""Save and restore a streaming session (memory with its cached keys and geometry, robot state, reference
camera) as one safetensors file: tensors plus JSON metadata, written atomically, never unpickled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from worldscape_ros.errors import CheckpointError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.dit import LayerKV
from worldscape_ros.model.kinematics import BaseState

if TYPE_CHECKING:
    from worldscape_ros.model.engine import WorldEngine

SESSION_VERSION = 1


def save_session(engine: WorldEngine, path: Path) -> None:
    from worldscape_ros.model.engine import ChunkPayload

    state = engine.memory.state()
    tensors: dict[str, torch.Tensor] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for level in ('sink', 'window', 'pool'):
        rows[level] = []
        for row in state[level]:
            cid = row['chunk_id']
            payload: ChunkPayload = row['payload']
            for i, layer in enumerate(payload.kv):
                tensors[f'{cid}.k{i}'] = layer.k.contiguous().cpu()
                tensors[f'{cid}.v{i}'] = layer.v.contiguous().cpu()
            for name in ('rgb', 'depth', 'c2w'):
                tensors[f'{cid}.{name}'] = getattr(payload, name).contiguous().cpu()
            rows[level].append({'chunk_id': cid, 'pose': row['pose'].tolist(), 'nbytes': row['nbytes'],
                                'layers': len(payload.kv),
                                'summary': None if row['summary'] is None else row['summary'].tolist()})
    assert engine._reference is not None, 'reset() before saving a session'
    meta = {
        'session_version': str(SESSION_VERSION),
        'config': engine.config.name,
        'weights_sha256': engine.sha256,
        'rows': json.dumps(rows),
        'last_chunk_id': json.dumps(state['last_chunk_id']),
        'engine': json.dumps({'frame_index': engine._frame_index, 'chunk_id': engine._chunk_id,
                              'state': vars(engine.state), 'reference': engine._reference.tolist(),
                              'intrinsics': engine.intrinsics.tolist(), 'seed': engine.seed}),
        'rng': json.dumps(engine._generator.get_state().tolist()),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_session(engine: WorldEngine, path: Path) -> None:
    from worldscape_ros.model.engine import ChunkPayload

    if not path.is_file():
        raise CheckpointError(f'session file {path} does not exist')
    try:
        with safe_open(str(path), framework='pt', device=str(engine.device)) as f:
            meta = f.metadata() or {}
            if meta.get('session_version') != str(SESSION_VERSION):
                raise CheckpointError(f'session {path} has version {meta.get("session_version")!r}, '
                                      f'expected {SESSION_VERSION}')
            if meta.get('config') != engine.config.name:
                raise CheckpointError(f'session {path} was made by config {meta.get("config")!r}, '
                                      f'this engine runs {engine.config.name!r}')
            rows = json.loads(meta['rows'])
            state: dict[str, Any] = {'last_chunk_id': json.loads(meta['last_chunk_id'])}
            for level, entries in rows.items():
                state[level] = []
                for r in entries:
                    cid = r['chunk_id']
                    kv = [LayerKV(f.get_tensor(f'{cid}.k{i}'), f.get_tensor(f'{cid}.v{i}')) for i in range(r['layers'])]
                    payload = ChunkPayload(kv=kv, rgb=f.get_tensor(f'{cid}.rgb'), depth=f.get_tensor(f'{cid}.depth'),
                                           c2w=f.get_tensor(f'{cid}.c2w'))
                    state[level].append({'chunk_id': cid, 'pose': np.array(r['pose']), 'payload': payload,
                                         'nbytes': r['nbytes'],
                                         'summary': None if r['summary'] is None else np.array(r['summary'])})
            eng = json.loads(meta['engine'])
            rng = torch.tensor(json.loads(meta['rng']), dtype=torch.uint8)
    except (SafetensorError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'session {path} is truncated or corrupt: {exc}') from None
    engine.memory.load_state(state)
    engine._frame_index = eng['frame_index']
    engine._chunk_id = eng['chunk_id']
    engine.state = BaseState(**eng['state'])
    engine._reference = np.array(eng['reference'])
    engine.intrinsics = np.array(eng['intrinsics'])
    engine._generator.set_state(rng)
