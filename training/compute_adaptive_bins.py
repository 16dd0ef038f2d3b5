"""Adaptive action bins for the discrete head, from recorded episodes.

Per action dimension the [min, max] seen in the data, widened by 5 % of the range on each side,
cut into ``n`` bins (default 256); written as ``dataset_statistics_<n>_bins.json`` in the format of
``vla_adapter_core.heads.ActionBins``. Entry point ``vla-adapter-bins``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.config_cli import build_config_parser, option, run_config_main
from training.data_config import DatasetConfig
from training.dataset import Episode, load_episodes
from vla_adapter_core.heads import ActionBins, bins_file_name

DEFAULT_BINS = 256
DEFAULT_MARGIN = 0.05


def compute_bins(episodes: Sequence[Episode], n_bins: int = DEFAULT_BINS,
                 margin: float = DEFAULT_MARGIN) -> ActionBins:
    """Bins over every action of ``episodes``."""
    if not episodes:
        raise ValueError('compute_bins: no episodes')
    actions = np.concatenate([episode.actions for episode in episodes])  # (N, A)
    return ActionBins.from_data(actions, n_bins=n_bins, margin=margin)


@dataclass
class BinsConfig:
    """What ``vla-adapter-bins`` reads and writes."""

    data: DatasetConfig
    n_action_bins: int = option(DEFAULT_BINS, help='bins per action dimension')
    margin: float = option(DEFAULT_MARGIN,
                           help='widening of each side, as a fraction of the range')
    output_dir: str = option('.', metavar='DIR',
                             help='where dataset_statistics_<n>_bins.json is written')

    def __post_init__(self) -> None:
        if not isinstance(self.n_action_bins, int) or self.n_action_bins < 2:
            raise ValueError(f'BinsConfig.n_action_bins={self.n_action_bins!r}: must be >= 2')
        if not self.margin >= 0:
            raise ValueError(f'BinsConfig.margin={self.margin!r}: must be >= 0')


def write_bins(config: BinsConfig) -> int:
    """Compute the bins of ``config.data`` and write them (checked: finite, low < high)."""
    bins = compute_bins(load_episodes(config.data), config.n_action_bins, config.margin)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / bins_file_name(config.n_action_bins)
    bins.to_json(output)
    print(f'{output}: {bins.action_dim} dimensions x {bins.n_bins} bins')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``vla-adapter-bins --data DIR [--n_action_bins 256] [--output_dir .] [--debug]``."""
    parser = build_config_parser(BinsConfig, prog='vla-adapter-bins',
                                 description=__doc__.splitlines()[0])
    return run_config_main(parser, BinsConfig, argv, write_bins)

if __name__ == '__main__':
    raise SystemExit(main())
