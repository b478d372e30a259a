"""The Wan recipe (scripts/train_wan_gpu.sh) end to end on the tiny random reference: import, teacher, causal
model, DMD student, 2 steps each on CPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.model.wan import WanDiT

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wan_recipe_runs_every_stage_on_the_tiny_reference(tmp_path):
    env = {**os.environ, 'SMOKE': '1', 'DEVICE': 'cpu', 'PY': sys.executable, 'OUT': str(tmp_path / 'run'),
           'OMP_NUM_THREADS': '1'}
    result = subprocess.run(['bash', str(ROOT / 'scripts' / 'train_wan_gpu.sh')], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=580)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = tmp_path / 'run'
    imported, _ = load_checkpoint(run / 'imported.safetensors')
    student, info = load_checkpoint(run / 'distill' / 'final.safetensors')
    assert isinstance(student.dit, WanDiT) and student.config.name == 'ws-wan-tiny'
    for stage in ('teacher', 'causal', 'distill'):
        model, _ = load_checkpoint(run / stage / 'final.safetensors')
        # the inputs imported at zero are trained: they left zero
        assert model.dit.camera.net[2].weight.abs().max() > 0, stage
        assert not torch.equal(model.dit.blocks[0].attn1.to_q.weight, imported.dit.blocks[0].attn1.to_q.weight)
    assert not imported.dit.camera.net[2].weight.any()
