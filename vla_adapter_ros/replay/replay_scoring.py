"""Scores of a replay: the policy, its baselines, the executed view, a live replay.

Per episode and in aggregate, each also split by who was in control at the compared steps
(replay_control.py: the policy, the operator during a takeover, the machine's handover); a live
replay is scored from the executor's recorded commands against the played bag's actions.

Everything here is numpy on the arrays replay_eval.py collected; metrics come from
replay_metrics.py. The returned dict is the report's data: JSON-ready except the ``_plots``
entry (arrays for the figures), which replay_report.py draws and leaves out of metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from training.bag_types import bag_typestore
from training.episodes import EpisodeError
from vla_adapter_core.provenance import git_revision
from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.params.executor_config import ExecutorConfig
from vla_adapter_ros.replay import replay_control
from vla_adapter_ros.replay.bag_episodes import guard_reading, load_episode
from vla_adapter_ros.replay.replay_config import DEFAULT_ACTION_TOPIC
from vla_adapter_ros.replay.replay_metrics import (
    ArrivingChunk,
    chunk_metrics,
    latency_summary,
    simulate_executor,
    stream_metrics,
    zero_order_hold,
)

PREDICTORS = ('policy', 'hold', 'mean_demo')
TIME_ORIGIN_MARGIN_NS = 1_000_000_000  # executed-view times count from 1 s before the grid
MOSTLY_REJECTED = 0.5  # a larger fraction of refused chunks makes the executed view a warning
REJECTION_EXAMPLES = 5  # reasons kept in the aggregate


def gripper_dims(robot: RobotDescription) -> list[int]:
    """Index of each arm's gripper in the action vector (the last value of each arm)."""
    return [part.stop - 1 for part in robot.arm_slices()]


