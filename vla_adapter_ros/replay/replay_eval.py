"""Offline replay evaluation: a checkpoint on recorded rosbag2 episodes, before it moves the arms.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/replay/replay_eval.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
import time

import numpy as np

from training.config_cli import run_config_main
from training.episodes import EpisodeError
from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.pipeline.observation import ObservationAssembler
from vla_adapter_ros.pipeline.policy_checks import (
    check_policy_matches_robot,
    instruction_check,
    load_policy,
    validate_action_chunk,
)
from vla_adapter_ros.pipeline.sync import SyncConfig
from vla_adapter_ros.replay.bag_episodes import (
    BagEpisode,
    PolicyCallFailed,
    find_bags,
    guard_reading,
    load_episode,
)
from vla_adapter_ros.replay.replay_config import (
    CHUNKS_FILE,
    LATENCY_PROBES,
    PROG,
    ReplayEvalConfig,
    build_parser,
)


@dataclass
class EpisodeRun:
    """What one bag's replay produced (per inference point: N rows)."""

    episode: BagEpisode
    stamps_ns: list = field(default_factory=list)  # (N,) observation times
    steps: list = field(default_factory=list)  # (N,) grid index of each observation
    proprio: list = field(default_factory=list)  # (N, P)
    predicted: list = field(default_factory=list)  # (N, C, A) policy units
    latencies_s: list = field(default_factory=list)  # (N,), batches: the single-call probes
    batch_seconds: list = field(default_factory=list)  # wall time of each batched call
    batch_vs_single: float = 0.0  # max |batched - single call| over the probes (policy units)
    observations: int = 0
    outside_grid: int = 0
    rejected_messages: dict = field(default_factory=dict)  # topic -> [count, first reason]

    @property
    def batched(self) -> bool:
        """Whether the chunks came from batched calls (latencies_s holds single-call probes)."""
        return bool(self.batch_seconds)

    def chunk_latencies_s(self) -> list:
        """Inference time of each chunk as the robot would see it (one observation per call).

        Single calls: each chunk's measured time. Batched calls: the median of the run's
        single-call probes for every chunk.
        """
        if not self.batched:
            return list(self.latencies_s)
        return [float(np.median(self.latencies_s))] * len(self.predicted)


def make_assembler(episode: BagEpisode, robot: RobotDescription, policy_cameras: list,
                   settings: ReplayEvalConfig) -> ObservationAssembler:
    """The inference node's assembler for this bag's camera topics (any image size)."""
    cameras = [(camera, episode.aligner.camera_topics[camera]) for camera in policy_cameras]
    streams = (*policy_cameras, *robot.namespaces)
    return ObservationAssembler(
        robot, cameras, policy_cameras,
        SyncConfig(streams, 200, settings.sync_slop_s, settings.max_observation_age_s),
        max_future_stamp_s=settings.max_future_stamp_s)


def replay_episode(episode: BagEpisode, policy, robot: RobotDescription,
                   settings: ReplayEvalConfig, progress=None) -> EpisodeRun:
    """Feed the bag through the assembler; predict at every inference point.

    With ``settings.batch_size`` > 1 the inference points are predicted ``batch_size`` at a
    time (the last batch of a bag may be smaller); the first :data:`LATENCY_PROBES` batches
    also time one single-observation call, the latency a robot would see.
    """
    run = EpisodeRun(episode)
    policy_cameras = list(policy.config.camera_names)
    assembler = make_assembler(episode, robot, policy_cameras, settings)
    grid = episode.aligned.grid
    pending: list = []  # (policy input, stamp ns, grid step, proprio) awaiting a prediction

    def feed() -> None:
        reader = episode.aligner.open_reader()
        try:
            connections = [c for c in reader.connections if c.topic in assembler.streams]
            for connection, bag_time, raw in reader.messages(connections=connections):
                message = episode.aligner.typestore.deserialize_cdr(raw, connection.msgtype)
                try:
                    observation = assembler.push(connection.topic, message, bag_time)
                except ValueError as error:
                    entry = run.rejected_messages.setdefault(connection.topic, [0, str(error)])
                    entry[0] += 1
                    continue
                if observation is not None:
                    _queue(observation)
        finally:
            reader.close()

    def _queue(observation) -> None:
        run.observations += 1
        if progress is not None:
            progress.update(1)
        if (run.observations - 1) % settings.stride:
            return
        step = int(np.searchsorted(grid, observation.stamp_ns, side='left'))
        if step >= len(grid):
            run.outside_grid += 1
            return
        pending.append((observation.as_policy_input(episode.instruction), observation.stamp_ns,
                        step, observation.proprio.astype(np.float64)))
        if len(pending) >= settings.batch_size:
            _predict_pending()

    def _predict_pending() -> None:
        try:
            predict_points(policy, pending, run, settings.batch_size)
        except EpisodeError:
            raise
        except Exception as error:  # noqa: BLE001 - the policy's, not the bag's
            raise PolicyCallFailed(error) from error
        finally:
            pending.clear()

    guard_reading(episode.path, feed)
    if pending:  # the bag's last, smaller batch
        predict_points(policy, pending, run, settings.batch_size)
    if not run.predicted:
        rejected = '; '.join(f'{topic}: {count} rejected, e.g. {reason}'
                             for topic, (count, reason) in run.rejected_messages.items())
        raise EpisodeError(episode.path, 'observations', (
            f'no complete observation ({run.observations} synchronised sets, '
            f'{run.outside_grid} outside the aligned actions) from streams '
            f'{list(assembler.streams)}' + (f'; {rejected}' if rejected else '')))
    return run


