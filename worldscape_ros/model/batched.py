"""Batched sessions: N independent engine sessions over one model, each frame's network calls made once for all.

Each session is a `WorldEngine` with its own KV memory, scene memory, kinematics and sampling generator. One
frame of N sessions:
  1-2. per session: kinematics, the scene memory rendered into the new camera, the hand drawn;
       one codec encode of every session's render and pose video;
  3-4. per denoising step, one DiT pass per group of sessions whose contexts hold as many chunks (a chunk's
       positions follow its context's, so the sessions of a group share them and no padding is needed);
  5-6. one clean pass per group; one depth head and one codec decode for all;
  7.   one refiner pass over every frame that has a render;
  8.   per session: the output's depth, the commit to its scene memory, the chunk to its KV memory.
A call takes at most `max_batch` sessions (more run as several batches, one after another): on a CPU, batching
amortises each call's overhead while the activations stay in cache, and ws-tiny's decode at 32 sessions runs
about twice as slow per session as at 8.
The per-session steps are the engine's own (`_look`, `_entered`, `_denoise_inputs`, `_denoised`, `_emit`), the
network calls its `_encode`, `_denoise`, `_clean_pass`, `_decode` and `_compose` given a batch, so N sessions
stepped together make the frames each makes stepped alone, to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import numpy as np
import torch

from worldscape_ros.model.context import context_kv
from worldscape_ros.model.dit import Conditioning, DiTOutput, LayerKV
from worldscape_ros.model.engine import WorldEngine, checked_action
from worldscape_ros.model.frames import DenoiseStep, Frame, GeometricGuess, InFlight, Leaving
from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.protocol import Action
from worldscape_ros.model.world_model import WorldModel

CPU_MAX_BATCH = 8  # sessions per network call on a CPU (measured on ws-tiny: see the module docstring)


class BatchedEngine:
    """N sessions over one model, stepped together (one chunk each, as live control steps: window 1)."""

    def __init__(self, sessions: Sequence[WorldEngine], max_batch: int | None = None) -> None:
        """max_batch: sessions per network call (default: CPU_MAX_BATCH on a CPU, all of them on a GPU)."""
        if not sessions:
            raise ValueError('a batch needs at least one session')
        if max_batch is not None and max_batch < 1:
            raise ValueError(f'max_batch must be >= 1, got {max_batch}')
        lead = sessions[0]
        if len({id(s) for s in sessions}) != len(sessions):
            raise ValueError('each session of a batch must be its own WorldEngine (one was given twice)')
        for i, s in enumerate(sessions):
            if s.model is not lead.model:
                raise ValueError(f'session {i} runs another model: the sessions of a batch share one')
            if (s.device, s.dtype, s.steps) != (lead.device, lead.dtype, lead.steps):
                raise ValueError(f'session {i} runs on {s.device} {s.dtype} with {s.steps} steps, session 0 on '
                                 f'{lead.device} {lead.dtype} with {lead.steps}: a batch shares all three')
        self._sessions = list(sessions)
        self.max_batch = max_batch or (CPU_MAX_BATCH if lead.device.type == 'cpu' else len(sessions))

    @classmethod
    def over(cls, model: WorldModel, sessions: int, options: EngineOptions | None = None,
             seeds: Sequence[int] | None = None, weights_sha256: str = '', max_batch: int | None = None
             ) -> BatchedEngine:
        """`sessions` new sessions over `model`, each with `options` but its own sampling seed: `seeds`
        (default options.seed, options.seed + 1, ...)."""
        options = options or EngineOptions()
        if sessions < 1:
            raise ValueError(f'sessions must be >= 1, got {sessions}')
        seeds = [options.seed + i for i in range(sessions)] if seeds is None else [int(s) for s in seeds]
        if len(seeds) != sessions:
            raise ValueError(f'seeds must hold one seed per session ({sessions}), got {len(seeds)}')
        return cls([WorldEngine(model, replace(options, seed=seed), weights_sha256) for seed in seeds], max_batch)

    @classmethod
    def from_pretrained(cls, sessions: int, checkpoint: str | None = None, config: str | None = None,
                        options: EngineOptions | None = None, seeds: Sequence[int] | None = None,
                        max_batch: int | None = None) -> BatchedEngine:
        """Load the model once (checkpoint, config and options as WorldEngine.from_pretrained takes them) and
        open `sessions` sessions over it (seeds and max_batch as `over` takes them)."""
        first = WorldEngine.from_pretrained(checkpoint, config, options)
        return cls.over(first.model, sessions, first.options, seeds, first.sha256, max_batch)

    @property
    def sessions(self) -> tuple[WorldEngine, ...]:
        """The sessions, each reset (reset, a scene start, load_session_state) and read on its own."""
        return tuple(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    # ---- stepping --------------------------------------------------------------------------------------
    def step(self, actions: Sequence[Action], hand_keypoints: Sequence[np.ndarray | None] | None = None,
             sessions: Sequence[int] | None = None) -> list[Frame]:
        """The next frame of each session stepped: one action (and hand keypoints or None) per session, in the
        order of `sessions` (default: every session)."""
        k = self._sessions[0].config.frames_per_chunk
        if k != 1:
            raise ValueError(f'{self._sessions[0].config.name} makes {k} frames per chunk: use step_chunk')
        kps = None if hand_keypoints is None else [[kp] for kp in hand_keypoints]
        return [frames[0] for frames in self.step_chunk([[a] for a in actions], kps, sessions)]

    def step_chunk(self, actions: Sequence[Sequence[Action]],
                   hand_keypoints: Sequence[Sequence[np.ndarray | None] | None] | None = None,
                   sessions: Sequence[int] | None = None) -> list[list[Frame]]:
        """The next chunk of each session stepped (frames_per_chunk actions each). Every argument is checked
        before any session moves."""
        picked = self._picked(sessions)
        if len(actions) != len(picked):
            raise ValueError(f'actions must hold one entry per session stepped ({len(picked)}), got {len(actions)}')
        given = [None] * len(picked) if hand_keypoints is None else list(hand_keypoints)
        if len(given) != len(picked):
            raise ValueError(f'hand_keypoints must hold one entry per session stepped ({len(picked)}), '
                             f'got {len(given)}')
        lanes = []
        for i, chunk, kp in zip(picked, actions, given, strict=True):
            s = self._sessions[i]
            if s.trace is not None:
                raise ValueError(f'session {i} is traced: a trace sees one session, step it alone')
            try:
                kps = s._check_chunk(chunk, kp)
                lanes.append((s, [checked_action(a) for a in chunk], kps))
            except ValueError as exc:
                raise ValueError(f'session {i}: {exc}') from None
        m = self.max_batch
        return [frames for start in range(0, len(lanes), m) for frames in self._step(lanes[start:start + m])]

    def _picked(self, sessions: Sequence[int] | None) -> list[int]:
        n = len(self._sessions)
        if sessions is None:
            return list(range(n))
        picked = [int(i) for i in sessions]
        if not picked:
            raise ValueError('sessions must name at least one session')
        if any(not 0 <= i < n for i in picked) or len(set(picked)) != len(picked):
            raise ValueError(f'sessions must be distinct indices in [0, {n}), got {list(sessions)}')
        return picked

    def _step(self, lanes: list[tuple[WorldEngine, list[NavAction | np.ndarray], list[np.ndarray | None]]]
              ) -> list[list[Frame]]:
        lead = lanes[0][0]
        sights = [s._look(chunk, kps) for s, chunk, kps in lanes]  # 1-2, per session
        with torch.no_grad():
            latents = lead._encode([v for sight in sights for v in sight.videos])
            windows: list[list[InFlight]] = []
            for (s, _, _), sight in zip(lanes, sights, strict=True):
                n = len(sight.videos)
                windows.append([s._entered(sight, latents[:n])])
                latents = latents[n:]
            leaving: list[Leaving | None] = [None] * len(lanes)
            clean: list[tuple[torch.Tensor, list[LayerKV]] | None] = [None] * len(lanes)
            # a group's context serves all its steps: the memory holds still until the chunks leave, and each
            # pass writes its own keys over the free room at the end
            contexts: dict[tuple[int, ...], list[LayerKV] | None] = {}
            for _ in range(lead.steps):  # 3-5: every chunk is at the same level, and leaves after the last
                inputs = [s._denoise_inputs(w) for (s, _, _), w in zip(lanes, windows, strict=True)]
                for group in _groups([step for _, step in inputs]):
                    entries = [inputs[j][0] for j in group]
                    step = _joined([inputs[j][1] for j in group])
                    if tuple(group) not in contexts:
                        contexts[tuple(group)] = context_kv(lead.model.dit, entries, 1, lead.device)
                    context = contexts[tuple(group)]
                    out = lead._denoise(step, context)
                    for r, j in enumerate(group):
                        leaving[j] = lanes[j][0]._denoised(windows[j], inputs[j][1], _row(out, r), entries[r], None)
                    if leaving[group[0]] is None or step.reuse:
                        continue
                    x0 = torch.cat([_left(leaving[j]).x0 for j in group])
                    features, kv = lead._clean_pass(x0, step.cond, entries[0], context)
                    for r, j in enumerate(group):
                        clean[j] = features[r:r + 1], [_layer_row(layer, r) for layer in kv]
            done = [_left(item) for item in leaving]
            cached = [c if c is not None else _cached(d) for c, d in zip(clean, done, strict=True)]
            video, depth_v = lead._decode(torch.cat([d.x0 for d in done]), torch.cat([c[0] for c in cached]),
                                          denoising=clean[0] is None)
            video = _compose(lead, [d.chunk for d in done], video)
            if clean[0] is None:  # the depth of denoising passes: the step image depth head reads the output too
                depth_v = lead.model.refine_step_depth(torch.cat([c[0] for c in cached]), video, depth_v)
            return [s._emit(d.chunk, d.x0, c[1], video[j], depth_v[j])
                    for j, ((s, _, _), d, c) in enumerate(zip(lanes, done, cached, strict=True))]


def _groups(steps: list[DenoiseStep]) -> list[list[int]]:
    """Indices of the sessions that can share one DiT pass: as many context chunks, the same window shape."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for j, s in enumerate(steps):
        groups.setdefault((s.context_chunks, tuple(s.x.shape[1:]), s.reuse), []).append(j)
    return list(groups.values())


