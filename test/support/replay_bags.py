"""Bags for the replay tests, written with rosbags in the recorder's layout (mcap or sqlite3).

The recorder (vla_adapter_ros/recording/episode_recorder.py) writes: each camera's Image (or
CompressedImage on ``<topic>/compressed``), each follower's ``/<ns>/joint_states`` with the
driver's joint names, the
actions as the leader arms' joint states or as ``/commanded_action`` (Float64MultiArray, policy
units, no header: aligned by bag time), the instruction in the bag's custom data, and the
``episode_metadata.yaml`` sidecar, and in a takeover recording the executor's ``/control_source``
(std_msgs/String, no header). :func:`write_episode` writes the same from functions of time, so
a test knows every value.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer
import yaml

from training.bag_types import bag_typestore
from vla_adapter_core.robot_description import Arm, RobotDescription

T0 = 1_700_000_000 * 10**9
INSTRUCTION = 'pick up the cube'
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


def arm_positions(arm: Arm, index: int, t_s: float) -> np.ndarray:
    """Driver joint positions of follower ``index`` at ``t_s``: slow sines around the start pose.

    Order: ``arm.driver_joint_names`` (arm joints, gripper joint, fingers).
    """
    joints = np.asarray(arm.start_pose[:-1]) + 0.1 * np.sin(
        2.0 * t_s + np.arange(len(arm.joint_names)) + index)
    opening = 0.5 + 0.4 * np.sin(1.5 * t_s + index)  # normalised gripper, 0..1
    gripper = arm.gripper.joint_from_normalized(opening)
    finger = arm.gripper.finger_from_normalized(opening)
    return np.concatenate([joints, [gripper, finger, -finger]]).astype(np.float64)


def camera_frame(camera_index: int, t_s: float, hw=(24, 32)) -> np.ndarray:
    """A frame whose colours move with time (so the policy's input changes)."""
    height, width = hw
    rows = np.linspace(0, 1, height)[:, None]
    cols = np.linspace(0, 1, width)[None, :]
    base = np.stack([rows + 0 * cols, cols + 0 * rows, (rows * cols)], axis=-1)
    shift = 0.5 + 0.5 * np.sin(t_s * 3.0 + camera_index)
    return ((base * 0.6 + shift * 0.4) * 255).astype(np.uint8)


class BagWriter:
    """A rosbag2 bag written with rosbags' serialiser (metadata version 8, as the recorder)."""

    def __init__(self, path: Path, storage: str = 'mcap') -> None:
        self.typestore = bag_typestore()
        self.writer = Writer(path, version=8, storage_plugin=STORAGES[storage])
        self.writer.open()
        self.connections: dict = {}
        self.path = Path(path)

    def _write(self, topic: str, msgtype: str, message, time_ns: int) -> None:
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msgtype,
                                                                 typestore=self.typestore)
        self.writer.write(self.connections[topic], int(time_ns),
                          self.typestore.serialize_cdr(message, msgtype))

    def header(self, stamp_ns: int):
        types = self.typestore.types
        stamp = types['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 10**9),
                                                     nanosec=int(stamp_ns % 10**9))
        return types['std_msgs/msg/Header'](stamp=stamp, frame_id='')

    def image(self, topic: str, stamp_ns: int, rgb: np.ndarray, compressed: bool = False,
              delay_ns: int = 2_000_000, image_format: str = 'png') -> None:
        types = self.typestore.types
        if compressed:
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format=image_format.upper(), quality=90)
            message = types['sensor_msgs/msg/CompressedImage'](
                header=self.header(stamp_ns), format=f'rgb8; {image_format} compressed bgr8',
                data=np.frombuffer(buffer.getvalue(), dtype=np.uint8))
            self._write(topic, 'sensor_msgs/msg/CompressedImage', message, stamp_ns + delay_ns)
            return
        message = types['sensor_msgs/msg/Image'](
            header=self.header(stamp_ns), height=rgb.shape[0], width=rgb.shape[1],
            encoding='rgb8', is_bigendian=0, step=rgb.shape[1] * 3,
            data=np.ascontiguousarray(rgb).reshape(-1))
        self._write(topic, 'sensor_msgs/msg/Image', message, stamp_ns + delay_ns)

    def joint_state(self, topic: str, stamp_ns: int, names, positions,
                    delay_ns: int = 1_000_000) -> None:
        message = self.typestore.types['sensor_msgs/msg/JointState'](
            header=self.header(stamp_ns), name=list(names),
            position=np.asarray(positions, dtype=np.float64), velocity=np.zeros(0),
            effort=np.zeros(0))
        self._write(topic, 'sensor_msgs/msg/JointState', message, stamp_ns + delay_ns)

    def float_array(self, topic: str, time_ns: int, values) -> None:
        types = self.typestore.types
        message = types['std_msgs/msg/Float64MultiArray'](
            layout=types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0),
            data=np.asarray(values, dtype=np.float64))
        self._write(topic, 'std_msgs/msg/Float64MultiArray', message, time_ns)

    def string(self, topic: str, time_ns: int, text: str) -> None:
        message = self.typestore.types['std_msgs/msg/String'](data=text)
        self._write(topic, 'std_msgs/msg/String', message, time_ns)

    def close(self, instruction: str | None = INSTRUCTION) -> None:
        if instruction:
            self.writer.set_custom_data('instruction', instruction)
        self.writer.close()


