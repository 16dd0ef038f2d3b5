"""Adaptive action bins for the discrete head, from recorded episodes.

Per action dimension the [min, max] seen in the data, widened by 5 % of the range on each side,
cut into ``n`` bins (default 256); written as ``dataset_statistics_<n>_bins.json`` in the format of
``vla_adapter_core.heads.ActionBins``. Entry point ``vla-adapter-bins``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.data_config import add_dataset_arguments, dataset_config_from_args
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


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``vla-adapter-bins --data DIR [--n_action_bins 256] [--output_dir .]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    parser.add_argument('--n_action_bins', type=int, default=DEFAULT_BINS)
    parser.add_argument('--margin', type=float, default=DEFAULT_MARGIN,
                        help='widening of each side, as a fraction of the range')
    parser.add_argument('--output_dir', type=Path, default=Path('.'))
    args = parser.parse_args(argv)
    bins = compute_bins(load_episodes(dataset_config_from_args(args)), args.n_action_bins,
                        args.margin)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    output = args.output_dir / bins_file_name(args.n_action_bins)
    bins.to_json(output)
    print(f'{output}: {bins.action_dim} dimensions x {bins.n_bins} bins')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