def predict_points(policy, points: list, run: EpisodeRun, batch_size: int) -> None:
    """Predict ``points`` ((input, stamp ns, step, proprio) each) and append them to ``run``."""
    inputs = [point[0] for point in points]
    start = time.perf_counter()
    if batch_size == 1:
        chunks = [policy.predict_action_chunk(inputs[0])]
        run.latencies_s.append(time.perf_counter() - start)
    else:
        chunks = list(policy.predict_action_chunk_batch(inputs))
        run.batch_seconds.append(time.perf_counter() - start)
        if len(run.latencies_s) < LATENCY_PROBES:
            start = time.perf_counter()
            single = policy.predict_action_chunk(inputs[0])
            run.latencies_s.append(time.perf_counter() - start)
            gap = float(np.max(np.abs(np.asarray(single) - np.asarray(chunks[0]))))
            run.batch_vs_single = max(run.batch_vs_single, gap)
    action_dim = int(policy.config.action_dim)
    for (_, stamp_ns, step, proprio), chunk in zip(points, chunks):
        try:
            chunk = validate_action_chunk(chunk, action_dim)
        except ValueError as error:
            raise EpisodeError(run.episode.path, 'policy',
                               f'its chunk for the observation at {stamp_ns} ns: '
                               f'{error}') from None
        run.stamps_ns.append(stamp_ns)
        run.steps.append(step)
        run.proprio.append(proprio)
        run.predicted.append(chunk)


def evaluate(bags: list[Path], policy, robot: RobotDescription,
             settings: ReplayEvalConfig) -> dict:
    """Replay every bag, then score the policy and the baselines; the report's data."""
    from vla_adapter_ros.replay import replay_scoring

    warning = check_policy_matches_robot(policy.config, robot, list(policy.config.camera_names))
    check = instruction_check(policy)
    episodes = [load_episode(path, robot, policy.config, settings) for path in bags]
    for episode in episodes:
        try:
            episode.instruction = check(episode.instruction)
        except ValueError as error:
            raise EpisodeError(episode.path, 'instruction', str(error)) from None
    _warm_up(policy, episodes[0].instruction)
    progress = None
    if settings.progress:
        from tqdm import tqdm

        progress = tqdm(total=sum(e.reference_messages for e in episodes), unit='obs',
                        desc='replay', leave=False)
    try:
        runs = [replay_episode(episode, policy, robot, settings, progress)
                for episode in episodes]
    finally:
        if progress is not None:
            progress.close()
    report = replay_scoring.score_runs(runs, policy, robot, settings, warning)
    report['_files'] = {}
    if settings.rerun:
        from vla_adapter_ros.replay.replay_rerun import episode_views

        report['_files'] = episode_views(runs, robot, report['chunk_step_s'])
        report['rerun_files'] = sorted(report['_files'])
    if settings.save_chunks:
        report['_files'][CHUNKS_FILE] = lambda path: save_chunks(runs, path)
    return report


def save_chunks(runs: list, path: Path) -> None:
    """Every inference point of ``runs`` into one .npz (--save_chunks).

    ``bags`` (E,) names; per point: ``episode`` (N,) index into ``bags``, ``stamps_ns`` (N,),
    ``steps`` (N,) grid index, ``predicted`` (N, chunk, action_dim) in policy units.
    """
    with open(path, 'wb') as handle:  # a file object: savez would append .npz to a bare name
        np.savez(handle, bags=np.array([run.episode.name for run in runs]),
                 episode=np.concatenate([np.full(len(run.predicted), index, np.int32)
                                         for index, run in enumerate(runs)]),
                 stamps_ns=np.concatenate([np.asarray(run.stamps_ns, np.int64) for run in runs]),
                 steps=np.concatenate([np.asarray(run.steps, np.int64) for run in runs]),
                 predicted=np.concatenate([np.stack(run.predicted) for run in runs]))


def _warm_up(policy, instruction: str) -> None:
    """Untimed predictions on blank images (lazy initialisation off the latency numbers)."""
    observation = {'images': {name: np.zeros((224, 224, 3), np.uint8)
                              for name in policy.config.camera_names},
                   'proprio': np.zeros(int(policy.config.proprio_dim), np.float32),
                   'instruction': instruction}
    for _ in range(getattr(policy, 'warmup_calls', 1)):
        policy.predict_action_chunk(observation)


def run(config: ReplayEvalConfig) -> int:
    """The CLI's work: evaluate (or score --commands) and write the report atomically."""
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.replay import replay_report, replay_scoring

    output = replay_report.prepare_output(config.output, config.overwrite)
    robot = load_robot_description(config.robot)
    bags = find_bags(config.bag)
    if config.commands:
        report = replay_scoring.score_live_replay(bags, Path(config.commands).expanduser(),
                                                  robot, config)
    else:
        if not config.checkpoint:
            raise ValueError('--checkpoint is required (or --commands to score a live replay)')
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        policy = load_policy(config.checkpoint, config.device, config.dtype, compile='none')
        report = evaluate(bags, policy, robot, config)
        report['checkpoint'] = {'source': config.checkpoint, 'device': config.device,
                                'dtype': config.dtype, 'config': policy.config.to_dict()}
    settings = dataclasses.asdict(config)
    report['settings'] = {**settings, 'resolved': settings}
    replay_report.write_report(output, report, max_plots=config.max_plots)
    if report.get('executed_warning'):
        print(f'{PROG}: {report["executed_warning"]}')
    for row in report.get('episodes', []):  # per bag: its takeovers (replay_control.describe)
        print(f'{PROG}: {row["control"]["line"]}')
    print(f'{PROG}: report written to {output} ({report["summary_line"]})')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``vla-adapter-replay-eval``."""
    return run_config_main(build_parser(), ReplayEvalConfig, argv, run)


if __name__ == '__main__':
    raise SystemExit(main())
