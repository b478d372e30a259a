import csv
from pathlib import Path

import pytest
import torch
from train_clips import micro_train_config, write_dataset

from worldscape_ros.errors import TrainError
from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.train.loop import METRICS_FILE, train


def _weights(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(path)
    return model.state_dict()


def _latest_model(out: Path) -> dict[str, torch.Tensor]:
    return _weights(out / (out / 'latest').read_text().strip() / 'model.safetensors')


def test_ten_steps_equal_five_then_save_resume_and_five_more(dataset_root, tmp_path):
    straight = micro_train_config(dataset_root, tmp_path / 'a', run={'steps': 10})
    train(straight)
    split = micro_train_config(dataset_root, tmp_path / 'b', run={'steps': 5})
    train(split)
    train(split.replace_in('run', steps=10), resume=True)
    a, b = _latest_model(tmp_path / 'a'), _latest_model(tmp_path / 'b')
    for name in a:
        assert torch.equal(a[name], b[name]), name  # bitwise: same data order, noise, optimiser state
    ema_a, ema_b = _weights(tmp_path / 'a' / 'final.safetensors'), _weights(tmp_path / 'b' / 'final.safetensors')
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    rows = (tmp_path / 'b' / METRICS_FILE).read_text().splitlines()
    assert [r.split(',')[0] for r in rows[1:]] == [str(i) for i in range(1, 11)]


def test_training_changes_the_dit_but_not_the_frozen_codec(dataset_root, tmp_path):
    cfg = micro_train_config(dataset_root, tmp_path / 'run', run={'steps': 2})
    torch.manual_seed(cfg.run.seed)
    from worldscape_ros.train.loop import build_model

    before = build_model(cfg).state_dict()
    train(cfg)
    after = _latest_model(tmp_path / 'run')
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith('codec.'))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith('dit.'))


def test_missing_data_dir_raises_train_error(tmp_path):
    cfg = micro_train_config(tmp_path / 'nowhere', tmp_path / 'run')
    with pytest.raises(TrainError, match='data.root .*nowhere does not exist'):
        train(cfg)


def test_resume_from_another_config_raises_train_error(dataset_root, tmp_path):
    train(micro_train_config(dataset_root, tmp_path / 'run', run={'steps': 1}))
    other = micro_train_config(dataset_root, tmp_path / 'run', run={'steps': 2},
                               model_overrides={'dit': {'dim': 64, 'depth': 2, 'heads': 2, 'ffn': 96}})
    with pytest.raises(TrainError, match='written by another configuration'):
        train(other, resume=True)


def test_resume_without_a_save_raises_train_error(dataset_root, tmp_path):
    with pytest.raises(TrainError, match='nothing to resume'):
        train(micro_train_config(dataset_root, tmp_path / 'fresh'), resume=True)


def test_a_dataset_smaller_than_one_global_batch_raises_train_error(tmp_path):
    root = write_dataset(tmp_path / 'small', episodes=1, frames=4, height=32, width=48)
    with pytest.raises(TrainError, match='fewer than one global batch'):
        train(micro_train_config(root, tmp_path / 'run', data={'batch_size': 2}))


def test_init_codec_replaces_only_the_codec_of_init(tmp_path):
    from worldscape_ros.model.checkpoint import save_checkpoint
    from worldscape_ros.train.loop import build_model

    base = micro_train_config(tmp_path, tmp_path / 'run')
    paths = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = build_model(base.replace_in('run', seed=seed))
        paths[seed] = tmp_path / f'seed{seed}.safetensors'
        save_checkpoint(paths[seed], model)
    a, _ = load_checkpoint(paths[1])
    b, _ = load_checkpoint(paths[2])
    merged = build_model(base.replace(init=str(paths[1]), init_codec=str(paths[2])))
    for name, value in merged.state_dict().items():
        expected = (b if name.startswith('codec.') else a).state_dict()[name]
        assert torch.equal(value, expected), name
    with pytest.raises(TrainError, match='init_codec checkpoint'):
        build_model(base.replace(init=str(paths[1]), init_codec=str(tmp_path / 'missing.safetensors')))


def test_metrics_rows_average_the_loss_parts_over_the_log_interval(dataset_root, tmp_path):
    rows = {}
    for every in (1, 2):
        cfg = micro_train_config(dataset_root, tmp_path / f'every{every}', run={'steps': 4, 'log_every': every})
        train(cfg)
        with (tmp_path / f'every{every}' / METRICS_FILE).open() as f:
            rows[every] = {int(r['step']): r for r in csv.DictReader(f)}
    assert sorted(rows[2]) == [2, 4]
    for step in (2, 4):
        for part in ('loss', 'fm', 'grad_norm'):
            mean = (float(rows[1][step - 1][part]) + float(rows[1][step][part])) / 2
            assert float(rows[2][step][part]) == pytest.approx(mean, rel=1e-6), (step, part)


def test_a_run_resumes_with_other_sampler_and_memory_settings(dataset_root, tmp_path):
    """They change no tensor (like the learning rate): continuing a distillation with a rolling window, say."""
    train(micro_train_config(dataset_root, tmp_path / 'run', run={'steps': 1}))
    other = micro_train_config(dataset_root, tmp_path / 'run', run={'steps': 2},
                               model_overrides={'sampler': {'rolling_window': 2}, 'memory': {'retrieve_chunks': 1}})
    assert train(other, resume=True).steps == 1
