"""``vla-adapter-plot-training``: training curves of one or more runs as one PNG.

Reads each run's ``metrics.jsonl`` (written by ``vla-adapter-train``) and draws the training
loss (smoothed over ``--smooth`` logged points) and the validation L1 in raw action units
(rad; grippers 0..1) against the step, one colour per run:

    vla-adapter-plot-training --run dual_arm=runs/a --run l1=runs/b --output curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

import numpy as np

from vla_adapter_core.cli_errors import add_debug_flag, run_reporting_errors

PROG = 'vla-adapter-plot-training'
METRICS_FILE = 'metrics.jsonl'


def read_metrics(run: Path) -> tuple[list[dict], list[dict]]:
    """(train rows, val rows) of ``run``/metrics.jsonl; ValueError naming the file."""
    path = run / METRICS_FILE
    if not path.is_file():
        raise ValueError(f'{path}: no such file (is {run} a vla-adapter-train run directory?)')
    train, val = [], []
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path}:{number}: not JSON ({error.msg})') from None
        (val if row.get('split') == 'val' else train).append(row)
    return train, val


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    if window <= 1 or values.size == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, values.size + 1), window)
    return (cumulative[1:] - cumulative[np.arange(values.size) + 1 - counts]) / counts


def plot(runs: dict[str, Path], output: Path, window: int) -> None:
    """One PNG: train loss (left), validation raw L1 (right)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 3.8))
    for name, run in runs.items():
        train, val = read_metrics(run)
        steps = np.array([row['step'] for row in train])
        loss = np.array([row['loss'] for row in train])
        left.plot(steps, smooth(loss, window), label=name)
        rows = [row for row in val if 'l1_raw' in row]
        right.plot([row['step'] for row in rows], [row['l1_raw'] for row in rows], 'o-',
                   label=name, markersize=3)
    left.set(xlabel='step', ylabel='training loss', yscale='log')
    right.set(xlabel='step', ylabel='validation L1 (rad; grippers 0..1)', yscale='log')
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    pyplot.close(figure)


def _run_argument(text: str) -> tuple[str, Path]:
    name, separator, path = text.partition('=')
    if not separator:
        name, path = Path(text).name, text
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; a user error is one line and exit status 2."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument('--run', action='append', required=True, type=_run_argument,
                        metavar='[NAME=]DIR', help='a run directory (repeat for several)')
    parser.add_argument('--output', type=Path, required=True, help='PNG file to write')
    parser.add_argument('--smooth', type=int, default=10,
                        help='moving average over this many logged training points')
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def work() -> None:
        plot(dict(args.run), args.output, args.smooth)
        print(f'{PROG}: wrote {args.output}')
    return run_reporting_errors(PROG, work, debug=args.debug)


if __name__ == '__main__':
    sys.exit(main())
