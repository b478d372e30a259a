"""What flows through the engine: the frames it returns, a chunk's state between the steps of the algorithm
(seen, in flight, denoised, leaving) and what the KV memory holds of it. Data only; engine.py does the steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from worldscape_ros.model.dit import Conditioning, LayerKV
    from worldscape_ros.model.memory import MemoryEntry


@dataclass
class Frame:
    """One frame of a session: the start (index 0, as given) or a generated one."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32, metres along the optical axis
    pose: np.ndarray  # (4, 4) float64 camera-to-world, OpenCV axes
    index: int  # frames since reset; the reset frame is 0
    latency_ms: float
    pose_video: np.ndarray | None = None  # (H, W, 3) uint8, the hand conditioning drawn


@dataclass
class GeometricGuess:
    """The scene memory rendered into the target cameras, the hand's region left out (its codec latent, which
    conditions the DiT, is made with the chunk's other encodes: `Sight`)."""

    coverage: torch.Tensor  # (1, F, 1, h, w) covered fraction of each latent pixel
    depth: torch.Tensor  # (Fv, H, W) rendered metric depth
    mask: torch.Tensor  # (Fv, H, W) bool, pixels the render covers
    rgb: torch.Tensor  # (Fv, 3, H, W) the render, 0 where uncovered
    trust: torch.Tensor  # (Fv, H, W) scene_memory.OBSERVED / IMAGINED, 0 where uncovered
    dynamic: torch.Tensor  # (Fv, H, W) bool, the hand's region: never static scene
    # (Fv, H, W) bool: what the hand changes: `dynamic`, and the holes a held object left (refiner.hand_refiner)
    hand_area: torch.Tensor
    hand_colour: torch.Tensor  # (Fv, 3, H, W) the start hand's colour over the hand (refiner.hand_paint); 0: unknown
    # (Fv, 4, H, W) the render's RGB and trust under the hand's region, 0 elsewhere (refiner.show_under_hand)
    under_hand: torch.Tensor | None = None
    # (Fv, 3) the mean colour of the scene memory's observed points, NaN where none is held (refiner.anchor_prior,
    # refiner.fill_fade_px)
    scene_colour: torch.Tensor | None = None


@dataclass
class ChunkPayload:
    """What the KV memory holds for one chunk: its keys and values (its pixels live in the scene memory)."""

    kv: list[LayerKV]  # per block, (1, H, L, d) un-rotated

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for layer in self.kv for t in (layer.k, layer.v))


@dataclass
class InFlight:
    """A chunk in the denoising window: its cameras, conditioning and latent at noise level times[level]."""

    poses: list[np.ndarray]
    cond: Conditioning
    guess: GeometricGuess | None
    pose_video: np.ndarray | None
    x: torch.Tensor  # (1, F, C, h, w)
    level: int
    t0: float  # perf_counter at entry (latency)


@dataclass
class Sight:
    """A chunk about to enter, before any network runs: its cameras, the scene memory rendered into them and
    the hand drawn. The codec encodes `videos` (one call for any number of sessions) for the conditioning."""

    poses: list[np.ndarray]
    guess: GeometricGuess | None
    hand: torch.Tensor | None  # (Fv, 3, H, W) the pose video; None: no hand in the chunk
    pose_video: np.ndarray | None  # (Fv, H, W, 3) uint8, the hand drawn
    t0: float

    @property
    def videos(self) -> list[torch.Tensor]:
        """What the codec encodes for this chunk, in order: the pose video, the render."""
        return [v for v in (self.hand, None if self.guess is None else self.guess.rgb) if v is not None]


@dataclass
class DenoiseStep:
    """One denoising pass of B sessions' windows whose contexts hold the same number of chunks (which places
    the new chunks' positions after them)."""

    x: torch.Tensor  # (B, W * F, C, h, w) at noise levels t
    t: torch.Tensor  # (B, W * F)
    cond: Conditioning
    context_chunks: int
    reuse: bool  # the pass keeps its keys and values for the cache (sampler.cache_from_last_step)


@dataclass
class Leaving:
    """The oldest chunk of a window, clean: what the clean pass, decode, output and commit take."""

    chunk: InFlight
    x0: torch.Tensor  # (1, F, C, h, w)
    entries: list[MemoryEntry]
    context: list[LayerKV] | None
    cached: tuple[torch.Tensor, list[LayerKV]] | None  # the last step's features and keys (reuse)
