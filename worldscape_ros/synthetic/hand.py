"""A procedural capsule hand whose 21 joints are exactly MediaPipe's hand landmarks.

MediaPipe's landmarks: 0 wrist; 1-4 thumb CMC, MCP, IP, TIP; 5-8 index MCP, PIP, DIP, TIP; 9-12 middle;
13-16 ring; 17-20 pinky. The hand is kinematic: the wrist sphere, every bone capsule and the palm is a
MuJoCo mocap body whose pose is set per frame, so the rendered hand is exactly the skeleton we report
(each bone a capsule between two landmarks, whose round ends are the joints).

Hand frame (right hand): x from the wrist towards the fingers, y towards the thumb, z out of the back of the
hand. A left hand is the mirror image in y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

NUM_LANDMARKS = 21
# MediaPipe's HAND_CONNECTIONS: the bones drawn between landmarks.
HAND_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16),
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)
JOINT_RADIUS = 0.0105  # the capsules' radius: their round caps are the joints
BONE_RADIUS = JOINT_RADIUS
HAND_GEOM_GROUP = 2  # MuJoCo geom group of the hand (drawn by default; ray casts can leave it out)
# Finger MCP positions in the hand frame (m), phalanx lengths (proximal, middle, distal) and splay (rad).
_FINGERS = (
    ((0.092, 0.026, 0.0), (0.042, 0.025, 0.021), math.radians(8)),  # index
    ((0.095, 0.004, 0.0), (0.046, 0.028, 0.022), 0.0),  # middle
    ((0.089, -0.016, 0.0), (0.043, 0.026, 0.022), math.radians(-8)),  # ring
    ((0.079, -0.034, 0.0), (0.034, 0.020, 0.019), math.radians(-16)),  # pinky
)
_FLEX = np.radians([75.0, 95.0, 65.0])  # MCP, PIP, DIP flexion at full curl
_THUMB_CMC = np.array([0.022, 0.022, -0.010])
_THUMB_LENGTHS = (0.036, 0.032, 0.027)  # CMC-MCP, MCP-IP, IP-TIP
_THUMB_OPEN = np.array([0.55, 0.80, -0.20])
_THUMB_CLOSED = np.array([0.55, -0.55, -0.62])
# Where a grasped object's centre sits, in the hand frame, when the fingers close around it.
GRASP_POINT = np.array([0.085, 0.0, -0.045])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def hand_landmarks_local(curl: float) -> np.ndarray:
    """The 21 landmarks (21, 3) in the right-hand frame for a finger curl in [0, 1] (0 open, 1 fist)."""
    c = float(np.clip(curl, 0.0, 1.0))
    pts = np.zeros((NUM_LANDMARKS, 3))
    # Thumb: CMC fixed on the palm, the chain's direction swings across the palm as the hand closes.
    thumb_dir = _unit((1 - c) * _unit(_THUMB_OPEN) + c * _unit(_THUMB_CLOSED))
    bend = _unit(np.cross(thumb_dir, [0.0, 0.0, 1.0]) + 1e-9)
    pts[1] = _THUMB_CMC
    d = thumb_dir
    for i, length in enumerate(_THUMB_LENGTHS):
        pts[2 + i] = pts[1 + i] + length * d
        d = _unit(d + math.sin(0.5 * c) * 0.8 * np.cross(bend, d))  # the thumb's joints bend too
    for f, (mcp, lengths, splay) in enumerate(_FINGERS):
        base = 5 + 4 * f
        pts[base] = mcp
        angle = 0.0
        for j, length in enumerate(lengths):
            angle += c * _FLEX[j]
            # flex about the hand's y axis towards the palm (-z); splay about z, fading as the finger curls
            s = splay * (1 - c)
            direction = np.array([math.cos(angle) * math.cos(s), math.cos(angle) * math.sin(s), -math.sin(angle)])
            pts[base + j + 1] = pts[base + j] + length * direction
    return pts


def bone_lengths() -> np.ndarray:
    """Length of each bone in HAND_CONNECTIONS (constant over curl, since the chains are rigid)."""
    p = hand_landmarks_local(0.0)
    return np.array([np.linalg.norm(p[b] - p[a]) for a, b in HAND_CONNECTIONS])


@dataclass(frozen=True)
class HandPose:
    """Wrist position (world, m), hand-frame rotation (world <- hand, 3x3) and finger curl in [0, 1]."""

    wrist: np.ndarray
    rotation: np.ndarray
    curl: float
    handedness: str = 'right'

    def mirror(self) -> np.ndarray:
        return np.array([1.0, -1.0 if self.handedness == 'left' else 1.0, 1.0])

    def landmarks_world(self) -> np.ndarray:
        """The 21 landmarks (21, 3) in world coordinates."""
        local = hand_landmarks_local(self.curl) * self.mirror()
        return local @ self.rotation.T + self.wrist

    def grasp_point_world(self) -> np.ndarray:
        return self.rotation @ (GRASP_POINT * self.mirror()) + self.wrist


def hand_mjcf(prefix: str = 'hand_', rgba: str = '0.86 0.66 0.52 1') -> str:
    """MJCF bodies (for <worldbody>) of the kinematic hand: wrist, bones (capsules) and palm as mocap bodies."""
    common = f'rgba="{rgba}" contype="0" conaffinity="0" group="{HAND_GEOM_GROUP}"'
    lines = [f'<body name="{prefix}palm" mocap="true"><geom name="{prefix}palm_geom" type="box" '
             f'pos="0.05 0.0 -0.004" size="0.045 0.036 0.012" {common}/></body>']
    # Only the wrist gets a sphere: the capsules' round caps already cover the other joints, and every geom
    # costs render time (the hand is most of the table scene's triangles).
    lines.append(f'<body name="{prefix}wrist" mocap="true"><geom name="{prefix}wrist_geom" type="sphere" '
                 f'size="{1.6 * JOINT_RADIUS:.4f}" {common}/></body>')
    for k, length in enumerate(bone_lengths()):
        lines.append(f'<body name="{prefix}bone{k}" mocap="true"><geom name="{prefix}bone{k}_geom" type="capsule" '
                     f'size="{BONE_RADIUS:.4f} {0.5 * length:.5f}" {common}/></body>')
    return '\n'.join(lines)


def _quat_z_to(direction: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) rotating +z onto `direction`."""
    d = _unit(direction)
    z = np.array([0.0, 0.0, 1.0])
    w = 1.0 + float(d @ z)
    if w < 1e-9:  # opposite: half-turn about x
        return np.array([0.0, 1.0, 0.0, 0.0])
    q = np.concatenate([[w], np.cross(z, d)])
    return q / np.linalg.norm(q)


