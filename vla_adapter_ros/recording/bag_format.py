"""The episode bag format: what one episode records, and the rosbag2 writer of one bag.

:func:`build_topic_plan` derives every topic from the robot description;
:class:`EpisodeBagWriter` writes one bag with rosbags (JPEG on the fly, joint states
re-serialised, the executor's commands combined into policy-units actions). The layout, the
sidecar and why metadata stays at version 8 are in docs/ARCHITECTURE.md ("Recording").
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
import yaml

from training.bag_types import (
    ACTION_CHUNK,
    CONTROL_SOURCE_TOPIC,
    JOINT_GROUP_COMMAND,
    JOINT_SINGLE_COMMAND,
    STRING,
)
from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.recording.control_log import ControlLog

BAG_METADATA_VERSION = 8
EPISODE_METADATA_NAME = 'episode_metadata.yaml'
STORAGE_PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
JOINT_STATE = 'sensor_msgs/msg/JointState'
FLOAT64_ARRAY = 'std_msgs/msg/Float64MultiArray'


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
                     instruction_topic: str, control_source_topic: str = '',
                     chunk_topic: str = '') -> tuple[TopicPlan, ...]:
    """The topics of an episode of ``robot`` (absolute names), in a fixed order.

    ``control_source_topic`` (the executor's, stored as CONTROL_SOURCE_TOPIC) and
    ``chunk_topic`` (the policy's ActionChunks) are recorded when given (takeover episodes).
    """
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
    if control_source_topic:
        plan.append(TopicPlan(control_source_topic, STRING, 'control_source',
                              CONTROL_SOURCE_TOPIC, STRING))
    if chunk_topic:
        plan.append(TopicPlan(chunk_topic, ACTION_CHUNK, 'policy_chunk', chunk_topic,
                              ACTION_CHUNK))
    plan.append(TopicPlan(instruction_topic, STRING, 'instruction', instruction_topic, STRING))
    return tuple(plan)


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
                 robot: RobotDescription, decode_joint_state: Callable[[bytes], Any],
                 jpeg_quality: int = 0, commanded_action_topic: str = '',
                 decode_chunk: Callable[[bytes], Any] | None = None) -> None:
        """Create the bag directory and one connection per planned topic (raises on failure).

        ``decode_joint_state``: received CDR bytes -> a sensor_msgs/JointState (the node's
        transport's own decoder; rosbags cannot read an empty float64[] as rclpy writes it).
        ``decode_chunk``: the same for ActionChunks (needed when the plan records chunks).
        """
        self.path = path
        self.decode_joint_state = decode_joint_state
        self.decode_chunk = decode_chunk
        self.control = ControlLog()
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
        elif entry.role == 'policy_chunk':
            data = self._reserialized_chunk(data)
        elif entry.role == 'control_source':
            self.control.update(time_ns, self.typestore.deserialize_cdr(data, STRING).data)
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
        from vla_adapter_ros.pipeline.conversions import encode_jpeg, image_to_rgb, jpeg_format

        image = self.typestore.deserialize_cdr(data, IMAGE)
        rgb = image_to_rgb(image, source='recorded image')  # (H, W, 3)
        compressed = self.typestore.types[COMPRESSED_IMAGE](
            header=image.header, format=jpeg_format(image.encoding),
            data=np.frombuffer(encode_jpeg(rgb, self.jpeg_quality), dtype=np.uint8))
        return self.typestore.serialize_cdr(compressed, COMPRESSED_IMAGE)

    def _reserialized_joint_state(self, data: bytes) -> bytes:
        state = self.decode_joint_state(data)
        types = self.typestore.types
        stamp = types['builtin_interfaces/msg/Time'](sec=state.header.stamp.sec,
                                                     nanosec=state.header.stamp.nanosec)
        message = types[JOINT_STATE](
            header=types['std_msgs/msg/Header'](stamp=stamp, frame_id=state.header.frame_id),
            name=list(state.name), position=np.asarray(state.position, dtype=np.float64),
            velocity=np.asarray(state.velocity, dtype=np.float64),
            effort=np.asarray(state.effort, dtype=np.float64))
        return self.typestore.serialize_cdr(message, JOINT_STATE)

    def _reserialized_chunk(self, data: bytes) -> bytes:
        if self.decode_chunk is None:
            raise RecordingError('recording ActionChunks needs decode_chunk')
        chunk = self.decode_chunk(data)
        types = self.typestore.types

        def time(stamp, name='builtin_interfaces/msg/Time'):
            return types[name](sec=stamp.sec, nanosec=stamp.nanosec)

        def trajectory(source):
            points = [types['trajectory_msgs/msg/JointTrajectoryPoint'](
                positions=np.asarray(point.positions, np.float64),
                velocities=np.asarray(point.velocities, np.float64),
                accelerations=np.asarray(point.accelerations, np.float64),
                effort=np.asarray(point.effort, np.float64),
                time_from_start=time(point.time_from_start, 'builtin_interfaces/msg/Duration'))
                for point in source.points]
            header = types['std_msgs/msg/Header'](stamp=time(source.header.stamp),
                                                  frame_id=source.header.frame_id)
            return types['trajectory_msgs/msg/JointTrajectory'](
                header=header, joint_names=list(source.joint_names), points=points)

        message = types[ACTION_CHUNK](
            header=types['std_msgs/msg/Header'](stamp=time(chunk.header.stamp),
                                                frame_id=chunk.header.frame_id),
            left=trajectory(chunk.left), right=trajectory(chunk.right),
            instruction=chunk.instruction, inference_ms=float(chunk.inference_ms),
            sequence=int(chunk.sequence))
        return self.typestore.serialize_cdr(message, ACTION_CHUNK)

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


def read_episode_metadata(bag: str | Path) -> dict:
    """The sidecar of a recorded bag directory ({} when it has none)."""
    path = Path(bag) / EPISODE_METADATA_NAME
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding='utf-8')) or {}
