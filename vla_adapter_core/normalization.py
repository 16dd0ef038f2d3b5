"""Action / proprio normalisation to [-1, 1] with bounds (min/max) or bounds_q99 (q01/q99).

Statistics follow upstream's ``dataset_statistics.json``:
``{dataset: {'action': {mean, std, min, max, q01, q99, mask}, 'proprio': {...}}}``. Dimensions
whose mask is false pass through unchanged (a missing mask means all true).
"""

from __future__ import annotations

import json
import os

import numpy as np

from vla_adapter_core.config import NormalizationConfig

STATISTICS_FILE = 'dataset_statistics.json'
BOUND_KEYS = {'bounds': ('min', 'max'), 'bounds_q99': ('q01', 'q99')}
OUTPUT_SPACES = ('normalized', 'raw')  # what an action head's predict_actions returns


def load_statistics(path: str | os.PathLike) -> dict:
    """Read a ``dataset_statistics.json`` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'dataset statistics file not found: {str(path)!r}')
    with open(path, encoding='utf-8') as handle:
        statistics = json.load(handle)
    if not isinstance(statistics, dict) or not statistics:
        raise ValueError(f'{str(path)!r}: expected a non-empty {{dataset: statistics}} object')
    return statistics


def save_statistics(statistics: dict, path: str | os.PathLike) -> None:
    """Write a ``dataset_statistics.json`` file."""
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(_lists(statistics), handle, indent=2)


def _lists(value):
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Bounds:
    """Low/high bounds and mask of one feature ('action' or 'proprio')."""

    def __init__(self, entry: dict, mode: str, name: str, dim: int) -> None:
        low_key, high_key = BOUND_KEYS[mode]
        for key in (low_key, high_key):
            if key not in entry:
                raise ValueError(f'statistics[{name!r}] lacks {key!r} needed by mode={mode!r}')
        self.low = np.asarray(entry[low_key], dtype=np.float64)
        self.high = np.asarray(entry[high_key], dtype=np.float64)
        mask = entry.get('mask')
        self.mask = (np.ones_like(self.low, dtype=bool) if mask is None
                     else np.asarray(mask, dtype=bool))
        for label, array in (('low', self.low), ('high', self.high), ('mask', self.mask)):
            if array.shape != (dim,):
                raise ValueError(f'statistics[{name!r}] {label} has shape {array.shape}, '
                                 f'expected ({dim},)')


class Normalizer:
    """Maps raw actions / proprio to [-1, 1] and back using one dataset's statistics."""

    def __init__(self, statistics: dict, config: NormalizationConfig, action_dim: int,
                 proprio_dim: int | None) -> None:
        if config.unnorm_key not in statistics:
            raise ValueError(f'unnorm_key={config.unnorm_key!r} is not in the dataset statistics '
                             f'(available: {sorted(statistics)})')
        entry = statistics[config.unnorm_key]
        self.config = config
        self.statistics = statistics
        self.action = _Bounds(entry['action'], config.mode, 'action', action_dim)
        self.proprio = None
        if proprio_dim is not None and 'proprio' in entry:
            self.proprio = _Bounds(entry['proprio'], config.mode, 'proprio', proprio_dim)
        elif proprio_dim is not None:
            raise ValueError(f'statistics[{config.unnorm_key!r}] has no proprio entry but the '
                             'policy uses proprio')

    def _normalize(self, values: np.ndarray, bounds: _Bounds) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        scaled = 2.0 * (values - bounds.low) / (bounds.high - bounds.low + self.config.eps) - 1.0
        return np.clip(np.where(bounds.mask, scaled, values), -1.0, 1.0)

    def normalize_proprio(self, proprio: np.ndarray) -> np.ndarray:
        """Raw state (..., P) -> float64 in [-1, 1] (masked-out dims clipped raw values)."""
        if self.proprio is None:
            raise ValueError('this normalizer has no proprio statistics')
        return self._normalize(proprio, self.proprio)

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """Raw actions (..., A) -> float64 in [-1, 1] (training targets)."""
        return self._normalize(actions, self.action)

    def unnormalize_actions(self, normalized: np.ndarray) -> np.ndarray:
        """Normalised actions (..., A) -> raw float64 actions; masked-out dims pass through.

        ``0.5 * (a + 1)`` is computed in the input precision (float32 from the model) before it
        meets the float64 statistics, as upstream does.
        """
        normalized = np.asarray(normalized)
        half = 0.5 * (normalized + 1)
        bounds = self.action
        raw = half * (bounds.high - bounds.low + self.config.eps) + bounds.low
        return np.where(bounds.mask, raw, normalized).astype(np.float64)

    def actions_from_head(self, predicted: np.ndarray,
                          output_space: str) -> tuple[np.ndarray, np.ndarray]:
        """A head's predicted actions (..., A) -> (raw float64, normalised float32) actions.

        ``output_space`` is the head's (``head.output_space``): ``'normalized'`` predictions are
        un-normalised, ``'raw'`` ones (the discrete head's bin centres) are normalised. The policy
        and training's evaluation both convert through here.
        """
        if output_space not in OUTPUT_SPACES:
            raise ValueError(f'output_space={output_space!r}: expected one of {OUTPUT_SPACES}')
        if output_space == 'raw':
            actions = np.asarray(predicted, dtype=np.float64)
            return actions, self.normalize_actions(actions).astype(np.float32)
        normalized = np.asarray(predicted)
        return self.unnormalize_actions(normalized), normalized.astype(np.float32)
