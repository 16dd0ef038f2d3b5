"""Time-indexed action chunks and the blending scheduler of the chunk executor (pure numpy).

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/pipeline/chunk_schedule.py.
"""

from dataclasses import dataclass

import numpy as np

BLEND_MODES = ('ensemble', 'switch')
TIME_TOLERANCE_S = 1e-6  # float rounding of absolute times (seconds since 1970 in float64)


@dataclass(frozen=True)
class TimedChunk:
    """One action chunk on an absolute time axis.

    stamp_s: observation time of the chunk (seconds). offsets_s: (T,) time of each step after
    the stamp, non-negative and strictly increasing. positions: (T, J) joint targets, finite.
    sequence: the producer's sequence number (informational).
    """

    stamp_s: float
    offsets_s: np.ndarray
    positions: np.ndarray
    sequence: int = 0

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets_s, dtype=np.float64)
        positions = np.asarray(self.positions, dtype=np.float64)
        object.__setattr__(self, 'offsets_s', offsets)
        object.__setattr__(self, 'positions', positions)
        if not np.isfinite(self.stamp_s):
            raise ValueError(f'stamp_s must be finite, got {self.stamp_s}')
        if offsets.ndim != 1 or offsets.shape[0] < 2:
            raise ValueError(
                f'offsets_s must be a 1-d array of at least 2 steps, got shape {offsets.shape}')
        if positions.ndim != 2 or positions.shape[0] != offsets.shape[0]:
            raise ValueError(
                f'positions must have shape (T={offsets.shape[0]}, J), got {positions.shape}')
        if not np.all(np.isfinite(offsets)) or offsets[0] < 0.0:
            raise ValueError(f'offsets_s must be finite and non-negative, got {offsets}')
        if np.any(np.diff(offsets) <= 0.0):
            raise ValueError(f'offsets_s must be strictly increasing, got {offsets}')
        if not np.all(np.isfinite(positions)):
            raise ValueError('positions must be finite (found NaN or inf)')

    @property
    def start_s(self) -> float:
        """Absolute time of the first step."""
        return float(self.stamp_s + self.offsets_s[0])

    @property
    def end_s(self) -> float:
        """Absolute time of the last step."""
        return float(self.stamp_s + self.offsets_s[-1])

    @property
    def num_joints(self) -> int:
        """J, the number of joint values per step."""
        return int(self.positions.shape[1])

    def covers(self, time_s: float) -> bool:
        """Whether time_s lies within [first step, last step] (to TIME_TOLERANCE_S)."""
        return self.start_s - TIME_TOLERANCE_S <= time_s <= self.end_s + TIME_TOLERANCE_S

    def first_step_at_or_after(self, time_s: float) -> int:
        """Index of the first step not in the past at time_s (T when all steps are past)."""
        relative = time_s - self.stamp_s - TIME_TOLERANCE_S
        return int(np.searchsorted(self.offsets_s, relative, side='left'))

    def sample(self, time_s: float) -> np.ndarray:
        """Target at time_s, linearly interpolated between neighbouring steps; (J,).

        Raises ValueError outside [start_s, end_s]: a chunk is never extrapolated.
        """
        if not self.covers(time_s):
            raise ValueError(
                f'time {time_s:.6f} s is outside the chunk [{self.start_s:.6f}, '
                f'{self.end_s:.6f}] s')
        relative = time_s - self.stamp_s
        last = self.offsets_s.shape[0] - 1
        upper = min(int(np.searchsorted(self.offsets_s, relative, side='left')), last)
        if upper == 0:
            return self.positions[0].copy()
        lower = upper - 1
        span = self.offsets_s[upper] - self.offsets_s[lower]
        fraction = min(max((relative - self.offsets_s[lower]) / span, 0.0), 1.0)
        return (1.0 - fraction) * self.positions[lower] + fraction * self.positions[upper]


def ensemble_weights(num_chunks: int, ensemble_k: float) -> np.ndarray:
    """Normalised weights exp(-k * i), i = 0 for the oldest chunk; (num_chunks,)."""
    if num_chunks < 1:
        raise ValueError(f'num_chunks must be at least 1, got {num_chunks}')
    exponents = -ensemble_k * np.arange(num_chunks, dtype=np.float64)
    weights = np.exp(exponents - exponents.max())  # shifted for numerical range
    return weights / weights.sum()


