import pytest
import yaml
from train_clips import micro_train_config

from worldscape_ros.cli import main
from worldscape_ros.model.config import MODELS_DIR


def _config(tmp_path, dataset_root, **sections):
    path = tmp_path / 'cfg.yaml'
    path.write_text(yaml.safe_dump(micro_train_config(dataset_root, tmp_path / 'run', **sections).to_dict()))
    return path


def test_train_command_with_an_unknown_key_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / 'bad.yaml'
    path.write_text('stage: teacher\noptim: {learning_rate: 0.1}\n')
    assert main(['train', '--config', str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown keys in section 'optim'" in err[0]


def test_train_command_rejects_a_distill_config(capsys):
    assert main(['train', '--config', str(MODELS_DIR / 'train' / '04_distill.yaml')]) == 2
    assert 'run it with `worldscape distill`' in capsys.readouterr().err


def test_train_command_with_a_missing_data_dir_exits_2(tmp_path, dataset_root, capsys):
    path = _config(tmp_path, dataset_root)
    assert main(['train', '--config', str(path), '--data', str(tmp_path / 'missing')]) == 2
    assert 'missing does not exist' in capsys.readouterr().err


@pytest.mark.parametrize('minutes', [1e-6])
def test_max_minutes_stops_early_with_a_save_that_resume_completes(tmp_path, dataset_root, minutes):
    path = _config(tmp_path, dataset_root, run={'steps': 3})
    assert main(['train', '--config', str(path), '--max-minutes', str(minutes), '--no-progress']) == 0
    assert (tmp_path / 'run' / 'latest').read_text().strip() == 'step-0000001'
    assert main(['train', '--config', str(path), '--resume', '--no-progress']) == 0
    assert (tmp_path / 'run' / 'latest').read_text().strip() == 'step-0000003'


def test_init_and_init_codec_flags_override_the_config_and_a_missing_codec_names_the_flag(tmp_path, dataset_root,
                                                                                        capsys):
    from worldscape_ros.cli import build_parser
    from worldscape_ros.train.commands import config_from_args

    path = _config(tmp_path, dataset_root)
    args = build_parser().parse_args(['train', '--config', str(path), '--init', 'a.safetensors',
                                      '--init-codec', 'b.safetensors'])
    cfg = config_from_args(args, None)
    assert (cfg.init, cfg.init_codec) == ('a.safetensors', 'b.safetensors')
    assert main(['train', '--config', str(path), '--init-codec', str(tmp_path / 'nope.safetensors')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'init_codec' in err[0]
