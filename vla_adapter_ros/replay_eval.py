"""Offline replay evaluation: a checkpoint on recorded rosbag2 episodes, before it moves the arms.

    vla-adapter-replay-eval --bag BAG|FOLDER --checkpoint DIR|REPO_ID --output REPORT_DIR

Per bag (a rosbag2 directory, a bare .mcap / .db3 file, or a folder of them):

1. The demonstrator's actions and the robot's state are aligned exactly as training aligns them
   (training.rosbag_episodes.RosbagAligner: a grid at the chunk rate, zero-order hold per topic,
   the same gap, type, topic and finiteness checks). The actions are the leader arms' joint
   states, or the executor's combined commands (``/commanded_action``) of a policy-driven
   recording; ``--action_source auto`` takes what the recorder's sidecar or the bag's topics say.
2. The camera and joint-state messages are fed, in recorded order and with the bag time as the
   clock, through the inference node's own :class:`~vla_adapter_ros.observation.
   ObservationAssembler` (the same conversions and approximate-time synchroniser).
3. Inference points: every ``--stride``-th synchronised observation (default every one, i.e. at
   the reference camera's rate, as often as the node could infer with a fast model). At each,
   the policy predicts a chunk; the demonstrator's chunk is the aligned actions from the first
   grid step at or after the observation time (the step whose training sample shows this
   frame), masked past the episode end.
   ``--batch_size N`` predicts N inference points per call (same chunks within rounding,
   faster); the reported latencies are then single-observation calls timed on the first
   batches of each bag, which is what the robot's inference node would see.
4. Baselines, with the same metrics: ``hold`` (the current proprio for the whole horizon) and
   ``mean_demo`` (the mean aligned action trajectory over the evaluated bags by grid index;
   with a single bag it is that bag's own actions, so its error is 0 by construction).
5. The executed view: the chunks in joint angles reach a simulated executor at observation time
   plus the measured inference time (or ``--executed_latency_s``); its real scheduler and
   safety shaping (replay_metrics.simulate_executor) give the command stream, compared with the
   recorded actions at every tick.

Units: rad for joints, the normalised gripper (0 closed .. 1 open) for grippers. The report
directory (metrics.json, PNG plots, report.html) appears only when everything succeeded; a bad
bag (unreadable, truncated, missing topic, wrong type, no complete observation, empty, recorded
on another robot) is one line naming the bag and the problem, exit status 2.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
import hashlib
from pathlib import Path
import time

import numpy as np

from training.data_config import DatasetConfig
from training.episodes import EpisodeError
from training.rosbag_episodes import AlignedStates, RosbagAligner, is_rosbag
from vla_adapter_core.cli_errors import add_debug_flag, run_reporting_errors
from vla_adapter_core.robot_description import RobotDescription, RobotLayout
from vla_adapter_ros.observation import (
    ObservationAssembler,
    check_policy_matches_robot,
    instruction_check,
    validate_action_chunk,
)
from vla_adapter_ros.recording import read_episode_metadata
from vla_adapter_ros.sync import SyncConfig

PROG = 'vla-adapter-replay-eval'
ACTION_SOURCES = ('auto', 'leader_joint_states', 'topic')
DEFAULT_ACTION_TOPIC = '/commanded_action'
LATENCY_PROBES = 5  # single-observation calls timed per bag when predicting in batches
MAX_BATCH_SIZE = 256  # --batch_size limit (memory: each observation holds its images)


@dataclass(frozen=True)
class EvalSettings:
    """How bags are read and inference points chosen (the CLI's options)."""

    robot: str = 'aloha'
    instruction: str | None = None
    stride: int = 1
    dt: float = 0.0  # chunk step (s); 0 = the robot description's control period
    action_source: str = 'auto'
    action_topic: str | None = None
    timestamp_source: str = 'header'
    max_gap_s: float = 0.2
    sync_slop_s: float = 0.05
    max_observation_age_s: float = 0.5
    max_future_stamp_s: float = 0.5
    executed_latency_s: float | None = None  # None: each chunk's measured inference time
    batch_size: int = 1  # observations per policy call (> 1: see replay_episode)
    executor_rate_hz: float = 50.0
    blend_mode: str = 'ensemble'
    gripper_threshold: float = 0.5
    progress: bool = True


@dataclass
class BagEpisode:
    """One bag after pass 1: its aligned states and how to feed its messages."""

    path: Path
    name: str
    identity: dict
    aligner: RosbagAligner
    aligned: AlignedStates
    instruction: str
    action_source: str
    reference_messages: int


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


class _PolicyCallFailed(Exception):
    """Carries an error of the policy out of the bag reader's guard (it is not the bag's)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def find_bags(path: str | Path) -> list[Path]:
    """``path`` itself when it is a bag, else the bags directly inside it (sorted)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f'--bag {path}: no such file or directory')
    if is_rosbag(path):
        return [path]
    if path.is_dir():
        bags = sorted(child for child in path.iterdir() if is_rosbag(child))
        if bags:
            return bags
    raise ValueError(f'--bag {path}: neither a rosbag2 bag (a directory with metadata.yaml, '
                     'a .mcap or .db3 file) nor a folder holding bags')


