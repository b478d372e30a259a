"""Run scenarios on systems, score them against ground truth, save each scenario atomically (resumable).

For every scenario: 1. render the ground truth; 2. roll out each system from the same start, driven by the
same commands (NavActions for navigation, the camera pose plus hand keypoints for manipulation); 3. score each
rollout; 4. write the side-by-side MP4 and contact sheet, then the scenario's JSON last, so a JSON on disk
means the scenario is complete. A rerun with the same fingerprint (systems, checkpoint hash, sizes) skips it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldscape_ros.errors import EvalError
from worldscape_ros.eval import metrics as M
from worldscape_ros.eval.action_following import action_following
from worldscape_ros.eval.ground_truth import GroundTruth, drive_command, ground_truth
from worldscape_ros.eval.objects import MIN_PIXELS, object_position_error, static_change
from worldscape_ros.eval.protocol import WorldSystem
from worldscape_ros.eval.revealed import region_curves, revealed_masks, revealed_scores
from worldscape_ros.eval.revisit import return_pairs, revisit_scores
from worldscape_ros.eval.structure import StructureBand, gmsd, gradient_energy_ratio
from worldscape_ros.eval.suites import Scenario, Suite
from worldscape_ros.fileio import atomic_write_bytes
from worldscape_ros.model.protocol import RollingEngine, StreamingEngine, frames_per_step
from worldscape_ros.synthetic.hand import BONE_RADIUS

log = logging.getLogger(__name__)

EVAL_VERSION = 5  # bump when a metric's definition changes: old scenario results are then recomputed
SYSTEM_ORDER = ('model', 'memory_off', 'repeat_first_frame', 'reprojection', 'reprojection_inpaint',
                'reprojection_inpaint_mean', 'reprojection_repeats', 'reprojection_relit')
HORIZON = 16  # frames 1-16: the short-horizon PSNR every nav script reports, whatever its length
REFERENCE = 'ground_truth'  # the metrics run on the ground truth itself: each metric's floor or ceiling
FINGER_RADIUS_M = BONE_RADIUS  # the synthetic hand's bone radius, for the keypoint mask


@dataclass
class Rollout:
    rgb: np.ndarray  # (T, H, W, 3) uint8, frame 0 = the start frame
    depth: np.ndarray  # (T, H, W) float32
    poses: np.ndarray  # (T, 4, 4) as the system reports them
    latency_ms: np.ndarray  # (T - 1,)
    start_depth: np.ndarray | None = None  # (H, W): the depth an RGB-only start made for itself (None: given)


def roll_out(system: WorldSystem, gt: GroundTruth, scenario: Scenario, rgb_only: bool = False) -> Rollout:
    """Reset the system on the start frame and step it through the scenario's commands. rgb_only: the start
    depth is withheld; the system's frame 0 (its reset's return) then carries the depth it made for itself."""
    depth0 = None if gt.depth is None else gt.depth[0]
    hand0 = None if gt.keypoints3d is None else gt.keypoints3d[0]  # a hand in the start frame is not scene
    start = system.reset(gt.rgb[0], gt.poses[0], gt.intrinsics, None if rgb_only else depth0, hand_keypoints=hand0)
    start_depth = None
    if rgb_only:
        start_depth = (np.full(gt.rgb.shape[1:3], np.nan, np.float32) if start is None
                       else np.asarray(start.depth, np.float32))
    T = gt.frames
    commands = [drive_command(gt, t, scenario.kind) for t in range(1, T)]
    hands = [None if gt.keypoints3d is None else gt.keypoints3d[t] for t in range(1, T)]
    chunk = frames_per_step(system)
    frames = []
    latency = []
    if isinstance(system, RollingEngine) and system.window > 1:  # the rolling window over the known trajectory
        pad = -(T - 1) % chunk  # whole chunks: hold the last command, keep only the frames asked for
        t0 = time.perf_counter()
        frames = system.rollout(commands + commands[-1:] * pad, hands + hands[-1:] * pad)[: T - 1]
        latency = [1e3 * (time.perf_counter() - t0) / (T - 1)] * (T - 1)
    elif chunk > 1 and isinstance(system, StreamingEngine):
        for k in range(0, T - 1, chunk):
            cmds, kps = commands[k:k + chunk], hands[k:k + chunk]
            pad = chunk - len(cmds)  # the last chunk: hold the last command, keep only the frames asked for
            t0 = time.perf_counter()
            out = system.step_chunk(cmds + [cmds[-1]] * pad, kps + [kps[-1]] * pad)[: len(cmds)]
            latency += [1e3 * (time.perf_counter() - t0) / len(cmds)] * len(cmds)
            frames += out
    else:
        for cmd, kp in zip(commands, hands):
            t0 = time.perf_counter()
            frames.append(system.step(cmd, kp))
            latency.append(1e3 * (time.perf_counter() - t0))
    H, W = gt.rgb.shape[1:3]
    for f in frames:
        if f.rgb.shape != (H, W, 3):
            raise EvalError(f'scenario {scenario.key}: the system made {f.rgb.shape} frames, ground truth is '
                            f'{(H, W, 3)}; evaluate at the model\'s size')
    first_depth = np.full((H, W), np.nan, np.float32) if depth0 is None else depth0.astype(np.float32)
    if start_depth is not None:
        first_depth = start_depth
    return Rollout(rgb=np.stack([gt.rgb[0]] + [f.rgb for f in frames]),
                   depth=np.stack([first_depth] + [np.asarray(f.depth, np.float32) for f in frames]),
                   poses=np.stack([gt.poses[0]] + [np.asarray(f.pose, np.float64) for f in frames]),
                   latency_ms=np.asarray(latency, np.float64), start_depth=start_depth)


def score(scenario: Scenario, gt: GroundTruth, rollout: Rollout, band: StructureBand | None = None) -> dict[str, Any]:
    """Per-frame curves (index = frame; frame 0 is the given start, NaN) and scenario figures."""
    band = band or StructureBand()
    scores = Scores(gt.frames)
    gen = rollout.rgb
    if gt.has_frames:
        _image_scores(scores, gen, gt, rollout.depth, band)
    if rollout.start_depth is not None and gt.depth is not None:
        absrel, delta1 = M.depth_errors(rollout.start_depth[None], gt.depth[:1])
        scores.summary['start_depth_absrel'], scores.summary['start_depth_delta1'] = float(absrel[0]), float(delta1[0])
    if scenario.kind == 'nav':
        _motion_scores(scores, scenario, gen, gt)
        _unseen_scores(scores, gen, gt, band)
    if scenario.script in ('out_and_back', 'loop'):
        _memory_scores(scores, gen, gt)
    if scenario.script == 'idle' and gt.frames >= 3:
        scores.summary['idle_ssim'] = M.idle_drift_ssim(gen, first=1, last=-1)
    if scenario.kind == 'manip':
        _manipulation_scores(scores, gen, gt)
    if len(rollout.latency_ms):
        scores.add_curve('latency_ms', rollout.latency_ms)
    for name, c in scores.curves.items():  # a curve's scenario figure, unless pooled otherwise above
        scores.summary.setdefault(name, M.nanmean(c[1:]))
    return {'summary': scores.summary, 'per_frame': {k: v.tolist() for k, v in scores.curves.items()}}


@dataclass
class Scores:
    """What score gathers for one rollout: curves over its frames and the scenario's figures."""

    frames: int
    curves: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (frames,), NaN where not measured
    summary: dict[str, float] = field(default_factory=dict)

    def add_curve(self, name: str, values: np.ndarray, frames: np.ndarray | None = None) -> None:
        """values at `frames` (default: frames 1..T-1); frame 0, the given start, stays NaN."""
        c = np.full(self.frames, np.nan)
        c[np.arange(1, self.frames) if frames is None else frames] = values
        self.curves[name] = c


