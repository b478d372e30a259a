"""Training curves: read the metrics.csv of one or more runs and draw each logged loss against the step."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from worldscape_ros.errors import TrainError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.train.loop import METRICS_FILE

NOT_LOSSES = ('step', 'wall_s', 'samples_per_s', 'grad_norm', 'lr')  # logged, but not curves to compare


def read_metrics(run: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv of a run folder (or the file itself) -> column -> [(step, value)], finite values only."""
    path = run / METRICS_FILE if run.is_dir() else run
    if not path.is_file():
        raise TrainError(f'{path}: no metrics file (is {run} a run folder of `worldscape train`?)')
    with path.open(newline='') as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or 'step' not in reader.fieldnames:
            raise TrainError(f'{path}: not a metrics file (no step column)')
        columns: dict[str, list[tuple[int, float]]] = {k: [] for k in reader.fieldnames if k != 'step'}
        for i, row in enumerate(reader, start=2):
            try:
                step = int(row['step'])
            except (TypeError, ValueError):
                raise TrainError(f'{path}, line {i}: bad step {row.get("step")!r}') from None
            for key in columns:
                try:
                    value = float(row[key])
                except (TypeError, ValueError):
                    continue  # a column added after this row (empty) or a non-number
                if math.isfinite(value):
                    columns[key].append((step, value))
    return columns


def plot_runs(runs: Sequence[Path], out: Path, columns: Sequence[str] | None = None) -> list[str]:
    """One panel per loss column, one line per run (log scale where a panel spans over a decade); returns
    the columns drawn."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    data = {str(r): read_metrics(r) for r in runs}
    names = list(dict.fromkeys(k for cols in data.values() for k, v in cols.items() if v and k not in NOT_LOSSES))
    if columns:
        missing = [c for c in columns if c not in names]
        if missing:
            raise TrainError(f'no run logged {", ".join(missing)}; logged: {", ".join(names) or "nothing"}')
        names = list(columns)
    if not names:
        raise TrainError(f'no loss columns with values in {", ".join(map(str, runs))}')
    n = len(names)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), dpi=110, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for run, cols_of_run in data.items():
            points = cols_of_run.get(name, [])
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker='.', markersize=3, label=Path(run).name)
        seen = [v for c in data.values() for _, v in c.get(name, [])]
        if seen and min(seen) > 0 and max(seen) > 10 * min(seen):  # losses spanning decades
            ax.set_yscale('log')
        ax.set_title(name)
        ax.set_xlabel('step')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.suffix.lstrip('.') or 'png')
    finally:
        plt.close(fig)
    return names
