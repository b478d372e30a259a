import pytest

from worldscape_ros.errors import TrainError
from worldscape_ros.model.config import MODELS_DIR
from worldscape_ros.train.config import config_from_dict, load_train_config


def test_unknown_top_level_key_raises_train_error():
    with pytest.raises(TrainError, match=r"unknown keys \['lr'\]"):
        config_from_dict({'stage': 'teacher', 'lr': 1e-3})


def test_unknown_key_in_a_section_names_the_section():
    with pytest.raises(TrainError, match=r"unknown keys in section 'optim': \['learning_rate'\]"):
        config_from_dict({'optim': {'learning_rate': 1e-3}})


def test_wrongly_typed_value_raises_train_error():
    with pytest.raises(TrainError, match='run.steps must be int'):
        config_from_dict({'run': {'steps': 'many'}})


def test_unknown_stage_raises_train_error():
    with pytest.raises(TrainError, match="stage must be one of"):
        config_from_dict({'stage': 'pretrain'})


def test_missing_config_file_raises_train_error(tmp_path):
    with pytest.raises(TrainError, match='does not exist'):
        load_train_config(tmp_path / 'none.yaml')


def test_unknown_model_override_raises_train_error():
    cfg = config_from_dict({'model_overrides': {'dit': {'width': 3}}})
    with pytest.raises(TrainError, match='model: unknown keys'):
        cfg.model_config()


@pytest.mark.parametrize('name', sorted(p.name for p in MODELS_DIR.glob('*.yaml')
                                        if p.name.startswith(('train-', 'distill-', 'codec-'))))
def test_shipped_training_configs_load(name):
    cfg = load_train_config(MODELS_DIR / name)
    assert cfg.model_config().name.startswith('ws-')