def _image_scores(scores: Scores, gen: np.ndarray, gt: GroundTruth, depth: np.ndarray, band: StructureBand) -> None:
    """Each generated frame against the true one: PSNR, SSIM, structure, GMSD, and depth where it is known."""
    scores.add_curve('psnr', M.psnr(gen[1:], gt.rgb[1:]))
    scores.add_curve('ssim', M.ssim(gen[1:], gt.rgb[1:]))
    ratio = gradient_energy_ratio(gen[1:], gt.rgb[1:])
    scores.add_curve('structure', ratio)
    scores.add_curve('structure_pass', band.passes(ratio).astype(np.float64))
    scores.add_curve('gmsd', gmsd(gen[1:], gt.rgb[1:]))
    scores.summary['psnr_f1_4'] = M.nanmean(scores.curves['psnr'][1:5])
    scores.summary['psnr_f1_16'] = M.nanmean(scores.curves['psnr'][1:HORIZON + 1])
    if gt.depth is not None:
        absrel, delta1 = M.depth_errors(depth[1:], gt.depth[1:])
        scores.add_curve('depth_absrel', absrel)
        scores.add_curve('depth_delta1', delta1)


def _motion_scores(scores: Scores, scenario: Scenario, gen: np.ndarray, gt: GroundTruth) -> None:
    """Action following: the camera motion recovered from the generated frames against the commanded one (a
    script that moves, over more than one stride)."""
    if scenario.script == 'idle' or gt.frames <= scenario.stride:
        return
    af = action_following(gen, gt.poses, gt.intrinsics, stride=scenario.stride)
    scores.add_curve('rot_err_deg', af.rot_err_deg, af.frame_index)
    scores.add_curve('trans_err_deg', af.trans_err_deg, af.frame_index)
    scores.summary['motion_recovered'] = float(af.recovered.mean()) if len(af.recovered) else math.nan


