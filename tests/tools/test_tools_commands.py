"""`worldscape rollout`: registered in the CLI, user mistakes are one line and exit 2."""

import numpy as np

from worldscape_ros.cli import main


def test_rollout_is_listed_in_the_cli(capsys):
    assert main([]) == 2
    assert 'rollout' in capsys.readouterr().out


def test_bad_start_is_one_clear_error(tmp_path, capsys):
    np.savetxt(tmp_path / 'a.csv', np.zeros((2, 5)))
    assert main(['rollout', '--start', 'mars:1', '--actions', str(tmp_path / 'a.csv'), '--out',
                 str(tmp_path / 'o'), '--checkpoint', 'random']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "start 'mars:1' is neither" in err[0]


def test_missing_actions_file_is_one_clear_error(tmp_path, capsys):
    assert main(['rollout', '--start', 'room:0', '--actions', str(tmp_path / 'none.csv'), '--out',
                 str(tmp_path / 'o'), '--checkpoint', 'random']) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_cli_writes_only_what_is_asked(tmp_path, capsys):
    np.savetxt(tmp_path / 'a.csv', np.array([[0.4, 0, 0, 0, 0]]))
    assert main(['rollout', '--start', 'room:0', '--actions', str(tmp_path / 'a.csv'), '--out',
                 str(tmp_path / 'o'), '--checkpoint', 'random', '--mp4']) == 0
    out = capsys.readouterr().out
    assert '1 frames' in out and 'frames/s' in out
    assert (tmp_path / 'o' / 'rollout.mp4').is_file() and not (tmp_path / 'o' / 'bag').exists()
