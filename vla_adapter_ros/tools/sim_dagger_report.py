"""What `vla-adapter-sim-dagger` writes: per-round rows, the table and the success plot."""

from __future__ import annotations

import json
from pathlib import Path

from vla_adapter_ros.pipeline import status
from vla_adapter_ros.recording.bag_format import read_episode_metadata


def finished_rounds(run: Path, round_file: str) -> list[int]:
    """The rounds 0, 1, ... whose ``round_file`` exists, up to the first missing one."""
    done = []
    while (run / f'round_{len(done)}' / round_file).is_file():
        done.append(len(done))
    return done


def takeover_fraction(bags: list[Path]) -> float:
    """Share of the recorded time the policy was not in control (handover, operator, hold).

    From the recorder's sidecar intervals (recording/control_log.py).
    """
    total = taken = 0.0
    for bag in bags:
        intervals = read_episode_metadata(bag)['control']['intervals']
        for entry in intervals:
            if entry['stop_s'] is None:
                continue
            length = entry['stop_s'] - entry['start_s']
            total += length
            if entry['source'] != status.CONTROL_POLICY:
                taken += length
    return taken / total if total > 0 else 0.0


def round_row(index: int, policy: Path, summary: dict, bags: list[Path], fraction: float,
              minutes: float, trained: Path) -> dict:
    """One round's entry of the table (also its round.json)."""
    return {'round': index, 'checkpoint': str(policy), 'episodes': summary['episodes'],
            'successes': summary['successes'], 'success_rate': summary['success_rate'],
            'success_ci95': summary['success_ci95'], 'episodes_collected': len(bags),
            'bags': [str(bag) for bag in bags], 'takeover_fraction': round(fraction, 4),
            'training_minutes': round(minutes, 2), 'trained_checkpoint': str(trained)}


def _markdown(rows: list[dict], final: dict | None) -> str:
    lines = ['| round | success | 95 % interval | episodes collected | takeover fraction | '
             'training minutes |', '| --- | --- | --- | --- | --- | --- |']
    for row in rows:
        low, high = row['success_ci95']
        lines.append(f"| {row['round']} | {row['successes']}/{row['episodes']} "
                     f"({100 * row['success_rate']:.0f} %) | {100 * low:.0f}-{100 * high:.0f} % "
                     f"| {row['episodes_collected']} | {100 * row['takeover_fraction']:.0f} % | "
                     f"{row['training_minutes']:.1f} |")
    if final is not None:
        low, high = final['success_ci95']
        lines.append(f"| {final['round']} (final) | {final['successes']}/{final['episodes']} "
                     f"({100 * final['success_rate']:.0f} %) | {100 * low:.0f}-{100 * high:.0f}"
                     ' % | - | - | - |')
    return '\n'.join(lines) + '\n'


def write_table_and_plot(run: Path, rows: list[dict], final: dict | None) -> None:
    """dagger.md, dagger.json and dagger.png (success per round, 95 % Wilson interval)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    (run / 'dagger.md').write_text(_markdown(rows, final))
    (run / 'dagger.json').write_text(json.dumps({'rounds': rows, 'final': final}, indent=1))
    points = [*rows, *([final] if final is not None else [])]
    rates = [100 * point['success_rate'] for point in points]
    errors = [[rate - 100 * point['success_ci95'][0] for rate, point in zip(rates, points)],
              [100 * point['success_ci95'][1] - rate for rate, point in zip(rates, points)]]
    figure, axis = pyplot.subplots(figsize=(6, 4))
    axis.errorbar([point['round'] for point in points], rates, yerr=errors, marker='o',
                  capsize=4)
    axis.set_xlabel('round (policy after that many fine-tunings)')
    axis.set_ylabel('success on held-out seeds (%)')
    axis.set_ylim(-2, 102)
    axis.set_xticks([point['round'] for point in points])
    figure.tight_layout()
    figure.savefig(run / 'dagger.png', dpi=100)
    pyplot.close(figure)
