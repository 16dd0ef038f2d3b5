"""Per-dimension statistics of actions and proprio over a set of recorded episodes.

Writes upstream's ``dataset_statistics.json`` format, read by ``vla_adapter_core.normalization``::

    {unnorm_key: {'action': {mean, std, min, max, q01, q99, mask},
                  'proprio': {...}, 'num_transitions': N, 'num_trajectories': E}}

Entry point ``vla-adapter-stats``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.config_cli import build_config_parser, option, run_config_main
from training.data_config import DatasetConfig
from training.dataset import Episode, load_episodes
from training.lerobot_episodes import stats_differences
from vla_adapter_core.normalization import STATISTICS_FILE, check_statistics, save_statistics


def feature_statistics(values: np.ndarray) -> dict:
    """mean, std, min, max, q01, q99 and an all-true mask per dimension of (N, D) values."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f'statistics need (N, D) values with N > 0, got {values.shape}')
    return {
        'mean': values.mean(axis=0).tolist(),
        'std': values.std(axis=0).tolist(),
        'min': values.min(axis=0).tolist(),
        'max': values.max(axis=0).tolist(),
        'q01': np.quantile(values, 0.01, axis=0).tolist(),
        'q99': np.quantile(values, 0.99, axis=0).tolist(),
        'mask': [True] * values.shape[1],
    }


def compute_statistics(episodes: Sequence[Episode], unnorm_key: str = 'default') -> dict:
    """Statistics over every step of ``episodes`` (one entry named ``unnorm_key``).

    They are checked as a checkpoint's are (finite, ordered), so invalid statistics stop here,
    before anything is written or trained.
    """
    if not episodes:
        raise ValueError('compute_statistics: no episodes')
    actions = np.concatenate([episode.actions for episode in episodes])  # (N, A)
    proprio = np.concatenate([episode.proprio for episode in episodes])  # (N, P)
    statistics = {unnorm_key: {
        'action': feature_statistics(actions),
        'proprio': feature_statistics(proprio),
        'num_transitions': int(actions.shape[0]),
        'num_trajectories': len(episodes),
    }}
    check_statistics(statistics, f'statistics of {len(episodes)} episodes')
    return statistics


@dataclass
class StatisticsConfig:
    """What ``vla-adapter-stats`` reads and writes."""

    data: DatasetConfig
    output: str = option(STATISTICS_FILE, metavar='FILE', help='statistics file to write')
    unnorm_key: str = option('default', help='name of the dataset entry (the policy config '
                                             'unnorm_key)')

    def __post_init__(self) -> None:
        for name in ('output', 'unnorm_key'):
            if not getattr(self, name):
                raise ValueError(f'StatisticsConfig.{name}={getattr(self, name)!r}: empty')


def write_statistics(config: StatisticsConfig) -> int:
    """Compute the statistics of ``config.data`` and write them to ``config.output``."""
    episodes = load_episodes(config.data)
    statistics = compute_statistics(episodes, config.unnorm_key)
    for line in stats_differences(episodes):
        print(f'note: {line}')
    output = Path(config.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    notes = save_statistics(statistics, output)
    entry = statistics[config.unnorm_key]
    print(f'{output}: {entry["num_trajectories"]} episodes, '
          f'{entry["num_transitions"]} steps')
    if notes:
        print(f'note: constant dimensions (zero range): {"; ".join(notes)}')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``vla-adapter-stats --data DIR [--output dataset_statistics.json] [--debug]``."""
    parser = build_config_parser(StatisticsConfig, prog='vla-adapter-stats',
                                 description=__doc__.splitlines()[0])
    return run_config_main(parser, StatisticsConfig, argv, write_statistics)

if __name__ == '__main__':
    raise SystemExit(main())
