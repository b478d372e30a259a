"""A live step given up because its command went stale (model/stale.py): the session is as if it never ran."""

import numpy as np
import pytest
import torch

from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.frames import Frame
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.stale import FrameAbandoned
from worldscape_ros.model.world_model import WorldModel


class StaleAt:
    """A stale check that answers True from its `n`-th call on (never with n = 0); counts its calls."""

    def __init__(self, n: int = 0) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return 0 < self.n <= self.calls


def twin_engines(micro_config, randomize) -> tuple[WorldEngine, WorldEngine]:
    """Two sessions of one model from the same start and seed, stepped the same three frames."""
    torch.manual_seed(0)
    model = randomize(WorldModel(micro_config), seed=3)
    engines = (WorldEngine(model, EngineOptions(seed=7)), WorldEngine(model, EngineOptions(seed=7)))
    cfg = micro_config
    img = np.random.default_rng(0).integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    for e in engines:
        e.reset(img, camera_pose(BaseState(height=cfg.camera_height)),
                depth=np.full((cfg.height, cfg.width), 2.5, np.float32))
        for a in (NavAction(vx=0.4), NavAction(yaw_rate=0.5), NavAction(vx=0.3, yaw_rate=-0.2)):
            e.step(a)
    return engines


def assert_same_frames(a: list[Frame], b: list[Frame]) -> None:
    for fa, fb in zip(a, b, strict=True):
        assert fa.index == fb.index
        np.testing.assert_array_equal(fa.rgb, fb.rgb)
        np.testing.assert_array_equal(fa.depth, fb.depth)
        np.testing.assert_array_equal(fa.pose, fb.pose)


def checks_per_step(micro_config, randomize) -> int:
    engine, _ = twin_engines(micro_config, randomize)
    counter = StaleAt()
    engine.step(NavAction(vx=0.2), stale=counter)
    return counter.calls


def test_a_step_asks_its_stale_check_between_every_stage_before_it_commits(micro_config, randomize):
    # after the render, the encode, the DiT pass, the decode and the output's forming
    assert checks_per_step(micro_config, randomize) == 5


@pytest.mark.parametrize('at', [1, 2, 3, 4, 5])
def test_a_step_given_up_at_any_stage_leaves_the_session_as_if_it_never_ran(micro_config, randomize, at):
    abandoned, untouched = twin_engines(micro_config, randomize)
    index, pose = abandoned.frame_index, abandoned.state
    chunks, points = len(abandoned.memory.window), len(abandoned.scene)
    with pytest.raises(FrameAbandoned):
        abandoned.step(NavAction(vx=1.0, yaw_rate=1.0), stale=StaleAt(at))
    assert abandoned.frame_index == index and abandoned.state == pose
    assert len(abandoned.memory.window) == chunks and len(abandoned.scene) == points
    # the newer command then makes exactly the frames an engine that never saw the stale one makes
    for a in (NavAction(vx=-0.3), NavAction(yaw_rate=0.8), NavAction(vx=0.5)):
        assert_same_frames([abandoned.step(a)], [untouched.step(a)])


def test_a_stale_check_that_never_fires_changes_no_frame(micro_config, randomize):
    checked, plain = twin_engines(micro_config, randomize)
    for a in (NavAction(vx=0.5), NavAction(yaw_rate=-0.6)):
        assert_same_frames([checked.step(a, stale=StaleAt(0))], [plain.step(a)])


def test_the_stale_check_ends_with_its_step_given_up_or_not(micro_config, randomize):
    engine, _ = twin_engines(micro_config, randomize)
    with pytest.raises(FrameAbandoned):
        engine.step(NavAction(vx=0.2), stale=StaleAt(1))
    assert engine._stale is None  # the check and what undoes the step are one object (StaleCheck)
    later = StaleAt(0)
    engine.step(NavAction(vx=0.2), stale=later)
    asked = later.calls
    engine.step(NavAction(vx=0.2))
    assert later.calls == asked and engine._stale is None


# ---- with a hand ------------------------------------------------------------------------------------------------
SEED, H, W = 90031, 96, 128


def manip_engine(script: str, frames: int):
    from worldscape_ros.synthetic.episodes import manip_episode

    ep = manip_episode(SEED, script, frames, W, H)
    engine = WorldEngine.from_pretrained('random', options=EngineOptions(steps=1))
    engine.reset(ep.rgb[0], ep.poses[0], ep.intrinsics, ep.depth[0], hand_keypoints=ep.keypoints3d[0])
    return engine, ep


def test_a_carry_step_given_up_puts_the_held_object_back_where_the_last_frame_left_it():
    abandoned, ep = manip_engine('carry', 5)
    untouched, _ = manip_engine('carry', 5)
    assert abandoned.grasp.held is not None  # the carry script's hand holds its object from the start
    for t in (1, 2):
        assert_same_frames([abandoned.step(ep.poses[t], ep.keypoints3d[t])],
                           [untouched.step(ep.poses[t], ep.keypoints3d[t])])
    motion = abandoned.grasp.held.motion.copy()
    with pytest.raises(FrameAbandoned):
        abandoned.step(ep.poses[4], ep.keypoints3d[4], stale=StaleAt(3))
    np.testing.assert_array_equal(abandoned.grasp.held.motion, motion)
    for t in (3, 4):
        assert_same_frames([abandoned.step(ep.poses[t], ep.keypoints3d[t])],
                           [untouched.step(ep.poses[t], ep.keypoints3d[t])])


def test_a_step_whose_hand_releases_its_object_commits_even_when_stale():
    reference, ep = manip_engine('place', len_place := 40)
    closed = [reference.grasp.closed]
    for t in range(1, len_place):
        reference.step(ep.poses[t], ep.keypoints3d[t])
        closed.append(reference.grasp.closed)
        if closed[-2] and not closed[-1]:
            break
    release = len(closed) - 1
    assert closed[0] and not closed[release], 'the place script releases within its first 40 frames'
    engine, _ = manip_engine('place', len_place)
    for t in range(1, release):
        engine.step(ep.poses[t], ep.keypoints3d[t])
    stale = StaleAt(1)
    frame = engine.step(ep.poses[release], ep.keypoints3d[release], stale=stale)  # no FrameAbandoned
    assert frame.index == release and not engine.grasp.closed and stale.calls == 0
