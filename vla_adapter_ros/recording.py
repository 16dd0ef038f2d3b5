"""Episode recording without a node: what to record, the bag writer and its writer thread.

- :func:`build_topic_plan`: the topics of one episode from the robot description alone
  (cameras, follower joint states, the action source, the instruction), each with the topic and
  type it has in the bag.
- :class:`EpisodeBagWriter`: one rosbag2 bag (mcap or sqlite3) written with rosbags. Messages
  arrive as the CDR bytes rclpy received. Most are written as they are; sensor_msgs/JointState
  is re-serialised with rosbags' own serialiser (rclpy's CDR of an empty float64[] does not
  decode in rosbags), raw images are JPEG-compressed on the fly when asked (CompressedImage with
  format ``'<encoding>; jpeg compressed bgr8'`` on ``<camera topic>/compressed``), and the
  executor's per-arm commands are also combined into one policy-units action per update.
- :class:`EpisodeRecorder`: episodes start and stop from any thread; :meth:`offer` never waits:
  a bounded queue feeds one writer thread, and a message that finds the queue full is dropped
  and counted.

Each bag directory holds the standard ``metadata.yaml`` exactly as rosbags writes it (version 8:
Humble's ``ros2 bag info`` cannot parse version 9's QoS lists; Jazzy reads both), the
instruction in the standard ``custom_data``, and everything else in the sidecar
``episode_metadata.yaml`` (:data:`EPISODE_METADATA_NAME`), which also takes the success flag
after the episode.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
from pathlib import Path
import threading
import time

import numpy as np
from PIL import Image as PilImage
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
import yaml

from vla_adapter_core.robot_description import RobotDescription

BAG_METADATA_VERSION = 8
EPISODE_METADATA_NAME = 'episode_metadata.yaml'
STORAGE_PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
JOINT_STATE = 'sensor_msgs/msg/JointState'
STRING = 'std_msgs/msg/String'
FLOAT64_ARRAY = 'std_msgs/msg/Float64MultiArray'
JOINT_GROUP_COMMAND = 'interbotix_xs_msgs/msg/JointGroupCommand'
JOINT_SINGLE_COMMAND = 'interbotix_xs_msgs/msg/JointSingleCommand'
# The Interbotix command definitions (interbotix_xs_msgs), for rosbags' type store.
INTERBOTIX_DEFINITIONS = {JOINT_GROUP_COMMAND: 'string name\nfloat32[] cmd',
                          JOINT_SINGLE_COMMAND: 'string name\nfloat32 cmd'}
ROLES = ('camera', 'follower_state', 'leader_state', 'group_command', 'single_command',
         'instruction')


class RecordingError(RuntimeError):
    """An episode cannot start, stop or be marked; the text says why."""


@dataclasses.dataclass(frozen=True)
class TopicPlan:
    """One recorded topic: where it is subscribed, what it is, how it is stored."""

    topic: str
    msgtype: str
    role: str
    bag_topic: str
    bag_msgtype: str
    arm_index: int = -1


def build_topic_plan(robot: RobotDescription, *, action_source: str, camera_transport: str,
                     jpeg_quality: int, joint_states_topic: str,
                     instruction_topic: str) -> tuple[TopicPlan, ...]:
    """The topics of an episode of ``robot`` (absolute names), in a fixed order."""
    plan = []
    for topic in robot.camera_topics():
        if camera_transport == 'compressed':
            compressed = f'{topic}/compressed'
            plan.append(TopicPlan(compressed, COMPRESSED_IMAGE, 'camera', compressed,
                                  COMPRESSED_IMAGE))
        elif jpeg_quality:
            plan.append(TopicPlan(topic, IMAGE, 'camera', f'{topic}/compressed',
                                  COMPRESSED_IMAGE))
        else:
            plan.append(TopicPlan(topic, IMAGE, 'camera', topic, IMAGE))
    for index, arm in enumerate(robot.arms):
        topic = f'/{arm.namespace}/{joint_states_topic}'
        plan.append(TopicPlan(topic, JOINT_STATE, 'follower_state', topic, JOINT_STATE, index))
    if action_source == 'leader_joint_states':
        for index, arm in enumerate(robot.leaders):
            topic = f'/{arm.namespace}/{joint_states_topic}'
            plan.append(TopicPlan(topic, JOINT_STATE, 'leader_state', topic, JOINT_STATE, index))
    elif action_source == 'executor_commands':
        for index, arm in enumerate(robot.arms):
            for role, name, msgtype in (('group_command', 'joint_group', JOINT_GROUP_COMMAND),
                                        ('single_command', 'joint_single',
                                         JOINT_SINGLE_COMMAND)):
                topic = f'/{arm.namespace}/commands/{name}'
                plan.append(TopicPlan(topic, msgtype, role, topic, msgtype, index))
    plan.append(TopicPlan(instruction_topic, STRING, 'instruction', instruction_topic, STRING))
    return tuple(plan)


def recording_typestore():
    """The kilted type store of rosbags plus the Interbotix command messages."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    for name, definition in INTERBOTIX_DEFINITIONS.items():
        typestore.register(get_types_from_msg(definition, name))
    return typestore


