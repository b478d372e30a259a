"""What the engine traces share: one shard per episode, written once (a rerun resumes), and each episode replayed
through the engine as live: reset on its true start frame, depth and hand, stepped through its true cameras and
hands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from worldscape_ros.data.episode import EPISODE_SUFFIX, Episode, read_episode
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.frames import Frame


def pending_shards(episodes: list[Path], out: Path, suffix: str) -> Iterator[tuple[Episode, Path]]:
    """Each episode (read) whose shard `out/<name><suffix>` is not written yet, with that shard's path."""
    out.mkdir(parents=True, exist_ok=True)
    for path in episodes:
        shard = out / (path.name.removesuffix(EPISODE_SUFFIX) + suffix)
        if not shard.exists():
            yield read_episode(path), shard


def replay(engine: WorldEngine, ep: Episode, frames: int) -> list[Frame]:
    """Reset on the episode's true start and step through its first `frames` cameras and hands; return the frames
    (the start's, then each step's: at most the episode's)."""
    T = min(frames, ep.num_frames)
    kp = ep.keypoints3d
    out = [engine.reset(ep.rgb[0], ep.poses[0], ep.intrinsics, ep.depth[0],
                        hand_keypoints=None if kp is None else kp[0])]
    for t in range(1, T):
        out.append(engine.step(ep.poses[t], None if kp is None else kp[t]))
    return out
