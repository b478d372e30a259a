"""Scene starts: an engine reset from a scene's first view starts from exactly that view (and, on a table, keeps
the hand in it out of the scene memory)."""

import numpy as np
import pytest

from worldscape_ros.model.config import load_config
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.synthetic.starts import scene_start, start_from_scene


@pytest.fixture(scope='module')
def engine():
    return WorldEngine(WorldModel(load_config('ws-tiny')), EngineOptions(steps=1))


@pytest.mark.parametrize('kind, has_hand', [('room', False), ('table', True)])
def test_an_engine_starts_from_the_scenes_first_view(engine, kind, has_hand):
    cfg = engine.config
    want = scene_start(3, kind, cfg.width, cfg.height, cfg.fps)
    assert (want.hand_keypoints is not None) == has_hand
    frame = start_from_scene(engine, 3, kind)
    assert frame.index == 0 and engine.frame_index == 0
    assert np.array_equal(frame.rgb, want.rgb) and np.array_equal(frame.depth, want.depth)
    assert np.array_equal(frame.pose, want.pose) and np.array_equal(engine.intrinsics, want.intrinsics)


def test_the_start_hand_stays_out_of_the_scene_memory(engine):
    cfg = engine.config
    want = scene_start(3, 'table', cfg.width, cfg.height, cfg.fps)
    engine.reset(want.rgb, want.pose, want.intrinsics, want.depth)  # the same view, the hand taken for scene
    with_hand_as_scene = len(engine.scene)
    start_from_scene(engine, 3, 'table')
    assert 0 < len(engine.scene) < with_hand_as_scene


def test_an_unknown_scene_kind_is_refused_naming_it(engine):
    with pytest.raises(ValueError, match="scene kind must be one of .* got 'moon'"):
        start_from_scene(engine, 3, 'moon')
