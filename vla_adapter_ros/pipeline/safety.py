"""The chunk executor's safety layer (pure numpy; the Interbotix driver checks nothing itself).

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/pipeline/safety.py.
"""

from dataclasses import dataclass
import math

import numpy as np


class ChunkRejected(ValueError):
    """A chunk that must not be played; the message names the field, joint and value."""


@dataclass(frozen=True)
class SafetyConfig:
    """Limits and watchdog timeouts of one executor; arrays are per joint, (J,) each.

    lower / upper: joint position limits (rad). max_joint_speed: largest speed commanded (rad/s).
    tick_s: executor period (s). limit_margin: targets outside the limits by at most this much
    are clamped, beyond it the chunk is rejected (rad). stale_chunk_s / stale_observation_s:
    watchdog timeouts (s). max_future_stamp_s: largest accepted lead of a chunk stamp over the
    executor's clock (s). clock_jump_s: largest accepted disagreement between ROS time and the
    monotonic clock over one tick (s).
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_joint_speed: tuple[float, ...]
    tick_s: float = 0.02
    limit_margin: float = 0.05
    stale_chunk_s: float = 1.0
    stale_observation_s: float = 0.5
    max_future_stamp_s: float = 0.5
    clock_jump_s: float = 0.5

    def __post_init__(self) -> None:
        lower = np.asarray(self.lower, dtype=np.float64)
        upper = np.asarray(self.upper, dtype=np.float64)
        speed = np.asarray(self.max_joint_speed, dtype=np.float64)
        if lower.ndim != 1 or lower.size == 0 or lower.shape != upper.shape:
            raise ValueError(f'lower and upper must be 1-d and of equal length, got '
                             f'{len(self.lower)} and {len(self.upper)} values')
        if speed.shape != lower.shape:
            raise ValueError(f'max_joint_speed must have {lower.size} values, got '
                             f'{speed.size}: {self.max_joint_speed}')
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise ValueError(f'limits must be finite, got lower={self.lower} upper={self.upper}')
        bad = np.flatnonzero(lower >= upper)
        if bad.size:
            raise ValueError(f'lower must be below upper; violated at joint indices '
                             f'{bad.tolist()}')
        if not np.all(np.isfinite(speed)) or np.any(speed <= 0.0):
            raise ValueError(f'max_joint_speed must be finite and > 0, got {self.max_joint_speed}')
        for name in ('tick_s', 'stale_chunk_s', 'stale_observation_s', 'max_future_stamp_s',
                     'clock_jump_s'):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0.0:
                raise ValueError(f'{name} must be finite and > 0, got {value}')
        if not math.isfinite(self.limit_margin) or self.limit_margin < 0.0:
            raise ValueError(f'limit_margin must be finite and >= 0, got {self.limit_margin}')

    @property
    def num_joints(self) -> int:
        """J."""
        return len(self.lower)

    @property
    def lower_array(self) -> np.ndarray:
        """Lower limits, (J,) float64."""
        return np.asarray(self.lower, dtype=np.float64)

    @property
    def upper_array(self) -> np.ndarray:
        """Upper limits, (J,) float64."""
        return np.asarray(self.upper, dtype=np.float64)

    @property
    def max_step(self) -> np.ndarray:
        """Largest change of a command per tick, (J,) rad."""
        return np.asarray(self.max_joint_speed, dtype=np.float64) * self.tick_s


def _joint_label(joint_names: tuple[str, ...] | None, index: int) -> str:
    if joint_names is not None and index < len(joint_names):
        return f'{joint_names[index]!r} (index {index})'
    return f'index {index}'


def validate_chunk_values(positions: np.ndarray, config: SafetyConfig,
                          joint_names: tuple[str, ...] | None = None) -> np.ndarray:
    """Check chunk targets (T, J) and return them clamped to the limits.

    Raises ChunkRejected for an empty chunk, a wrong joint count, NaN/inf, or a target beyond
    a limit by more than config.limit_margin (naming the step, joint and value).
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[0] == 0:
        raise ChunkRejected(f'empty chunk: positions have shape {positions.shape}')
    if positions.shape[1] != config.num_joints:
        raise ChunkRejected(f'chunk has {positions.shape[1]} joints per step, expected '
                            f'{config.num_joints}')
    bad = np.argwhere(~np.isfinite(positions))
    if bad.size:
        step, joint = (int(i) for i in bad[0])
        raise ChunkRejected(f'non-finite target {positions[step, joint]} at step {step}, joint '
                            f'{_joint_label(joint_names, joint)} ({len(bad)} such values)')
    lower, upper = config.lower_array, config.upper_array
    beyond = np.argwhere((positions < lower - config.limit_margin)
                         | (positions > upper + config.limit_margin))
    if beyond.size:
        step, joint = (int(i) for i in beyond[0])
        raise ChunkRejected(
            f'target {positions[step, joint]:.4f} rad at step {step}, joint '
            f'{_joint_label(joint_names, joint)} is outside the limits [{lower[joint]:.4f}, '
            f'{upper[joint]:.4f}] by more than limit_margin={config.limit_margin}')
    return np.clip(positions, lower, upper)


