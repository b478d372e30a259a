"""Hand plans: reach / grasp / carry / place keypoint trajectories in the camera optical frame (metres).

Plain numpy (no rclpy): the scripted_hands node (ros/scripted_hands.py) publishes them for manipulation without a
hand tracker, and offline rollouts (worldscape rollout, tours with `hands:`) use the very same keypoints.

The hand is the procedural hand of synthetic.hand (its 21 joints are MediaPipe's landmarks). The scripts of
synthetic.hand_scripts (reach, grasp, lift, carry, place, pick_and_place) are planned on the table scene of a
seed, towards that scene's objects, and seen from its egocentric camera: with the simulator started at
`table:SEED` (start_scene 'table', start_seed SEED) and the same `scene_seed`, the hand reaches for the objects
the first frame shows. Without synthetic.hand_scripts (and for 'idle') a fixed path in front of the camera is
used: a wrist path, the hand's orientation and a finger curl (0 open, 1 closed) per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldscape_ros.synthetic.hand import hand_landmarks_local

# Waypoints in the camera optical frame (x right, y down, z forward), metres: an egocentric view of a table.
REST = np.array([0.14, 0.12, 0.36])  # low right, near the camera: where the hand comes from
OBJECT = np.array([0.0, 0.14, 0.55])  # the object to pick, on the table ahead
LIFTED = OBJECT + np.array([0.0, -0.10, 0.0])
TARGET = np.array([-0.18, 0.14, 0.55])  # where it is placed
TARGET_ABOVE = TARGET + np.array([0.0, -0.10, 0.0])

# Phases of each script: (duration share, wrist from, wrist to, curl from, curl to).
Phase = tuple[float, np.ndarray, np.ndarray, float, float]
SCRIPTS: dict[str, list[Phase]] = {
    'reach': [(1.0, REST, OBJECT, 0.0, 0.0)],
    'grasp': [(0.3, OBJECT, OBJECT, 0.0, 0.0), (0.7, OBJECT, OBJECT, 0.0, 1.0)],
    'lift': [(1.0, OBJECT, LIFTED, 1.0, 1.0)],
    'carry': [(0.3, OBJECT, LIFTED, 1.0, 1.0), (0.7, LIFTED, TARGET_ABOVE, 1.0, 1.0)],
    'place': [(0.6, TARGET_ABOVE, TARGET, 1.0, 1.0), (0.4, TARGET, TARGET, 1.0, 0.0)],
    'pick_and_place': [(0.25, REST, OBJECT, 0.0, 0.0), (0.12, OBJECT, OBJECT, 0.0, 1.0),
                       (0.08, OBJECT, LIFTED, 1.0, 1.0), (0.2, LIFTED, TARGET_ABOVE, 1.0, 1.0),
                       (0.08, TARGET_ABOVE, TARGET, 1.0, 1.0), (0.12, TARGET, TARGET, 1.0, 0.0),
                       (0.15, TARGET, REST, 0.0, 0.0)],
    'idle': [(1.0, REST, REST, 0.0, 0.0)],
}
SCRIPT_NAMES = ('reach', 'grasp', 'lift', 'carry', 'place', 'pick_and_place', 'idle')


def _smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def hand_rotation(pitch_down: float = math.radians(25)) -> np.ndarray:
    """camera <- hand rotation: fingers point forward and a little down, back of the hand up, palm down."""
    x_h = np.array([0.0, math.sin(pitch_down), math.cos(pitch_down)])  # fingers
    z_h = np.array([0.0, -math.cos(pitch_down), math.sin(pitch_down)])  # back of the hand, up (-y optical)
    y_h = np.cross(z_h, x_h)  # towards the thumb
    return np.stack([x_h, y_h, z_h], axis=1)


@dataclass(frozen=True)
class HandState:
    wrist: np.ndarray  # (3,) camera frame
    curl: float


def hand_states(script: str, frames: int) -> list[HandState]:
    """Wrist and curl per frame for a named script; phases are eased so the hand starts and stops smoothly."""
    if script not in SCRIPTS:
        raise ValueError(f'unknown hand script {script!r}; expected one of {", ".join(SCRIPT_NAMES)}')
    if frames < 1:
        raise ValueError(f'frames must be >= 1, got {frames}')
    phases = SCRIPTS[script]
    total = sum(p[0] for p in phases)
    bounds = np.cumsum([p[0] / total for p in phases])  # phase ends in [0, 1]
    out = []
    for k in range(frames):
        u = (k + 1) / frames  # frame k + 1 of the rollout; the last frame ends the script
        i = min(int(np.searchsorted(bounds, u - 1e-12)), len(phases) - 1)
        start = bounds[i - 1] if i > 0 else 0.0
        s = _smoothstep((u - start) / max(bounds[i] - start, 1e-9))
        _, w0, w1, c0, c1 = phases[i]
        out.append(HandState(wrist=(1 - s) * w0 + s * w1, curl=(1 - s) * c0 + s * c1))
    return out


def hand_keypoints(state: HandState, handedness: str = 'right') -> np.ndarray:
    """The 21 landmarks (21, 3) in the camera optical frame for one hand state."""
    if handedness not in ('left', 'right'):
        raise ValueError(f"handedness must be 'left' or 'right', got {handedness!r}")
    mirror = np.array([1.0, -1.0 if handedness == 'left' else 1.0, 1.0])
    wrist = state.wrist * np.array([-1.0 if handedness == 'left' else 1.0, 1.0, 1.0])  # a left hand on the left
    return (hand_landmarks_local(state.curl) * mirror) @ hand_rotation().T + wrist


def table_hand_plan(script: str, frames: int, scene_seed: int) -> tuple[np.ndarray, str] | None:
    """synthetic.hand_scripts' plan on the table scene of `scene_seed`, in its egocentric camera's optical frame;
    None when that module (or the script) is not there."""
    try:
        from worldscape_ros.synthetic.hand_scripts import HAND_SCRIPTS, egocentric_camera, hand_script
        from worldscape_ros.synthetic.scenes import make_scene
    except ImportError:
        return None
    if script not in HAND_SCRIPTS:
        return None
    scene = make_scene('table', scene_seed)
    plan = hand_script(script, scene, frames, seed=scene_seed)
    c2w = egocentric_camera(scene)
    world = np.stack([f.hand.landmarks_world() for f in plan])  # (T, 21, 3)
    return (world - c2w[:3, 3]) @ c2w[:3, :3], plan[0].hand.handedness  # world -> camera: R^T (p - t)


def hand_plan(script: str, frames: int, scene_seed: int = 0, handedness: str | None = None) -> tuple[np.ndarray, str]:
    """(frames, 21, 3) camera-frame keypoints of a named script and the hand's handedness.

    `handedness` None keeps the script's own hand; a different one mirrors the plan left-right in the image.
    """
    if handedness not in (None, 'left', 'right'):
        raise ValueError(f"handedness must be 'left' or 'right', got {handedness!r}")
    if frames < 1:
        raise ValueError(f'frames must be >= 1, got {frames}')
    planned = table_hand_plan(script, frames, scene_seed)
    if planned is None:
        hd = handedness or 'right'
        return np.stack([hand_keypoints(s, hd) for s in hand_states(script, frames)]), hd
    points, hd = planned
    if handedness is not None and handedness != hd:
        points = points * np.array([-1.0, 1.0, 1.0])  # the mirror image is the other hand
        hd = handedness
    return points, hd


def hand_trajectory(script: str, frames: int, fps: float = 10.0, handedness: str | None = None,
                    scene_seed: int = 0) -> np.ndarray:
    """(frames, 21, 3) camera-frame keypoints of a named script (the script stretches over the frames given;
    fps is checked for symmetry with the navigation scripts)."""
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f'fps must be positive, got {fps}')
    return hand_plan(script, frames, scene_seed, handedness)[0]
