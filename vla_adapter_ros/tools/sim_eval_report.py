"""What sim-eval writes and prints: plots, the camera strip and the summary table."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_plots(output: Path, policy: list[list[float]], baselines: dict[str, list[list[int]]],
                summaries: dict[str, dict]) -> None:
    """rewards.png (mean reward per step) and success.png (success and mean max reward)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    figure, axis = pyplot.subplots(figsize=(7, 4))
    for name, rewards in {'policy': policy, **baselines}.items():
        length = min(len(sequence) for sequence in rewards)
        curve = np.mean([sequence[:length] for sequence in rewards], axis=0)
        axis.plot(np.arange(length) * 0.02, curve, label=name)
    axis.set_xlabel('time in episode (s)')
    axis.set_ylabel('mean reward (4 = transferred)')
    axis.legend()
    figure.tight_layout()
    figure.savefig(output / 'rewards.png', dpi=100)
    pyplot.close(figure)
    figure, axes = pyplot.subplots(1, 2, figsize=(8, 3.5))
    names = list(summaries)
    axes[0].bar(names, [100 * summaries[name]['success_rate'] for name in names])
    axes[0].set_ylabel('success (%)')
    axes[1].bar(names, [summaries[name]['mean_max_reward'] for name in names])
    axes[1].set_ylabel('mean max reward')
    for axis in axes:
        axis.tick_params(axis='x', rotation=20)
    figure.tight_layout()
    figure.savefig(output / 'success.png', dpi=100)
    pyplot.close(figure)


def write_strip(output: Path, frames: list[np.ndarray], columns: int = 8) -> None:
    """top_camera.png: ``columns`` frames spread over the episode; top_camera.gif: all."""
    from PIL import Image as PilImage
    if not frames:
        return
    picks = np.linspace(0, len(frames) - 1, min(columns, len(frames))).round().astype(int)
    strip = np.concatenate([frames[index] for index in picks], axis=1)  # (H, W * columns, 3)
    PilImage.fromarray(strip).save(output / 'top_camera.png')
    images = [PilImage.fromarray(frame) for frame in frames]
    images[0].save(output / 'top_camera.gif', save_all=True, append_images=images[1:],
                   duration=100, loop=0)


def _rate(summary: dict) -> str:
    low, high = summary['success_ci95']
    rate = 100 * summary['success_rate']
    return (f'{summary["successes"]:3d}/{summary["episodes"]:<3d} {rate:3.0f} % '
            f'[{100 * low:3.0f}, {100 * high:3.0f}]')


def print_report(report: dict) -> None:
    """The summary table on stdout: success with its 95 % interval, reward levels, verdicts."""
    print(f'{"":20s} {"success [95 % interval]":>26s} {"mean max reward":>16s}  '
          'episodes reaching reward 0/1/2/3/4')
    for name, summary in report['summary'].items():
        levels = '/'.join(str(summary['reward_levels'][str(level)]) for level in range(5))
        print(f'{name:20s} {_rate(summary):>26s} {summary["mean_max_reward"]:16.2f}  {levels}')
    for name, comparison in report.get('against_baselines', {}).items():
        print(f'policy vs {name}: {comparison["verdict"]}')
    latency = report['inference_ms']
    if latency['chunks']:
        print(f'inference latency: p50 {latency["p50"]:.0f} ms, p99 {latency["p99"]:.0f} ms '
              f'over {latency["chunks"]} chunks; {report["wall_s_per_episode"]:.1f} s of wall '
              'time per episode')
    if report.get('simulator_phases_s'):
        phases = ', '.join(f'{name} {seconds:.2f} s'
                           for name, seconds in report['simulator_phases_s'].items())
        print(f'simulator wall time per episode: {phases}')
    if report['executor_faults']:
        print(f'executor faults: {report["executor_faults"]}')
    print(f'report, plots and camera strip: {report["output_dir"]}')
