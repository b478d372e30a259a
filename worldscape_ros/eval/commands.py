"""`worldscape eval`: run scenario suites on the model and its baselines; write report.json, report.md, plots,
contact sheets and side-by-side MP4s under --out (resumable per scenario)."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worldscape_ros.errors import EvalError
from worldscape_ros.eval.baselines import (
    RepeatFirstFrame,
    Reprojection,
    ReprojectionInpaint,
    ReprojectionInpaintMean,
    ReprojectionRelit,
    ReprojectionRepeats,
    model_start_depth,
    model_system,
)
from worldscape_ros.eval.ground_truth import GroundTruth
from worldscape_ros.eval.plots import plot_report, write_media
from worldscape_ros.eval.pretrained import PretrainedMetrics
from worldscape_ros.eval.protocol import WorldSystem
from worldscape_ros.eval.report import build_report, render_markdown
from worldscape_ros.eval.runner import (
    EVAL_VERSION,
    SYSTEM_ORDER,
    Rollout,
    evaluate,
    load_json,
    scenario_path,
    write_json,
    write_text,
)
from worldscape_ros.eval.suites import HANDMADE_SUITES, SUITE_NAMES, VALIDATION_SUITES, Scenario, Suite, load_suites
from worldscape_ros.model.protocol import OfflineEngine

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'eval', help='measure the world model and its baselines against ground truth',
        description='Run scenario suites on the model (memory on), the same model with memory off, '
        'repeat-the-first-frame, reprojection of the start frame (holes empty) and the same reprojection with '
        'its holes inpainted; write report.json, report.md, plots, contact sheets and MP4s. Finished scenarios '
        'are skipped on a rerun.')
    p.add_argument('--checkpoint', default=None,
                   help="checkpoint .safetensors (default: the shipped one; 'random': a random init of --config)")
    p.add_argument('--config', default=None, help="model config name or YAML (default: the checkpoint's, or ws-tiny)")
    p.add_argument('--suite', default='nav',
                   help=f'{"|".join(SUITE_NAMES)}|all (the test suites), {"|".join(VALIDATION_SUITES)} (other '
                   f'held-out seeds, for choosing settings), {"|".join(HANDMADE_SUITES)} (a held-out scene written '
                   'by hand, outside the generator), a suite YAML path, or several joined by commas')
    p.add_argument('--out', required=True, type=Path, help='output folder')
    p.add_argument('--frames', type=int, default=None, help='override frames per scenario (idle keeps >= 101)')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--dtype', default='float32', help='float32 or bfloat16')
    p.add_argument('--systems', default=','.join(SYSTEM_ORDER),
                   help=f'comma-separated systems to run, of {", ".join(SYSTEM_ORDER)} (default: all)')
    p.add_argument('--rgb-only', action='store_true',
                   help='start every system without the start depth: the model predicts its own (its AbsRel at '
                   'frame 0 is reported) and both reprojections warp by that predicted depth')
    p.add_argument('--threads', type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument('--ablate', choices=('geometry',), default=None,
                   help='evaluate the model with a part switched off (geometry: no geometric guess); pair it with '
                   'a run without --ablate to read the part\'s effect')
    p.add_argument('--window', type=int, default=None,
                   help='rolling denoising window of the model systems: chunks denoised together over the known '
                   'trajectory (default: the config\'s sampler.rolling_window; 1: one chunk at a time, as live)')
    p.add_argument('--pretrained-metrics', default=None, type=Path, metavar='DIR',
                   help='folder with local weights for FID/FVD (see docs/evaluation.md); skipped when absent')
    p.add_argument('--no-media', action='store_true', help='skip MP4s and contact sheets')
    p.add_argument('--report-only', action='store_true',
                   help='rebuild the report from the scenarios already finished under --out; run nothing')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.set_defaults(func=run_eval)


def build_systems(names: list[str], args: argparse.Namespace) -> tuple[dict[str, WorldSystem], dict[str, Any]]:
    """The systems asked for, and what identifies them (checkpoint hash, config, model size and fps). With
    --rgb-only the reprojections take the model's predicted start depth (from the 'model' engine, or from one
    loaded for that alone)."""
    unknown = [n for n in names if n not in SYSTEM_ORDER]
    if unknown or not names:
        raise EvalError(f'unknown systems {", ".join(unknown) or "(none)"}; choose from {", ".join(SYSTEM_ORDER)}')
    systems: dict[str, WorldSystem] = {}
    info: dict[str, Any] = {'checkpoint': args.checkpoint or 'shipped default', 'checkpoint_sha256': None,
                            'config': args.config, 'ablate': args.ablate, 'window': None}
    fps = 10.0
    model: OfflineEngine | None = None  # the memory-on engine, whose start depth an RGB-only start reprojects

    def identify(engine: OfflineEngine) -> float:
        cfg = engine.config
        info.update(checkpoint_sha256=engine.sha256, config=cfg.name, model_size=[cfg.width, cfg.height, cfg.fps])
        return cfg.fps

    for name in SYSTEM_ORDER:
        if name not in names:
            continue
        if name in ('model', 'memory_off'):
            engine = model_system(args.checkpoint, args.config, args.device, args.dtype, memory=name == 'model',
                                  geometry=args.ablate != 'geometry', window=args.window)
            fps = identify(engine)
            info['window'] = engine.window
            systems[name] = engine
            model = engine if name == 'model' else model
    start_depth = None
    if args.rgb_only and any(n.startswith('reprojection') for n in names):  # every reprojection needs a depth
        if model is None:
            model = model_system(args.checkpoint, args.config, args.device, args.dtype, window=1)
            fps = identify(model)
        start_depth = model_start_depth(model)  # runs between the model's rollouts, never inside one
    for name in SYSTEM_ORDER:  # baselines integrate actions at the model's frame rate
        if name == 'repeat_first_frame' and name in names:
            systems[name] = RepeatFirstFrame(fps)
        elif name == 'reprojection' and name in names:
            systems[name] = Reprojection(fps, start_depth=start_depth)
        elif name == 'reprojection_inpaint' and name in names:
            systems[name] = ReprojectionInpaint(fps, start_depth=start_depth)
        elif name == 'reprojection_inpaint_mean' and name in names:
            systems[name] = ReprojectionInpaintMean(fps, start_depth=start_depth)
        elif name == 'reprojection_repeats' and name in names:
            systems[name] = ReprojectionRepeats(fps, start_depth=start_depth)
        elif name == 'reprojection_relit' and name in names:
            systems[name] = ReprojectionRelit(fps, start_depth=start_depth)
    return {n: systems[n] for n in SYSTEM_ORDER if n in systems}, info


def run_eval(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    _set_threads(args.threads)
    suites = load_suites(args.suite, args.frames)
    names = [n.strip() for n in args.systems.split(',') if n.strip()]
    pretrained = PretrainedMetrics(args.pretrained_metrics)
    systems, info = build_systems(names, args)
    size = tuple(info['model_size']) if 'model_size' in info else None
    fingerprint = _fingerprint(args, list(systems), info, size)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    fresh: list[str] = []  # the scenarios rolled out in this run (the others were finished before)
    if args.report_only:
        scenarios = _finished_only(suites, out, fingerprint, size)
    else:
        scenarios = evaluate(suites, systems, out, fingerprint, media=_on_rollouts(args.no_media, pretrained, fresh),
                             size=size, progress=not args.no_progress, rgb_only=args.rgb_only)
    report = build_report(scenarios, _run_meta(args, suites, info, pretrained, scenarios, len(fresh), t0))
    write_json(out / 'report.json', report)
    write_text(out / 'report.md', render_markdown(report))
    plots = plot_report(report, out)
    log.info('wrote %s, %s and %d plots in %.1f s', out / 'report.json', out / 'report.md', len(plots),
             time.perf_counter() - t0)
    return 0


def _set_threads(threads: int) -> None:
    if threads < 0:
        raise EvalError(f'--threads must be >= 0, got {threads}')
    if threads:
        import torch

        torch.set_num_threads(threads)


def _fingerprint(args: argparse.Namespace, systems: list[str], info: dict[str, Any],
                    size: tuple[Any, ...] | None) -> dict[str, Any]:
    """What a finished scenario must have been run with to be reused rather than rerun."""
    return {'eval_version': EVAL_VERSION, 'systems': systems, 'checkpoint_sha256': info['checkpoint_sha256'],
            'config': info['config'], 'device': args.device, 'dtype': args.dtype, 'frames': args.frames,
            'size': size, 'ablate': info['ablate'], 'window': info['window'], 'rgb_only': args.rgb_only,
            'ground_truth_gl': ground_truth_gl()}


def _finished_only(suites: list[Suite], out: Path, fingerprint: dict[str, Any],
                   size: tuple[Any, ...] | None) -> list[dict[str, Any]]:
    """--report-only: the scenarios already finished for these settings (a warning names those that are not)."""
    scenarios, missing = finished(suites, out, fingerprint, size)
    if missing:
        log.warning('%d scenarios not finished, left out of the report: %s', len(missing), ', '.join(missing))
    if not scenarios:
        raise EvalError(f'no finished scenarios under {out} for these settings')
    return scenarios


def _on_rollouts(no_media: bool, pretrained: PretrainedMetrics,
                 fresh: list[str]) -> Callable[[Scenario, GroundTruth, dict[str, Rollout], Path], None]:
    """What is done with a scenario's rollouts while its frames are at hand: its MP4s and contact sheets, its
    frames' share of the pretrained metrics; its key is noted in `fresh`."""
    def on_rollouts(scenario: Scenario, gt: GroundTruth, rollouts: dict[str, Rollout], out_dir: Path) -> None:
        fresh.append(scenario.key)
        if not no_media:
            write_media(scenario, gt, rollouts, out_dir)
        if gt.has_frames:
            pretrained.add(gt.rgb, {n: r.rgb for n, r in rollouts.items()})

    return on_rollouts


