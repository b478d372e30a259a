"""Render whole episodes with ground truth: navigation in rooms and yards, hand manipulation over a table.

Both are deterministic in their arguments (scene seed, script, frames, size, fps). Frame 0 is the start view
with a zero action; action row t is the NavAction that led from frame t - 1 to frame t.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from worldscape_ros import __version__
from worldscape_ros.data.episode import FORMAT_VERSION, Episode
from worldscape_ros.synthetic.builder import SceneSpec
from worldscape_ros.synthetic.hand import HAND_GEOM_GROUP, HandRig
from worldscape_ros.synthetic.hand_scripts import HAND_SCRIPTS, egocentric_camera, hand_script
from worldscape_ros.synthetic.kinds import NAV_KINDS
from worldscape_ros.synthetic.render import SceneRenderer
from worldscape_ros.synthetic.scenes import make_scene
from worldscape_ros.synthetic.trajectories import (
    FAMILIES,
    SCRIPTS,
    family_actions,
    is_collision_free,
    make_safe,
    poses_from_actions,
    script_actions,
    start_state,
)

VISIBILITY_TOLERANCE = 0.015  # m: a landmark is occluded when a scene surface is this much nearer


def _check(frames: int, width: int, height: int, fps: float) -> None:
    if frames <= 0:
        raise ValueError(f'frames must be positive, got {frames}')
    if width <= 0 or height <= 0:
        raise ValueError(f'image size must be positive, got {width}x{height}')
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f'fps must be positive, got {fps}')


def _stable_index(name: str) -> int:
    return (FAMILIES + SCRIPTS + HAND_SCRIPTS).index(name)


def nav_episode(scene_seed: int, script: str, frames: int, width: int, height: int, fps: float = 10.0,
                scene_kind: str = 'room', scene: SceneSpec | None = None) -> Episode:
    """A navigation episode: `script` is a datagen family or a `script_actions` name. `scene`: a scene made
    elsewhere (eval/handmade.py) in place of the generator's `scene_kind` room or yard; `scene_seed` still
    draws the start in it."""
    _check(frames, width, height, fps)
    if scene is None and scene_kind not in NAV_KINDS:
        raise ValueError(f'navigation scene kind must be one of {", ".join(NAV_KINDS)}, got {scene_kind!r}')
    if script not in FAMILIES and script not in SCRIPTS:
        raise ValueError(f'unknown navigation script {script!r}; expected a family ({", ".join(FAMILIES)}) '
                         f'or a script ({", ".join(SCRIPTS)})')
    if scene is None:
        scene = make_scene(scene_kind, scene_seed)
    free = scene.free_space
    rng = np.random.default_rng([scene_seed, _stable_index(script)])
    start = start_state(free, rng)
    if script in FAMILIES:
        actions = family_actions(script, free, start, frames - 1, fps, seed=scene_seed)
    else:
        actions = script_actions(script, frames - 1, fps, seed=scene_seed)
        for _ in range(20):  # a start from which the whole script is collision-free, else shorten it safely
            if is_collision_free(free, start, actions, fps):
                break
            start = start_state(free, rng)
        actions = make_safe(free, start, actions, fps)
    poses = poses_from_actions(start, actions, fps)  # (T, 4, 4)
    rgb = np.empty((frames, height, width, 3), np.uint8)
    depth = np.empty((frames, height, width), np.float32)
    with SceneRenderer(scene, width, height) as renderer:
        for t in range(frames):
            rgb[t], depth[t] = renderer.render(poses[t])
        K = renderer.intrinsics
    action_rows = np.zeros((frames, 5), np.float32)
    action_rows[1:] = np.array([a.to_array() for a in actions], dtype=np.float32).reshape(-1, 5)
    return Episode(rgb=rgb, depth=depth, poses=poses, intrinsics=K, actions=action_rows,
                   meta=_meta('nav', scene, script, fps) | {'start': [start.x, start.y, start.yaw]})


def _meta(kind: str, scene: SceneSpec, family: str, fps: float) -> dict[str, object]:
    return {'kind': kind, 'scene_kind': scene.kind, 'scene_seed': scene.seed, 'family': family, 'fps': fps,
            'format_version': FORMAT_VERSION, 'generator_version': __version__}


def occluded_by_scene(model: mujoco.MjModel, data: mujoco.MjData, origin: np.ndarray,
                      points_world: np.ndarray) -> np.ndarray:
    """(21,) bool: a scene surface (table, object, wall: anything but the hand) lies between the camera and the
    landmark. The hand hiding its own joints does not count: those still land on the hand's pixels, and the
    hand is what a keypoint marks."""
    groups = np.ones(mujoco.mjNGROUP, np.uint8)
    groups[HAND_GEOM_GROUP] = 0  # rays pass through the hand
    hidden = np.zeros(len(points_world), bool)
    geom = np.zeros(1, np.int32)
    for k, p in enumerate(points_world):
        offset = p - origin
        dist = float(np.linalg.norm(offset))
        hit = mujoco.mj_ray(model, data, origin, offset / dist, groups, 1, -1, geom)
        hidden[k] = 0 <= hit < dist - VISIBILITY_TOLERANCE
    return hidden


def keypoints_in_camera(points_world: np.ndarray, c2w: np.ndarray, K: np.ndarray, width: int, height: int,
                        occluded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World landmarks (21, 3) -> camera-frame points (21, 3), pixels (21, 2) and visibility (21,).

    Visible: in front of the camera, inside the image and not occluded by the scene.
    """
    w2c = np.linalg.inv(c2w)
    p_cam = points_world @ w2c[:3, :3].T + w2c[:3, 3]  # (21, 3)
    z = p_cam[:, 2]
    uv = (p_cam @ K.T)[:, :2] / np.maximum(z, 1e-6)[:, None]  # (21, 2), pixel u spans [u, u + 1)
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    return p_cam.astype(np.float32), uv.astype(np.float32), inside & ~occluded