def _unseen_scores(scores: Scores, gen: np.ndarray, gt: GroundTruth, band: StructureBand) -> None:
    """The pixels the start frame saw apart from those it did not (revealed), and the second look at the unseen
    ones when the path returns to them."""
    if not gt.has_frames or gt.depth is None or gt.frames <= 1:
        return
    unseen = revealed_masks(gt.depth[0], gt.poses, gt.intrinsics)
    scores.summary.update(revealed_scores(gen, gt.rgb, unseen, band))
    scores.curves.update(region_curves(gen, gt.rgb, unseen))  # per frame; the scenario's figures are pooled above
    pairs = return_pairs(gt.poses)
    if pairs:
        scores.summary.update(revisit_scores(gen, gt.rgb, unseen, pairs))


def _memory_scores(scores: Scores, gen: np.ndarray, gt: GroundTruth) -> None:
    """A path that comes back: do the return frames agree with the outbound ones, and with the truth."""
    pairs = M.revisit_pairs(gt.poses)
    scores.summary['memory_symmetry'] = M.memory_symmetry(gen, pairs)
    scores.summary['memory_specificity'] = M.memory_specificity(gen, pairs, gt.poses)
    scores.summary['revisit_pairs'] = float(len(pairs))
    if gt.has_frames and pairs:
        back = [j for _, j in pairs if j > 0]
        scores.summary['return_psnr'] = M.pooled_psnr(gen[back], gt.rgb[back])
        scores.summary['return_structure'] = M.nanmean(gradient_energy_ratio(gen[back], gt.rgb[back]))