def horizon(actions: np.ndarray, steps: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``steps[n] + k`` (k < chunk) of ``actions`` (T, A): (N, C, A) values, (N, C) mask.

    The mask is False past the last row (training's action_mask); those values repeat the last.
    """
    index = np.asarray(steps)[:, None] + np.arange(chunk)[None, :]  # (N, C)
    mask = index < actions.shape[0]
    return actions[np.minimum(index, actions.shape[0] - 1)], mask


def mean_trajectory(runs: list) -> np.ndarray:
    """Mean aligned action per grid index over the runs' episodes, (T_max, A)."""
    longest = max(run.episode.aligned.actions.shape[0] for run in runs)
    width = runs[0].episode.aligned.actions.shape[1]
    sums, counts = np.zeros((longest, width)), np.zeros((longest, 1))
    for run in runs:
        actions = run.episode.aligned.actions.astype(np.float64)
        sums[:len(actions)] += actions
        counts[:len(actions)] += 1
    return sums / counts


def _bins(policy, predicted: np.ndarray, recorded: np.ndarray):
    """Bin indices of both (discrete heads only: the checkpoint's bins), else (None, None)."""
    bins = getattr(getattr(getattr(policy, 'model', None), 'action_head', None), 'bins', None)
    if bins is None or not getattr(bins, 'is_set', False):
        return None, None
    import torch

    def indices(values: np.ndarray) -> np.ndarray:
        tensor = torch.as_tensor(values, dtype=torch.float32, device=bins.low.device)
        return bins.to_bins(tensor).cpu().numpy()

    return indices(predicted), indices(recorded)


def executed_view(run, robot: RobotDescription, settings, chunk_step_s: float) -> dict:
    """The simulated executor's command stream for one run, against the recorded actions."""
    grid, actions = run.episode.aligned.grid, run.episode.aligned.actions
    origin = int(grid[0]) - TIME_ORIGIN_MARGIN_NS
    chunk = run.predicted[0].shape[0]
    if chunk < 2:
        return {'skipped': 'chunks of one step cannot be scheduled'}
    offsets = np.arange(chunk) * chunk_step_s
    chunks = []
    for stamp_ns, predicted, latency in zip(run.stamps_ns, run.predicted,
                                            run.chunk_latencies_s()):
        stamp_s = (stamp_ns - origin) * 1e-9
        delay = latency if settings.executed_latency_s is None else settings.executed_latency_s
        chunks.append(ArrivingChunk(stamp_s, stamp_s + delay, offsets,
                                    robot.policy_to_joint_angles(predicted)))
    start_s = min(chunk.arrival_s for chunk in chunks)
    end_s = (int(grid[-1]) - origin) * 1e-9
    config = ExecutorConfig(robot_description=robot.source, robot_names=robot.namespaces,
                            rate_hz=settings.executor_rate_hz, blend_mode=settings.blend_mode)
    first = robot.policy_to_joint_angles(run.proprio[0])
    stream = simulate_executor(chunks, config, first, start_s, end_s)
    commands = robot.joint_angles_to_policy(stream.commands)  # (T, A) policy units
    tick_ns = origin + np.round(stream.tick_s * 1e9).astype(np.int64)
    recorded = zero_order_hold(grid, actions.astype(np.float64), tick_ns)
    metrics = stream_metrics(commands, recorded, gripper_dims(robot))
    metrics.update({'rate_hz': config.rate_hz, 'blend_mode': config.blend_mode,
                    'holding_fraction': float(stream.holding.mean()) if len(stream.holding)
                    else None, 'rejected_chunks': stream.rejected,
                    'rejections': stream.rejections, 'chunks_after_end': stream.after_end,
                    'latency': _executed_latency(run, settings)})
    metrics['_commands'] = (tick_ns, commands)
    return metrics


def _executed_latency(run, settings):
    """How the executed view delayed the chunks, for the report."""
    if settings.executed_latency_s is not None:
        return settings.executed_latency_s
    return 'median of single-call probes' if run.batched else 'measured'


def batching_summary(runs: list, batch_size: int) -> dict | None:
    """Throughput of batched prediction and its largest difference to single calls."""
    if batch_size == 1:
        return None
    seconds = sum(sum(run.batch_seconds) for run in runs)
    points = sum(len(run.predicted) for run in runs)
    return {'batch_size': batch_size, 'calls': sum(len(run.batch_seconds) for run in runs),
            'observations_per_s': points / seconds if seconds > 0 else None,
            'max_abs_batched_vs_single': max(run.batch_vs_single for run in runs)}


def _episode_arrays(run, chunk: int, mean: np.ndarray) -> dict:
    aligned = run.episode.aligned
    steps = np.asarray(run.steps)
    recorded, mask = horizon(aligned.actions.astype(np.float64), steps, chunk)
    codes = run.episode.control.codes(aligned.grid)[:, None]  # (T, 1)
    proprio = np.stack(run.proprio)  # (N, P)
    return {'recorded': recorded, 'mask': mask, 'policy': np.stack(run.predicted),
            'hold': np.repeat(proprio[:, None, :], chunk, axis=1),
            'mean_demo': horizon(mean, steps, chunk)[0],
            'control': horizon(codes, steps, chunk)[0][..., 0]}  # (N, C) codes


def _metrics_of(arrays: dict, dims: list, policy, threshold: float) -> dict:
    """Every predictor's metrics, overall and ``by_control`` (replay_control.PARTS)."""
    result = {}
    for name in PREDICTORS:
        bins = (None, None)
        if name == 'policy':
            bins = _bins(policy, arrays[name], arrays['recorded'])

        def metrics(mask: np.ndarray, name=name, bins=bins) -> dict:
            return chunk_metrics(arrays[name], arrays['recorded'], mask, dims,
                                 predicted_bins=bins[0], recorded_bins=bins[1],
                                 gripper_threshold=threshold)

        result[name] = metrics(arrays['mask'])
        result[name]['by_control'] = {
            part: metrics(arrays['mask'] & (arrays['control'] == code))
            for part, code in replay_control.PARTS.items()}
    return result


def score_runs(runs: list, policy, robot: RobotDescription, settings, warning: str) -> dict:
    """Per-episode rows, the aggregate, the executed view and the plot data of a replay."""
    chunk = int(policy.config.chunk_size)
    chunk_step_s = settings.dt or 1.0 / robot.control_rate_hz
    dims, mean = gripper_dims(robot), mean_trajectory(runs)
    episodes, collected, plots = [], [], []
    for run in runs:
        arrays = _episode_arrays(run, chunk, mean)
        collected.append(arrays)
        executed = executed_view(run, robot, settings, chunk_step_s)
        commands = executed.pop('_commands', None)
        episode = run.episode
        metrics = _metrics_of(arrays, dims, policy, settings.gripper_threshold)
        control = episode.control.summary(int(episode.aligned.grid[0]))
        control['line'] = replay_control.describe(episode.name, control,
                                                  metrics['policy']['by_control'])
        episodes.append({
            **episode.identity, 'instruction': episode.instruction,
            'action_source': episode.action_source, 'grid_steps': int(len(episode.aligned.grid)),
            'duration_s': float((episode.aligned.grid[-1] - episode.aligned.grid[0]) * 1e-9),
            'observations': run.observations, 'inference_points': len(run.predicted),
            'outside_aligned_actions': run.outside_grid,
            'rejected_messages': {topic: {'count': count, 'first': reason} for topic, (
                count, reason) in run.rejected_messages.items()},
            **metrics, 'control': control,
            'executed': executed, 'latency': latency_summary(run.latencies_s)})
        plots.append({'name': episode.name, 'grid_ns': episode.aligned.grid,
                      'recorded': episode.aligned.actions, 'stamps_ns': np.asarray(run.stamps_ns),
                      'predicted_step0': np.stack(run.predicted)[:, 0, :],
                      'commands': commands,
                      'control_spans': episode.control.spans(int(episode.aligned.grid[-1]))})
    merged = {key: np.concatenate([arrays[key] for arrays in collected])
              for key in collected[0]}
    latencies = [value for run in runs for value in run.latencies_s]
    executed = [row['executed'] for row in episodes if row['executed'].get('samples')]
    weights = np.array([row['samples'] for row in executed], dtype=np.float64)
    aggregate = {**_metrics_of(merged, dims, policy, settings.gripper_threshold),
                 'executed': {'l1': float(np.average([row['l1'] for row in executed],
                                                     weights=weights)) if executed else None,
                              'samples': int(weights.sum()),
                              **executed_rejections(episodes)},
                 'latency': latency_summary(latencies),
                 'batching': batching_summary(runs, settings.batch_size), 'episodes': len(runs),
                 'control': replay_control.aggregate_control(episodes),
                 'inference_points': int(sum(len(run.predicted) for run in runs))}
    return {
        'kind': 'replay_eval', 'git_revision': git_revision(), 'robot': robot.summary(),
        'dimension_names': list(robot.dimension_names()), 'gripper_dims': dims,
        'units': 'joints in rad; grippers normalised (0 closed .. 1 open), policy units',
        'chunk_step_s': chunk_step_s, 'warning': warning, 'bags': [
            {key: row[key] for key in ('name', 'path', 'sha256')} for row in episodes],
        'episodes': episodes, 'aggregate': aggregate, 'summary_line': _summary(aggregate),
        'executed_warning': executed_warning(aggregate['executed']),
        '_plots': {'episodes': plots, 'latencies_s': latencies,
                   'by_step': {name: aggregate[name]['l1_by_step'] for name in PREDICTORS}}}


def executed_rejections(episodes: list) -> dict:
    """How many chunks the executed view's executor refused, of how many, and why."""
    chunks = sum(row['inference_points'] - row['executed'].get('chunks_after_end', 0)
                 for row in episodes)  # the chunks that reached the executor in time to matter
    rejected = sum(row['executed'].get('rejected_chunks', 0) for row in episodes)
    reasons = [reason for row in episodes for reason in row['executed'].get('rejections', [])]
    return {'chunks': chunks, 'rejected_chunks': rejected,
            'rejected_fraction': rejected / chunks if chunks else 0.0,
            'rejections': reasons[:REJECTION_EXAMPLES]}


def executed_warning(executed: dict) -> str:
    """One prominent line when the executed view is mostly the executor refusing chunks."""
    if executed.get('rejected_fraction', 0.0) < MOSTLY_REJECTED:
        return ''
    reason = executed['rejections'][0] if executed['rejections'] else 'no reason recorded'
    return (f'WARNING: the executed view is mostly "hold still": the executor rejected '
            f'{executed["rejected_chunks"]} of {executed["chunks"]} chunks '
            f'({100 * executed["rejected_fraction"]:.0f} %), e.g. {reason}. A chunk that arrives '
            'after its horizon (inference latency, or --executed_latency_s, longer than the '
            'chunk) is refused; see the latency above')


def _summary(aggregate: dict) -> str:
    def text(value) -> str:
        return 'n/a' if value is None else f'{value:.4f}'

    return (f"{aggregate['episodes']} episodes, {aggregate['inference_points']} inference "
            f"points: L1 policy {text(aggregate['policy']['l1'])}, hold "
            f"{text(aggregate['hold']['l1'])}, mean_demo {text(aggregate['mean_demo']['l1'])}, "
            f"executed {text(aggregate['executed']['l1'])} "
            f"({aggregate['executed']['rejected_chunks']} of {aggregate['executed']['chunks']} "
            'chunks rejected by the executor); ' + replay_control.aggregate_text(aggregate))


def read_commanded_actions(path: Path, topic: str) -> tuple[np.ndarray, np.ndarray]:
    """(bag times ns (T,), actions (T, A)) of the Float64MultiArray ``topic`` of a bag."""
    from rosbags.rosbag2 import Reader

    typestore = bag_typestore()

    def read():
        with Reader(path) as reader:
            connections = [c for c in reader.connections if c.topic == topic]
            if not connections:
                raise EpisodeError(path, topic, 'topic missing from the command bag (topics: '
                                                f'{sorted(c.topic for c in reader.connections)})')
            rows = [(time_ns, np.asarray(typestore.deserialize_cdr(raw, c.msgtype).data))
                    for c, time_ns, raw in reader.messages(connections=connections)]
        return rows

    rows = guard_reading(path, read)
    if not rows:
        raise EpisodeError(path, topic, 'no commands recorded')
    return (np.array([t for t, _ in rows], dtype=np.int64),
            np.stack([values for _, values in rows]).astype(np.float64))


def score_live_replay(bags: list, command_bag: Path, robot: RobotDescription,
                      settings) -> dict:
    """The executor's recorded commands (a live replay of ``bags[0]``) against its actions.

    The commands are the recorder's combination of the executor's per-arm commands in policy
    units (``/commanded_action``), timed by the recorder's clock, which must be the bag's
    (the replay runs on the player's /clock with use_sim_time).
    """
    if len(bags) != 1:
        raise ValueError(f'--commands scores one played bag; --bag names {len(bags)}')
    config = SimpleNamespace(camera_names=list(robot.cameras), chunk_size=1)
    episode = load_episode(bags[0], robot, config, settings)
    times, commands = read_commanded_actions(command_bag, settings.action_topic
                                             or DEFAULT_ACTION_TOPIC)
    grid, actions = episode.aligned.grid, episode.aligned.actions.astype(np.float64)
    if commands.shape[1] != actions.shape[1]:
        raise EpisodeError(command_bag, 'commands', f'{commands.shape[1]} values per command, '
                                                    f'the bag has {actions.shape[1]} per action')
    inside = (times >= grid[0]) & (times <= grid[-1])
    if not inside.any():
        raise EpisodeError(command_bag, 'commands', (
            f"no command inside the played bag's time span [{grid[0]}, {grid[-1]}] ns: was "
            "the replay run on the player's /clock (use_sim_time)?"))
    metrics = stream_metrics(commands[inside], zero_order_hold(grid, actions, times[inside]),
                             gripper_dims(robot))
    identity = {**episode.identity, 'commands': str(command_bag.resolve())}
    return {'kind': 'live_replay', 'git_revision': git_revision(), 'robot': robot.summary(),
            'dimension_names': list(robot.dimension_names()), 'gripper_dims': gripper_dims(robot),
            'units': 'joints in rad; grippers normalised (0 closed .. 1 open), policy units',
            'bags': [identity], 'live': {**metrics, 'commands_outside_bag': int((~inside).sum())},
            'summary_line': f"live replay: executed L1 {metrics['l1']:.4f} over "
                            f"{metrics['samples']} commands",
            '_plots': {'episodes': [{'name': episode.name, 'grid_ns': grid, 'recorded': actions,
                                     'stamps_ns': np.zeros(0, np.int64),
                                     'predicted_step0': np.zeros((0, actions.shape[1])),
                                     'commands': (times[inside], commands[inside])}],
                       'latencies_s': [], 'by_step': {}}}