def _run_meta(args: argparse.Namespace, suites: list[Suite], info: dict[str, Any], pretrained: PretrainedMetrics,
              scenarios: list[dict[str, Any]], fresh: int, t0: float) -> dict[str, Any]:
    """The report's provenance: what was run, where, how, and the pretrained metrics of the `fresh` scenarios."""
    extra: dict[str, Any] = {}
    if pretrained.active:
        extra = {'note': f'computed on the {fresh} scenarios rolled out in this run (resumed ones have no '
                 'frames kept)', **pretrained.compute()}
    return {
        'suite': args.suite, 'suite_names': [s.name for s in suites],
        'seeds': sorted({sc.seed for s in suites for sc in s.scenarios}),
        'frames': args.frames, 'checkpoint': info['checkpoint'], 'checkpoint_sha256': info['checkpoint_sha256'],
        'config': info['config'], 'ablate': info['ablate'], 'window': info['window'], 'device': args.device,
        'rgb_only': args.rgb_only,
        'dtype': args.dtype, 'ground_truth_gl': ground_truth_gl(),
        'host': platform.node(),
        'cpu_threads': _threads(), 'date': datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
        'eval_version': EVAL_VERSION, 'skipped_metrics': pretrained.skipped(), 'pretrained_metrics': extra,
        'resumed_scenarios': len(scenarios) - fresh,
        'wall_s': time.perf_counter() - t0,
        'scenario_wall_s': sum(float(s.get('wall_s', 0.0)) for s in scenarios),
    }


def ground_truth_gl() -> str:
    """The GL backend MuJoCo renders the ground truth through: OSMesa and a GPU's EGL draw the same scene a few
    grey levels apart (39-44 dB), and a system started from another start frame makes other frames, so figures
    compare only under one backend."""
    return os.environ.get('MUJOCO_GL', 'osmesa')


def finished(suites: list[Suite], out: Path, fingerprint: dict[str, Any],
             size: tuple[Any, ...] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The scenario results already on disk for these settings, and the keys of those missing."""
    done, missing = [], []
    for suite in suites:
        for sc in suite.scenarios:
            sc = sc.resized(*size) if size is not None else sc
            data = load_json(scenario_path(out, sc))
            if data is not None and data.get('fingerprint') == fingerprint:
                done.append(data)
            else:
                missing.append(sc.key)
    return done, missing


def _threads() -> int:
    import torch

    return torch.get_num_threads()

