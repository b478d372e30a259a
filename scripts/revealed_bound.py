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

With --model, the shipped model is also rolled out as the eval does (`--window 1`) and each oracle fill is put in
place of the model's own revealed pixels, its seen pixels kept: the whole-frame gain over the Telea baseline
(frames 1-16; all frames for scripts longer than 17) and the revealed gain each oracle would give the model, beside
the model's own, against issue 14's gates (+0.5 dB on the frame, +1 dB on revealed pixels). With --textures, the
model's frames are also scored with texture added on their revealed pixels, from the start frame alone (no
oracle): the start frame's own detail (itself less its Gaussian blur of TEXTURE_SIGMA px), mirrored and displaced
so it does not lie where the truth's does, scaled so its gradient energy per pixel is A times the start frame's:
what structure in the scene's own kind costs the model's fill, and the band it buys.

Each scenario's line also gives `level`: the largest share of frames 1.. that any one gradient energy level puts in
the band around the truth's (a fill whose energy stays at one level, however chosen, in band on at most that
share), over all frames and over the frames at least 90% revealed: on those the fill is nearly the whole image, so a
fill that does not track the unseen structure's energy frame by frame is in band on about that share at most.

    .venv/bin/python scripts/revealed_bound.py --suite nav,memory,revisit [--model] [--out runs/revealed_bound.json]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import torch

from worldscape_ros.eval.baselines import ReprojectionInpaint, inpaint_holes, model_system
from worldscape_ros.eval.ground_truth import ground_truth
from worldscape_ros.eval.metrics import psnr
from worldscape_ros.eval.revealed import revealed_masks, revealed_scores
from worldscape_ros.eval.runner import roll_out
from worldscape_ros.eval.structure import StructureBand, gradient_energy, gradient_energy_ratio
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


TEXTURE_SIGMA = 3.0  # px: what lies above the start frame's Gaussian blur of this sigma is its texture


