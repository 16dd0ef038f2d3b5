"""The bags of a replay evaluation: found, checked and aligned as training aligns them.

Pass 1 of every bag: its recorded robot, its action source (the recorder's sidecar, the leader
arms or a topic), the aligned states (training.rosbag_episodes.RosbagAligner), its instruction
and who was in control (replay_control.py). Every problem is an EpisodeError naming the bag.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
from pathlib import Path

from training.data_config import DatasetConfig
from training.episodes import EpisodeError
from training.rosbag_episodes import (
    AlignedStates,
    RosbagAligner,
    damaged_bag_errors,
    is_rosbag,
)
from vla_adapter_core.robot_description import RobotDescription, RobotLayout
from vla_adapter_ros.recording.bag_format import read_episode_metadata
from vla_adapter_ros.replay.replay_config import DEFAULT_ACTION_TOPIC, ReplayEvalConfig
from vla_adapter_ros.replay.replay_control import EpisodeControl, episode_control


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
    control: EpisodeControl  # the takeover intervals (origin None: the bag has none)


class PolicyCallFailed(Exception):
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
        mismatch = RobotLayout.from_dict(layout).mismatch(robot.layout(), mine='bag')
    except (TypeError, ValueError, KeyError) as error:
        raise EpisodeError(path, 'episode_metadata.yaml',
                           f'robot layout unreadable: {error}') from None
    if mismatch:
        recorded = metadata['robot'].get('name', '?')
        raise EpisodeError(path, 'robot', f'recorded on robot {recorded!r}, whose layout '
                                          f'differs from {robot.name!r}: {mismatch}')


def _action_source(path: Path, topics: set, metadata: dict, robot: RobotDescription,
                   settings: ReplayEvalConfig) -> tuple[str, str | None]:
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
                 settings: ReplayEvalConfig) -> BagEpisode:
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
        aligned = guard_reading(path, lambda: aligner.align_states(reader))
        reference = aligner.camera_topics[policy_config.camera_names[0]]
        count = sum(c.msgcount for c in reader.connections if c.topic == reference)
    finally:
        reader.close()
    instruction = (settings.instruction or aligned.instruction or metadata.get('instruction')
                   or '').strip()
    if not instruction:
        raise EpisodeError(path, 'instruction', 'the bag records none; pass --instruction')
    control = episode_control(path, metadata, aligner.control_messages, aligned.grid)
    return BagEpisode(path, path.name, bag_identity(path), aligner, aligned, instruction,
                      source if source != 'topic' else f'topic {topic}', count, control)


def guard_reading(path: Path, work):
    """Run ``work()``; a reader's error on a damaged bag becomes an EpisodeError naming it.

    An error of the policy (PolicyCallFailed) is the policy's, not the bag's: re-raised as such.
    """
    try:
        with damaged_bag_errors(path, passthrough=(PolicyCallFailed,)):
            return work()
    except PolicyCallFailed as failure:
        raise failure.error from None