def _manipulation_scores(scores: Scores, gen: np.ndarray, gt: GroundTruth) -> None:
    """The generated hand against its keypoints; the object found where it truly is; the rest of the table still."""
    if gt.keypoints2d is not None and gt.keypoints3d is not None:
        z = np.median(np.clip(gt.keypoints3d[..., 2], 1e-3, None), axis=1)  # (T,)
        radius = gt.intrinsics[0, 0] * FINGER_RADIUS_M / z
        scores.add_curve('hand_iou', M.hand_iou(gen, gt.keypoints2d, gt.visibility, radius)[1:])
    if gt.object_masks is not None and gt.hand_masks is not None and gt.frames > 1:
        if gt.object_masks[0].sum() >= MIN_PIXELS:  # an object hidden at the start has no colour to find it by
            found = object_position_error(gen, gt.rgb[0], gt.object_masks, gt.hand_masks)
            scores.add_curve('object_error_px', found['object_error_px'][1:])
            scores.add_curve('object_found', found['object_found'][1:])
        scores.summary['static_change'] = static_change(gen, gt.hand_masks | gt.object_masks)


def scenario_path(out: Path, scenario: Scenario) -> Path:
    return out / 'scenarios' / scenario.suite / f'{scenario.name}.json'


def run_scenario(scenario: Scenario, systems: Mapping[str, WorldSystem], out: Path, fingerprint: dict[str, Any],
                 media: Callable[[Scenario, GroundTruth, dict[str, Rollout], Path], None] | None = None,
                 size: tuple[int, int, float] | None = None, rgb_only: bool = False) -> dict[str, Any]:
    """Score one scenario on every system (or load it when already done with the same fingerprint).
    rgb_only: every system starts without the start depth (the reference keeps the true one)."""
    if size is not None:
        scenario = scenario.resized(*size)
    path = scenario_path(out, scenario)
    done = load_json(path)
    if done is not None and done.get('fingerprint') == fingerprint:
        log.debug('%s already done, skipped', scenario.key)
        return done
    t0 = time.perf_counter()
    gt = ground_truth(scenario)
    rollouts = {name: roll_out(system, gt, scenario, rgb_only) for name, system in systems.items()}
    reference = Rollout(gt.rgb, gt.depth if gt.depth is not None else np.full(gt.rgb.shape[:3], np.nan, np.float32),
                        gt.poses, np.zeros(0), None if not rgb_only or gt.depth is None else gt.depth[0])
    result = {
        'scenario': scenario.name, 'suite': scenario.suite, 'kind': scenario.kind, 'script': scenario.script,
        'seed': scenario.seed, 'frames': scenario.frames, 'size': [scenario.width, scenario.height],
        'fps': scenario.fps, 'stride': scenario.stride, 'fingerprint': fingerprint,
        'systems': {name: score(scenario, gt, r) for name, r in rollouts.items()},
        'reference': {REFERENCE: score(scenario, gt, reference)} if gt.has_frames else {},
    }
    if media is not None:
        media(scenario, gt, rollouts, out)
    result['wall_s'] = time.perf_counter() - t0
    write_json(path, result)
    return result


def evaluate(suites: list[Suite], systems: Mapping[str, WorldSystem], out: Path, fingerprint: dict[str, Any],
             media: Callable[[Scenario, GroundTruth, dict[str, Rollout], Path], None] | None = None,
             size: tuple[int, int, float] | None = None, progress: bool = True,
             rgb_only: bool = False) -> list[dict[str, Any]]:
    """Every scenario of every suite, in order, with a progress bar; returns the scenario results."""
    from tqdm import tqdm

    scenarios = [s for suite in suites for s in suite.scenarios]
    results = []
    bar = tqdm(scenarios, desc='eval', unit='scenario', disable=not progress)
    for scenario in bar:
        bar.set_postfix_str(scenario.key)
        results.append(run_scenario(scenario, systems, out, fingerprint, media, size, rgb_only))
    return results


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None  # NaN: not defined here
    return x


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(_jsonable(data), indent=1, allow_nan=False).encode())


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def load_json(path: Path) -> dict[str, Any] | None:
    """A finished scenario's results, or None when absent or unreadable (then it is recomputed)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
