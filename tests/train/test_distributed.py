import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from train_clips import micro_train_config

from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.train.loop import train


def _latest_model(out: Path) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(out / (out / 'latest').read_text().strip() / 'model.safetensors')
    return model.state_dict()


def test_two_process_ddp_on_cpu_equals_one_process_on_the_same_global_batch(dataset_root, tmp_path):
    single = micro_train_config(dataset_root, tmp_path / 'single', data={'batch_size': 4}, run={'steps': 2})
    train(single)

    ddp = micro_train_config(dataset_root, tmp_path / 'ddp', data={'batch_size': 2}, run={'steps': 2})
    config = tmp_path / 'ddp.yaml'
    d = ddp.to_dict()
    config.write_text(yaml.safe_dump(d))
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '-m', 'worldscape_ros.cli', 'train', '--config', str(config), '--no-progress']
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'rank 1 of 2, ddp' in proc.stderr

    a, b = _latest_model(tmp_path / 'single'), _latest_model(tmp_path / 'ddp')
    moved = [k for k in a if k.startswith('dit.')]
    for name in moved:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name


def _torchrun(config: Path, *extra: str, command: str = 'train') -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '-m', 'worldscape_ros.cli', command, '--config', str(config), '--no-progress', *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def test_two_process_fsdp_saved_and_resumed_equals_one_process_on_the_same_global_batch(dataset_root, tmp_path):
    """Sharded training, a gathered save and a resume that re-shards weights and Adam moments: the same model,
    and the same EMA, as one unsharded process."""
    render = {'render_weight': 0.05}  # gradients through the rasteriser into the sharded Gaussian head
    single = micro_train_config(dataset_root, tmp_path / 'single', data={'batch_size': 4}, run={'steps': 2},
                                teacher=render)
    train(single)

    fsdp = micro_train_config(dataset_root, tmp_path / 'fsdp', data={'batch_size': 2},
                              run={'steps': 2, 'parallel': 'fsdp'}, teacher=render)
    config = tmp_path / 'fsdp.yaml'
    config.write_text(yaml.safe_dump(fsdp.to_dict()))
    first = _torchrun(config, '--steps', '1')
    assert first.returncode == 0, first.stderr[-3000:]
    assert 'rank 1 of 2, fsdp' in first.stderr
    assert (tmp_path / 'fsdp' / 'latest').read_text().strip() == 'step-0000001'
    resumed = _torchrun(config, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = _latest_model(tmp_path / 'single'), _latest_model(tmp_path / 'fsdp')
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name
    ema_a, _ = load_checkpoint(tmp_path / 'single' / 'final.safetensors')
    ema_b, _ = load_checkpoint(tmp_path / 'fsdp' / 'final.safetensors')
    for (name, x), y in zip(ema_a.state_dict().items(), ema_b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-6, rtol=0), name


def test_two_process_fsdp_distillation_equals_one_process(dataset_root, tmp_path):
    """The student's self-rollouts, the sharded teacher and critic and two critic updates per step."""
    teacher = micro_train_config(dataset_root, tmp_path / 'teacher', run={'steps': 1})
    train(teacher)
    base = {'init': str(tmp_path / 'teacher' / 'final.safetensors'), 'stage': 'distill',
            'distill': {'critic_steps': 2}}
    single = micro_train_config(dataset_root, tmp_path / 'single', data={'batch_size': 2}, run={'steps': 2},
                                **base)
    train(single)
    fsdp = micro_train_config(dataset_root, tmp_path / 'fsdp', data={'batch_size': 1},
                              run={'steps': 2, 'parallel': 'fsdp'}, **base)
    config = tmp_path / 'fsdp.yaml'
    config.write_text(yaml.safe_dump(fsdp.to_dict()))
    proc = _torchrun(config, command='distill')
    assert proc.returncode == 0, proc.stderr[-3000:]

    for part in ('model', 'critic'):
        folder = lambda run: tmp_path / run / (tmp_path / run / 'latest').read_text().strip()  # noqa: E731
        a, _ = load_checkpoint(folder('single') / f'{part}.safetensors')
        b, _ = load_checkpoint(folder('fsdp') / f'{part}.safetensors')
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.allclose(x, y, atol=1e-5, rtol=0), f'{part}: {name}'