def write_yaml_atomically(path: Path, data: dict) -> None:
    """Dump ``data`` to ``path`` through a temporary file (a reader never sees half a file)."""
    partial = path.with_name(f'.{path.name}.partial')
    partial.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                       encoding='utf-8')
    partial.replace(path)


class CommandCombiner:
    """The latest Interbotix commands of every arm -> one policy-units action vector."""

    def __init__(self, robot: RobotDescription) -> None:
        """Nothing commanded yet."""
        self.robot = robot
        self._groups: list[np.ndarray | None] = [None] * robot.num_arms
        self._grippers: list[float | None] = [None] * robot.num_arms
        self.ignored = 0  # commands for another group or joint

    def update(self, role: str, arm_index: int, message) -> np.ndarray | None:
        """Take one decoded command; the combined (action_dim,) action once all arms have one."""
        arm = self.robot.arms[arm_index]
        if role == 'group_command':
            values = np.asarray(message.cmd, dtype=np.float64)
            if message.name != arm.model.arm_group or values.shape != (len(arm.joint_names),):
                self.ignored += 1
                return None
            self._groups[arm_index] = values
        else:
            if message.name != arm.model.gripper_joint:
                self.ignored += 1
                return None
            self._grippers[arm_index] = float(message.cmd)
        if any(group is None for group in self._groups) or None in self._grippers:
            return None
        angles = np.concatenate([np.append(group, gripper)
                                 for group, gripper in zip(self._groups, self._grippers)])
        return self.robot.joint_angles_to_policy(angles)  # (action_dim,)