@dataclass(frozen=True)
class ScheduleConfig:
    """How overlapping chunks are blended.

    blend_mode: 'ensemble' or 'switch' (see the module docstring).
    ensemble_k: weight decay per chunk for 'ensemble'; > 0 favours older chunks (ACT: 0.01),
        < 0 favours newer chunks, 0 is a plain average.
    crossfade_s: cross-fade duration of 'switch' (0 switches at once; the safety layer's speed
        limit still bounds the step).
    max_chunks: most chunks kept at once; the oldest are dropped first.
    """

    blend_mode: str = 'ensemble'
    ensemble_k: float = 0.01
    crossfade_s: float = 0.1
    max_chunks: int = 10

    def __post_init__(self) -> None:
        if self.blend_mode not in BLEND_MODES:
            raise ValueError(f'blend_mode must be one of {BLEND_MODES}, got {self.blend_mode!r}')
        if not np.isfinite(self.ensemble_k) or abs(self.ensemble_k) > 50.0:
            raise ValueError(f'ensemble_k must be finite and within [-50, 50], got '
                             f'{self.ensemble_k}')
        if not np.isfinite(self.crossfade_s) or self.crossfade_s < 0.0:
            raise ValueError(f'crossfade_s must be finite and >= 0, got {self.crossfade_s}')
        if self.max_chunks < 1:
            raise ValueError(f'max_chunks must be at least 1, got {self.max_chunks}')


class ChunkScheduler:
    """Keeps the recent chunks and turns them into one target per tick (not thread-safe)."""

    def __init__(self, config: ScheduleConfig, num_joints: int) -> None:
        """Create an empty scheduler for chunks of num_joints values per step."""
        if num_joints < 1:
            raise ValueError(f'num_joints must be at least 1, got {num_joints}')
        self.config = config
        self.num_joints = num_joints
        self._chunks: list[TimedChunk] = []  # sorted by stamp, oldest first
        self._current: TimedChunk | None = None  # switch mode: the chunk being played
        self._fade_source: TimedChunk | None = None
        self._fade_frozen: np.ndarray | None = None
        self._fade_start_s = 0.0
        self._last_output: np.ndarray | None = None

    @property
    def chunks(self) -> tuple[TimedChunk, ...]:
        """The chunks kept, oldest observation stamp first."""
        return tuple(self._chunks)

    def add_chunk(self, chunk: TimedChunk) -> None:
        """Keep a (validated) chunk; raises ValueError when its joint count does not match."""
        if chunk.num_joints != self.num_joints:
            raise ValueError(
                f'chunk has {chunk.num_joints} joints per step, expected {self.num_joints}')
        self._chunks.append(chunk)
        self._chunks.sort(key=lambda kept: kept.stamp_s)
        del self._chunks[:-self.config.max_chunks]

    def clear(self) -> None:
        """Forget every chunk and any cross-fade (the executor then holds)."""
        self._chunks.clear()
        self._current = None
        self._fade_source = None
        self._fade_frozen = None
        self._last_output = None

    def has_active_chunk(self, time_s: float) -> bool:
        """Whether some kept chunk covers time_s."""
        return any(chunk.covers(time_s) for chunk in self._chunks)

    def target(self, time_s: float) -> np.ndarray | None:
        """The blended target at time_s, (J,), or None when no chunk covers time_s."""
        self._chunks = [chunk for chunk in self._chunks
                        if chunk.end_s + TIME_TOLERANCE_S >= time_s]
        active = [chunk for chunk in self._chunks if chunk.covers(time_s)]
        if not active:
            self._current = None
            self._last_output = None
            return None
        if self.config.blend_mode == 'ensemble':
            weights = ensemble_weights(len(active), self.config.ensemble_k)
            samples = np.stack([chunk.sample(time_s) for chunk in active])  # (N, J)
            output = weights @ samples
        else:
            output = self._switch_target(active[-1], time_s)
        self._last_output = output
        return output.copy()

    def _switch_target(self, newest: TimedChunk, time_s: float) -> np.ndarray:
        if newest is not self._current:
            if self._last_output is not None and self.config.crossfade_s > 0.0:
                # A switch in the middle of a fade fades from the mixed output, frozen.
                mid_fade = self._fade_frozen is not None
                self._fade_source = None if mid_fade else self._current
                self._fade_frozen = self._last_output.copy()
                self._fade_start_s = time_s
            else:
                self._fade_source = None
                self._fade_frozen = None
            self._current = newest
        output = newest.sample(time_s)
        if self._fade_frozen is None:
            return output
        progress = (time_s - self._fade_start_s) / self.config.crossfade_s
        if progress >= 1.0:
            self._fade_source = None
            self._fade_frozen = None
            return output
        source = self._fade_source
        if source is not None and source.covers(time_s):
            self._fade_frozen = source.sample(time_s)  # frozen here once the source ends
        return (1.0 - progress) * self._fade_frozen + progress * output