def bag_identity(path: Path) -> dict:
    """Name, path and a content fingerprint (sha256 of metadata.yaml, or of a bare file)."""
    source = path / 'metadata.yaml' if path.is_dir() else path
    digest = hashlib.sha256()
    with open(source, 'rb') as handle:
        digest.update(handle.read(1 << 20))
    digest.update(str(source.stat().st_size).encode())
    return {'name': path.name, 'path': str(path.resolve()), 'sha256': digest.hexdigest()[:16]}


def _check_recorded_robot(path: Path, metadata: dict, robot: RobotDescription) -> None:
    """A bag whose recorder sidecar names another robot layout is refused."""
    layout = (metadata.get('robot') or {}).get('layout')
    if not layout:
        return
    try:
        mismatch = RobotLayout.from_dict(layout).mismatch(robot.layout())
    except (TypeError, ValueError, KeyError) as error:
        raise EpisodeError(path, 'episode_metadata.yaml',
                           f'robot layout unreadable: {error}') from None
    if mismatch:
        recorded = metadata['robot'].get('name', '?')
        raise EpisodeError(path, 'robot', f'recorded on robot {recorded!r}, whose layout '
                                          f'differs from {robot.name!r}: {mismatch}')


def _action_source(path: Path, topics: set, metadata: dict, robot: RobotDescription,
                   settings: EvalSettings) -> tuple[str, str | None]:
    """(action_source, action_topic) of DatasetConfig for this bag."""
    if settings.action_source != 'auto':
        return settings.action_source, settings.action_topic or DEFAULT_ACTION_TOPIC
    recorder = metadata.get('recorder') or {}
    if recorder.get('action_source') == 'executor_commands':
        return 'topic', recorder.get('commanded_action_topic') or DEFAULT_ACTION_TOPIC
    leaders = [f'/{arm.namespace}/joint_states' for arm in robot.leaders]
    if leaders and all(topic in topics for topic in leaders):
        return 'leader_joint_states', None
    topic = settings.action_topic or DEFAULT_ACTION_TOPIC
    if topic in topics:
        return 'topic', topic
    raise EpisodeError(path, 'actions', f'no recorded actions: neither the leader joint states '
                                        f'{leaders} nor {topic} (topics: {sorted(topics)}); '
                                        'pass --action_source / --action_topic')


def load_episode(path: Path, robot: RobotDescription, policy_config,
                 settings: EvalSettings) -> BagEpisode:
    """Pass 1 of one bag: checks, action source, the aligned states (errors name the bag)."""
    metadata = read_episode_metadata(path) if path.is_dir() else {}
    _check_recorded_robot(path, metadata, robot)
    chunk_step_s = settings.dt or 1.0 / robot.control_rate_hz

    def config(source: str, topic: str | None) -> DatasetConfig:
        return DatasetConfig(
            paths=[str(path)], robot=settings.robot, camera_names=list(policy_config.camera_names),
            chunk_size=int(policy_config.chunk_size), rate_hz=1.0 / chunk_step_s,
            action_source=source, action_topic=topic, timestamp_source=settings.timestamp_source,
            max_gap_s=settings.max_gap_s, instruction=settings.instruction)

    reader = RosbagAligner(path, config('topic', DEFAULT_ACTION_TOPIC)).open_reader()
    try:
        topics = {connection.topic for connection in reader.connections}
        source, topic = _action_source(path, topics, metadata, robot, settings)
        aligner = RosbagAligner(path, config(source, topic))
        aligned = _guard_reading(path, lambda: aligner.align_states(reader))
        reference = aligner.camera_topics[policy_config.camera_names[0]]
        count = sum(c.msgcount for c in reader.connections if c.topic == reference)
    finally:
        reader.close()
    instruction = (settings.instruction or aligned.instruction or metadata.get('instruction')
                   or '').strip()
    if not instruction:
        raise EpisodeError(path, 'instruction', 'the bag records none; pass --instruction')
    return BagEpisode(path, path.name, bag_identity(path), aligner, aligned, instruction,
                      source if source != 'topic' else f'topic {topic}', count)