class EpisodeBagWriter:
    """One episode's bag, opened, written and closed in the writer thread only."""

    def __init__(self, path: Path, storage: str, plan: tuple[TopicPlan, ...], typestore,
                 robot: RobotDescription, jpeg_quality: int = 0,
                 commanded_action_topic: str = '') -> None:
        """Create the bag directory and one connection per planned topic (raises on failure)."""
        self.path = path
        self.plan = plan
        self.typestore = typestore
        self.jpeg_quality = jpeg_quality
        self._writer = Writer(path, version=BAG_METADATA_VERSION,
                              storage_plugin=STORAGE_PLUGINS[storage])
        self._writer.open()
        self._connections = [self._writer.add_connection(entry.bag_topic, entry.bag_msgtype,
                                                         typestore=typestore)
                             for entry in plan]
        self.counts = {entry.bag_topic: 0 for entry in plan}
        self._combiner = None
        if any(entry.role == 'group_command' for entry in plan):
            self._combiner = CommandCombiner(robot)
            self._action_topic = commanded_action_topic
            self._action_connection = self._writer.add_connection(
                commanded_action_topic, FLOAT64_ARRAY, typestore=typestore)
            self.counts[commanded_action_topic] = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def write(self, slot: int, time_ns: int, data: bytes) -> None:
        """Store one received message of plan entry ``slot`` at bag time ``time_ns``."""
        entry = self.plan[slot]
        if entry.msgtype == IMAGE and entry.bag_msgtype == COMPRESSED_IMAGE:
            data = self._jpeg_message(data)
        elif entry.msgtype == JOINT_STATE:
            data = self._reserialized_joint_state(data)
        self._writer.write(self._connections[slot], time_ns, data)
        self.counts[entry.bag_topic] += 1
        self.first_ns = time_ns if self.first_ns is None else min(self.first_ns, time_ns)
        self.last_ns = time_ns if self.last_ns is None else max(self.last_ns, time_ns)
        if self._combiner is not None and entry.role in ('group_command', 'single_command'):
            message = self.typestore.deserialize_cdr(data, entry.msgtype)
            action = self._combiner.update(entry.role, entry.arm_index, message)
            if action is not None:
                self._write_action(time_ns, action)

    def _jpeg_message(self, data: bytes) -> bytes:
        from vla_adapter_ros.conversions import image_to_rgb

        image = self.typestore.deserialize_cdr(data, IMAGE)
        rgb = image_to_rgb(image, source='recorded image')  # (H, W, 3)
        buffer = io.BytesIO()
        PilImage.fromarray(rgb).save(buffer, format='JPEG', quality=self.jpeg_quality)
        compressed = self.typestore.types[COMPRESSED_IMAGE](
            header=image.header, format=f'{image.encoding}; jpeg compressed bgr8',
            data=np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        return self.typestore.serialize_cdr(compressed, COMPRESSED_IMAGE)

    def _reserialized_joint_state(self, data: bytes) -> bytes:
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import JointState

        state = deserialize_message(data, JointState)
        types = self.typestore.types
        stamp = types['builtin_interfaces/msg/Time'](sec=state.header.stamp.sec,
                                                     nanosec=state.header.stamp.nanosec)
        message = types[JOINT_STATE](
            header=types['std_msgs/msg/Header'](stamp=stamp, frame_id=state.header.frame_id),
            name=list(state.name), position=np.asarray(state.position, dtype=np.float64),
            velocity=np.asarray(state.velocity, dtype=np.float64),
            effort=np.asarray(state.effort, dtype=np.float64))
        return self.typestore.serialize_cdr(message, JOINT_STATE)

    def _write_action(self, time_ns: int, action: np.ndarray) -> None:
        types = self.typestore.types
        message = types[FLOAT64_ARRAY](
            layout=types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0),
            data=np.asarray(action, dtype=np.float64))
        self._writer.write(self._action_connection, time_ns,
                           self.typestore.serialize_cdr(message, FLOAT64_ARRAY))
        self.counts[self._action_topic] += 1

    @property
    def ignored_commands(self) -> int:
        """Commands for another joint group or joint (kept in the bag, not combined)."""
        return 0 if self._combiner is None else self._combiner.ignored

    def close(self, instruction: str) -> None:
        """Finish the bag: the instruction into custom_data, then metadata.yaml."""
        if instruction:
            self._writer.set_custom_data('instruction', instruction)
        self._writer.close()


@dataclasses.dataclass
class Episode:
    """One episode's bookkeeping, shared by the recorder and its writer thread."""

    name: str
    path: Path
    instruction: str
    start_ns: int
    stop_ns: int | None = None
    stop_reason: str = ''
    success: bool | None = None
    dropped: int = 0
    write_errors: int = 0
    last_error: str = ''
    complete: bool = False
    ignored_commands: int = 0
    counts: dict = dataclasses.field(default_factory=dict)


class _BoundedQueue:
    """FIFO whose messages are bounded (a full queue refuses them); control items always fit."""

    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self._items: collections.deque = collections.deque()
        self._messages = 0
        self._unfinished = 0
        self._condition = threading.Condition()

    def put_message(self, item) -> bool:
        with self._condition:
            if self._messages >= self.max_messages:
                return False
            self._items.append((True, item))
            self._messages += 1
            self._unfinished += 1
            self._condition.notify_all()
            return True

    def put_control(self, item) -> None:
        with self._condition:
            self._items.append((False, item))
            self._unfinished += 1
            self._condition.notify_all()

    def get(self):
        with self._condition:
            while not self._items:
                self._condition.wait()
            is_message, item = self._items.popleft()
            if is_message:
                self._messages -= 1
            return item

    def task_done(self) -> None:
        with self._condition:
            self._unfinished -= 1
            self._condition.notify_all()

    def join(self, timeout_s: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self._unfinished == 0, timeout_s)

    @property
    def depth(self) -> int:
        return self._messages


