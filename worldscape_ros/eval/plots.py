"""Figures of an evaluation: metric against frame index (every system on one axes), contact sheets of
generated against ground-truth frames, and a side-by-side MP4 per scenario."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from worldscape_ros.eval.ground_truth import GroundTruth
from worldscape_ros.eval.runner import Rollout
from worldscape_ros.eval.suites import Scenario
from worldscape_ros.fileio import atomic_path, atomic_write_bytes

log = logging.getLogger(__name__)

PLOT_METRICS = {
    'psnr': 'PSNR (dB)', 'ssim': 'SSIM', 'structure': 'gradient energy / ground truth', 'gmsd': 'GMSD',
    'depth_absrel': 'depth AbsRel', 'rot_err_deg': 'rotation error (deg)',
    'trans_err_deg': 'translation direction error (deg)', 'hand_iou': 'hand mask IoU',
    'seen_psnr': 'PSNR on pixels the start frame sees (dB)', 'revealed_psnr': 'PSNR on revealed pixels (dB)',
    'object_error_px': 'object position error (px)',
}
# perfect by definition on the ground truth: not drawn for it
TRIVIAL_ON_TRUTH = ('psnr', 'ssim', 'structure', 'gmsd', 'depth_absrel', 'seen_psnr', 'revealed_psnr')
STYLE = {'model': ('C0', '-'), 'memory_off': ('C1', '-'), 'repeat_first_frame': ('C7', '--'),
         'reprojection': ('C2', '--'), 'reprojection_inpaint': ('C3', '--'),
         'reprojection_inpaint_mean': ('C4', '--'), 'reprojection_repeats': ('C5', '--'),
         'reprojection_relit': ('C6', '--'), 'ground_truth': ('k', ':')}


def plot_curves(curves: dict[str, dict[str, list[float | None]]], suite: str, out_dir: Path) -> list[Path]:
    """One PNG per metric: the metric against frame index, one line per system."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    written = []
    for metric, label in PLOT_METRICS.items():
        lines = {s: c[metric] for s, c in curves.items() if metric in c and not (s == 'ground_truth' and metric in
                                                                               TRIVIAL_ON_TRUTH)}
        if not any(any(v is not None for v in y) for y in lines.values()):
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
        for system, y in lines.items():
            yy = np.array([np.nan if v is None else v for v in y], dtype=np.float64)
            colour, style = STYLE.get(system, (None, '-'))
            ax.plot(np.arange(len(yy)), yy, style, color=colour, marker='.', label=system)
        if metric == 'structure':
            ax.axhspan(0.7, 1.3, color='g', alpha=0.08, label='pass band')
            ax.set_yscale('log')
        ax.set_xlabel('frame index')
        ax.set_ylabel(label)
        ax.set_title(f'{suite}: {label}')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f'{suite}_{metric}.png'
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp)
        finally:
            plt.close(fig)
        written.append(path)
    return written


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(img, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def contact_sheet(gt: GroundTruth, rollouts: dict[str, Rollout], columns: int = 6) -> np.ndarray:
    """Rows: ground truth, then each system; columns: evenly spaced frames. (H', W', 3) uint8 RGB."""
    T = len(gt.poses)
    idx = np.unique(np.linspace(0, T - 1, min(columns, T)).round().astype(int))
    H, W = gt.rgb.shape[1:3]
    blank = np.zeros((H, W, 3), np.uint8)
    rows = []
    named = ([('ground_truth', gt.rgb)] if gt.has_frames else []) + [(n, r.rgb) for n, r in rollouts.items()]
    for name, frames in named:
        tiles = [_label(frames[t] if t < len(frames) else blank, f'{name} {t}' if t == idx[0] else f'{t}')
                 for t in idx]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def side_by_side(gt: GroundTruth, rollouts: dict[str, Rollout]) -> np.ndarray:
    """(T, H, W * n, 3): ground truth then each system, labelled."""
    T = len(gt.poses)
    H, W = gt.rgb.shape[1:3]
    panels = ([('ground_truth', gt.rgb)] if gt.has_frames else []) + [(n, r.rgb) for n, r in rollouts.items()]
    frames = []
    for t in range(T):
        tiles = [_label(f[t] if t < len(f) else np.zeros((H, W, 3), np.uint8), n) for n, f in panels]
        frames.append(np.concatenate(tiles, axis=1))
    return np.stack(frames)


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f'could not encode {path}')
    atomic_write_bytes(path, buf.tobytes())


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio.v3 as iio

    h, w = frames.shape[1:3]
    even = frames[:, : h - h % 2, : w - w % 2]  # H.264 wants even sizes
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, even, fps=fps, codec='libx264', macro_block_size=1)


def write_media(scenario: Scenario, gt: GroundTruth, rollouts: dict[str, Rollout], out: Path) -> None:
    """The scenario's contact sheet (PNG) and side-by-side video (MP4) under out/media/<suite>/."""
    base = out / 'media' / scenario.suite
    write_png(base / f'{scenario.name}_sheet.png', contact_sheet(gt, rollouts))
    try:
        write_mp4(base / f'{scenario.name}.mp4', side_by_side(gt, rollouts), scenario.fps)
    except (OSError, RuntimeError, ValueError) as exc:  # no ffmpeg: the figures still stand
        log.warning('no MP4 for %s: %s', scenario.key, exc)


def plot_report(report: dict[str, Any], out: Path) -> list[Path]:
    written = []
    for suite, curves in report.get('curves', {}).items():
        written += plot_curves(curves, suite, out / 'plots')
    return written
