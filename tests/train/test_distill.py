from dataclasses import replace

import pytest
import torch
from train_clips import clip_batch, micro_train_config

from worldscape_ros.errors import TrainError
from worldscape_ros.model.checkpoint import save_checkpoint
from worldscape_ros.model.config import load_config
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import sample_generator
from worldscape_ros.train.distill import DistillStage, nfe_per_frame
from worldscape_ros.train.runtime import setup_runtime


def test_student_saves_network_evaluations_per_frame_against_the_teacher():
    cfg = load_config('ws-tiny')  # 12 teacher steps
    two = replace(cfg, sampler=replace(cfg.sampler, steps=2, cache_from_last_step=False))  # plus the clean pass
    assert nfe_per_frame(two) == {'teacher_nfe': 12.0, 'student_nfe': 3.0, 'nfe_saving': 4.0}
    assert nfe_per_frame(two, guidance=3.0)['nfe_saving'] == 8.0
    one = replace(cfg, sampler=replace(cfg.sampler, steps=1, cache_from_last_step=False))
    assert nfe_per_frame(one) == {'teacher_nfe': 12.0, 'student_nfe': 2.0, 'nfe_saving': 6.0}
    one_pass = replace(cfg, sampler=replace(cfg.sampler, steps=1, cache_from_last_step=True))  # the last step's pass
    assert nfe_per_frame(one_pass) == {'teacher_nfe': 12.0, 'student_nfe': 1.0, 'nfe_saving': 12.0}  # writes it


def test_distillation_losses_fall_on_a_fixed_batch_within_20_steps(tmp_path, micro_config):
    torch.manual_seed(0)
    teacher = WorldModel(micro_config)
    save_checkpoint(tmp_path / 'teacher.safetensors', teacher)
    cfg = micro_train_config(tmp_path, tmp_path / 'run', stage='distill',
                             distill={'teacher': str(tmp_path / 'teacher.safetensors'), 'regression_weight': 1.0,
                                      'critic_lr': 2e-3},
                             optim={'lr': 2e-3, 'grad_clip': 0.0})
    model = WorldModel(cfg.model_config())
    stage = DistillStage(model, cfg, setup_runtime(cfg.run))
    batch = clip_batch(1, 3, 32, 48)
    history = []
    for _ in range(20):
        gens = [sample_generator(0, 0, 0)]  # the same noise and levels every step: a fixed batch
        history.append(stage.step(batch, 0, gens))
    first, last = history[0], history[-1]
    assert last['loss'] < 0.8 * first['loss']  # DMD (0 at the start: critic = teacher) + regression
    assert last['critic'] < first['critic']
    assert last['gt_mse'] < first['gt_mse']
    assert any(h['dmd'] > 0 for h in history[1:])  # the critic parts from the teacher: DMD gradients appear


def test_distill_config_without_a_teacher_raises_train_error(tmp_path):
    with pytest.raises(TrainError, match='distill stage needs distill.teacher'):
        micro_train_config(tmp_path, tmp_path / 'run', stage='distill')


def test_a_teacher_of_another_architecture_raises_train_error(tmp_path, micro_config):
    other = WorldModel(micro_config.replace(dit=micro_config.dit.__class__(dim=64, depth=1, heads=2, ffn=64,
                                                                          camera_width=16)))
    save_checkpoint(tmp_path / 'other.safetensors', other)
    cfg = micro_train_config(tmp_path, tmp_path / 'run', stage='distill',
                             distill={'teacher': str(tmp_path / 'other.safetensors')})
    with pytest.raises(TrainError, match='distill.teacher: checkpoint .* lacks tensor'):
        DistillStage(WorldModel(cfg.model_config()), cfg, setup_runtime(cfg.run))


def test_distillation_resumes_exactly_with_student_critic_and_both_optimisers(tmp_path, dataset_root, micro_config):
    from worldscape_ros.model.checkpoint import load_checkpoint
    from worldscape_ros.train.loop import train

    torch.manual_seed(0)
    save_checkpoint(tmp_path / 'teacher.safetensors', WorldModel(micro_config))

    def cfg(out, steps):
        return micro_train_config(dataset_root, tmp_path / out, stage='distill', data={'batch_size': 1},
                                  distill={'teacher': str(tmp_path / 'teacher.safetensors'),
                                           'regression_weight': 1.0}, run={'steps': steps})

    train(cfg('a', 2))
    train(cfg('b', 1))
    train(cfg('b', 2), resume=True)
    for name in ('model', 'critic', 'ema'):
        a, _ = load_checkpoint(tmp_path / 'a' / 'step-0000002' / f'{name}.safetensors')
        b, _ = load_checkpoint(tmp_path / 'b' / 'step-0000002' / f'{name}.safetensors')
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.allclose(sa[k], sb[k], atol=1e-6, rtol=0) for k in sa), name