def scene_texture(start: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 start frame -> (H, W, 3) float32 texture in grey levels: its detail, flipped upside down and
    displaced by a third of the height and half the width, scaled to the start frame's gradient energy per pixel."""
    f = start.astype(np.float32)
    detail = f - cv2.GaussianBlur(f, (0, 0), TEXTURE_SIGMA)
    H, W = detail.shape[:2]
    tex = np.roll(detail[::-1], (H // 3, W // 2), axis=(0, 1))
    own = gradient_energy(np.clip(tex / 255 + 0.5, 0, 1))  # the energy of the texture alone, as the eval takes it
    return tex * np.sqrt(gradient_energy(start) / max(float(own), 1e-12))


def textured(model: np.ndarray, masks: np.ndarray, amplitudes: tuple[float, ...]) -> dict[str, np.ndarray]:
    """The model's frames (T, H, W, 3) uint8 with scene_texture(frame 0) times each amplitude added where revealed."""
    tex = scene_texture(model[0])[None] * masks[..., None]  # (T, H, W, 3)
    return {f'model+texture{a:g}': (model.astype(np.float32) + a * tex).round().clip(0, 255).astype(np.uint8)
            for a in amplitudes}


def level_share(truth: np.ndarray, frames: np.ndarray, band: StructureBand) -> float:
    """The largest share of `frames` (indices into truth (T, H, W, 3)) that one energy level puts in the band."""
    if len(frames) == 0:
        return float('nan')
    e = gradient_energy(truth[frames])
    # a level c passes frame t when low <= c / e_t <= high; the best c lies at one of the bounds e_t * low
    return max(float(band.passes(c / e).mean()) for c in np.concatenate([e * band.low, e * band.high]))


HORIZON = 16  # the gates' frames 1-16 (the eval's psnr_f1_16); all frames for longer scripts
GATE_FRAME_DB, GATE_REVEALED_DB = 0.5, 1.0  # issue 14: over reprojection_inpaint on the frame, on revealed pixels


def frame_psnr(frames: np.ndarray, truth: np.ndarray) -> float:
    """The gate's whole-frame PSNR: mean over frames 1-16, over all frames 1.. for a longer script."""
    last = len(truth) if len(truth) > HORIZON + 1 else HORIZON + 1
    return float(np.mean(psnr(frames[1:last], truth[1:last])))


def model_with_oracles(model: np.ndarray, oracles: dict[str, np.ndarray], masks: np.ndarray,
                       names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The model's frames (T, H, W, 3) as made, and with each named oracle's revealed pixels in place of its own."""
    out = {'model': model}
    for name in names:
        out[f'model+{name}'] = np.where(masks[..., None], oracles[name], model)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--suite', default='nav,memory,revisit')
    ap.add_argument('--blurs', default='2,4,8', help='Gaussian sigmas in pixels')
    ap.add_argument('--shifts', default='4,16', help='displacements of the true frame in pixels')
    ap.add_argument('--model', action='store_true',
                    help='also roll out the shipped model and put each oracle in place of its revealed pixels')
    ap.add_argument('--textures', default='',
                    help="with --model, amplitudes of the start frame's texture added on the model's revealed pixels")
    ap.add_argument('--checkpoint', help='the model to roll out (default: the shipped ws-tiny)')
    ap.add_argument('--threads', type=int, default=1, help="torch's CPU threads (the eval's default: 1)")
    ap.add_argument('--out', help='write the figures as JSON here')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    blurs = tuple(int(b) for b in args.blurs.split(','))
    shifts = tuple(int(d) for d in args.shifts.split(','))
    amplitudes = tuple(float(a) for a in args.textures.split(',') if a)
    band = StructureBand()
    system = model_system(args.checkpoint, window=1) if args.model else None
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for suite in load_suites(args.suite):
        for sc in suite.scenarios:
            gt = ground_truth(sc)
            assert gt.depth is not None  # the generator's scenarios carry their true depth
            masks = revealed_masks(gt.depth[0], gt.poses, gt.intrinsics)
            rows[f'{suite.name}/{sc.name}'] = scores = {}
            oracles = fills(gt.rgb, gt.depth[0], gt.poses, gt.intrinsics, masks, blurs, shifts)
            if system is not None:
                model = roll_out(system, gt, sc).rgb
                oracles |= model_with_oracles(model, oracles, masks, ('mean',) + tuple(f'blur{b}' for b in blurs))
                oracles |= textured(model, masks, amplitudes)
            unseen = np.flatnonzero(masks.reshape(len(masks), -1).mean(1) >= 0.9)
            scores['level'] = {'all': level_share(gt.rgb, np.arange(1, len(masks)), band),
                               'unseen': level_share(gt.rgb, unseen[unseen > 0], band), 'unseen_frames': len(unseen)}
            telea_frame = frame_psnr(oracles['telea'], gt.rgb)
            for name, f in oracles.items():
                s = revealed_scores(f, gt.rgb, masks, band)
                in_band = band.passes(gradient_energy_ratio(f[1:], gt.rgb[1:]))  # every frame, as the eval's
                scores[name] = {'revealed_psnr': s['revealed_psnr'], 'revealed_structure': s['revealed_structure'],
                                'frames_in_band': float(in_band.mean()),
                                'frame_gain': frame_psnr(f, gt.rgb) - telea_frame}
            level = scores['level']
            print(f'{suite.name}/{sc.name:28s} ' + '  '.join(
                f"{k} {v['revealed_psnr']:5.2f} ({v['frames_in_band']:.2f})" for k, v in scores.items()
                if k != 'level') + f"  level {level['all']:.2f} / {level['unseen']:.2f} of {level['unseen_frames']}",
                flush=True)
    names = [k for k in next(iter(rows.values())) if k != 'level']
    print('mean over scenarios: ' + '  '.join(
        f"{k} {np.nanmean([r[k]['revealed_psnr'] for r in rows.values()]):5.2f} "
        f"({np.mean([r[k]['frames_in_band'] for r in rows.values()]):.2f})" for k in names))
    if args.model:
        gated = [k for k in names if k.startswith('model')]
        print(f'\ngain over the Telea baseline, frame / revealed pixels (gates +{GATE_FRAME_DB} / +{GATE_REVEALED_DB})')
        print(f'{"scenario":36s}' + ''.join(f'{k:>18s}' for k in gated))
        for key, r in rows.items():
            rev = r['telea']['revealed_psnr']
            print(f'{key:36s}' + ''.join(
                f"{r[k]['frame_gain']:+8.2f} /{r[k]['revealed_psnr'] - rev:+7.2f}" for k in gated))
        print(f'\nframes in the band: {"scenario":26s}' + ''.join(f'{k:>18s}' for k in gated)
              + '  level (frames >= 90% revealed)')
        for key, r in rows.items():
            level = r['level']
            print(f'{key:46s}' + ''.join(f"{r[k]['frames_in_band']:18.2f}" for k in gated)
                  + (f"  {level['unseen']:.2f} of {level['unseen_frames']}" if level['unseen_frames'] else '  -'))
    if args.out:
        with open(args.out, 'w') as out:
            json.dump(rows, out, indent=1)


if __name__ == '__main__':
    main()