def _guard_reading(path: Path, work):
    """Run ``work()``; rosbags' errors on a damaged bag become an EpisodeError naming it."""
    try:
        return work()
    except EpisodeError:
        raise
    except _PolicyCallFailed as failure:
        raise failure.error from None
    except Exception as error:  # noqa: BLE001 - rosbags, mcap and sqlite raise many types
        detail = ' '.join(str(error).split()) or type(error).__name__
        raise EpisodeError(path, 'bag', f'damaged, cannot be read ({detail})') from None


def make_assembler(episode: BagEpisode, robot: RobotDescription, policy_cameras: list,
                   settings: EvalSettings) -> ObservationAssembler:
    """The inference node's assembler for this bag's camera topics (any image size)."""
    cameras = [(camera, episode.aligner.camera_topics[camera]) for camera in policy_cameras]
    streams = (*policy_cameras, *robot.namespaces)
    return ObservationAssembler(
        robot, cameras, policy_cameras,
        SyncConfig(streams, 200, settings.sync_slop_s, settings.max_observation_age_s),
        max_future_stamp_s=settings.max_future_stamp_s)


def replay_episode(episode: BagEpisode, policy, robot: RobotDescription,
                   settings: EvalSettings, progress=None) -> EpisodeRun:
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
            raise _PolicyCallFailed(error) from error
        finally:
            pending.clear()

    _guard_reading(episode.path, feed)
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


def load_policy(checkpoint: str, device: str, dtype: str):
    """VLAPolicy of ``checkpoint`` (directory or Hub repo id) on ``device``."""
    from vla_adapter_core import VLAPolicy
    from vla_adapter_ros.inference_node import check_device

    check_device(device)
    return VLAPolicy.from_pretrained(checkpoint, device=device, dtype=dtype)


def evaluate(bags: list[Path], policy, robot: RobotDescription,
             settings: EvalSettings) -> dict:
    """Replay every bag, then score the policy and the baselines; the report's data."""
    from vla_adapter_ros import replay_scoring

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
    return replay_scoring.score_runs(runs, policy, robot, settings, warning)


