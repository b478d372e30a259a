"""Actions files: every format reads to the same (T, 5) actions; mistakes are named."""

import json

import numpy as np
import pytest

from worldscape_ros.synthetic.trajectories import script_actions
from worldscape_ros.tools.scripts import ActionScript, load_script

ROWS = np.array([[0.5, 0, 0, 0.1, 0], [0.0, 0.2, 0, 0, -0.1]])


def test_csv_txt_and_npy_read_the_same_actions(tmp_path):
    (tmp_path / 'a.csv').write_text('# vx, vy, vz, yaw_rate, pitch_rate\n0.5, 0, 0, 0.1, 0\n\n0, 0.2, 0, 0, -0.1\n')
    (tmp_path / 'a.txt').write_text('0.5 0 0 0.1 0  # forward, turning\n0 0.2 0 0 -0.1\n')
    np.save(tmp_path / 'a.npy', ROWS)
    for name in ('a.csv', 'a.txt', 'a.npy'):
        script = load_script(tmp_path / name, fps=10)
        np.testing.assert_array_equal(script.actions, ROWS)
        assert script.hands is None


def test_yaml_and_json_tours_chain_named_scripts_and_held_actions(tmp_path):
    tour = {'segments': [{'script': 'out_and_back', 'frames': 10}, {'action': [0, 0, 0, 0.5, 0], 'frames': 3}]}
    (tmp_path / 't.json').write_text(json.dumps(tour))
    (tmp_path / 't.yaml').write_text('segments:\n  - {script: out_and_back, frames: 10}\n'
                                     '  - {action: [0, 0, 0, 0.5, 0], frames: 3}\n')
    expected = np.concatenate([[a.to_array() for a in script_actions('out_and_back', 10, 10.0)],
                               np.tile([0, 0, 0, 0.5, 0], (3, 1))])
    for name in ('t.json', 't.yaml'):
        np.testing.assert_array_equal(load_script(tmp_path / name, fps=10).actions, expected)


def test_tour_with_hands_carries_a_keypoint_per_frame(tmp_path):
    (tmp_path / 'm.yaml').write_text('segments:\n  - {script: idle, frames: 8}\nhands: {script: pick_and_place, '
                                     'handedness: left}\n')
    script = load_script(tmp_path / 'm.yaml', fps=10)
    assert script.hands.shape == (8, 21, 3) and script.handedness == 'left'


@pytest.mark.parametrize('name,text,match', [
    ('bad.csv', '1 2 3\n', 'actions must be'),
    ('nan.csv', '1 2 3 4 nan\n', 'finite'),
    ('t.yaml', 'segments: []\n', 'non-empty list'),
    ('t2.yaml', 'segments:\n  - {script: straight}\n', 'needs `frames`'),
    ('t3.yaml', 'segments:\n  - {script: fly, frames: 3}\n', 'unknown navigation script'),
    ('t4.yaml', 'segments:\n  - {action: [1, 2], frames: 3}\n', 'must have 5 values'),
    ('t5.yaml', 'segments:\n  - {script: idle, frames: 3}\nhands: wave\n', 'hands must be a mapping'),
    ('a.mat', '', 'unknown format'),
])
def test_bad_actions_files_name_the_file_and_the_cause(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=match) as exc:
        load_script(tmp_path / name, fps=10)
    assert name in str(exc.value)


def test_missing_file_and_mismatched_hands():
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_script('/nonexistent/actions.csv', fps=10)
    with pytest.raises(ValueError, match='hands must be'):
        ActionScript(ROWS, np.zeros((3, 21, 3)))
