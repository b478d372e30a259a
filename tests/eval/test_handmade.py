import numpy as np
import pytest

from worldscape_ros.errors import EvalError
from worldscape_ros.eval.ground_truth import ground_truth
from worldscape_ros.eval.handmade import HANDMADE_SCENES, handmade_scene
from worldscape_ros.eval.suites import parse_suite
from worldscape_ros.synthetic.builder import ROBOT_RADIUS


def test_the_l_rooms_solid_corner_and_furniture_are_not_free_space():
    free = handmade_scene('l_room').free_space
    assert free.is_free(-1.5, 0.0) and free.is_free(1.8, -0.8)  # the L's two arms
    assert not free.is_free(1.8, 1.45)  # inside the solid corner
    assert not free.is_free(-2.55, 0.6)  # the sofa
    assert free.clearance(0.6, 0.4) < ROBOT_RADIUS  # the L's inner corner


def test_a_handmade_scenario_renders_its_scene_not_a_generated_room():
    suite = parse_suite({'name': 'x', 'kind': 'nav', 'scene_kind': 'l_room', 'frames': 3, 'width': 32,
                         'height': 24, 'seeds': [90051, 90052], 'scripts': ['turn_left']})
    a, b = (ground_truth(sc) for sc in suite.scenarios)
    again = ground_truth(suite.scenarios[0])
    assert a.rgb.tobytes() == again.rgb.tobytes()  # deterministic
    assert not np.allclose(a.poses[0], b.poses[0])  # the seed picks the start in the one room
    free = handmade_scene('l_room').free_space
    assert all(free.is_free(p[0, 3], p[1, 3]) for p in np.concatenate([a.poses, b.poses]))
    assert a.depth.max() <= handmade_scene('l_room').max_depth and a.depth.min() > 0.05


def test_the_offices_pillar_and_desk_are_not_free_space():
    free = handmade_scene('office').free_space
    assert free.is_free(1.3, -0.8) and not free.is_free(0.2, 0.1) and not free.is_free(-1.9, -0.6)


def test_an_unknown_handmade_scene_is_named():
    assert set(HANDMADE_SCENES) == {'l_room', 'office'}
    with pytest.raises(EvalError, match="unknown hand-made scene 'castle'"):
        handmade_scene('castle')
