"""What the fronts of the world model call on an engine: the ROS simulator node, the gym envs, offline rollouts
and the evaluation. They depend on these members, not on WorldEngine's internals, and mypy checks that
WorldEngine has them. Part of the torch-only core: no ROS import.

Layers, each adding to the one before:
  StreamingEngine  reset, step one chunk at a time, and the config (size, rate, frames_per_chunk)
  RollingEngine    rollout of a trajectory known ahead through a rolling denoising window (eval, rollouts)
  LiveEngine       what a live front reads besides: the base state it drives, the camera, memory use and
                   the weights' hash (a start from a synthetic scene is synthetic/starts.py, given any engine)
  OfflineEngine    both of the last two: what an offline rollout drives and records
  ViewedEngine     a live engine whose memories the web viewer draws: the KV memory's chunks, the scene's points
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

import numpy as np

from worldscape_ros.model.kinematics import BaseState, NavAction

if TYPE_CHECKING:
    from worldscape_ros.model.frames import Frame
    from worldscape_ros.model.scene_memory import SceneMemory

# A velocity command (or its 5 values), a (4, 4) target camera pose, or None: stand still.
Action: TypeAlias = NavAction | np.ndarray | Sequence[float] | None


class EngineConfig(Protocol):
    """The stream an engine makes: its name, frame size and rate, camera, and frames per step."""

    @property
    def name(self) -> str: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def fps(self) -> float: ...

    @property
    def vfov_deg(self) -> float: ...

    @property
    def camera_height(self) -> float: ...

    @property
    def frames_per_chunk(self) -> int:
        """Frames one step makes; a command holds over them."""
        ...


@runtime_checkable
class StreamingEngine(Protocol):
    """An engine stepped one chunk at a time from a start frame."""

    @property
    def config(self) -> EngineConfig: ...

    def reset(self, first_frame: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray | None = None,
              depth: np.ndarray | None = None, hand_keypoints: np.ndarray | None = None) -> Frame:
        """Start a session from an RGB frame (H, W, 3) uint8 seen from `pose` (camera-to-world, OpenCV axes)."""
        ...

    def step(self, action: Action = None, hand_keypoints: np.ndarray | None = None,
             stale: Callable[[], bool] | None = None) -> Frame:
        """The next frame, for an engine of one frame per chunk. stale: asked between the step's stages; True
        gives the step up before it commits (FrameAbandoned, model/stale.py)."""
        ...

    def step_chunk(self, actions: Sequence[Action], hand_keypoints: Sequence[np.ndarray | None] | None = None,
                   stale: Callable[[], bool] | None = None) -> list[Frame]:
        """The next chunk: config.frames_per_chunk actions and hand keypoints in, as many frames out."""
        ...


@runtime_checkable
class RollingEngine(StreamingEngine, Protocol):
    """An engine that denoises a trajectory known ahead through a rolling window of `window` chunks."""

    @property
    def window(self) -> int: ...

    def rollout(self, actions: Sequence[Action], hand_keypoints: Sequence[np.ndarray | None] | None = None,
                window: int | None = None) -> list[Frame]: ...

    def rollout_frames(self, actions: Sequence[Action], hand_keypoints: Sequence[np.ndarray | None] | None = None,
                       window: int | None = None) -> Iterator[Frame]: ...


class PooledMemory(Protocol):
    @property
    def pool_nbytes(self) -> int:
        """Bytes in the global memory pool (what a memory budget bounds)."""
        ...


class LiveEngine(StreamingEngine, Protocol):
    """What a live front (the ROS node, the gym envs) reads and sets besides stepping."""

    state: BaseState  # the base the commands move; a front restores it to undo a failed step

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) of the session's camera."""
        ...

    @property
    def cache_bytes(self) -> int:
        """Bytes of the KV memory: sink, window and pool."""
        ...

    @property
    def memory(self) -> PooledMemory: ...

    @property
    def sha256(self) -> str:
        """The weights' hash ('random-init' for a random model)."""
        ...


class OfflineEngine(LiveEngine, RollingEngine, Protocol):
    """An engine an offline rollout starts like the live node and drives through a known script."""


class HeldChunk(Protocol):
    @property
    def pose(self) -> np.ndarray:
        """(4, 4) camera-to-world of the chunk's last frame."""
        ...


class LevelledMemory(PooledMemory, Protocol):
    """The KV memory's three levels, as the viewer draws them."""

    @property
    def sink(self) -> Sequence[HeldChunk]: ...

    @property
    def window(self) -> Sequence[HeldChunk]: ...

    @property
    def pool(self) -> Sequence[HeldChunk]: ...

    @property
    def nbytes(self) -> int:
        """Bytes of every held chunk: sink, window and pool."""
        ...


class ViewedEngine(LiveEngine, Protocol):
    """A live engine whose memories the web viewer draws beside its frames."""

    @property
    def memory(self) -> LevelledMemory: ...

    @property
    def scene(self) -> SceneMemory:
        """The scene memory: every point seen or imagined."""
        ...


def frames_per_step(engine: StreamingEngine | object) -> int:
    """Frames one step of `engine` makes: its chunk for a streaming engine, one for any other system (the
    evaluation's baselines step frame by frame)."""
    return engine.config.frames_per_chunk if isinstance(engine, StreamingEngine) else 1
