#!/usr/bin/env python
"""What a fill of the revealed pixels can score at best, from information no system has: ground-truth oracles
on the eval suites' revealed regions (pixels the start frame does not see), scored by the eval's own
`revealed_psnr` (pooled over frames with at least MIN_FRACTION revealed).

- mean: each frame's revealed region filled with its true mean colour (the best constant fill);
- blurS: the true frame blurred by a Gaussian of S pixels there (the best fill that knows the true content down
  to that scale and nothing finer).

A method that cannot see the revealed content beats a smooth inpaint by at most about what these oracles do:
the figures bound the revealed-pixel goals of the model.

    .venv/bin/python scripts/revealed_bound.py --suite nav,revisit [--out runs/revealed_bound.json]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from worldscape_ros.eval.ground_truth import ground_truth
from worldscape_ros.eval.revealed import revealed_masks, revealed_scores
from worldscape_ros.eval.suites import load_suites


def oracles(rgb: np.ndarray, masks: np.ndarray, blurs: tuple[int, ...]) -> dict[str, float]:
    """rgb (T, H, W, 3) uint8 ground truth, masks (T, H, W) revealed -> revealed PSNR of each oracle fill."""
    truth = rgb.astype(np.float32)
    fills = {'mean': truth.copy()}
    for t in range(1, len(truth)):
        if masks[t].any():
            fills['mean'][t][masks[t]] = truth[t][masks[t]].mean(0)
    for s in blurs:
        blurred = np.stack([cv2.GaussianBlur(f, (0, 0), s) for f in truth])
        fills[f'blur{s}'] = np.where(masks[..., None], blurred, truth)
    return {name: revealed_scores(f.round().astype(np.uint8), rgb, masks)['revealed_psnr']
            for name, f in fills.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--suite', default='nav,revisit')
    ap.add_argument('--blurs', default='2,4,8', help='Gaussian sigmas in pixels')
    ap.add_argument('--out', help='write the figures as JSON here')
    args = ap.parse_args()
    blurs = tuple(int(b) for b in args.blurs.split(','))
    rows = {}
    for suite in load_suites(args.suite):
        for sc in suite.scenarios:
            gt = ground_truth(sc)
            masks = revealed_masks(gt.depth[0], gt.poses, gt.intrinsics)
            rows[f'{suite.name}/{sc.name}'] = scores = oracles(gt.rgb, masks, blurs)
            print(f'{suite.name}/{sc.name:32s} ' + '  '.join(f'{k} {v:5.2f}' for k, v in scores.items()), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
