"""Adaptive action bins for the discrete head, in RAW action space.

Per action dimension the range seen in the data, [min, max], is widened by ``margin`` (default 5 %)
of its width on each side (10 % in total) and cut into ``n_bins`` equal bins. A dimension that
never changes gets a width of 1 before widening (so [v - margin, v + margin]).

File format (``dataset_statistics_<n_bins>_bins.json``), owned by this module::

    {"n_bins": 256, "margin": 0.05, "low": [...], "high": [...]}

``low`` / ``high`` are the WIDENED per-dimension limits (one float per action dimension).
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

JSON_KEYS = ('n_bins', 'margin', 'low', 'high')


def check_limits(low, high, source: str = 'ActionBins', prefix: str = '') -> None:
    """Finite ``low < high`` per dimension, else ValueError naming the source, key and value.

    ``source`` names the file (or object) and ``prefix`` the keys' prefix, e.g.
    ``model.safetensors: action_head.bins.low[3] = nan: not finite``.
    """
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    for name, values in (('low', low), ('high', high)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f'{source}: {prefix}{name}[{bad[0]}] = {values[bad[0]]}: not '
                             f'finite ({bad.size} non-finite values)')
    wrong = np.flatnonzero(~(high > low))
    if wrong.size:
        index = int(wrong[0])
        raise ValueError(f'{source}: {prefix}low[{index}] = {low[index]} >= {prefix}high[{index}]'
                         f' = {high[index]}: bins need low < high in every dimension')


def bins_file_name(n_bins: int) -> str:
    """Conventional checkpoint file name, e.g. ``dataset_statistics_256_bins.json``."""
    return f'dataset_statistics_{n_bins}_bins.json'


class ActionBins(nn.Module):
    """Uniform bins per action dimension between ``low`` and ``high`` (registered buffers).

    The limits are buffers, so they are saved and loaded with the discrete head's state dict. They
    follow the module's device but always stay float32: a bf16 policy (``dtype='auto'`` on CUDA)
    would otherwise round the limits to ~3 significant digits and move the decoded bin centres
    by up to a bin. ``to_bins`` / ``to_centres`` therefore compute in float32.

    Args:
        low: widened lower limits, one per action dimension.
        high: widened upper limits, each > the matching ``low``.
        n_bins: bins per dimension (>= 2).
        margin: the widening fraction the limits were made with (kept for the record).
        source: what the limits come from (a file name), named in errors.
    """

    def __init__(
        self,
        low: Sequence[float] | np.ndarray | torch.Tensor,
        high: Sequence[float] | np.ndarray | torch.Tensor,
        n_bins: int = 256,
        margin: float = 0.05,
        source: str = 'ActionBins',
    ) -> None:
        super().__init__()
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
            raise ValueError(f'{source}: n_bins must be an int >= 2, got {n_bins!r}')
        if not (isinstance(margin, (int, float)) and margin >= 0.0):
            raise ValueError(f'{source}: margin must be a float >= 0, got {margin!r}')
        low_t = torch.as_tensor(np.asarray(low, dtype=np.float64), dtype=torch.float32)
        high_t = torch.as_tensor(np.asarray(high, dtype=np.float64), dtype=torch.float32)
        if low_t.dim() != 1 or low_t.shape != high_t.shape or low_t.numel() == 0:
            raise ValueError(
                f'{source}: low/high must be non-empty 1-d of equal length, '
                f'got {tuple(low_t.shape)} and {tuple(high_t.shape)}'
            )
        placeholder = bool(torch.isnan(low_t).all() and torch.isnan(high_t).all())
        if not placeholder:
            check_limits(low_t.numpy(), high_t.numpy(), source)  # as stored: float32
        self.n_bins = n_bins
        self.margin = float(margin)
        self.register_buffer('low', low_t)  # (A,)
        self.register_buffer('high', high_t)  # (A,)

    def _apply(self, fn, recurse=True):
        """Device moves apply; dtype casts do not: the limits stay float32 (see class doc)."""
        exact = {name: getattr(self, name) for name in ('low', 'high')}  # float32 (A,)
        super()._apply(fn, recurse)
        for name, original in exact.items():
            moved = getattr(self, name)
            if moved.dtype != original.dtype:
                setattr(self, name, original.to(device=moved.device))
        return self

    @classmethod
    def placeholder(cls, action_dim: int, n_bins: int) -> ActionBins:
        """Unset bins (NaN limits) to be filled by ``load_state_dict`` or ``copy_from``."""
        nan = [math.nan] * action_dim
        return cls(nan, nan, n_bins=n_bins)

    @classmethod
    def from_data(
        cls,
        actions: np.ndarray | torch.Tensor,
        n_bins: int = 256,
        margin: float = 0.05,
    ) -> ActionBins:
        """Bins from raw actions (N, A): per-dimension [min, max], widened by ``margin`` a side."""
        values = np.asarray(
            actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else actions,
            dtype=np.float64,
        )
        if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
            raise ValueError(f'ActionBins.from_data: actions must be (N, A), got {values.shape}')
        if not np.isfinite(values).all():
            raise ValueError('ActionBins.from_data: actions contain NaN or inf')
        lowest = values.min(axis=0)  # (A,)
        highest = values.max(axis=0)  # (A,)
        constant = np.flatnonzero(highest == lowest)
        if margin == 0 and constant.size:
            raise ValueError(f'ActionBins.from_data: action dimensions {constant.tolist()} are '
                             'constant and margin=0 leaves them a zero-width range: use a '
                             'margin > 0')
        span = np.where(highest > lowest, highest - lowest, 1.0)  # (A,)
        return cls(lowest - margin * span, highest + margin * span, n_bins=n_bins, margin=margin)

    @property
    def action_dim(self) -> int:
        """Number of action dimensions."""
        return int(self.low.shape[0])

    @property
    def is_set(self) -> bool:
        """False for placeholder bins that were never filled."""
        return bool(torch.isfinite(self.low).all() and torch.isfinite(self.high).all())

    @property
    def bin_width(self) -> torch.Tensor:
        """(A,) width of one bin per dimension."""
        return (self.high - self.low) / self.n_bins

    def _require_set(self, values: torch.Tensor) -> None:
        if not self.is_set:
            raise RuntimeError('ActionBins are unset: load the bins json or the head checkpoint')
        if values.shape[-1] != self.action_dim:
            raise ValueError(
                f'ActionBins: last dimension must be action_dim={self.action_dim}, '
                f'got shape {tuple(values.shape)}'
            )

    def to_bins(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw actions (..., A) -> bin indices (..., A) long; values outside are clamped."""
        self._require_set(raw)
        fraction = (raw.to(self.low.dtype) - self.low) / (self.high - self.low)  # (..., A)
        indices = torch.floor(fraction * self.n_bins).clamp(0, self.n_bins - 1)  # (..., A)
        return indices.long()

    def to_centres(self, indices: torch.Tensor) -> torch.Tensor:
        """Bin indices (..., A) -> raw actions at the bin centres (..., A)."""
        self._require_set(indices)
        if indices.dtype.is_floating_point:
            raise ValueError(f'ActionBins.to_centres needs integer indices, got {indices.dtype}')
        return self.low + (indices.to(self.low.dtype) + 0.5) * self.bin_width  # (..., A)

    def copy_from(self, other: ActionBins) -> None:
        """Take limits, n_bins and margin from ``other`` (same action_dim and n_bins)."""
        if other.action_dim != self.action_dim or other.n_bins != self.n_bins:
            raise ValueError(
                f'ActionBins.copy_from: expected action_dim={self.action_dim}, '
                f'n_bins={self.n_bins}, got {other.action_dim}, {other.n_bins}'
            )
        with torch.no_grad():
            self.low.copy_(other.low)
            self.high.copy_(other.high)
        self.margin = other.margin

    def to_dict(self) -> dict[str, Any]:
        """The json content: n_bins, margin, low, high."""
        return {
            'n_bins': self.n_bins,
            'margin': self.margin,
            'low': [float(v) for v in self.low.float().cpu().tolist()],
            'high': [float(v) for v in self.high.float().cpu().tolist()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = 'ActionBins json') -> ActionBins:
        """Inverse of ``to_dict``; missing or unknown keys, invalid limits raise ValueError."""
        if not isinstance(data, dict) or set(data) != set(JSON_KEYS):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f'{source}: must have exactly keys {JSON_KEYS}, got {keys}')
        for key in ('low', 'high'):
            values = data[key]
            if not isinstance(values, list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ValueError(f'{source}: {key} must be a list of numbers, got {values!r}')
        return cls(data['low'], data['high'], n_bins=data['n_bins'], margin=data['margin'],
                   source=source)

    def to_json(self, path: str | Path) -> None:
        """Check the limits, then write the bins file (see module docstring for the format)."""
        check_limits(self.low.cpu().numpy(), self.high.cpu().numpy(), str(path))
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + '\n', encoding='utf-8')

    @classmethod
    def from_json(cls, path: str | Path) -> ActionBins:
        """Read and check a bins file written by ``to_json``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'bins file not found: {str(path)!r}')
        try:
            data = json.loads(path.read_text(encoding='utf-8'))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f'{path}: not valid JSON ({error})') from None
        return cls.from_dict(data, source=str(path))

    def extra_repr(self) -> str:
        return f'action_dim={self.action_dim}, n_bins={self.n_bins}, margin={self.margin}'
