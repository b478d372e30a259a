"""Ground truth of a scenario: the synthetic renders of the same script (or, for an image start, only the
first frame and the commanded camera poses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worldscape_ros.eval.handmade import HANDMADE_SCENES, handmade_scene
from worldscape_ros.eval.suites import Scenario
from worldscape_ros.model.camera import check_intrinsics, check_rigid
from worldscape_ros.model.kinematics import NavAction, camera_pose, integrate, state_from_camera_pose

CAMERA_HEIGHT = 1.0


@dataclass
class GroundTruth:
    """What every system starts from and is measured against; `rgb` has one frame when only the start is known."""

    rgb: np.ndarray  # (T, H, W, 3) uint8, or (1, H, W, 3) for an image start
    depth: np.ndarray | None  # like rgb, metres; None when unknown
    poses: np.ndarray  # (T, 4, 4) commanded camera-to-world poses
    intrinsics: np.ndarray  # (3, 3)
    actions: np.ndarray  # (T, 5) the NavAction that led to frame t (row 0 zeros)
    keypoints3d: np.ndarray | None = None  # (T, 21, 3) camera frame
    keypoints2d: np.ndarray | None = None  # (T, 21, 2) pixels
    visibility: np.ndarray | None = None  # (T, 21) bool
    hand_masks: np.ndarray | None = None  # (T, H, W) bool: the hand's pixels (renderer segmentation)
    object_masks: np.ndarray | None = None  # (T, H, W) bool: the visible pixels of the object the hand goes for

    @property
    def frames(self) -> int:
        return len(self.poses)

    @property
    def has_frames(self) -> bool:
        """Whether every frame has a ground-truth render (a synthetic start)."""
        return len(self.rgb) == len(self.poses)


def ground_truth(scenario: Scenario) -> GroundTruth:
    if scenario.start is not None:
        return _image_start(scenario)
    from worldscape_ros.synthetic.episodes import manip_episode, nav_episode  # MuJoCo: only when rendering

    s = scenario
    hand = obj = None
    if s.kind == 'manip':
        ep = manip_episode(s.seed, s.script, s.frames, s.width, s.height, s.fps)
        hand, obj = manip_masks(s.seed, s.script, s.frames, s.width, s.height)
    else:
        scene = handmade_scene(s.scene_kind, s.seed) if s.scene_kind in HANDMADE_SCENES else None
        ep = nav_episode(s.seed, s.script, s.frames, s.width, s.height, s.fps, scene_kind=s.scene_kind, scene=scene)
    return GroundTruth(rgb=ep.rgb, depth=ep.depth, poses=np.asarray(ep.poses, np.float64),
                       intrinsics=np.asarray(ep.intrinsics, np.float64), actions=np.asarray(ep.actions, np.float32),
                       keypoints3d=ep.keypoints3d, keypoints2d=ep.keypoints2d, visibility=ep.visibility,
                       hand_masks=hand, object_masks=obj)


def target_object(plan: list[Any], names: list[str]) -> str:
    """The object a hand script acts on: the one it moves, or (reach, grasp: none moves) the one nearest to the
    hand's grasp point at the end."""
    start = plan[0].objects
    moved = [n for n in names if any(not np.allclose(step.objects[n], start[n]) for step in plan)]
    if moved:
        return moved[0]
    grasp = plan[-1].hand.grasp_point_world()
    return min(names, key=lambda n: float(np.linalg.norm(start[n] - grasp)))


def manip_masks(seed: int, script: str, frames: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The hand's and the target object's pixels in each frame of a manipulation episode, (T, H, W) bool each,
    from the renderer's segmentation of exactly the scene state `manip_episode` renders."""
    import mujoco

    from worldscape_ros.synthetic.hand import HAND_GEOM_GROUP, HandRig
    from worldscape_ros.synthetic.hand_scripts import egocentric_camera, hand_script
    from worldscape_ros.synthetic.render import SceneRenderer
    from worldscape_ros.synthetic.scenes import make_scene

    scene = make_scene('table', seed)
    plan = hand_script(script, scene, frames, seed=seed)
    c2w = egocentric_camera(scene)
    target = target_object(plan, [o.name for o in scene.objects])
    hand = np.zeros((frames, height, width), bool)
    obj = np.zeros((frames, height, width), bool)
    with SceneRenderer(scene, width, height) as renderer:
        model = renderer.model
        rig = HandRig(model)
        mocap = {o.name: int(model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, o.name)])
                 for o in scene.objects}
        hand_geoms = np.flatnonzero(model.geom_group == HAND_GEOM_GROUP)
        target_geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f'{target}_geom')
        for t, step in enumerate(plan):
            rig.apply(renderer.data, step.hand)
            for name, pos in step.objects.items():
                renderer.data.mocap_pos[mocap[name]] = pos
            renderer.forward()
            seg = renderer.segmentation(c2w)
            hand[t] = np.isin(seg, hand_geoms)
            obj[t] = seg == target_geom
    return hand, obj


def _image_start(s: Scenario) -> GroundTruth:
    from worldscape_ros.synthetic.trajectories import script_actions

    assert s.start is not None
    if s.kind != 'nav':
        raise ValueError(f'scenario {s.key}: image starts are for navigation scripts only')
    rgb, depth = s.start.load()
    check_rigid(s.start.pose, f'scenario {s.key} start pose')
    check_intrinsics(s.start.intrinsics, f'scenario {s.key} start intrinsics')
    actions = script_actions(s.script, s.frames - 1, s.fps, seed=s.seed)
    state = state_from_camera_pose(s.start.pose, CAMERA_HEIGHT)
    poses = [np.asarray(s.start.pose, np.float64)]
    for a in actions:
        state = integrate(state, a, 1.0 / s.fps)
        poses.append(camera_pose(state))
    rows = np.zeros((s.frames, 5), np.float32)
    rows[1:] = np.array([a.to_array() for a in actions], np.float32).reshape(-1, 5)
    return GroundTruth(rgb=rgb[None], depth=None if depth is None else depth[None], poses=np.stack(poses),
                       intrinsics=np.asarray(s.start.intrinsics, np.float64), actions=rows)


def drive_command(gt: GroundTruth, t: int, kind: str) -> NavAction | np.ndarray:
    """What a system is told to do for frame t: the NavAction for navigation, the camera pose otherwise."""
    if kind == 'nav':
        return NavAction.from_array(gt.actions[t])
    return gt.poses[t]
