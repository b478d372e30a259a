#!/usr/bin/env python
"""What a fill of the revealed pixels can score at best, from information no system has: ground-truth oracles
on the eval suites' revealed regions (pixels the start frame does not see), scored by the eval's own
`revealed_psnr` (pooled over frames with at least MIN_FRACTION revealed), and the share of frames 1.. whose whole
image lies in the structure band (gradient energy 0.7-1.3 of the truth's: the eval's `structure_pass`).

Each fill keeps the start frame's warp on the seen pixels (what every system here has there) and fills the rest:
- telea: OpenCV's Telea inpainting (the `reprojection_inpaint` baseline itself);
- mean: each frame's revealed region in its true mean colour (the best constant fill);
- blurS: the true frame blurred by a Gaussian of S pixels (the best fill that knows the true content down to
  that scale and nothing finer);
- shiftD: the true frame displaced by D pixels (the true texture, its colours and its gradient energy, D pixels
  from where it belongs: what a fill with the right structure but not the unseen content's own scores).

A method that cannot see the revealed content beats a smooth inpaint by at most about what the smooth oracles do;
the shifted truth shows what structure costs a fill that does not know where the content lies.

    .venv/bin/python scripts/revealed_bound.py --suite nav,memory,revisit [--out runs/revealed_bound.json]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from worldscape_ros.eval.baselines import ReprojectionInpaint, inpaint_holes
from worldscape_ros.eval.ground_truth import ground_truth
from worldscape_ros.eval.revealed import revealed_masks, revealed_scores
from worldscape_ros.eval.structure import StructureBand, gradient_energy_ratio
from worldscape_ros.eval.suites import load_suites


def shifted(frame: np.ndarray, d: int) -> np.ndarray:
    """(H, W, 3) -> the frame displaced d pixels to the right and down, mirrored at the border."""
    H, W = frame.shape[:2]
    padded = cv2.copyMakeBorder(frame, d, 0, d, 0, cv2.BORDER_REFLECT)
    return padded[:H, :W]


def fills(rgb: np.ndarray, depth0: np.ndarray, poses: np.ndarray, K: np.ndarray, masks: np.ndarray,
          blurs: tuple[int, ...], shifts: tuple[int, ...]) -> dict[str, np.ndarray]:
    """rgb (T, H, W, 3) uint8 ground truth, masks (T, H, W) revealed -> each oracle's frames (T, H, W, 3) uint8."""
    truth = rgb.astype(np.float32)
    baseline = ReprojectionInpaint()  # its warp and inpainting radius, so the Telea fill is the baseline's frames
    baseline.reset(rgb[0], poses[0], K, depth0)
    telea = np.stack([rgb[0]] + [inpaint_holes(*baseline.warp(p), baseline.radius)[0]
                                 for p in poses[1:]]).astype(np.float32)
    rev = masks[..., None]
    out = {'telea': telea, 'mean': telea.copy()}
    for t in range(1, len(truth)):
        if masks[t].any():
            out['mean'][t][masks[t]] = truth[t][masks[t]].mean(0)
    for s in blurs:
        out[f'blur{s}'] = np.where(rev, np.stack([cv2.GaussianBlur(f, (0, 0), s) for f in truth]), telea)
    for d in shifts:
        out[f'shift{d}'] = np.where(rev, np.stack([shifted(f, d) for f in truth]), telea)
    return {k: v.round().clip(0, 255).astype(np.uint8) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--suite', default='nav,memory,revisit')
    ap.add_argument('--blurs', default='2,4,8', help='Gaussian sigmas in pixels')
    ap.add_argument('--shifts', default='4,16', help='displacements of the true frame in pixels')
    ap.add_argument('--out', help='write the figures as JSON here')
    args = ap.parse_args()
    blurs = tuple(int(b) for b in args.blurs.split(','))
    shifts = tuple(int(d) for d in args.shifts.split(','))
    band = StructureBand()
    rows = {}
    for suite in load_suites(args.suite):
        for sc in suite.scenarios:
            gt = ground_truth(sc)
            masks = revealed_masks(gt.depth[0], gt.poses, gt.intrinsics)
            rows[f'{suite.name}/{sc.name}'] = scores = {}
            for name, f in fills(gt.rgb, gt.depth[0], gt.poses, gt.intrinsics, masks, blurs, shifts).items():
                s = revealed_scores(f, gt.rgb, masks, band)
                in_band = band.passes(gradient_energy_ratio(f[1:], gt.rgb[1:]))  # every frame, as the eval's
                scores[name] = {'revealed_psnr': s['revealed_psnr'], 'revealed_structure': s['revealed_structure'],
                                'frames_in_band': float(in_band.mean())}
            print(f'{suite.name}/{sc.name:28s} ' + '  '.join(
                f"{k} {v['revealed_psnr']:5.2f} ({v['frames_in_band']:.2f})" for k, v in scores.items()), flush=True)
    names = next(iter(rows.values())).keys()
    print('mean over scenarios: ' + '  '.join(
        f"{k} {np.nanmean([r[k]['revealed_psnr'] for r in rows.values()]):5.2f} "
        f"({np.mean([r[k]['frames_in_band'] for r in rows.values()]):.2f})" for k in names))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
