"""Aggregate scenario results into report.json (every figure) and report.md (a table).

report.json: `results` -> system -> metric -> mean over all scenarios run; `suites` -> suite -> the same;
`curves` -> suite -> system -> metric -> per-frame mean; `scenarios` -> suite/name -> system -> figures;
`reference` -> ground_truth -> metric (each metric run on the ground truth: its best attainable value);
plus the suites, seeds, checkpoint and its hash, device, date, wall time and skipped metrics with reasons.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from worldscape_ros.eval.runner import REFERENCE, SYSTEM_ORDER

# (metric, label, better) in table order: fidelity always beside structure, memory beside return PSNR.
TABLE_ROWS = (
    ('psnr', 'PSNR dB', 'higher'),
    ('psnr_f1_4', 'PSNR frames 1-4 dB', 'higher'),
    ('psnr_f1_16', 'PSNR frames 1-16 dB', 'higher'),
    ('seen_psnr', 'PSNR on pixels the start frame sees dB', 'higher'),
    ('seen_structure', 'gradient energy on seen pixels / GT', 'near 1'),
    ('ssim', 'SSIM', 'higher'),
    ('structure', 'gradient energy / GT (band 0.7-1.3)', 'near 1'),
    ('structure_pass', 'frames in structure band', 'higher'),
    ('gmsd', 'GMSD', 'lower'),
    ('depth_absrel', 'depth AbsRel', 'lower'),
    ('depth_delta1', 'depth delta<1.25', 'higher'),
    ('rot_err_deg', 'rotation error deg', 'lower'),
    ('trans_err_deg', 'translation direction error deg', 'lower'),
    ('motion_recovered', 'pairs with motion recovered', 'higher'),
    ('revealed_psnr', 'PSNR on newly revealed pixels dB', 'higher'),
    ('revealed_structure', 'gradient energy on revealed pixels / GT', 'near 1'),
    ('revealed_fraction', 'revealed part of those frames', '-'),
    ('revealed_noise_frames', 'revealed regions flagged as patch noise (frames)', 'lower'),
    ('revealed_noise_flag', 'scenarios flagged: patch noise on revealed pixels', 'lower'),
    ('start_depth_absrel', 'start depth AbsRel (RGB-only start, frame 0)', 'lower'),
    ('start_depth_delta1', 'start depth delta<1.25 (RGB-only start)', 'higher'),
    ('memory_symmetry', 'memory symmetry (SSIM out/return)', 'higher'),
    ('memory_specificity', 'memory specificity', 'higher'),
    ('return_psnr', 'PSNR of return frames dB', 'higher'),
    ('return_structure', 'gradient energy of return frames / GT', 'near 1'),
    ('return_unseen_psnr', 'PSNR of return frames on pixels unseen at start dB', 'higher'),
    ('revisit_psnr', 'second look vs first, unseen pixels: PSNR dB', 'higher'),
    ('revisit_ssim', 'second look vs first, unseen pixels: SSIM', 'higher'),
    ('return_unseen_fraction', 'unseen part of return frames', '-'),
    ('unseen_pairs', 'revisit pairs scored on unseen pixels, per scenario', '-'),
    ('idle_ssim', 'idle SSIM frame 100 vs 1', 'higher'),
    ('hand_iou', 'hand mask IoU', 'higher'),
    ('object_error_px', 'object position error px', 'lower'),
    ('object_found', 'frames with the object found', 'higher'),
    ('static_change', 'static scene change, frame 1 to last (grey levels)', 'lower'),
    ('latency_ms', 'latency per frame ms', 'lower'),
)


# Per-scenario tables in report.md: by suite, the figures each script is judged by.
PER_SCENARIO = {
    'nav': ('psnr_f1_16', 'seen_psnr', 'revealed_psnr', 'revealed_fraction', 'revealed_structure'),
    'memory': ('psnr_f1_16', 'psnr', 'seen_psnr', 'revealed_psnr', 'return_psnr', 'return_unseen_psnr'),
    'revisit': ('psnr_f1_16', 'psnr', 'seen_psnr', 'revealed_psnr', 'return_unseen_psnr', 'revisit_psnr',
                'revisit_ssim'),
    'idle': ('idle_ssim', 'structure_pass'),
    'manip': ('psnr_f1_16', 'hand_iou', 'object_error_px', 'object_found', 'static_change', 'structure_pass'),
}


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def _aggregate(scenarios: list[dict[str, Any]], key: str) -> dict[str, dict[str, float | None]]:
    """system -> metric -> mean over scenarios of the scenario figure."""
    pooled: dict[str, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for sc in scenarios:
        for system, res in sc.get(key, {}).items():
            for metric, value in res['summary'].items():
                pooled[system][metric].append(value)
    return {s: {m: _mean(v) for m, v in metrics.items()} for s, metrics in _ordered(pooled).items()}


def _curves(scenarios: list[dict[str, Any]]) -> dict[str, dict[str, list[float | None]]]:
    """system -> metric -> per-frame mean over scenarios (scenarios of different length pooled per frame)."""
    pooled: dict[str, dict[str, list[list[float | None]]]] = defaultdict(lambda: defaultdict(list))
    for sc in scenarios:
        for key in ('systems', 'reference'):
            for system, res in sc.get(key, {}).items():
                for metric, curve in res['per_frame'].items():
                    pooled[system][metric].append(curve)
    out: dict[str, dict[str, list[float | None]]] = {}
    for system, metrics in _ordered(pooled).items():
        out[system] = {}
        for metric, curves in metrics.items():
            n = max(len(c) for c in curves)
            out[system][metric] = [_mean([c[t] for c in curves if t < len(c)]) for t in range(n)]
    return out


def _ordered(d: dict[str, Any]) -> dict[str, Any]:
    order = list(SYSTEM_ORDER) + [REFERENCE]
    return {k: d[k] for k in sorted(d, key=lambda k: (order.index(k) if k in order else len(order), k))}


def build_report(scenarios: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    by_suite: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sc in scenarios:
        by_suite[sc['suite']].append(sc)
    return {
        **meta,
        'results': _aggregate(scenarios, 'systems'),
        'reference': _aggregate(scenarios, 'reference'),
        'suites': {name: {'results': _aggregate(scs, 'systems'), 'reference': _aggregate(scs, 'reference'),
                          'seeds': sorted({s['seed'] for s in scs}), 'scenarios': [s['scenario'] for s in scs]}
                   for name, scs in by_suite.items()},
        'curves': {name: _curves(scs) for name, scs in by_suite.items()},
        'scenarios': {f"{sc['suite']}/{sc['scenario']}": {
            'script': sc['script'], 'seed': sc['seed'], 'frames': sc['frames'],
            'systems': {s: r['summary'] for s, r in sc['systems'].items()},
            'reference': {s: r['summary'] for s, r in sc.get('reference', {}).items()}} for sc in scenarios},
    }


def _fmt(x: float | None) -> str:
    if x is None:
        return '-'
    return f'{x:.3f}' if abs(x) < 10 else f'{x:.1f}'


def results_table(results: dict[str, dict[str, float | None]], reference: dict[str, dict[str, float | None]]) -> str:
    systems = list(results) + [s for s in reference if s not in results]
    merged = {**results, **reference}
    header = '| metric | better | ' + ' | '.join(systems) + ' |'
    lines = [header, '|' + '---|' * (len(systems) + 2)]
    for metric, label, better in TABLE_ROWS:
        row = [merged[s].get(metric) for s in systems]
        if all(v is None for v in row):
            continue
        lines.append(f'| {label} | {better} | ' + ' | '.join(_fmt(v) for v in row) + ' |')
    return '\n'.join(lines)


def scenario_table(report: dict[str, Any], keys: list[str], metric: str) -> str:
    """One row per scenario, one column per system (and the ground truth), for one metric; '' when no scenario
    has it."""
    scenarios = report['scenarios']
    systems = list(_ordered({s: 1 for k in keys for s in scenarios[k]['systems']}))
    refs = list(_ordered({s: 1 for k in keys for s in scenarios[k].get('reference', {})}))
    rows = []
    for k in keys:
        sc = scenarios[k]
        values = [sc['systems'].get(s, {}).get(metric) for s in systems] + \
            [sc.get('reference', {}).get(s, {}).get(metric) for s in refs]
        if any(v is not None for v in values):
            rows.append(f'| {k.split("/", 1)[1]} | ' + ' | '.join(_fmt(v) for v in values) + ' |')
    if not rows:
        return ''
    header = ['| scenario | ' + ' | '.join(systems + refs) + ' |', '|' + '---|' * (len(systems) + len(refs) + 1)]
    return '\n'.join(header + rows)


def render_markdown(report: dict[str, Any]) -> str:
    out = [
        f"# WorldScape evaluation: suite {report.get('suite')}",
        '',
        f"- checkpoint: {report.get('checkpoint')} (sha256 {report.get('checkpoint_sha256')}), config "
        f"{report.get('config')}; ablated: {report.get('ablate') or 'nothing'}; rolling window: "
        f"{report.get('window') or 1} chunk(s)",
        f"- device: {report.get('device')}; date: {report.get('date')}; wall time: {report.get('wall_s', 0):.1f} s",
        f"- seeds: {report.get('seeds')}; frames per scenario: {report.get('frames')}",
        '',
        'Columns are systems; `ground_truth` is each metric run on the ground truth itself (its attainable value).',
        'Fidelity (PSNR, SSIM) rewards a collapse to mean colours: read it beside the structure rows (gradient',
        'energy relative to ground truth must stay near 1; blur falls below, noise rises above). Memory symmetry',
        'rewards two identical blurs: read it beside the return frames\' PSNR and the specificity.',
        '',
        '## All scenarios',
        '',
        results_table(report['results'], report.get('reference', {})),
    ]
    for name, suite in report.get('suites', {}).items():
        out += ['', f'## Suite {name} (seeds {suite["seeds"]})', '', results_table(suite['results'],
                                                                                 suite.get('reference', {}))]
    labels = {m: label for m, label, _ in TABLE_ROWS}
    for name, metrics in PER_SCENARIO.items():
        keys = [k for k in report.get('scenarios', {}) if k.split('/', 1)[0] == name]
        if not keys:
            continue
        out += ['', f'## Suite {name}, per scenario', '']
        for metric in metrics:
            table = scenario_table(report, keys, metric)
            if table:
                out += [f'{labels.get(metric, metric)}:', '', table, '']
    skipped = report.get('skipped_metrics') or {}
    if skipped:
        out += ['', '## Skipped metrics', ''] + [f'- {k}: {v}' for k, v in skipped.items()]
    extra = report.get('pretrained_metrics') or {}
    if extra:
        out += ['', '## Pretrained-network metrics', ''] + [f'- {k}: {v}' for k, v in extra.items()]
    return '\n'.join(out) + '\n'
