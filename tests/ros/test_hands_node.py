"""Hand keypoints end to end: scripted and recorded keypoints through the simulator node give the frames the
offline engine makes from the same keypoints (grasp and all); and docs/hands.md's worked example holds."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sensor_msgs.msg import Image
from sim_harness import REPO, Harness
from worldscape_msgs.msg import HandKeypoints

from worldscape_ros.model import hands
from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.grasp import GraspConfig, closure, grasp_point
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.ros import conversions as conv
from worldscape_ros.synthetic.starts import start_from_scene
from worldscape_ros.tools.hand_plans import hand_plan

pytestmark = pytest.mark.ros

SEED = 90031  # the manip suite's table: its objects are where the hand plans reach
FRAMES = 10


def keypoints_msg(points: np.ndarray, scores: np.ndarray, handedness: str) -> HandKeypoints:
    msg = HandKeypoints()
    msg.header.frame_id = 'camera_optical_frame'
    msg.handedness = handedness
    for p, xyz in zip(msg.points, points):
        p.x, p.y, p.z = (float(v) for v in xyz)
    msg.scores = [float(s) for s in scores]
    return msg


def through_the_node(keypoints: np.ndarray, scores: np.ndarray, handedness: str) -> tuple[list[np.ndarray], list]:
    """Each frame's keypoints published, then one ~/step: the images and the grasp state after each frame."""
    h = Harness({'mode': 'manipulation', 'start_scene': 'table', 'start_seed': SEED})
    try:
        h.start()
        images = h.subscribe(Image, 'camera/image_raw')
        images.clear()
        states = []
        for t in range(len(keypoints)):
            h.publish(HandKeypoints, 'hand_keypoints', keypoints_msg(keypoints[t], scores[t], handedness),
                      'hand_keypoints')
            h.step(1)
            images.wait_for(t + 1)
            states.append((h.node.engine.grasp.closed, h.node.engine.grasp.holding))
        return [conv.image_to_numpy(m) for m in images.msgs], states
    finally:
        h.close()


def offline(keypoints: np.ndarray) -> tuple[list[np.ndarray], list]:
    """The node's engine (random ws-tiny, one denoising step, sampling seed = start_seed) stepped directly."""
    engine = WorldEngine.from_pretrained('random', 'ws-tiny', EngineOptions(steps=1, seed=SEED))
    start_from_scene(engine, SEED, 'table')
    frames, states = [], []
    for kp in keypoints:
        frames.append(engine.step(None, kp).rgb)
        states.append((engine.grasp.closed, engine.grasp.holding))
    return frames, states


def scripted() -> tuple[np.ndarray, np.ndarray, str]:
    """What the scripted_hands node publishes: a plan of tools/hand_plans, every point scored 1."""
    points, handedness = hand_plan('pick_and_place', FRAMES, scene_seed=SEED)
    return points, np.ones(points.shape[:2]), handedness


def recorded(tmp_path) -> tuple[np.ndarray, np.ndarray, str]:
    """A recorded episode's keypoints as a tracker gives them: float32, landmarks hidden by the table scored 0."""
    from worldscape_ros.data.episode import read_episode, write_episode
    from worldscape_ros.synthetic.episodes import manip_episode

    ep = read_episode(write_episode(tmp_path / 'grasp', manip_episode(SEED, 'grasp', FRAMES, 128, 96)))
    assert ep.keypoints3d is not None and ep.visibility is not None and ep.handedness is not None
    return ep.keypoints3d, ep.visibility.astype(np.float64), ep.handedness


@pytest.mark.slow
@pytest.mark.parametrize('source', ['scripted', 'recorded'])
def test_hand_keypoints_through_the_node_give_the_offline_frames(source, tmp_path):
    points, scores, handedness = scripted() if source == 'scripted' else recorded(tmp_path)
    live, live_states = through_the_node(points, scores, handedness)
    want, want_states = offline(points)
    assert len(live) == len(want) == FRAMES
    for t, (got, expected) in enumerate(zip(live, want)):
        np.testing.assert_array_equal(got, expected, err_msg=f'frame {t + 1}')
    assert live_states == want_states
    assert any(held for _, held in want_states)  # in both plans the hand closes on the object: a grasp runs


def test_the_hand_docs_worked_example_is_what_the_engine_computes():
    text = (REPO / 'docs' / 'hands.md').read_text()
    K = intrinsics_from_fov(128, 96, 60.0)
    kp = np.zeros((21, 3))
    kp[8] = (0.05, 0.10, 0.50)
    u, v = np.asarray(hands.project_keypoints(kp, K))[8]
    for figure in (f'{K[0, 0]:.2f}', f'{u:.2f}', f'{v:.2f}', f'column {int(u)}, row {int(v)}'):
        assert figure in text, figure
    x = (u - K[0, 2]) * 0.50 / K[0, 0]
    assert x == pytest.approx(0.05)
    # the grasp example: the synthetic hand open and grasping, and its grasp point
    from worldscape_ros.synthetic.hand import HandPose
    from worldscape_ros.synthetic.hand_scripts import CLOSED, OPEN

    cfg = GraspConfig()
    for curl in (OPEN, CLOSED):
        assert f'{closure(HandPose(np.zeros(3), np.eye(3), curl).landmarks_world()):.2f}' in text
    assert f'{cfg.close_below:.2f}' in text and f'{cfg.open_above:.2f}' in text
    grasped = HandPose(np.zeros(3), np.eye(3), CLOSED)
    g = grasp_point(grasped.landmarks_world())
    numbers = re.findall(r'grasp point \(([-\d.]+), ([-\d.]+), ([-\d.]+)\)', text)
    assert numbers and np.allclose([float(n) for n in numbers[0]], g, atol=5e-4)
