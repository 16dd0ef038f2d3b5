"""Metrics of the replay evaluation (pure numpy; no rclpy, no torch).

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/replay/replay_metrics.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_adapter_ros.params.executor_config import ExecutorConfig
from vla_adapter_ros.pipeline.chunk_schedule import ChunkScheduler, TimedChunk
from vla_adapter_ros.pipeline.safety import (
    ChunkRejected,
    Watchdog,
    shape_command,
    validate_chunk_timing,
    validate_chunk_values,
)

GRIPPER_THRESHOLD = 0.5  # normalised gripper: above = open


def _weighted_mean(values: np.ndarray, weights: np.ndarray, axis) -> np.ndarray:
    total = weights.sum(axis=axis)
    return np.where(total > 0, (values * weights).sum(axis=axis) / np.maximum(total, 1), np.nan)


def chunk_metrics(predicted: np.ndarray, recorded: np.ndarray, mask: np.ndarray,
                  gripper_dims: Sequence[int], *, predicted_bins: np.ndarray | None = None,
                  recorded_bins: np.ndarray | None = None,
                  gripper_threshold: float = GRIPPER_THRESHOLD) -> dict:
    """L1 metrics of N predicted chunks; arrays (N, C, A), mask (N, C) True = a recorded step.

    Returns JSON-ready floats and lists: ``l1`` (overall), ``l1_per_dim`` (A,), ``l1_by_step``
    (C,), ``l1_step0``, ``gripper_agreement``, ``bin_accuracy`` (None without bins) and
    ``samples`` (recorded steps compared). NaN (JSON null) where nothing was compared.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    recorded = np.asarray(recorded, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool)
    if predicted.shape != recorded.shape or predicted.ndim != 3 or valid.shape != (
            predicted.shape[:2]):
        raise ValueError(f'predicted {predicted.shape}, recorded {recorded.shape} and mask '
                         f'{valid.shape} must be (N, C, A), (N, C, A) and (N, C)')
    error = np.abs(predicted - recorded)  # (N, C, A)
    weights = np.broadcast_to(valid[..., None], error.shape).astype(np.float64)
    per_dim = _weighted_mean(error, weights, axis=(0, 1))  # (A,)
    by_step = _weighted_mean(error, weights, axis=(0, 2))  # (C,)
    overall = _weighted_mean(error, weights, axis=(0, 1, 2))
    dims = list(gripper_dims)
    agreement = np.nan
    if dims and valid.any():
        same = (predicted[..., dims] > gripper_threshold) == (
            recorded[..., dims] > gripper_threshold)  # (N, C, G)
        agreement = float(same[valid].mean())
    accuracy = None
    if predicted_bins is not None and recorded_bins is not None:
        hits = np.asarray(predicted_bins) == np.asarray(recorded_bins)  # (N, C, A)
        accuracy = float(hits[valid].mean()) if valid.any() else np.nan
    return {'l1': _float(overall), 'l1_per_dim': _floats(per_dim),
            'l1_by_step': _floats(by_step), 'l1_step0': _float(by_step[0]) if by_step.size
            else None, 'gripper_agreement': _float(agreement),
            'bin_accuracy': None if accuracy is None else _float(accuracy),
            'samples': int(valid.sum())}