def _quat_from_matrix(R: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).reshape(9))
    return q


class HandRig:
    """Poses the hand's mocap bodies in a MuJoCo model built with `hand_mjcf`."""

    def __init__(self, model: mujoco.MjModel, prefix: str = 'hand_') -> None:
        def mocap(name: str) -> int:
            body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, prefix + name)
            if body < 0 or model.body_mocapid[body] < 0:
                raise ValueError(f'model has no mocap body {prefix + name!r}: build it with hand_mjcf()')
            return int(model.body_mocapid[body])

        self.palm = mocap('palm')
        self.wrist = mocap('wrist')
        self.bones = np.array([mocap(f'bone{k}') for k in range(len(HAND_CONNECTIONS))])
        self.geom_ids = np.array([g for g in range(model.ngeom)
                                  if (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or '').startswith(prefix)])

    def apply(self, data: mujoco.MjData, pose: HandPose) -> np.ndarray:
        """Set the mocap poses for `pose`; returns the 21 world landmarks (21, 3)."""
        pts = pose.landmarks_world()
        data.mocap_pos[self.palm] = pose.wrist
        data.mocap_quat[self.palm] = _quat_from_matrix(pose.rotation)  # the palm box is symmetric in y
        data.mocap_pos[self.wrist] = pts[0]
        for k, (a, b) in enumerate(HAND_CONNECTIONS):
            data.mocap_pos[self.bones[k]] = 0.5 * (pts[a] + pts[b])
            data.mocap_quat[self.bones[k]] = _quat_z_to(pts[b] - pts[a])
        return pts
