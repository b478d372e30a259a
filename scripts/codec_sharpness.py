"""How sharp a checkpoint's codec is: encode and decode held-out episodes, report reconstruction PSNR and the
gradient-energy ratio to the ground truth (the structure check's measure; a codec below 0.7 caps every model
decoded through it under the band).

usage: python scripts/codec_sharpness.py CHECKPOINT [CHECKPOINT ...] --episodes FOLDER
(make the folder with `worldscape datagen --kind nav --episodes 6 --frames 16 --seed 95000 --out FOLDER`)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from worldscape_ros.data.episode import read_episode
from worldscape_ros.eval import metrics as M
from worldscape_ros.eval.structure import gradient_energy_ratio
from worldscape_ros.model.checkpoint import load_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoints', nargs='+')
    p.add_argument('--episodes', required=True, type=Path)
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    episodes = [read_episode(f) for f in sorted(args.episodes.glob('*.episode.npz'))]
    if not episodes:
        raise SystemExit(f'{args.episodes}: no episodes')
    for path in args.checkpoints:
        model, _ = load_checkpoint(path)
        model.eval()
        psnr, ratio = [], []
        for ep in episodes:
            video = torch.from_numpy(ep.rgb).float().div(255).permute(0, 3, 1, 2)[None]  # (1, T, 3, H, W)
            with torch.no_grad():
                recon = model.codec.decode(model.codec.encode(video))[0]  # (T, 3, H, W)
            out = (recon.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)  # (T, H, W, 3)
            psnr.extend(M.psnr(out, ep.rgb))  # the evaluation's own measures
            ratio.extend(gradient_energy_ratio(out, ep.rgb))
        print(f'{path}: {len(episodes)} episodes, {len(psnr)} frames: reconstruction PSNR {np.mean(psnr):.2f} dB, '
              f'gradient energy / truth {np.mean(ratio):.3f}')


if __name__ == '__main__':
    main()