def validate_chunk_timing(stamp_s: float, offsets_s: np.ndarray, now_s: float,
                          config: SafetyConfig) -> None:
    """Reject a chunk whose stamp is unset, in the future (clock jump) or entirely expired."""
    offsets = np.asarray(offsets_s, dtype=np.float64)
    if offsets.size == 0:
        raise ChunkRejected('empty chunk: no steps')
    if not math.isfinite(stamp_s) or stamp_s <= 0.0:
        raise ChunkRejected(f'chunk header.stamp is unset or invalid ({stamp_s} s)')
    if offsets.size < 2:
        raise ChunkRejected(f'chunk has {offsets.size} step; at least 2 are needed to '
                            f'interpolate')
    if not np.all(np.isfinite(offsets)) or offsets[0] < 0.0 or np.any(np.diff(offsets) <= 0.0):
        raise ChunkRejected(f'time_from_start must be non-negative and strictly increasing, '
                            f'got {offsets.tolist()}')
    lead = stamp_s - now_s
    if lead > config.max_future_stamp_s:
        raise ChunkRejected(f'clock jump: chunk stamp is {lead:.3f} s in the future '
                            f'(max_future_stamp_s={config.max_future_stamp_s})')
    end_s = stamp_s + float(offsets[-1])
    if end_s < now_s:
        raise ChunkRejected(f'chunk from the past: its last step ended {now_s - end_s:.3f} s '
                            f'ago')


def shape_command(previous: np.ndarray, target: np.ndarray, config: SafetyConfig,
                  max_step: np.ndarray | None = None) -> np.ndarray:
    """Next command from the previous one towards target: limits, then speed, then limits.

    previous, target: (J,). max_step: (J,) per-tick bound, default config.max_step. A NaN/inf
    target holds the previous command (for that joint).
    """
    previous = np.asarray(previous, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    step_bound = config.max_step if max_step is None else np.asarray(max_step, np.float64)
    lower, upper = config.lower_array, config.upper_array
    target = np.where(np.isfinite(target), target, previous)
    clipped = np.clip(target, lower, upper)
    stepped = previous + np.clip(clipped - previous, -step_bound, step_bound)
    return np.clip(stepped, lower, upper)


class Watchdog:
    """Fires when nothing was seen for timeout_s (also before the first kick)."""

    def __init__(self, timeout_s: float) -> None:
        """Create a watchdog that has not been kicked yet."""
        if not math.isfinite(timeout_s) or timeout_s <= 0.0:
            raise ValueError(f'timeout_s must be finite and > 0, got {timeout_s}')
        self.timeout_s = timeout_s
        self._last_s: float | None = None

    def kick(self, time_s: float) -> None:
        """Record that the watched thing arrived at time_s."""
        self._last_s = time_s

    def reset(self) -> None:
        """Forget the last kick."""
        self._last_s = None

    @property
    def ever_kicked(self) -> bool:
        """Whether kick() was called since creation or the last reset."""
        return self._last_s is not None

    def age(self, time_s: float) -> float:
        """Seconds since the last kick (inf before the first)."""
        return math.inf if self._last_s is None else time_s - self._last_s

    def expired(self, time_s: float) -> bool:
        """Whether more than timeout_s passed since the last kick."""
        return self.age(time_s) > self.timeout_s


class EStopLatch:
    """Emergency stop: once engaged it stays engaged until reset() is called explicitly."""

    def __init__(self) -> None:
        """Create a released latch."""
        self._reason = ''

    @property
    def engaged(self) -> bool:
        """Whether the e-stop holds the arms."""
        return bool(self._reason)

    @property
    def reason(self) -> str:
        """Why it was engaged ('' when released)."""
        return self._reason

    def engage(self, source: str) -> None:
        """Latch; the first source is kept as the reason."""
        if not self._reason:
            self._reason = f'e-stop engaged ({source or "unknown source"})'

    def reset(self) -> bool:
        """Release the latch; return whether it was engaged."""
        was_engaged = self.engaged
        self._reason = ''
        return was_engaged


class ClockMonitor:
    """Detects ROS time going backwards or jumping against the monotonic clock."""

    def __init__(self, jump_s: float) -> None:
        """Create a monitor tolerating jump_s of disagreement per update."""
        if not math.isfinite(jump_s) or jump_s <= 0.0:
            raise ValueError(f'jump_s must be finite and > 0, got {jump_s}')
        self.jump_s = jump_s
        self._last: tuple[float, float] | None = None

    def update(self, ros_s: float, monotonic_s: float) -> str | None:
        """Record one reading of both clocks; return a fault reason on a jump, else None."""
        last, self._last = self._last, (ros_s, monotonic_s)
        if last is None:
            return None
        ros_delta = ros_s - last[0]
        if ros_delta < 0.0:
            return f'clock jump: ROS time went backwards by {-ros_delta:.3f} s'
        disagreement = ros_delta - (monotonic_s - last[1])
        if abs(disagreement) > self.jump_s:
            return (f'clock jump: ROS time moved {ros_delta:.3f} s while the monotonic clock '
                    f'moved {monotonic_s - last[1]:.3f} s')
        return None
