"""rosbag2 episodes (mcap or sqlite3), read with rosbags and time-aligned to a fixed rate.

A bag is aligned once into an HDF5 cache in the ALOHA layout (JPEG frames, ``compress_len``), so
training reads every episode through :class:`training.episodes.AlohaHdf5Episode` with random
access. Alignment: a grid at ``rate_hz`` from the latest first message to the earliest last message
over all used topics; each topic contributes its latest message at or before each grid time (zero
order hold). A topic silent for more than ``max_gap_s`` inside the grid is an error.
A camera topic the bag lacks is read from ``<topic>/compressed`` (image_transport's name) when
the bag has that.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass, field
import hashlib
import io
import json
import os
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from rosbags.rosbag2 import Reader

from training.bag_types import CONTROL_SOURCE_TOPIC, INSTRUCTION_TOPIC, bag_typestore
from training.bag_types import STRING as STRING_TYPE
from training.corrections import control_codes
from training.data_config import DatasetConfig
from training.episodes import (
    ACTION_KEY,
    CHANNEL_ORDER_ATTR,
    COMPRESS_LEN_KEY,
    CONTROL_KEY,
    IMAGES_GROUP,
    QPOS_KEY,
    AlohaHdf5Episode,
    EpisodeError,
    check_state_arrays,
)
from vla_adapter_core.cli_errors import one_line
from vla_adapter_core.robot_description import Arm

BAG_FILE_SUFFIXES = ('.mcap', '.db3')
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
ARRAY_TYPES = ('std_msgs/msg/Float32MultiArray', 'std_msgs/msg/Float64MultiArray')
CACHE_VERSION = 1
SOURCE_ATTR = 'source_bag'


def is_rosbag(path: Path) -> bool:
    """A rosbag2 directory (with metadata.yaml) or a bare .mcap / .db3 storage file."""
    if path.is_dir():
        return (path / 'metadata.yaml').is_file()
    return path.suffix in BAG_FILE_SUFFIXES


@dataclass
class TopicSeries:
    """Time stamps (ns) of one topic's messages in bag order, and their values if not images."""

    topic: str
    msgtype: str
    stamps: list[int] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)


@dataclass
class AlignedStates:
    """A bag's topics on the alignment grid (pass 1 of :class:`RosbagAligner`)."""

    series: dict[str, TopicSeries]
    grid: np.ndarray  # (T,) grid times, ns
    proprio: np.ndarray  # (T, P) float32
    actions: np.ndarray  # (T, A) float32
    instruction: str | None
    control: np.ndarray | None = None  # (T,) uint8 control codes of a takeover recording


def _joint_positions(bag: Path, topic: str, message,
                     joint_names: tuple[str, ...]) -> np.ndarray:
    """Positions of ``joint_names`` (in that order) from a JointState, looked up by name."""
    names = list(message.name)
    positions = np.asarray(message.position, dtype=np.float64)
    if len(positions) != len(names):
        raise EpisodeError(bag, topic, f'{len(names)} joint names but {len(positions)} positions')
    missing = [joint for joint in joint_names if joint not in names]
    if missing:
        raise EpisodeError(bag, topic, f'joint_states lack joints {missing} (have {names})')
    return positions[[names.index(joint) for joint in joint_names]]  # (n_joints,)


def _stamp_ns(message, bag_time: int, timestamp_source: str) -> int:
    header = getattr(message, 'header', None)
    if timestamp_source == 'header' and header is not None:
        return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return int(bag_time)


