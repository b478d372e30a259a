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
