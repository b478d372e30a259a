"""The streaming engine: reset from a first frame, then step with actions (or camera poses, or hand keypoints)
and get RGB, metric depth and the pose of each new frame.

One chunk, as the algorithm reads:
  1. kinematics: integrate the action into the target camera pose;
  2. conditioning: Plücker rays relative to the session's reference camera; the pose video of the hand;
     the geometric guess: the scene memory (everything seen or imagined) rendered into the target camera,
     the hand's region left out;
  3. memory: the sink, the pooled chunks retrieved for the target camera (when memory.attend_pool) and the
     local window form the context; their cached keys are placed at consecutive positions before the chunk;
  4. denoise the chunk in a few steps;
  5. one clean pass at t = 0 (or the last step's pass, sampler.cache_from_last_step) writes the chunk's keys
     and values, and its features give the depth (a denoising pass's through the step depth head);
  6. decode: the DiT's imagination of the view;
  7. form the output: the render where it covers, the refiner's (or the DiT's) imagination elsewhere;
  8. commit what was imagined to the scene memory, and hand the chunk to the KV memory.

`step`/`step_chunk` denoise one chunk at a time: a frame for each action as it arrives. When the trajectory is
known ahead (evaluation, offline rollouts), `rollout` runs the rolling denoising window instead: up to W chunks
at staggered noise levels take each step together after the clean context (W = sampler.rolling_window), the
oldest leaves clean each tick and only then enters the cache and memory, so the cache advances monotonically.
A window of 1 is `step_chunk` exactly.

Beside it: what flows between the steps (frames.py), one tick of the rolling window (rolling_window.py, which
training's self-rollout runs too), the rays and pose video (conditioning.py), the scene memory's start, render
and output (guess.py), the KV memory's entries and context (context.py), the caller's
input checked (inputs.py), what an engine runs with (options.py: EngineOptions) and a session as a value
(session_state.py; resume.py takes and continues one for this engine, session.py writes it), and a live step
given up for a newer command before it commits (stale.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch

from worldscape_ros.model import hands
from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.checkpoint import open_model
from worldscape_ros.model.conditioning import chunk_plucker, hand_pose_video
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.context import context_kv, memory_config, memory_entry
from worldscape_ros.model.dit import Conditioning, DiTOutput, LayerKV
from worldscape_ros.model.frames import DenoiseStep, Frame, GeometricGuess, InFlight, Leaving, Sight
from worldscape_ros.model.grasp import GraspTracker
from worldscape_ros.model.guess import Trace, committable, compose, render_guess, start_scene
from worldscape_ros.model.inputs import checked_action, checked_start, chunk_keypoints, trajectory_keypoints
from worldscape_ros.model.kinematics import BaseState, camera_pose, integrate, state_from_camera_pose
from worldscape_ros.model.memory import HierarchicalMemory, MemoryEntry
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.protocol import Action
from worldscape_ros.model.resume import ResumableSession
from worldscape_ros.model.rolling_window import chunk_x0s, chunks_leaving, renoise, window_inputs
from worldscape_ros.model.sampler import schedule
from worldscape_ros.model.scene_memory import IMAGINED, SceneMemory
from worldscape_ros.model.stale import FrameAbandoned, StaleCheck
from worldscape_ros.model.world_model import WorldModel


class WorldEngine(ResumableSession):
    def __init__(self, model: WorldModel, options: EngineOptions | None = None, weights_sha256: str = '') -> None:
        """model: the network, moved to options.device; weights_sha256: its weights' hash, which sessions carry
        (their cached keys mean something only to these weights)."""
        options = options or EngineOptions()
        self.options = options
        self.device = options.torch_device()
        self.dtype = options.torch_dtype
        self.model = model.to(self.device).eval()
        self.config: ModelConfig = model.config
        self.steps = options.steps or self.config.sampler.steps
        self._times = schedule(self.steps, self.config.sampler.shift)  # noise level after each step
        self.memory = HierarchicalMemory(memory_config(self.config, options.memory, options.pool_bytes))
        # Memory off (the ablation) keeps only what was observed in the scene, nothing imagined.
        self.scene = SceneMemory(self.config.scene, self.device)
        self.grasp = GraspTracker(scene_config=self.config.scene, device=self.device)  # objects the hand moves
        self._hand_colour: np.ndarray | None = None  # (3,) the start hand's colour (hands.hand_colour)
        self.commit_imagined = self.config.scene.commit_imagined and options.memory
        self.trace: Trace | None = None  # training traces what the refiner is shown (guess.py)
        self.sha256 = weights_sha256
        self.intrinsics = intrinsics_from_fov(self.config.width, self.config.height, self.config.vfov_deg)
        self.state = BaseState(height=self.config.camera_height)
        self._reference: np.ndarray | None = None
        self._frame_index = 0
        self._chunk_id = 0
        self._generator = torch.Generator().manual_seed(options.seed)
        self._empty_pose_latent: torch.Tensor | None = None
        self._guess: GeometricGuess | None = None
        self._stale: StaleCheck | None = None  # a live step's stale check, and what undoes the step (stale.py)
        # chunks rollout() denoises together (the rolling window); step() always takes one chunk at a time
        self.window = options.window or max(1, self.config.sampler.rolling_window)

    # ---- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, checkpoint: str | None = None, config: str | None = None,
                        options: EngineOptions | None = None) -> WorldEngine:
        """checkpoint: None for the shipped default, 'random' for a random init of `config` (seeded with
        options.seed), or a path; config: a registered name or YAML path (default: the checkpoint's)."""
        options = options or EngineOptions()
        options.torch_device()  # an absent GPU is refused before the weights load
        model, weights_sha256 = open_model(checkpoint, config, options.seed)
        return cls(model, options, weights_sha256)

    @property
    def seed(self) -> int:
        """The sampling seed every reset starts the noise generator from (a loaded session brings its own)."""
        return self.options.seed

    # ---- public API ------------------------------------------------------------------------------------
    @property
    def cache_bytes(self) -> int:
        return self.memory.nbytes

    @property
    def frame_index(self) -> int:
        return self._frame_index

    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray | None = None,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame:
        """Start a session from an RGB frame (H, W, 3) uint8 seen from `pose` (camera-to-world, OpenCV).
        depth: its metric depth (default: the model's own); hand_keypoints: (21, 3) of a hand in the frame,
        whose region stays out of the scene memory (the hand moves on)."""
        cfg = self.config
        t0 = time.perf_counter()
        rgb, intrinsics, depth, kp = checked_start(cfg, first_frame, pose, intrinsics, depth, hand_keypoints)
        if intrinsics is not None:
            self.intrinsics = intrinsics
        self.memory.reset()
        self._generator = torch.Generator().manual_seed(self.seed)
        self._reference = np.asarray(pose, dtype=np.float64)
        self.state = state_from_camera_pose(self._reference, cfg.camera_height)
        self._frame_index = 0
        self._chunk_id = 0
        k = cfg.frames_per_chunk
        with torch.no_grad():
            video = torch.from_numpy(rgb.copy()).to(self.device).permute(2, 0, 1).float().div(255)
            video = video[None, None].expand(1, k, -1, -1, -1)  # (1, Fv, 3, H, W): the start frame held
            with self._networks():
                x0 = self.model.codec.encode(video).float()  # (1, F, C, h, w)
            poses = [self._reference] * k
            sight = self._sight(poses, [None] * k, render=False, t0=t0)
            cond = self._conditioning(sight, self._encode(sight.videos))
            features, kv = self._clean_pass(x0, cond, [])
            # without given depth, the start depth head (when the model has one) reads the image beside the features
            pred_depth = self.model.predict_start_depth(features.float(), None if depth is not None else video[:, -1])
        d = torch.from_numpy(depth.astype(np.float32)).to(self.device) if depth is not None else pred_depth[0]
        self._remember(kv, poses[-1], x0)
        start_scene(cfg, self.scene, self.grasp, video[0, -1].float(), d, self._reference, self.intrinsics, kp,
                    depth_measured=depth is not None)
        # read where it is painted: the silhouette holds less of what the hand holds or stands over than the hull
        where = 'silhouette' if cfg.refiner.hand_paint == 'silhouette' else 'hull'
        self._hand_colour = None if kp is None else hands.hand_colour(rgb, kp, self.intrinsics, where)
        latency = 1e3 * (time.perf_counter() - t0)
        return Frame(rgb=rgb.copy(), depth=d.cpu().numpy().astype(np.float32), pose=self._reference.copy(),
                     index=0, latency_ms=latency)

    def step(self, action: Action = None, hand_keypoints: np.ndarray | None = None,
             stale: Callable[[], bool] | None = None) -> Frame:
        """Generate the next frame. action: a NavAction (or its 5 values), a (4, 4) target camera pose, or None
        (stand still). hand_keypoints: (21, 3) in the camera optical frame, metres, or None (no hand).
        stale: asked between the step's stages; True gives the step up (FrameAbandoned, the session unchanged)."""
        if self.config.frames_per_chunk != 1:
            raise ValueError(f'{self.config.name} makes {self.config.frames_per_chunk} frames per chunk: '
                             'use step_chunk with that many actions')
        return self.step_chunk([action], [hand_keypoints], stale)[0]

    def step_chunk(self, actions: Sequence[Action], hand_keypoints: Sequence[np.ndarray | None] | None = None,
                   stale: Callable[[], bool] | None = None) -> list[Frame]:
        """Generate the next chunk (frames_per_chunk actions and hand keypoints, one per frame). stale: as in
        step (model/stale.py)."""
        kps = self._check_chunk(actions, hand_keypoints)
        if stale is not None:
            self._stale = StaleCheck(stale, self.state, self._generator, self._guess, self.grasp)
        try:
            window = [self._enter(actions, kps)]
            while True:
                frames = self._tick(window)
                if frames:
                    return frames
        finally:
            self._stale = None

    def rollout(self, actions: Sequence[Action], hand_keypoints: Sequence[np.ndarray | None] | None = None,
                window: int | None = None) -> list[Frame]:
        """Frames for a trajectory known ahead (one action per frame, a whole number of chunks), generated
        through the rolling denoising window of `window` chunks (default: the engine's window)."""
        return list(self.rollout_frames(actions, hand_keypoints, window))

    def rollout_frames(self, actions: Sequence[Action], hand_keypoints: Sequence[np.ndarray | None] | None = None,
                       window: int | None = None) -> Iterator[Frame]:
        """rollout(), yielding each chunk's frames as the chunk leaves the window (for writers that stream).
        The arguments are checked before the first frame is made."""
        k = self.config.frames_per_chunk
        given = trajectory_keypoints(k, actions, hand_keypoints)
        chunks = [(actions[i:i + k], self._check_chunk(actions[i:i + k], given[i:i + k]))
                  for i in range(0, len(actions), k)]
        return self._roll(chunks, window or self.window)

    def _roll(self, chunks: list[tuple[Sequence[Any], list[np.ndarray | None]]], size: int) -> Iterator[Frame]:
        in_flight: list[InFlight] = []
        while chunks or in_flight:
            if chunks and len(in_flight) < size:  # one chunk enters per tick: the levels stay staggered
                in_flight.append(self._enter(*chunks.pop(0)))
            yield from self._tick(in_flight)

    # ---- one chunk through the window ------------------------------------------------------------------
    def _check_chunk(self, actions: Sequence[Any], hand_keypoints: Sequence[np.ndarray | None] | None
                     ) -> list[np.ndarray | None]:
        if self._reference is None:
            raise ValueError('reset() the engine with a first frame before step()')
        return chunk_keypoints(self.config.frames_per_chunk, actions, hand_keypoints)

    def _enter(self, actions: Sequence[Any], kps: list[np.ndarray | None]) -> InFlight:
        """1. kinematics; 2. conditioning (the geometric guess from the memory as it is now); pure noise."""
        sight = self._look(actions, kps)
        self._give_up_if_stale()
        with torch.no_grad():
            latents = self._encode(sight.videos)
            self._give_up_if_stale()
            return self._entered(sight, latents)

    def _look(self, actions: Sequence[Any], kps: list[np.ndarray | None]) -> Sight:
        """1. kinematics; 2. the scene memory rendered into the new cameras, the hand drawn."""
        t0 = time.perf_counter()
        poses = [self._advance(a) for a in actions]
        with torch.no_grad():
            return self._sight(poses, kps, render=True, t0=t0)

    def _entered(self, sight: Sight, latents: list[torch.Tensor]) -> InFlight:
        """2. the conditioning from the chunk's encoded videos (`sight.videos`, in order); the chunk starts as
        pure noise."""
        cfg = self.config
        cond = self._conditioning(sight, latents)
        C, h, w = cfg.codec.latent_channels, cfg.latent_height, cfg.latent_width
        noise = self._noise((1, cfg.chunk_frames, C, h, w))
        return InFlight(sight.poses, cond, sight.guess, sight.pose_video, noise, 0, sight.t0)

    def _tick(self, window: list[InFlight]) -> list[Frame]:
        """3-4. one denoising step of every chunk in the window, jointly, after the context of the oldest (the
        sink, the pool retrieved for its camera unless memory.attend_pool is false, the local window); the oldest
        leaves when it is clean."""
        with torch.no_grad():
            entries, step = self._denoise_inputs(window)
            context = self._context_kv(entries, chunks=len(window))
            out = self._denoise(step, context)
            self._give_up_if_stale()
            leaving = self._denoised(window, step, out, entries, context)
            return [] if leaving is None else self._leave(leaving)

    def _denoise_inputs(self, window: list[InFlight]) -> tuple[list[MemoryEntry], DenoiseStep]:
        """3. the memory entries the window attends to, and its latents, noise levels and conditioning."""
        cfg = self.config
        entries = self.memory.context(window[0].poses[-1], self.intrinsics, retrieve=cfg.memory.attend_pool)
        x, t, cond = window_inputs(window, self._times)  # (1, W * F, C, h, w), (1, W * F)
        # the last step of a chunk stepped alone may write the cache itself (sampler.cache_from_last_step)
        reuse = cfg.sampler.cache_from_last_step and len(window) == 1 and window[0].level == self.steps - 1
        return entries, DenoiseStep(x, t, cond, len(entries), reuse)

    def _denoise(self, step: DenoiseStep, context: list[LayerKV] | None) -> DiTOutput:
        """4. the DiT's pass over the windows of step's B sessions."""
        with self._networks():
            return self.model.dit(step.x, step.t, step.cond, context=context,
                                  first_frame=step.context_chunks * self.config.chunk_frames, return_kv=step.reuse)

    def _denoised(self, window: list[InFlight], step: DenoiseStep, out: DiTOutput, entries: list[MemoryEntry],
                  context: list[LayerKV] | None) -> Leaving | None:
        """4. the oldest chunk leaves the window after its last step; the others go to their next noise level."""
        x0 = chunk_x0s(step.x, out.velocity, step.t, len(window))
        # chunks enter one per tick, so their levels differ and at most one is at its last step
        left = chunks_leaving(window, [self.steps - 1] * len(window))
        renoise(window[left:], x0[left:], self._times, lambda like: self._noise(like.shape).to(like))
        if not left:
            return None
        done = window.pop(0)
        cached = None
        if step.reuse:
            assert out.kv is not None
            cached = (out.features, self._stored(out.kv))
        elif window:  # the clean pass attends to the context alone, with room for one chunk
            context = self._context_kv(entries)
        return Leaving(done, x0[0], entries, context, cached)

    def _noise(self, shape: Sequence[int]) -> torch.Tensor:
        """Standard normal noise from the session's generator (drawn on the CPU: the same on any device)."""
        return torch.randn(tuple(shape), generator=self._generator, device='cpu').to(self.device)

    def _leave(self, leaving: Leaving) -> list[Frame]:
        """5. the clean pass (or the last step's pass, `cached`): cache and depth; 6-8. decode, form the output,
        commit it to the scene and hand the chunk to memory."""
        chunk, x0, cached = leaving.chunk, leaving.x0, leaving.cached
        features, kv = cached if cached is not None else self._clean_pass(x0, chunk.cond, leaving.entries,
                                                                          leaving.context)
        video, depth_v = self._decode(x0, features, denoising=cached is not None)
        video, depth_v = video[0], depth_v[0]
        self._give_up_if_stale()
        guess = chunk.guess
        if guess is not None:
            # What the scene render covers is kept; the refiner (or, without one, the DiT) writes the rest.
            video = self._compose(guess, video, chunk.pose_video)
            self._give_up_if_stale()
        if cached is not None:
            depth_v = self.model.refine_step_depth(features, video[None], depth_v[None])[0]
        return self._emit(chunk, x0, kv, video, depth_v)

    def _decode(self, x0: torch.Tensor, features: torch.Tensor, denoising: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """6. for B clean chunks: the DiT's imagination of the views (B, Fv, 3, H, W) and the depth head's
        depth (B, Fv, H, W). denoising: the features are the last denoising pass's, not a clean pass's."""
        depth = self.model.predict_depth(features.float(), denoising)  # (B, F, H, W)
        with self._networks():
            video = self.model.codec.decode(x0).float()
        return video, depth.repeat_interleave(self.config.codec.temporal_down, dim=1)

    def _emit(self, chunk: InFlight, x0: torch.Tensor, kv: list[LayerKV], video: torch.Tensor,
              depth_v: torch.Tensor) -> list[Frame]:
        """7-8. the output's depth; what was imagined committed to the scene, the chunk handed to memory; the
        frames. video (Fv, 3, H, W) as output, depth_v (Fv, H, W) the depth head's."""
        cfg = self.config
        guess = chunk.guess
        if guess is not None:
            if self.options.carry_depth:  # the scene's depth where it is seen; the head fills the rest
                depth_v = torch.where(guess.mask, guess.depth, depth_v)
            if self.commit_imagined:  # what was imagined joins the scene: the next look sees the same
                commit = committable(cfg, guess)
                for i, pose in enumerate(chunk.poses):
                    self.scene.commit(video[i], depth_v[i], pose, self.intrinsics, mask=commit[i], trust=IMAGINED,
                                      frame_index=self._frame_index + 1 + i)
        self._remember(kv, chunk.poses[-1], x0)
        k = cfg.frames_per_chunk
        latency = 1e3 * (time.perf_counter() - chunk.t0)
        rgb = (video.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        frames = []
        for i in range(k):
            self._frame_index += 1
            pv = chunk.pose_video[i] if chunk.pose_video is not None else None
            frames.append(Frame(rgb=rgb[i], depth=depth_v[i].cpu().numpy().astype(np.float32),
                                pose=chunk.poses[i].copy(), index=self._frame_index, latency_ms=latency / k,
                                pose_video=pv))
        return frames

    # ---- internals -------------------------------------------------------------------------------------
    def _give_up_if_stale(self) -> None:
        """Between a live step's stages, before it commits: undo the step and raise FrameAbandoned when the
        caller's `stale` says its command is stale (unless the step's hand grasped or released)."""
        check = self._stale
        if check is None or not check.fired():
            return
        check.undo()
        self.state, self._guess = check.state, check.guess
        raise FrameAbandoned('a newer command made the frame in flight stale')

    def _networks(self) -> AbstractContextManager[Any]:
        """Autocast to the engine's dtype around the DiT and the codec. The scene memory's geometry, the heads
        and the refiner stay in float32: autocast over the whole step cost 0.4 to 1.2 dB on seen pixels, over
        these two networks within 0.04 dB on every eval script (docs/profile.md)."""
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _advance(self, action: Action) -> np.ndarray:
        """Integrate one frame of action (or jump to a given pose); return the new camera pose."""
        action = checked_action(action)
        if isinstance(action, np.ndarray):
            self.state = state_from_camera_pose(action, self.config.camera_height)
            return action
        self.state = integrate(self.state, action, 1.0 / self.config.fps)
        return camera_pose(self.state)

    def _no_hand_latent(self) -> torch.Tensor:
        """The codec latent (1, F, C, h, w) of an empty pose video (made once)."""
        if self._empty_pose_latent is None:
            cfg = self.config
            empty = torch.zeros(cfg.frames_per_chunk, 3, cfg.height, cfg.width, device=self.device)
            self._empty_pose_latent = self._encode([empty])[0]
        return self._empty_pose_latent

    def _geometry(self, poses: list[np.ndarray], kps: list[np.ndarray | None]) -> GeometricGuess | None:
        """The scene memory rendered into the chunk's cameras (guess.py); None before there is anything to
        render, or without the guess (the config's or the options' ablation)."""
        if not len(self.scene) or not self.config.conditioning.geometry or not self.options.geometry:
            return None
        return render_guess(self.config, self.scene, self.grasp, poses, kps, self.intrinsics, self._hand_colour,
                            self.device)

    def _compose(self, guess: GeometricGuess, imagined: torch.Tensor, pose_video: np.ndarray | None) -> torch.Tensor:
        """7. the output frames (Fv, 3, H, W) of a chunk (or of a batch's frames, joined) (guess.py)."""
        return compose(self.config, guess, imagined, pose_video, self.model.refiner, self.model.hand_refiner,
                       self.trace, self.device)

    def _sight(self, poses: list[np.ndarray], kps: list[np.ndarray | None], render: bool, t0: float) -> Sight:
        hand, drawn = None, None
        if self.config.conditioning.hands:
            hand, drawn = hand_pose_video(self.config, kps, self.intrinsics, self.device)
        return Sight(poses, self._geometry(poses, kps) if render else None, hand, drawn, t0)

    def _encode(self, videos: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Codec latents (1, F_i, C, h, w) of videos (Fv_i, 3, H, W), in one call (frames encode independently:
        temporal_down consecutive frames at most fold together, and every Fv_i is a whole number of those)."""
        if not videos:
            return []
        with self._networks():
            latent = self.model.codec.encode(torch.cat(list(videos))[None]).float()  # (1, sum F_i, C, h, w)
        k = self.config.codec.temporal_down
        return [z[None] for z in latent[0].split([len(v) // k for v in videos])]

    def _conditioning(self, sight: Sight, latents: list[torch.Tensor]) -> Conditioning:
        """The DiT's conditioning of a chunk: its rays, and the latents of `sight.videos` (in that order)."""
        cfg = self.config
        self._guess = sight.guess
        encoded = iter(latents)
        pose = None
        if cfg.conditioning.hands:
            pose = next(encoded) if sight.hand is not None else self._no_hand_latent()
        if sight.guess is not None:
            geo, cov = next(encoded), sight.guess.coverage
        else:  # nothing to render yet (the first chunk): an empty guess with zero coverage, as in training
            geo = torch.zeros(1, cfg.chunk_frames, cfg.codec.latent_channels, cfg.latent_height, cfg.latent_width,
                              device=self.device)
            cov = torch.zeros_like(geo[:, :, :1])
        assert self._reference is not None  # reset() made it
        plucker = chunk_plucker(cfg, self._reference, sight.poses, self.intrinsics, self.device)
        return Conditioning(plucker=plucker, pose=pose, geometry=geo, coverage=cov)

    def _context_kv(self, entries: list[MemoryEntry], chunks: int = 1) -> list[LayerKV] | None:
        """Concatenate the context chunks' cached keys and give them consecutive positions, with free room for
        the keys of the `chunks` chunks that attend to them (context.py)."""
        return context_kv(self.model.dit, [entries], chunks, self.device)

    def _clean_pass(self, x0: torch.Tensor, cond: Conditioning, entries: list[MemoryEntry],
                    context: list[LayerKV] | None = None) -> tuple[torch.Tensor, list[LayerKV]]:
        t = torch.zeros(x0.shape[:2], device=self.device)
        first = len(entries) * self.config.chunk_frames
        with self._networks():
            out = self.model.dit(x0, t, cond, context=context, first_frame=first, return_kv=True)
        assert out.kv is not None
        return out.features, self._stored(out.kv)

    def _stored(self, kv: list[LayerKV]) -> list[LayerKV]:
        """A pass's keys and values as the cache holds them (the engine's dtype)."""
        return [LayerKV(layer.k.to(self.dtype), layer.v.to(self.dtype)) for layer in kv]

    def _remember(self, kv: list[LayerKV], pose: np.ndarray, x0: torch.Tensor) -> None:
        self.memory.append(memory_entry(self._chunk_id, pose, kv, x0))
        self._chunk_id += 1
