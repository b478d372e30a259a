"""Hand manipulation scripts over the table: reach, grasp, lift, carry, place, and pick_and_place.

A script is a chain of keyframes (grasp point, finger curl, whether the object rides in the hand); frames
are spread over the chain by segment weights and eased with smoothstep. The grasp point is where the object's
centre sits in a closed hand, so a held object moves exactly with the hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldscape_ros.model.kinematics import BaseState, camera_pose, rot_y, rot_z
from worldscape_ros.synthetic.builder import SceneSpec
from worldscape_ros.synthetic.hand import HandPose

HAND_SCRIPTS = ('reach', 'grasp', 'lift', 'carry', 'place', 'pick_and_place')
OPEN, CLOSED = 0.12, 0.62  # finger curl
# Keyframe indices of pick_and_place that each script spans.
_SPANS = {'reach': (0, 2), 'grasp': (1, 3), 'lift': (3, 4), 'carry': (4, 5), 'place': (5, 8),
          'pick_and_place': (0, 8)}
_WEIGHTS = (1.2, 0.8, 0.6, 0.8, 1.2, 0.8, 0.6, 0.8)  # relative duration of each segment


@dataclass(frozen=True)
class HandFrame:
    """The hand and every object's centre (world) in one frame."""

    hand: HandPose
    objects: dict[str, np.ndarray]


def egocentric_camera(scene: SceneSpec) -> np.ndarray:
    """The static camera above and behind the table, looking down at it (OpenCV camera-to-world)."""
    return camera_pose(BaseState(x=-0.3, y=0.0, z=0.0, yaw=0.0, pitch=math.radians(48),
                                 height=scene.table_top + 0.38))


def _smoothstep(s: float) -> float:
    return s * s * (3 - 2 * s)


def hand_script(name: str, scene: SceneSpec, frames: int, seed: int = 0) -> list[HandFrame]:
    """Per-frame hand poses and object positions for a named script on a 'table' scene."""
    if name not in HAND_SCRIPTS:
        raise ValueError(f'unknown hand script {name!r}; expected one of {", ".join(HAND_SCRIPTS)}')
    if scene.kind != 'table' or not scene.objects:
        raise ValueError(f'hand scripts need a table scene with objects, got a {scene.kind!r} scene')
    if frames <= 0:
        raise ValueError(f'frames must be positive, got {frames}')
    rng = np.random.default_rng([seed, HAND_SCRIPTS.index(name)])
    target = scene.objects[int(rng.integers(len(scene.objects)))]
    others = [o.position[:2] for o in scene.objects if o.name != target.name]
    for _ in range(100):  # a free spot on the table to put it down
        spot = np.array([rng.uniform(-0.12, 0.15), rng.uniform(-0.22, 0.22)])
        if np.linalg.norm(spot - target.position[:2]) > 0.15 and all(np.linalg.norm(spot - o) > 0.1 for o in others):
            break
    place = np.array([spot[0], spot[1], target.position[2]])
    handedness = 'left' if rng.random() < 0.25 else 'right'
    side = 1.0 if handedness == 'right' else -1.0
    # The hand comes from its own side with the fingers turned inwards, so the camera behind it sees the
    # fingers across the view rather than end-on behind the knuckles.
    yaw = side * float(rng.uniform(0.35, 0.8))
    rotation = rot_z(yaw) @ rot_y(math.radians(float(rng.uniform(5, 15))))
    up = np.array([0.0, 0.0, 1.0])
    start = np.array([-0.08, -0.1 * side, scene.table_top + 0.14])
    obj = target.position
    # keyframes: grasp point, curl, object held during the segment that ends here
    keys = [(start, OPEN + 0.05, False), (obj + 0.12 * up, OPEN, False), (obj, OPEN, False), (obj, CLOSED, False),
            (obj + 0.1 * up, CLOSED, True), (place + 0.1 * up, CLOSED, True), (place, CLOSED, True),
            (place, OPEN, False), (place + 0.1 * up, OPEN + 0.05, False)]
    first, last = _SPANS[name]
    weights = np.array(_WEIGHTS[first:last])
    bounds = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    grasp_offset = HandPose(np.zeros(3), rotation, OPEN, handedness).grasp_point_world()  # wrist -> grasp point
    object_pos = {o.name: o.position.copy() for o in scene.objects}
    if first >= 4:  # scripts that start with the object already in the hand
        object_pos[target.name] = keys[first][0].copy()
    out = []
    for t in range(frames):
        s = t / (frames - 1) if frames > 1 else 1.0
        seg = min(int(np.searchsorted(bounds, s, side='right')) - 1, len(weights) - 1)
        u = _smoothstep((s - bounds[seg]) / (bounds[seg + 1] - bounds[seg]))
        (g0, c0, _), (g1, c1, held) = keys[first + seg], keys[first + seg + 1]
        grasp = (1 - u) * g0 + u * g1
        if held:
            object_pos[target.name] = grasp.copy()
        pose = HandPose(wrist=grasp - grasp_offset, rotation=rotation, curl=(1 - u) * c0 + u * c1,
                        handedness=handedness)
        out.append(HandFrame(pose, {k: v.copy() for k, v in object_pos.items()}))
    return out
