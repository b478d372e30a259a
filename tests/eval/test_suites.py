import numpy as np
import pytest

from worldscape_ros.errors import EvalError
from worldscape_ros.eval.suites import HELD_OUT_SEED_MIN, SUITE_NAMES, load_suite, load_suites, parse_suite


def test_shipped_suites_load_with_held_out_seeds_and_small_defaults():
    suites = load_suites('all')
    assert [s.name for s in suites] == list(SUITE_NAMES)
    for suite in suites:
        assert all(sc.seed >= HELD_OUT_SEED_MIN for sc in suite.scenarios)
        assert all((sc.width, sc.height) == (128, 96) for sc in suite.scenarios)
    by_name = {s.name: s for s in suites}
    assert {sc.script for sc in by_name['nav'].scenarios} == {'straight', 'turn_left', 'turn_right', 'strafe',
                                                             'mixed'}
    assert {sc.script for sc in by_name['memory'].scenarios} == {'out_and_back', 'loop'}
    assert [sc.frames for sc in by_name['idle'].scenarios] == [101]  # frame 100 against frame 1
    assert {sc.script for sc in by_name['manip'].scenarios} == {'reach', 'grasp', 'carry', 'place'}


@pytest.mark.parametrize('name', ['validation', 'validation_long'])
def test_a_validation_suite_shares_no_seed_with_the_test_suites_and_is_not_in_all(name):
    val = load_suite(name)
    test_seeds = {sc.seed for s in load_suites('all') for sc in s.scenarios}
    assert val.seeds and all(seed >= HELD_OUT_SEED_MIN for seed in val.seeds)
    assert not set(val.seeds) & test_seeds
    assert name not in {s.name for s in load_suites('all')}


def test_the_long_validation_suite_holds_the_revisit_suites_scripts_in_other_rooms():
    long, revisit = load_suite('validation_long'), load_suite('revisit')
    assert {sc.script for sc in revisit.scenarios} <= {sc.script for sc in long.scenarios}
    assert not set(long.seeds) & set(load_suite('validation').seeds)
    assert max(sc.frames for sc in long.scenarios) == max(sc.frames for sc in revisit.scenarios)


@pytest.mark.parametrize('suite, scene', [('lroom', 'l_room'), ('office', 'office')])
def test_a_handmade_scene_suite_is_its_own_scene_with_its_own_seeds_and_not_in_all(suite, scene):
    handmade = load_suite(suite)
    others = load_suites('all') + [load_suite(n) for n in ('validation', 'validation_long', 'lroom', 'office')
                                   if n != suite]
    assert {sc.scene_kind for sc in handmade.scenarios} == {scene}
    assert not set(handmade.seeds) & {sc.seed for s in others for sc in s.scenarios}
    assert suite not in {s.name for s in load_suites('all')}


def test_the_mujoco_free_script_names_are_the_generators_own():
    from worldscape_ros.eval.suites import NAV_SCRIPTS
    from worldscape_ros.synthetic.trajectories import SCRIPTS

    assert NAV_SCRIPTS == SCRIPTS


def test_frames_override_applies_to_all_but_keeps_idle_long_enough():
    nav = load_suite('nav', frames=6)
    assert all(sc.frames == 6 for sc in nav.scenarios)
    idle = load_suite('idle', frames=6)
    assert idle.scenarios[0].frames == 101


def test_several_suites_can_be_named_with_commas():
    assert [s.name for s in load_suites('nav,manip')] == ['nav', 'manip']
    with pytest.raises(EvalError, match='named once each'):
        load_suites('nav,nav')


def test_image_start_scenario_resolves_relative_paths(tmp_path):
    data = {'name': 'mine', 'kind': 'nav', 'scenarios': [
        {'script': 'straight', 'start': {'image': 'start.png', 'pose': np.eye(4).ravel().tolist(),
                                         'intrinsics': [100, 0, 64, 0, 100, 48, 0, 0, 1]}}]}
    suite = parse_suite(data, base_dir=tmp_path)
    start = suite.scenarios[0].start
    assert start is not None and start.image == tmp_path / 'start.png'
    assert suite.scenarios[0].name == 'straight_start'


@pytest.mark.parametrize('data, message', [
    ({'name': 'x', 'kind': 'fly', 'seeds': [90001], 'scripts': ['straight']}, 'kind must be nav or manip'),
    ({'name': 'x', 'kind': 'nav', 'seeds': [90001], 'scripts': ['moonwalk']}, 'unknown nav script'),
    ({'name': 'x', 'kind': 'nav', 'seeds': [5], 'scripts': ['straight']}, 'not held out'),
    ({'name': 'x', 'kind': 'nav'}, 'has no scenarios'),
    ({'name': 'x', 'kind': 'nav', 'seeds': [90001], 'scripts': ['straight'], 'colour': 1}, 'unknown keys: colour'),
    ({'name': 'x', 'kind': 'nav', 'seeds': [90001, 90001], 'scripts': ['straight']}, 'duplicate scenario names'),
    ({'name': 'x', 'kind': 'nav', 'frames': 1, 'seeds': [90001], 'scripts': ['straight']}, 'need frames >= 2'),
    ({'name': 'x', 'kind': 'nav', 'scene_kind': 'castle', 'seeds': [90001], 'scripts': ['straight']},
     "unknown navigation scene kind 'castle'"),
    ({'name': 'x', 'kind': 'nav', 'scenarios': [{'script': 'straight', 'start': {'image': 'a.png'}}]},
     'start must be a mapping with image, pose'),
])
def test_bad_suites_raise_one_clear_error(data, message):
    with pytest.raises(EvalError, match=message):
        parse_suite(data)


def test_unknown_suite_name_and_missing_file_are_reported(tmp_path):
    with pytest.raises(EvalError, match='unknown suite'):
        load_suites('everything')
    with pytest.raises(EvalError, match='does not exist'):
        load_suite(str(tmp_path / 'nope.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: [unclosed')
    with pytest.raises(EvalError, match='could not parse suite'):
        load_suite(str(bad))
    with pytest.raises(EvalError, match='--frames must be at least 2'):
        load_suite('nav', frames=1)