def image_message_to_rgb(bag: Path, topic: str, message) -> np.ndarray:
    """sensor_msgs Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage -> (H, W, 3)."""
    if message.__msgtype__ == 'sensor_msgs/msg/CompressedImage':
        with Image.open(io.BytesIO(bytes(message.data))) as image:
            return np.asarray(image.convert('RGB'))
    channels = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}.get(message.encoding)
    if channels is None:
        raise EpisodeError(bag, topic, f'image encoding {message.encoding!r} is not supported '
                                       '(rgb8, bgr8, rgba8, bgra8, mono8)')
    height, width = int(message.height), int(message.width)
    data = np.frombuffer(bytes(message.data), dtype=np.uint8)
    if data.size < height * message.step:
        raise EpisodeError(bag, topic, f'image data has {data.size} bytes, expected '
                                       f'{height * message.step}')
    rows = data[: height * message.step].reshape(height, message.step)
    pixels = rows[:, : width * channels].reshape(height, width, channels)  # (H, W, C)
    if message.encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    if message.encoding.startswith('bgr'):
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.ascontiguousarray(pixels[..., :3])


@contextlib.contextmanager
def damaged_bag_errors(bag: Path, passthrough: tuple = ()):
    """Inside: an error of the bag reader becomes one EpisodeError naming the bag.

    rosbags, mcap and sqlite raise many unrelated types (an OverflowError, a struct error) on a
    damaged file; ``passthrough`` exceptions (not the bag's fault) propagate unchanged.
    """
    try:
        yield
    except (EpisodeError, *passthrough):
        raise
    except Exception as error:  # noqa: BLE001 - any reader failure is a damaged bag
        detail = one_line(error)
        raise EpisodeError(bag, 'bag', f'damaged, cannot be read ({detail})') from None


def check_message_counts(bag: Path, reader: Reader, read: dict[str, int]) -> None:
    """EpisodeError when a topic yielded fewer messages than the bag says it holds.

    The counts come from metadata.yaml, or from the MCAP summary for a bare .mcap (rosbags
    reads either into its connections). A damaged region that the reader skips silently shows
    up here, however small.
    """
    expected: dict[str, int] = {}
    for connection in reader.connections:
        if connection.topic in read:
            expected[connection.topic] = expected.get(connection.topic, 0) + connection.msgcount
    for topic, count in read.items():
        if expected.get(topic) and count != expected[topic]:
            raise EpisodeError(bag, topic, f'damaged: {count} messages read of the '
                                           f'{expected[topic]} the bag records')


