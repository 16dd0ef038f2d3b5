"""Action / proprio normalisation to [-1, 1] with bounds (min/max) or bounds_q99 (q01/q99).

Statistics follow upstream's ``dataset_statistics.json``:
``{dataset: {'action': {mean, std, min, max, q01, q99, mask}, 'proprio': {...}}}``. Dimensions
whose mask is false pass through unchanged (a missing mask means all true).

Statistics are checked whenever they are read or written (:func:`check_statistics`): every value
finite, ``min <= max``, ``q01 <= q99``, ``std >= 0``, one length per feature. A zero range
(a constant dimension) is allowed and said once per load in a :class:`StatisticsWarning`.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from vla_adapter_core.config import NormalizationConfig

STATISTICS_FILE = 'dataset_statistics.json'
BOUND_KEYS = {'bounds': ('min', 'max'), 'bounds_q99': ('q01', 'q99')}
OUTPUT_SPACES = ('normalized', 'raw')  # what an action head's predict_actions returns


FEATURES = ('action', 'proprio')
VALUE_KEYS = ('mean', 'std', 'min', 'max', 'q01', 'q99')
RANGE_KEYS = (('min', 'max'), ('q01', 'q99'))


class StatisticsWarning(UserWarning):
    """Statistics that load but deserve a word: constant (zero-range) dimensions."""


def _vector(source: str, name: str, value, length: int | None) -> np.ndarray:
    """``value`` as a 1-d float64 array of ``length`` values; ValueError naming ``name``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'{source}: {name} = {value!r}: not a list of numbers') from None
    if array.ndim != 1 or array.size == 0 or length not in (None, array.size):
        expected = 'a non-empty list' if length is None else f'{length} values'
        raise ValueError(f'{source}: {name} has shape {array.shape}, expected {expected}')
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f'{source}: {name}[{bad[0]}] = {array[bad[0]]}: not finite '
                         f'({bad.size} non-finite values)')
    return array


def _check_feature(source: str, name: str, feature) -> list[str]:
    """One feature's arrays (see :func:`check_statistics`); returns its zero-range notes."""
    if not isinstance(feature, dict):
        raise ValueError(f'{source}: {name} must be an object of per-dimension statistics, '
                         f'got {type(feature).__name__}')
    arrays, length = {}, None
    for key in VALUE_KEYS:
        if key in feature:
            arrays[key] = _vector(source, f'{name}.{key}', feature[key], length)
            length = arrays[key].size
    mask = np.ones(length or 0, dtype=bool)
    if feature.get('mask') is not None:
        mask = np.asarray(feature['mask'])
        if mask.dtype != bool or mask.ndim != 1 or length not in (None, mask.size):
            raise ValueError(f'{source}: {name}.mask must be {length or "some"} booleans, got '
                             f'{feature["mask"]!r}')
    if 'std' in arrays and (arrays['std'] < 0).any():
        index = int(np.flatnonzero(arrays['std'] < 0)[0])
        raise ValueError(f'{source}: {name}.std[{index}] = {arrays["std"][index]}: negative')
    notes, reported = [], ~mask  # masked-out dimensions are never reported
    for low_key, high_key in RANGE_KEYS:
        if low_key not in arrays or high_key not in arrays:
            continue
        low, high = arrays[low_key], arrays[high_key]
        inverted = np.flatnonzero(low > high)
        if inverted.size:
            index = int(inverted[0])
            raise ValueError(f'{source}: {name}.{low_key}[{index}] = {low[index]} > '
                             f'{high_key}[{index}] = {high[index]}: inverted range')
        constant = (low == high) & ~reported
        if constant.any():
            notes.append(f'{name}[{", ".join(map(str, np.flatnonzero(constant)))}] '
                         f'({low_key} == {high_key})')
        reported = reported | constant
    return notes


def check_statistics(statistics, source: str = 'statistics') -> list[str]:
    """Check dataset statistics; return notes on zero-range (constant) dimensions.

    Raises ValueError naming ``source`` (the file), the key (e.g. ``default.action.min[3]``)
    and the value: a non-finite value, ``min > max`` or ``q01 > q99``, a negative std, arrays of
    different lengths. Masked-out dimensions are checked too but never reported as constant.
    """
    if not isinstance(statistics, dict) or not statistics:
        raise ValueError(f'{source}: expected a non-empty {{dataset: statistics}} object')
    notes = []
    for dataset, entry in statistics.items():
        if not isinstance(entry, dict) or 'action' not in entry:
            raise ValueError(f'{source}: {dataset} must be an object with an "action" entry')
        for feature in FEATURES:
            if feature in entry:
                notes += _check_feature(source, f'{dataset}.{feature}', entry[feature])
    return notes


def load_statistics(path: str | os.PathLike) -> dict:
    """Read and check a ``dataset_statistics.json`` file (see :func:`check_statistics`).

    Constant dimensions are named in one :class:`StatisticsWarning` per call.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'dataset statistics file not found: {str(path)!r}')
    try:
        with open(path, encoding='utf-8') as handle:
            statistics = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f'{os.fspath(path)}: not valid JSON ({error})') from None
    notes = check_statistics(statistics, os.fspath(path))
    if notes:
        warnings.warn(f'{os.fspath(path)}: constant dimensions (zero range: they normalise to '
                      f'-1 and restore to the constant): {"; ".join(notes)}', StatisticsWarning,
                      stacklevel=2)
    return statistics


def save_statistics(statistics: dict, path: str | os.PathLike) -> list[str]:
    """Check, then write a ``dataset_statistics.json`` file; returns the zero-range notes.

    Invalid statistics raise ValueError (see :func:`check_statistics`) and nothing is written.
    """
    statistics = _lists(statistics)
    notes = check_statistics(statistics, os.fspath(path))
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(statistics, handle, indent=2)
    return notes


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
        check_statistics({config.unnorm_key: entry}, 'dataset statistics')
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
