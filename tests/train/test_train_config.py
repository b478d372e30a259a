import pytest
import yaml

from worldscape_ros.errors import TrainError
from worldscape_ros.model.config import MODELS_DIR
from worldscape_ros.train.config import OptimConfig, TrainConfig, config_from_dict, load_train_config, merged


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


TRAIN_DIR = MODELS_DIR / 'train'
SHIPPED = sorted(p.name for p in TRAIN_DIR.glob('*.yaml'))


def test_shipped_training_configs_are_named_by_stage_in_training_order():
    stages = {'01': 'codec', '02': 'teacher', '03': 'teacher', '04': 'distill'}
    assert SHIPPED
    for name in SHIPPED:
        assert load_train_config(TRAIN_DIR / name).stage == stages[name[:2]], name


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_training_configs_load(name):
    cfg = load_train_config(TRAIN_DIR / name)
    assert cfg.model_config().name.startswith('ws-')


def _leaves(d, prefix=()):
    for key, value in d.items():
        if isinstance(value, dict) and key != 'model_overrides':
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _at(d, path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return _MISSING
        d = d[key]
    return list(d) if isinstance(d, tuple) else d


_MISSING = object()


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_training_configs_state_only_what_differs(name):
    """A base file gives no dataclass default (stage and model aside, which name the run); an overlay gives
    nothing its base already says."""
    raw = yaml.safe_load((TRAIN_DIR / name).read_text())
    base = raw.pop('base', None)
    under = (load_train_config(TRAIN_DIR / base).to_dict() if base else
             {k: v for k, v in TrainConfig().to_dict().items() if k not in ('stage', 'model')})
    repeated = [path for path, value in _leaves(raw) if _at(under, path) == value]
    assert not repeated, f'{name} repeats {repeated}'


def _write(path, text):
    path.write_text(text)
    return path


def test_an_overlay_merges_its_sections_key_by_key_over_its_base(tmp_path):
    _write(tmp_path / 'base.yaml', 'stage: codec\noptim: {lr: 1.0e-3, warmup_steps: 50}\nrun: {steps: 9, seed: 4}\n')
    over = _write(tmp_path / 'over.yaml', 'base: base.yaml\noptim: {lr: 5.0e-4}\nrun: {seed: 7}\n')
    cfg = load_train_config(over)
    assert cfg.stage == 'codec'
    assert (cfg.optim.lr, cfg.optim.warmup_steps) == (5e-4, 50)
    assert (cfg.run.steps, cfg.run.seed) == (9, 7)
    assert cfg.optim.weight_decay == OptimConfig().weight_decay  # left out by both: the default


def test_an_overlay_of_an_overlay_takes_the_nearest_value(tmp_path):
    (tmp_path / 'sub').mkdir()
    _write(tmp_path / 'a.yaml', 'run: {steps: 1, seed: 1, log_every: 1}\n')
    _write(tmp_path / 'sub' / 'b.yaml', 'base: ../a.yaml\nrun: {steps: 2, seed: 2}\n')
    c = _write(tmp_path / 'c.yaml', 'base: sub/b.yaml\nrun: {steps: 3}\n')
    run = load_train_config(c).run
    assert (run.steps, run.seed, run.log_every) == (3, 2, 1)


def test_merged_replaces_lists_and_scalars_and_merges_mappings():
    assert merged({'a': {'x': 1, 'y': [1, 2]}, 'b': 1}, {'a': {'y': [3]}, 'b': {'z': 2}}) == \
        {'a': {'x': 1, 'y': [3]}, 'b': {'z': 2}}


def test_a_missing_base_raises_train_error_naming_it(tmp_path):
    over = _write(tmp_path / 'over.yaml', 'base: gone.yaml\n')
    with pytest.raises(TrainError, match=r'gone\.yaml does not exist'):
        load_train_config(over)


def test_bases_that_lead_back_raise_train_error(tmp_path):
    _write(tmp_path / 'a.yaml', 'base: b.yaml\n')
    b = _write(tmp_path / 'b.yaml', 'base: a.yaml\n')
    with pytest.raises(TrainError, match=r'lead back to themselves \(b\.yaml -> a\.yaml -> b\.yaml\)'):
        load_train_config(b)


def test_a_base_that_is_not_a_file_name_raises_train_error(tmp_path):
    over = _write(tmp_path / 'over.yaml', 'base: [a.yaml]\n')
    with pytest.raises(TrainError, match='base must name a YAML file'):
        load_train_config(over)


def test_base_is_a_file_key_not_a_config_key():
    with pytest.raises(TrainError, match=r"unknown keys \['base'\]"):
        config_from_dict({'base': 'a.yaml'})