class RosbagAligner:
    """Reads one bag, aligns its topics at ``config.rate_hz`` and writes the HDF5 cache."""

    def __init__(self, bag: Path, config: DatasetConfig) -> None:
        config.check_rosbag_robot()
        robot = config.robot_description()
        self.bag = bag
        self.config = config
        self.typestore = bag_typestore()
        self.camera_topics = {camera: config.camera_topic_template.format(camera=camera)
                              for camera in config.camera_names}
        self.proprio_arms = {f'/{arm.namespace}/joint_states': arm for arm in robot.arms}
        self.proprio_topics = list(self.proprio_arms)
        if config.action_source == 'topic':
            # A commanded JointState holds one follower arm's joint angles.
            self.action_arms = {config.action_topic: robot.arms[0]}
        else:
            self.action_arms = {f'/{arm.namespace}/joint_states': arm for arm in robot.leaders}
        self.action_topics = list(self.action_arms)
        self.single_arm = robot.num_arms == 1
        self.control_messages: tuple[list[int], list[str]] | None = None  # (stamps, sources)

    def _state_value(self, topic: str, message) -> np.ndarray:
        """One arm's policy values (joints, then gripper) or a recorded action array."""
        if message.__msgtype__ != JOINT_STATE_TYPE:
            return np.asarray(message.data, dtype=np.float64)
        raw = self.config.gripper_mode == 'raw'
        if topic in self.proprio_arms:  # observed: the finger position, normalised
            arm: Arm = self.proprio_arms[topic]
            if raw:
                return _joint_positions(self.bag, topic, message, arm.command_joint_names)
            return arm.observe(_joint_positions(self.bag, topic, message, arm.state_joint_names))
        if not self.single_arm and self.config.action_source == 'topic':
            raise EpisodeError(self.bag, topic, 'a JointState action topic holds one arm; '
                                                'record several arms as Float64MultiArray')
        arm = self.action_arms[topic]  # commanded: the gripper joint angle, normalised
        values = _joint_positions(self.bag, topic, message, arm.command_joint_names)
        return values if raw else arm.action_from_joint_angles(values)

    def _read_series(self, reader: Reader) -> tuple[dict[str, TopicSeries], str | None]:
        """Pass 1: stamps of every used topic, values of the state/action topics."""
        in_bag = {c.topic for c in reader.connections}
        for camera, topic in self.camera_topics.items():
            if topic not in in_bag and f'{topic}/compressed' in in_bag:
                self.camera_topics[camera] = f'{topic}/compressed'  # image_transport's name
        wanted = set(self.camera_topics.values()) | set(self.proprio_topics)
        wanted |= set(self.action_topics)
        connections = [c for c in reader.connections if c.topic in wanted]
        present = {c.topic for c in connections}
        missing = sorted(wanted - present)
        if missing:
            all_topics = sorted({c.topic for c in reader.connections})
            cameras = set(self.camera_topics.values())
            # A camera is found raw or as image_transport's compressed topic: name both.
            name = (f'{missing[0]} (nor {missing[0]}/compressed)' if missing[0] in cameras
                    else missing[0])
            raise EpisodeError(self.bag, name,
                               f'topic missing from the bag (topics in bag: {all_topics})')
        series: dict[str, TopicSeries] = {}
        for connection in connections:
            allowed = IMAGE_TYPES if connection.topic in self.camera_topics.values() else (
                (JOINT_STATE_TYPE,) + (ARRAY_TYPES if connection.topic in self.action_topics
                                       and self.config.action_source == 'topic' else ()))
            if connection.msgtype not in allowed:
                raise EpisodeError(self.bag, connection.topic,
                                   f'message type {connection.msgtype}, expected one of {allowed}')
            series[connection.topic] = TopicSeries(connection.topic, connection.msgtype)
        instructions = [c for c in reader.connections
                        if c.topic in (INSTRUCTION_TOPIC, CONTROL_SOURCE_TOPIC)
                        and c.msgtype == STRING_TYPE]
        if any(c.topic == CONTROL_SOURCE_TOPIC for c in instructions):
            self.control_messages = ([], [])
        read = dict.fromkeys((c.topic for c in [*connections, *instructions]), 0)
        topic_instruction = None
        with damaged_bag_errors(self.bag):
            for connection, bag_time, raw in reader.messages(
                    connections=connections + instructions):
                read[connection.topic] += 1
                message = self.typestore.deserialize_cdr(raw, connection.msgtype)
                if connection.topic == INSTRUCTION_TOPIC:
                    topic_instruction = message.data.strip() or topic_instruction  # last wins
                    continue
                if connection.topic == CONTROL_SOURCE_TOPIC:  # who commanded, on bag time
                    self.control_messages[0].append(int(bag_time))
                    self.control_messages[1].append(message.data)
                    continue
                entry = series[connection.topic]
                entry.stamps.append(_stamp_ns(message, bag_time, self.config.timestamp_source))
                if connection.msgtype not in IMAGE_TYPES:
                    entry.values.append(self._state_value(connection.topic, message))
        check_message_counts(self.bag, reader, read)
        custom = getattr(reader.storage, 'metadata', None)
        custom = getattr(custom, 'custom', None) or {}
        # The bag's metadata (custom_data), else the recorded instruction topic (a bare .mcap).
        return series, custom.get('instruction') or topic_instruction

    def _grid(self, series: dict[str, TopicSeries]) -> np.ndarray:
        for entry in series.values():
            if not entry.stamps:
                raise EpisodeError(self.bag, entry.topic, 'no messages (episode shorter than '
                                                          'one step)')
            if np.any(np.diff(entry.stamps) < 0):
                raise EpisodeError(self.bag, entry.topic,
                                   f'{self.config.timestamp_source} time stamps go backwards; '
                                   "try timestamp_source='bag'")
        start = max(entry.stamps[0] for entry in series.values())
        end = min(entry.stamps[-1] for entry in series.values())
        if end < start:
            raise EpisodeError(self.bag, 'topics', 'the topics do not overlap in time '
                                                   '(episode shorter than one step)')
        period_ns = 1e9 / self.config.rate_hz
        steps = int(np.floor((end - start) / period_ns)) + 1
        return start + np.round(np.arange(steps) * period_ns).astype(np.int64)  # (T,)

    def _select(self, entry: TopicSeries, grid: np.ndarray) -> np.ndarray:
        """Index of each grid step's latest message at or before it; checks the gaps."""
        stamps = np.asarray(entry.stamps, dtype=np.int64)
        index = np.searchsorted(stamps, grid, side='right') - 1  # (T,)
        gaps = (grid - stamps[index]) / 1e9
        if gaps.max() > self.config.max_gap_s:
            worst = int(np.argmax(gaps))
            raise EpisodeError(self.bag, entry.topic,
                               f'no message for {gaps[worst]:.3f} s before '
                               f'{(grid[worst] - grid[0]) / 1e9:.3f} s into the episode '
                               f'(max_gap_s={self.config.max_gap_s})')
        return index

    def _stack(self, series: dict[str, TopicSeries], topics: list[str],
               grid: np.ndarray) -> np.ndarray:
        parts = [np.stack(series[topic].values)[self._select(series[topic], grid)]
                 for topic in topics]
        return np.concatenate(parts, axis=1).astype(np.float32)  # (T, sum of dims)

    def selected_frames(self, reader: Reader, series: dict[str, TopicSeries],
                        grid: np.ndarray) -> Iterator[tuple[str, list[int], np.ndarray]]:
        """Pass 2: each camera message a grid step uses, in bag order.

        Yields (camera, the grid steps showing it, its uint8 (H, W, 3) RGB frame); every
        message is decoded once, however many steps show it.
        """
        topic_camera = {topic: camera for camera, topic in self.camera_topics.items()}
        steps_of: dict[str, dict[int, list[int]]] = {topic: {} for topic in topic_camera}
        for topic in topic_camera:
            for step, position in enumerate(self._select(series[topic], grid).tolist()):
                steps_of[topic].setdefault(position, []).append(step)
        connections = [c for c in reader.connections if c.topic in topic_camera]
        with damaged_bag_errors(self.bag):
            yield from self._frames_at(reader, connections, steps_of, topic_camera)

    def _frames_at(self, reader: Reader, connections: list, steps_of: dict,
                   topic_camera: dict) -> Iterator[tuple[str, list[int], np.ndarray]]:
        counters = dict.fromkeys(topic_camera, 0)
        for connection, _, raw in reader.messages(connections=connections):
            position = counters[connection.topic]
            counters[connection.topic] += 1
            steps = steps_of[connection.topic].get(position)
            if steps is None:
                continue
            message = self.typestore.deserialize_cdr(raw, connection.msgtype)
            rgb = image_message_to_rgb(self.bag, connection.topic, message)  # (H, W, 3)
            yield topic_camera[connection.topic], steps, rgb

    def _encode_frames(self, reader: Reader, series: dict[str, TopicSeries],
                       grid: np.ndarray) -> dict[str, list[bytes]]:
        """Camera -> JPEG bytes per grid step (each used message encoded once)."""
        frames = {camera: [b''] * len(grid) for camera in self.camera_topics}
        for camera, steps, rgb in self.selected_frames(reader, series, grid):
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format='JPEG', quality=self.config.jpeg_quality)
            data = buffer.getvalue()
            for step in steps:
                frames[camera][step] = data
        return frames

    def open_reader(self) -> Reader:
        """The bag opened with rosbags (the caller closes it); EpisodeError if unreadable."""
        try:
            reader = Reader(self.bag)
            reader.open()
        except Exception as error:  # rosbags raises several unrelated types for bad bags
            raise EpisodeError(self.bag, 'bag', f'not a readable rosbag2 ({error})') from None
        return reader

    def align_states(self, reader: Reader) -> AlignedStates:
        """Pass 1 and the grid: the aligned, checked proprio and actions of an open bag."""
        series, instruction = self._read_series(reader)
        grid = self._grid(series)
        proprio = self._stack(series, self.proprio_topics, grid)  # (T, P)
        actions = self._stack(series, self.action_topics, grid)  # (T, A)
        check_state_arrays(self.bag, proprio, actions, self.config,
                           '+'.join(self.proprio_topics), '+'.join(self.action_topics))
        # The control source has no header: its receive times stand against the grid (header
        # stamps and receive times of one recording differ by the transport's milliseconds).
        control = (None if self.control_messages is None
                   else control_codes(*self.control_messages, grid))
        return AlignedStates(series, grid, proprio, actions, instruction, control)

    def write_cache(self, cache_path: Path) -> None:
        """Align the bag and write it to ``cache_path`` (atomically) in the ALOHA layout."""
        reader = self.open_reader()
        try:
            aligned = self.align_states(reader)
            frames = self._encode_frames(reader, aligned.series, aligned.grid)
        finally:
            reader.close()
        grid, proprio, actions = aligned.grid, aligned.proprio, aligned.actions
        instruction = aligned.instruction
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_path.with_name(f'{cache_path.name}.{os.getpid()}.partial')
        with h5py.File(partial, 'w') as handle:
            handle.attrs['sim'] = False
            handle.attrs['compress'] = True
            handle.attrs[CHANNEL_ORDER_ATTR] = 'rgb'
            handle.attrs[SOURCE_ATTR] = str(self.bag)
            handle.attrs['rate_hz'] = self.config.rate_hz
            if instruction:
                handle.attrs['instruction'] = instruction
            handle.create_dataset(QPOS_KEY, data=proprio)
            if aligned.control is not None:
                handle.create_dataset(CONTROL_KEY, data=aligned.control)
            handle.create_dataset(ACTION_KEY, data=actions)
            lengths = np.array([[len(f) for f in frames[c]] for c in self.config.camera_names])
            for camera in self.config.camera_names:
                padded = np.zeros((len(grid), int(lengths.max())), dtype=np.uint8)  # (T, L)
                for step, data in enumerate(frames[camera]):
                    padded[step, : len(data)] = np.frombuffer(data, dtype=np.uint8)
                handle.create_dataset(f'{IMAGES_GROUP}/{camera}', data=padded,
                                      chunks=(1, padded.shape[1]))
            handle.create_dataset(COMPRESS_LEN_KEY, data=lengths.astype(np.float32))
        os.replace(partial, cache_path)


