"""The training objective of a checkpoint on held-out episodes: every clip, the same flow times and noise for
every checkpoint (seeded by clip index), no conditioning dropout. Lower is better; compare checkpoints on the
same --data and --config.

    python scripts/heldout_loss.py --checkpoint models/ws-tiny.safetensors --data data/robot_eps/heldout \
        --config models/train/02_causal_finetune.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from worldscape_ros.data.dataset import ClipDataset
from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.train.clip_batch import prepare_batch, sample_generator
from worldscape_ros.train.config import load_train_config
from worldscape_ros.train.loop import collate
from worldscape_ros.train.teacher import TeacherObjective


def heldout_loss(checkpoint: str, data: str, config: str, batch_size: int = 4, seed: int = 12345, every: int = 1
                 ) -> dict[str, float]:
    cfg = load_train_config(config)
    model, _ = load_checkpoint(checkpoint, config=cfg.model_config())
    model.eval()
    loss_cfg = dataclasses.replace(cfg.teacher, cond_dropout=0.0)
    objective = TeacherObjective(model, loss_cfg)
    dataset = ClipDataset(data, cfg.data.clip_len, cfg.data.stride, cfg.data.kinds)
    views = cfg.teacher.geometry_views or model.config.memory.geometry_views
    clips = list(range(0, len(dataset), every))
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    with torch.no_grad():
        for start in range(0, len(clips), batch_size):
            index = clips[start:start + batch_size]
            batch = collate([dataset[i] for i in index])
            clip = prepare_batch(model, batch, torch.device('cpu'), views)
            gens = [sample_generator(seed, 0, i) for i in index]
            _, parts = objective(clip, gens)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(index)
                counts[k] = counts.get(k, 0) + len(index)
    return {'clips': len(clips), **{k: sums[k] / counts[k] for k in sums}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--checkpoint', required=True, nargs='+')
    p.add_argument('--data', required=True, help='held-out episode folder')
    p.add_argument('--config', default='models/train/02_causal_finetune.yaml',
                   help='training YAML (losses, clip length)')
    p.add_argument('--every', type=int, default=1, help='every Nth clip (clips overlap: 1 frame apart)')
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for ckpt in args.checkpoint:
        t0 = time.perf_counter()
        result = heldout_loss(ckpt, args.data, args.config, every=args.every)
        print(json.dumps({'checkpoint': ckpt, **{k: round(v, 5) for k, v in result.items()},
                          'seconds': round(time.perf_counter() - t0, 1)}), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