class EpisodeRecorder:
    """Episodes on demand: one bag each, written by one thread fed through a bounded queue.

    ``static_metadata`` (robot, provenance, settings) goes into every episode's sidecar.
    Thread-safe: :meth:`offer` is called from subscription callbacks, the rest from services,
    topics and timers.
    """

    def __init__(self, plan: tuple[TopicPlan, ...], robot: RobotDescription, *,
                 output_dir: Path, episode_prefix: str = 'episode', storage: str = 'mcap',
                 jpeg_quality: int = 0, commanded_action_topic: str = '/commanded_action',
                 queue_size: int = 2000, static_metadata: dict | None = None) -> None:
        """Start the writer thread; nothing is recorded until :meth:`start`."""
        self.plan = plan
        self.robot = robot
        self.output_dir = Path(output_dir)
        self.episode_prefix = episode_prefix
        self.storage = storage
        self.jpeg_quality = jpeg_quality
        self.commanded_action_topic = commanded_action_topic
        self.static_metadata = dict(static_metadata or {})
        self.typestore = recording_typestore()
        self._queue = _BoundedQueue(queue_size)
        self._lock = threading.Lock()
        self._current: Episode | None = None
        self._last: Episode | None = None
        self._claimed: set[str] = set()
        self.dropped_total = 0
        self.written_total = 0
        self.episodes_finished = 0
        self._thread = threading.Thread(target=self._run, name='episode_writer', daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- control (any thread)
    @property
    def recording(self) -> Episode | None:
        """The episode being recorded, or None."""
        return self._current

    def _next_path(self) -> Path:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        taken = {path.name for path in self.output_dir.iterdir()} | self._claimed
        index = 0
        while f'{self.episode_prefix}_{index:04d}' in taken:
            index += 1
        self._claimed.add(f'{self.episode_prefix}_{index:04d}')  # before the thread creates it
        return self.output_dir / f'{self.episode_prefix}_{index:04d}'

    def start(self, instruction: str, now_ns: int) -> Episode:
        """Open the next bag and record into it; RecordingError when that cannot be done."""
        with self._lock:
            if self._current is not None:
                raise RecordingError(f'already recording {self._current.path}')
            try:
                path = self._next_path()
            except OSError as error:
                raise RecordingError(f'cannot create bags in {self.output_dir}: {error}') from None
            if not os.access(self.output_dir, os.W_OK):
                raise RecordingError(f'cannot write into {self.output_dir}')
            episode = Episode(name=path.name, path=path, instruction=instruction,
                              start_ns=now_ns)
            self._current = episode
            # The writer thread opens the bag: sqlite3 connections live in the thread that
            # made them.
            self._queue.put_control(('begin', episode))
        return episode

    def offer(self, slot: int, time_ns: int, data: bytes) -> None:
        """Queue one received message for the current episode; never waits (full = dropped)."""
        with self._lock:
            episode = self._current
            if episode is None:
                return
            if not self._queue.put_message(('message', episode, slot, time_ns, data)):
                episode.dropped += 1
                self.dropped_total += 1

    def stop(self, reason: str, now_ns: int) -> Episode:
        """End the current episode (its queued messages are still written)."""
        with self._lock:
            episode = self._current
            if episode is None:
                raise RecordingError('not recording')
            episode.stop_ns, episode.stop_reason = now_ns, reason
            self._current, self._last = None, episode
            self._queue.put_control(('finish', episode))
        return episode

    def set_success(self, success: bool) -> Episode:
        """Mark the current episode, else the last one, as a success or a failure."""
        with self._lock:
            episode = self._current or self._last
            if episode is None:
                raise RecordingError('no episode recorded yet')
            episode.success = bool(success)
            self._queue.put_control(('mark', episode))
        return episode

    def set_instruction(self, instruction: str) -> None:
        """A new instruction during an episode becomes that episode's."""
        with self._lock:
            if self._current is not None:
                self._current.instruction = instruction

    def wait_until_written(self, timeout_s: float = 10.0) -> bool:
        """Block until everything queued so far is written (tests, shutdown)."""
        return self._queue.join(timeout_s)

    def close(self, now_ns: int, timeout_s: float = 30.0) -> None:
        """Stop a running episode ('shutdown'), write everything and end the thread."""
        if self._current is not None:
            self.stop('shutdown', now_ns)
        self._queue.put_control(('quit',))
        self._thread.join(timeout_s)

    def status(self, now_ns: int) -> dict:
        """Counters for the node's status (queue depth, drops, the episode in progress)."""
        with self._lock:
            episode, last = self._current, self._last
            status = {'recording': episode is not None,
                      'episode': episode.name if episode else '',
                      'elapsed_s': (now_ns - episode.start_ns) / 1e9 if episode else 0.0,
                      'queue_depth': self._queue.depth,
                      'dropped_messages': self.dropped_total,
                      'episode_dropped_messages': episode.dropped if episode else 0,
                      'written_messages': self.written_total,
                      'episodes_finished': self.episodes_finished,
                      'last_episode': str(last.path) if last else '',
                      'last_success': '' if last is None or last.success is None
                      else str(last.success).lower()}
            current = episode or last
            status['write_errors'] = current.write_errors if current else 0
            status['last_error'] = current.last_error if current else ''
        return status

    # ----------------------------------------------------------------- writer thread
    def _run(self) -> None:
        writers: dict[int, EpisodeBagWriter] = {}
        while True:
            item = self._queue.get()
            try:
                if item[0] == 'quit':
                    return
                self._handle(item, writers)
            finally:
                self._queue.task_done()

    def _handle(self, item: tuple, writers: dict) -> None:
        kind, episode = item[0], item[1]
        if kind == 'message':
            writer = writers.get(id(episode))
            if writer is not None:
                self._write_message(episode, writer, *item[2:])
            else:  # the bag did not open
                episode.write_errors += 1
        elif kind == 'begin':
            try:
                writers[id(episode)] = EpisodeBagWriter(
                    episode.path, self.storage, self.plan, self.typestore, self.robot,
                    self.jpeg_quality, self.commanded_action_topic)
            except Exception as error:  # noqa: BLE001 - rosbags and the OS raise many types
                episode.last_error = f'cannot open bag {episode.path}: {error}'
                return
            self._write_sidecar(episode, writers[id(episode)])
        elif kind == 'finish':
            writer = writers.pop(id(episode), None)
            try:
                if writer is not None:
                    writer.close(episode.instruction)
            except Exception as error:  # noqa: BLE001 - reported in the sidecar and status
                episode.last_error = f'closing the bag failed: {error}'
            episode.complete = writer is not None
            self._write_sidecar(episode, writer)
            self.episodes_finished += 1
        elif kind == 'mark':
            self._write_sidecar(episode, writers.get(id(episode)))

    def _write_message(self, episode: Episode, writer: EpisodeBagWriter, slot: int,
                       time_ns: int, data: bytes) -> None:
        try:
            writer.write(slot, time_ns, data)
            self.written_total += 1
        except Exception as error:  # noqa: BLE001 - one bad message must not end the bag
            episode.write_errors += 1
            episode.last_error = f'{self.plan[slot].topic}: {error}'

    def _write_sidecar(self, episode: Episode, writer: EpisodeBagWriter | None) -> None:
        """Write (or rewrite) the episode's episode_metadata.yaml."""
        if writer is not None:
            episode.counts = dict(writer.counts)
            episode.ignored_commands = writer.ignored_commands
        duration_s = None if episode.stop_ns is None else (
            (episode.stop_ns - episode.start_ns) / 1e9)
        topics = {}
        for entry in self.plan:
            count = episode.counts.get(entry.bag_topic, 0)
            topics[entry.bag_topic] = {
                'source_topic': entry.topic, 'type': entry.bag_msgtype, 'role': entry.role,
                'messages': count,
                'rate_hz': round(count / duration_s, 3) if duration_s else None}
        if self.commanded_action_topic in episode.counts:
            count = episode.counts[self.commanded_action_topic]
            topics[self.commanded_action_topic] = {
                'source_topic': None, 'type': FLOAT64_ARRAY, 'role': 'commanded_action',
                'messages': count, 'rate_hz': round(count / duration_s, 3) if duration_s
                else None}
        data = {
            'episode': episode.name, 'complete': episode.complete,
            'instruction': episode.instruction, 'success': episode.success,
            'start_time_ns': episode.start_ns, 'stop_time_ns': episode.stop_ns,
            'start_time': time.strftime('%Y-%m-%dT%H:%M:%S%z',
                                        time.localtime(episode.start_ns / 1e9)),
            'duration_s': duration_s, 'stop_reason': episode.stop_reason or None,
            'storage': self.storage, 'jpeg_quality': self.jpeg_quality,
            'dropped_messages': episode.dropped, 'write_errors': episode.write_errors,
            'last_error': episode.last_error or None,
            'ignored_commands': episode.ignored_commands,
            'missing_topics': [name for name, info in topics.items() if info['messages'] == 0
                               and info['role'] != 'instruction'] if episode.complete else None,
            'topics': topics, **self.static_metadata}
        try:
            write_yaml_atomically(episode.path / EPISODE_METADATA_NAME, data)
        except OSError as error:
            episode.last_error = f'cannot write {EPISODE_METADATA_NAME}: {error}'


def read_episode_metadata(bag: str | Path) -> dict:
    """The sidecar of a recorded bag directory ({} when it has none)."""
    path = Path(bag) / EPISODE_METADATA_NAME
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding='utf-8')) or {}