def _warm_up(policy, instruction: str) -> None:
    """Untimed predictions on blank images (lazy initialisation off the latency numbers)."""
    observation = {'images': {name: np.zeros((224, 224, 3), np.uint8)
                              for name in policy.config.camera_names},
                   'proprio': np.zeros(int(policy.config.proprio_dim), np.float32),
                   'instruction': instruction}
    for _ in range(getattr(policy, 'warmup_calls', 1)):
        policy.predict_action_chunk(observation)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Evaluate a checkpoint on recorded rosbag2 episodes: chunk '
        'errors against the demonstrator, baselines, the executed command stream; writes a '
        'report directory (metrics.json, PNG plots, report.html).')
    parser.add_argument('--bag', required=True, metavar='PATH|DIR',
                        help='a rosbag2 bag (directory, .mcap or .db3) or a folder of bags')
    parser.add_argument('--checkpoint', metavar='DIR|REPO_ID',
                        help='policy checkpoint (required unless --commands)')
    parser.add_argument('--commands', metavar='BAG', help='score a live replay instead: a bag '
                        "the recorder wrote with action_source 'executor_commands' while "
                        "--bag was played (its /commanded_action against --bag's actions)")
    parser.add_argument('--output', default='replay_eval_report', metavar='DIR',
                        help='report directory (must not exist or be empty, unless --overwrite)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing report')
    parser.add_argument('--robot', default='aloha', metavar='NAME|FILE',
                        help='robot description of the bags (a built-in name or a YAML file)')
    parser.add_argument('--instruction', help="instruction for every bag (default: the bag's)")
    parser.add_argument('--stride', type=int, default=1,
                        help='infer at every N-th synchronised observation')
    parser.add_argument('--batch_size', type=int, default=1,
                        help='observations per policy call (larger is faster, most of all on '
                             'a GPU; the latencies and the executed view then use timed '
                             f'single calls on the first {LATENCY_PROBES} batches of each bag)')
    parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu' or 'cuda'")
    parser.add_argument('--dtype', default='auto', help="policy dtype ('auto': bf16 on CUDA)")
    parser.add_argument('--seed', type=int, default=0, help='torch / numpy seed')
    parser.add_argument('--threads', type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 gives steady latencies "
                             'on a machine busy with other work')
    parser.add_argument('--dt', type=float, default=0.0,
                        help="chunk step in s (0: the robot's control period)")
    parser.add_argument('--action_source', default='auto', choices=ACTION_SOURCES,
                        help="where the demonstrator's actions are ('auto': the recorder's "
                             'sidecar, else leader joint states, else --action_topic)')
    parser.add_argument('--action_topic', help=f'action topic (default {DEFAULT_ACTION_TOPIC})')
    parser.add_argument('--timestamp_source', default='header', choices=('header', 'bag'),
                        help='align on header stamps or bag receive times')
    parser.add_argument('--max_gap_s', type=float, default=0.2,
                        help='a topic silent for longer inside a bag is an error')
    parser.add_argument('--executed_latency_s', type=float, default=None,
                        help='latency of every chunk in the executed view (default: each '
                             "chunk's measured inference time)")
    parser.add_argument('--blend_mode', default='ensemble', choices=('ensemble', 'switch'),
                        help="the executor's blending in the executed view")
    parser.add_argument('--max_plots', type=int, default=4,
                        help='episodes with a predicted-vs-recorded joint plot')
    parser.add_argument('--no_progress', action='store_true', help='no progress bar')
    add_debug_flag(parser)
    return parser


def _settings(args: argparse.Namespace) -> EvalSettings:
    if args.stride < 1:
        raise ValueError(f'--stride {args.stride}: must be >= 1')
    if args.dt < 0:
        raise ValueError(f'--dt {args.dt}: must be >= 0')
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f'--batch_size {args.batch_size}: must be 1 to {MAX_BATCH_SIZE}')
    return EvalSettings(robot=args.robot, instruction=args.instruction, stride=args.stride,
                        dt=args.dt, action_source=args.action_source,
                        action_topic=args.action_topic, timestamp_source=args.timestamp_source,
                        max_gap_s=args.max_gap_s, executed_latency_s=args.executed_latency_s,
                        blend_mode=args.blend_mode, batch_size=args.batch_size,
                        progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    """The CLI's work: evaluate (or score --commands) and write the report atomically."""
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros import replay_report, replay_scoring

    settings = _settings(args)
    output = replay_report.prepare_output(args.output, args.overwrite)
    robot = load_robot_description(settings.robot)
    bags = find_bags(args.bag)
    if args.commands:
        report = replay_scoring.score_live_replay(bags, Path(args.commands).expanduser(), robot,
                                                  settings)
    else:
        if not args.checkpoint:
            raise ValueError('--checkpoint is required (or --commands to score a live replay)')
        import torch

        if args.threads < 0:
            raise ValueError(f'--threads={args.threads}: must be >= 0')
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)
        policy = load_policy(args.checkpoint, args.device, args.dtype)
        report = evaluate(bags, policy, robot, settings)
        report['checkpoint'] = {'source': args.checkpoint, 'device': args.device,
                                'dtype': args.dtype, 'config': policy.config.to_dict()}
    report['settings'] = {**vars(args), 'resolved': settings.__dict__}
    replay_report.write_report(output, report, max_plots=args.max_plots)
    print(f'{PROG}: report written to {output} ({report["summary_line"]})')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``vla-adapter-replay-eval``."""
    parser = _parser()
    args = parser.parse_args(argv)
    return run_reporting_errors(PROG, lambda: run(args), debug=args.debug)


if __name__ == '__main__':
    raise SystemExit(main())