def manip_episode(scene_seed: int, script: str, frames: int, width: int, height: int,
                  fps: float = 10.0) -> Episode:
    """A hand manipulation episode over a table, seen by a static egocentric camera."""
    _check(frames, width, height, fps)
    if script not in HAND_SCRIPTS:
        raise ValueError(f'unknown hand script {script!r}; expected one of {", ".join(HAND_SCRIPTS)}')
    scene = make_scene('table', scene_seed)
    plan = hand_script(script, scene, frames, seed=scene_seed)
    c2w = egocentric_camera(scene)
    rgb = np.empty((frames, height, width, 3), np.uint8)
    depth = np.empty((frames, height, width), np.float32)
    kp3 = np.empty((frames, 21, 3), np.float32)
    kp2 = np.empty((frames, 21, 2), np.float32)
    vis = np.empty((frames, 21), bool)
    with SceneRenderer(scene, width, height) as renderer:
        rig = HandRig(renderer.model)
        K = renderer.intrinsics
        mocap = {o.name: int(renderer.model.body_mocapid[mujoco.mj_name2id(renderer.model, mujoco.mjtObj.mjOBJ_BODY,
                                                                           o.name)]) for o in scene.objects}
        for t, step in enumerate(plan):
            points = rig.apply(renderer.data, step.hand)
            for name, pos in step.objects.items():
                renderer.data.mocap_pos[mocap[name]] = pos
            renderer.forward()
            rgb[t], depth[t] = renderer.render(c2w)
            hidden = occluded_by_scene(renderer.model, renderer.data, c2w[:3, 3], points)
            kp3[t], kp2[t], vis[t] = keypoints_in_camera(points, c2w, K, width, height, hidden)
    return Episode(rgb=rgb, depth=depth, poses=np.repeat(c2w[None], frames, axis=0), intrinsics=K,
                   actions=np.zeros((frames, 5), np.float32), keypoints3d=kp3, keypoints2d=kp2, visibility=vis,
                   handedness=plan[0].hand.handedness, meta=_meta('manip', scene, script, fps))