def write_episode(path: Path, robot: RobotDescription, *, storage: str = 'mcap',
                  seconds: float = 1.5, camera_hz: float = 30.0, state_hz: float = 50.0,
                  actions=None, leader_actions: bool = False, compressed: bool = False,
                  cameras=None, instruction: str | None = INSTRUCTION,
                  sidecar: dict | None = None, time_shift_ns: int = 0, image_hw=(24, 32),
                  image_format: str = 'png', instruction_topic: str | None = None,
                  control=None) -> Path:
    """One episode of ``robot`` in the recorder's layout; returns ``path``.

    ``actions``: [(bag time ns, (action_dim,) policy values)] written on /commanded_action;
    ``leader_actions``: the leaders' joint states at ``state_hz`` (each leader copies its
    follower's joints, gripper joint mapped through the leader's calibration) instead.
    ``instruction_topic``: a text published on /instruction during the episode, as the
    recorder stores it. ``control``: [(bag time ns, source)] on /control_source (a takeover).
    """
    path = Path(path)
    writer = BagWriter(path, storage)
    if instruction_topic is not None:
        writer.string('/instruction', T0 + time_shift_ns, instruction_topic)
    cameras = list(cameras or robot.cameras)
    for index in range(int(seconds * camera_hz) + 1):
        stamp = T0 + time_shift_ns + round(index * 1e9 / camera_hz)
        for camera_index, camera in enumerate(cameras):
            topic = robot.camera_topic.format(camera=camera)
            writer.image(topic + ('/compressed' if compressed else ''), stamp,
                         camera_frame(camera_index, (stamp - T0) / 1e9, image_hw), compressed,
                         image_format=image_format)
    for index in range(int(seconds * state_hz) + 1):
        stamp = T0 + time_shift_ns + 3_000_000 + round(index * 1e9 / state_hz)
        for arm_index, arm in enumerate(robot.arms):
            positions = arm_positions(arm, arm_index, (stamp - T0) / 1e9)
            writer.joint_state(f'/{arm.namespace}/joint_states', stamp, arm.driver_joint_names,
                               positions)
            if leader_actions:
                leader = robot.leaders[arm_index]
                action = arm.action_from_joint_angles(positions[:arm.dim])
                angles = leader.joint_angles_from_action(action)
                names = (*leader.command_joint_names, *leader.model.finger_joints)
                writer.joint_state(f'/{leader.namespace}/joint_states', stamp, names,
                                   np.concatenate([angles, [0.02, -0.02]]))
    for time_ns, values in actions or ():
        writer.float_array('/commanded_action', time_ns, values)
    for time_ns, source in control or ():
        writer.string('/control_source', time_ns, source)
    writer.close(instruction)
    if sidecar is not None:
        (path / 'episode_metadata.yaml').write_text(yaml.safe_dump(sidecar))
    return path


def recorded_leader_action(robot: RobotDescription, t_s: float) -> np.ndarray:
    """The policy-unit action a leader bag of :func:`write_episode` records at ``t_s``."""
    return np.concatenate([arm.action_from_joint_angles(arm_positions(arm, i, t_s)[:arm.dim])
                           for i, arm in enumerate(robot.arms)])
