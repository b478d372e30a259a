"""`worldscape rollout` and `bag-recover`: registered in the CLI, user mistakes are one line and exit 2."""

import shutil

import numpy as np
import pytest

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


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'Traceback' not in err[0], err
    return err[0]


def _rollout(tmp_path, actions, out, *extra):
    return main(['rollout', '--start', 'room:0', '--actions', str(actions), '--out', str(out),
                 '--checkpoint', 'random', '--bag', *extra])


def test_an_empty_actions_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / 'empty.csv'
    empty.write_text('# no rows\n')
    assert _rollout(tmp_path, empty, tmp_path / 'o') == 2
    assert 'holds no actions' in _one_line_error(capsys)
    assert not (tmp_path / 'o').exists()


def test_a_failed_start_leaves_nothing_and_a_rerun_succeeds(tmp_path, capsys):
    np.savetxt(tmp_path / 'a.csv', np.zeros((2, 5)))
    small = tmp_path / 'small.npy'
    np.save(small, np.zeros((4, 4, 3), np.uint8))
    bad = tmp_path / 'small.png'
    shutil.copy(small, bad)  # not an image: the start cannot be read
    out = tmp_path / 'o'
    assert main(['rollout', '--start', str(bad), '--actions', str(tmp_path / 'a.csv'), '--out', str(out),
                 '--checkpoint', 'random']) == 2
    assert 'cannot be read as an image' in _one_line_error(capsys)
    assert not out.exists()
    assert _rollout(tmp_path, tmp_path / 'a.csv', out) == 0


def test_an_out_holding_an_earlier_run_is_refused_with_the_fix_and_force_replaces_it(tmp_path, capsys):
    np.savetxt(tmp_path / 'a.csv', np.zeros((1, 5)))
    out = tmp_path / 'o'
    assert _rollout(tmp_path, tmp_path / 'a.csv', out) == 0
    capsys.readouterr()
    assert _rollout(tmp_path, tmp_path / 'a.csv', out) == 2
    assert 'holds an earlier run (bag, summary.json): pass --force to replace it' in _one_line_error(capsys)
    assert _rollout(tmp_path, tmp_path / 'a.csv', out, '--force') == 0


def test_an_out_that_cannot_be_written_is_one_line(tmp_path, capsys):
    np.savetxt(tmp_path / 'a.csv', np.zeros((1, 5)))
    (tmp_path / 'file').write_text('')
    assert _rollout(tmp_path, tmp_path / 'a.csv', tmp_path / 'file' / 'o') == 2
    assert 'cannot be written' in _one_line_error(capsys)


def test_a_binary_train_config_is_named_in_one_line(tmp_path, capsys):
    config = tmp_path / 'train.yaml'
    config.write_bytes(b'\x00\x01\xff\xfe\x89PNG binary')
    assert main(['train', '--config', str(config)]) == 2
    line = _one_line_error(capsys)
    assert str(config) in line and 'not a UTF-8 text YAML file' in line


def test_bag_recover_rebuilds_a_bag_from_a_partial_folder_and_refuses_a_missing_one(tmp_path, capsys):
    from worldscape_ros.tools import messages as M
    from worldscape_ros.tools.bag import SIM_TOPICS, BagWriter

    bag = BagWriter(tmp_path / 'bag')
    bag.add_topics(SIM_TOPICS)
    for k in range(5):
        bag.write('/clock', k, M.clock(k))
    bag.flush()
    partial = shutil.copytree(bag._staging, tmp_path / 'killed' / bag._staging.name)  # as a SIGKILL leaves it
    bag.close()
    assert main(['bag-recover', str(partial)]) == 0
    out = capsys.readouterr().out
    assert f'recovered 5 messages from {partial}' in out and '/clock: 5' in out
    assert (tmp_path / 'killed' / 'bag' / 'metadata.yaml').is_file() and not partial.exists()
    assert main(['bag-recover', str(partial)]) == 2
    assert 'does not exist' in _one_line_error(capsys)


@pytest.mark.parametrize('argv', [['bag-recover', '--help']])
def test_bag_recover_is_listed_with_its_help(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert '.partial folder' in capsys.readouterr().out