def _float(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _floats(values: np.ndarray) -> list:
    return [_float(value) for value in np.asarray(values).ravel()]


def stream_metrics(commands: np.ndarray, recorded: np.ndarray,
                   gripper_dims: Sequence[int],
                   gripper_threshold: float = GRIPPER_THRESHOLD) -> dict:
    """A command stream (T, A) against the recorded actions at the same times (T, A)."""
    commands = np.asarray(commands, dtype=np.float64)
    recorded = np.asarray(recorded, dtype=np.float64)
    if commands.shape != recorded.shape or commands.ndim != 2:
        raise ValueError(f'commands {commands.shape} and recorded {recorded.shape} must be '
                         '(T, A) each')
    if commands.shape[0] == 0:
        return {'l1': None, 'l1_per_dim': [None] * commands.shape[1],
                'gripper_agreement': None, 'samples': 0}
    error = np.abs(commands - recorded)  # (T, A)
    dims = list(gripper_dims)
    agreement = np.nan
    if dims:
        agreement = float(np.mean((commands[:, dims] > gripper_threshold)
                                  == (recorded[:, dims] > gripper_threshold)))
    return {'l1': _float(error.mean()), 'l1_per_dim': _floats(error.mean(axis=0)),
            'gripper_agreement': _float(agreement), 'samples': int(commands.shape[0])}


def latency_summary(latencies_s: Sequence[float]) -> dict:
    """p50 / p99 / mean / max of inference times, in ms (None when there are none)."""
    values = np.asarray(latencies_s, dtype=np.float64) * 1e3
    if values.size == 0:
        return {'p50_ms': None, 'p99_ms': None, 'mean_ms': None, 'max_ms': None, 'count': 0}
    return {'p50_ms': float(np.percentile(values, 50)), 'p99_ms': float(np.percentile(values, 99)),
            'mean_ms': float(values.mean()), 'max_ms': float(values.max()),
            'count': int(values.size)}


@dataclass(frozen=True)
class ArrivingChunk:
    """A chunk in joint angles (C, J) on its way to the executor.

    ``stamp_s``: its observation time; ``arrival_s``: when the executor gets it (stamp +
    inference latency); step k is the target for stamp + offsets_s[k].
    """

    stamp_s: float
    arrival_s: float
    offsets_s: np.ndarray
    joint_angles: np.ndarray


@dataclass
class ExecutedStream:
    """What the simulated executor commanded: one row per tick."""

    tick_s: np.ndarray  # (T,) tick times, s
    commands: np.ndarray  # (T, J) joint angles, rad
    holding: np.ndarray  # (T,) bool: no chunk covered the tick (or a fault): last command held
    rejected: int  # chunks the safety layer refused
    rejections: list  # their reasons (first few)
    after_end: int = 0  # chunks that arrived after the last tick (never reached the executor)


def simulate_executor(chunks: Sequence[ArrivingChunk], config: ExecutorConfig,
                      start_command: np.ndarray, start_s: float, end_s: float) -> ExecutedStream:
    """The executor's running phase, tick by tick, from ``start_s`` to ``end_s``.

    As ``ChunkExecutorNode`` does while RUNNING: a chunk is validated when it arrives (timing
    against the arrival time, values against the limits; a rejected chunk drops every scheduled
    chunk and holds until the next accepted one), no chunk for ``stale_chunk_s`` drops them all,
    and every tick's blended target is shaped by the limits and the speed limits x
    speed_scale. ``start_command`` (J,) is the command before the first tick (rad). The
    start-up ramp and the joint-state watchdog are not simulated (the bag is the robot).
    """
    safety = config.safety_config()
    scheduler = ChunkScheduler(config.schedule_config(), safety.num_joints)
    watchdog = Watchdog(config.stale_chunk_s)
    pending = sorted(chunks, key=lambda chunk: chunk.arrival_s)
    ticks = np.arange(start_s, end_s + 1e-9, config.tick_s)  # (T,)
    command = np.clip(np.asarray(start_command, dtype=np.float64), safety.lower_array,
                      safety.upper_array)
    commands, holding, rejections = [], [], []
    rejected, faulted, index = 0, False, 0
    for tick in ticks:
        while index < len(pending) and pending[index].arrival_s <= tick:
            chunk = pending[index]
            index += 1
            try:
                validate_chunk_timing(chunk.stamp_s, chunk.offsets_s, chunk.arrival_s, safety)
                positions = validate_chunk_values(chunk.joint_angles, safety)
            except ChunkRejected as error:
                scheduler.clear()
                rejected += 1
                faulted = True
                if len(rejections) < 5:
                    rejections.append(str(error))
                continue
            scheduler.add_chunk(TimedChunk(chunk.stamp_s, chunk.offsets_s, positions))
            watchdog.kick(chunk.arrival_s)
            faulted = False
        target = None
        if not faulted:
            if watchdog.ever_kicked and watchdog.expired(tick):
                scheduler.clear()
            else:
                target = scheduler.target(tick)
        if target is not None:
            command = shape_command(command, target, safety)
        commands.append(command.copy())
        holding.append(target is None)
    width = safety.num_joints
    return ExecutedStream(tick_s=ticks, commands=np.array(commands).reshape(-1, width),
                          holding=np.array(holding, dtype=bool), rejected=rejected,
                          rejections=rejections, after_end=len(pending) - index)


def zero_order_hold(grid_ns: np.ndarray, values: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
    """``values`` (T, A) on ``grid_ns`` (T,) sampled at ``times_ns`` (zero-order hold).

    Each time takes the latest grid row at or before it, as the alignment does; times before
    the grid take row 0.
    """
    index = np.searchsorted(grid_ns, times_ns, side='right') - 1
    return values[np.clip(index, 0, len(grid_ns) - 1)]