def _joined(steps: list[DenoiseStep]) -> DenoiseStep:
    """The sessions' denoising inputs along the batch axis."""
    if len(steps) == 1:
        return steps[0]
    streams = [[getattr(s.cond, f.name) for s in steps] for f in fields(Conditioning)]
    cond = Conditioning(*(None if any(x is None for x in xs) else torch.cat(xs) for xs in streams))
    return DenoiseStep(torch.cat([s.x for s in steps]), torch.cat([s.t for s in steps]), cond,
                       steps[0].context_chunks, steps[0].reuse)


def _layer_row(layer: LayerKV, r: int) -> LayerKV:
    # a copy: the session's KV memory holds it long after the batch's tensors are gone
    return LayerKV(layer.k[r:r + 1].clone(), layer.v[r:r + 1].clone())


def _row(out: DiTOutput, r: int) -> DiTOutput:
    kv = None if out.kv is None else [_layer_row(layer, r) for layer in out.kv]
    return DiTOutput(out.velocity[r:r + 1], out.features[r:r + 1], kv)


def _left(leaving: Leaving | None) -> Leaving:
    assert leaving is not None, 'a chunk stepped alone leaves its window after the last step'
    return leaving


def _cached(leaving: Leaving) -> tuple[torch.Tensor, list[LayerKV]]:
    assert leaving.cached is not None, 'without a clean pass, the last step kept the keys'
    return leaving.cached


