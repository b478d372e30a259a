"""Save and restore a streaming session (memory with its cached keys and geometry, robot state, reference
camera, sampling seed and generator) as one safetensors file: tensors plus JSON metadata, written atomically,
never unpickled.

Cached keys and values belong to the weights that made them: a session loads only into an engine whose weights
have the same sha256 (unless asked to anyway, with a warning), and it brings back the seed it was made with.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
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

log = logging.getLogger(__name__)

SESSION_VERSION = 3  # 2: the scene memory's points; 3: chunks hold their keys and values only


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
            rows[level].append({'chunk_id': cid, 'pose': row['pose'].tolist(), 'nbytes': row['nbytes'],
                                'layers': len(payload.kv),
                                'summary': None if row['summary'] is None else row['summary'].tolist()})
    assert engine._reference is not None, 'reset() before saving a session'
    tensors.update(engine.scene.state())
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


def load_session(engine: WorldEngine, path: Path, allow_other_weights: bool = False) -> None:
    """Restore a saved session into `engine`. Refused (CheckpointError) when the session was made by another
    config or, unless `allow_other_weights`, by other weights: its cached keys mean nothing to them."""
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
            saved_sha = str(meta.get('weights_sha256', ''))
            if saved_sha != engine.sha256:
                what = (f'session {path} was made with weights sha256 {saved_sha[:12] or "(unknown)"}, this engine '
                        f'runs {str(engine.sha256)[:12] or "(unknown)"}')
                if not allow_other_weights:
                    raise CheckpointError(f'{what}: its cached keys belong to those weights; load the same '
                                          'checkpoint (or pass allow_other_weights=True)')
                log.warning('%s: loading anyway, the cached keys will not match', what)
            rows = json.loads(meta['rows'])
            state: dict[str, Any] = {'last_chunk_id': json.loads(meta['last_chunk_id'])}
            for level, entries in rows.items():
                state[level] = []
                for r in entries:
                    cid = r['chunk_id']
                    kv = [LayerKV(f.get_tensor(f'{cid}.k{i}'), f.get_tensor(f'{cid}.v{i}')) for i in range(r['layers'])]
                    payload = ChunkPayload(kv=kv)
                    state[level].append({'chunk_id': cid, 'pose': np.array(r['pose']), 'payload': payload,
                                         'nbytes': r['nbytes'],
                                         'summary': None if r['summary'] is None else np.array(r['summary'])})
            eng = json.loads(meta['engine'])
            rng = torch.tensor(json.loads(meta['rng']), dtype=torch.uint8)
            scene = {k: f.get_tensor(k) for k in f.keys() if k.startswith('scene.')}
    except (SafetensorError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'session {path} is truncated or corrupt: {exc}') from None
    try:
        engine.scene.load_state(scene)
    except ValueError as exc:
        raise CheckpointError(f'session {path}: {exc}') from None
    engine.memory.load_state(state)
    engine._frame_index = eng['frame_index']
    engine._chunk_id = eng['chunk_id']
    engine.state = BaseState(**eng['state'])
    engine._reference = np.array(eng['reference'])
    engine.intrinsics = np.array(eng['intrinsics'])
    # a later reset() reseeds as the original engine would
    engine.options = replace(engine.options, seed=int(eng.get('seed', engine.seed)))
    engine._generator.set_state(rng)