def cache_path_for(bag: Path, config: DatasetConfig) -> Path:
    """Cache file of a bag: keyed by the bag's files (size, mtime) and the alignment settings."""
    files = sorted(bag.rglob('*')) if bag.is_dir() else [bag]
    fingerprint = [[str(f.relative_to(bag) if bag.is_dir() else f.name), f.stat().st_size,
                    f.stat().st_mtime_ns] for f in files if f.is_file()]
    settings = {key: value for key, value in config.to_dict().items()
                if key not in ('paths', 'instruction', 'chunk_size', 'hdf5_jpeg_channel_order',
                               'jpeg_draft_size', 'layout', 'cache_dir', 'lerobot_mapping',
                               'revision', 'video_tolerance_s', 'video_decoder_threads',
                               'takeover_samples', 'correction_context_s')}
    settings['robot'] = config.robot_description().summary()  # its facts, not just its name
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, str(bag.resolve()), fingerprint,
                                        settings], sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(config.cache_dir) if config.cache_dir else bag.parent / '.vla_adapter_cache'
    return folder / f'{bag.name}-{digest}.hdf5'


def load_rosbag_episode(bag: str | Path, config: DatasetConfig) -> AlohaHdf5Episode:
    """Align ``bag`` (or reuse its cache) and open it as an episode; errors name the bag."""
    bag = Path(bag)
    cache = cache_path_for(bag, config)
    if not cache.is_file():
        RosbagAligner(bag, config).write_cache(cache)
    return AlohaHdf5Episode(cache, config, source=bag)