def _compose(lead: WorldEngine, chunks: list[InFlight], video: torch.Tensor) -> torch.Tensor:
    """7. the output of every session with a render, through one refiner pass over all their frames;
    video (N, Fv, 3, H, W) the DiT's imagination."""
    rendered = [j for j, c in enumerate(chunks) if c.guess is not None]
    if not rendered:
        return video
    guesses = [c.guess for c in chunks if c.guess is not None]
    def joined(name: str) -> torch.Tensor | None:  # one config: every guess has a part, or none does
        parts = [getattr(g, name) for g in guesses]
        return None if parts[0] is None else torch.cat(parts, dim=1 if name == 'coverage' else 0)

    joint = GeometricGuess(**{f.name: joined(f.name) for f in fields(GeometricGuess)})  # type: ignore[arg-type]
    drawn = [chunks[j].pose_video for j in rendered]
    pose_video = None
    if any(d is not None for d in drawn):  # a session without a hand: a blank pose video, as the refiner reads None
        blank = np.zeros((video.shape[1], *video.shape[-2:], 3), np.uint8)
        pose_video = np.concatenate([blank if d is None else d for d in drawn])
    out = video.clone()
    out[rendered] = lead._compose(joint, video[rendered].flatten(0, 1), pose_video).unflatten(0, (len(rendered), -1))
    return out
