"""Writers of test episodes in the real recording formats.

- ALOHA HDF5 exactly as Interbotix aloha's ``record_episodes.py`` lays it out (h5py), raw frames or
  JPEG frames zero-padded to the longest with ``/compress_len`` (n_cams, T). ALOHA encodes its RGB
  arrays with ``cv2.imencode``, which treats them as BGR; :func:`jpeg_like_opencv` reproduces those
  bytes' colour convention with PIL.
- rosbag2 bags (mcap or sqlite3) written with rosbags' own writer and CDR serialiser.
- A learnable synthetic task: a coloured block whose position determines the actions.
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer

from training.bag_types import bag_typestore

ARM_JOINTS = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate',
              'gripper']
DRIVER_JOINTS = ARM_JOINTS + ['left_finger', 'right_finger']


def jpeg_like_opencv(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes as ``cv2.imencode('.jpg', rgb)`` makes them (the array read as BGR)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(buffer, format='JPEG',
                                                               quality=quality)
    return buffer.getvalue()


def write_aloha_hdf5(path: Path, images: dict[str, np.ndarray], qpos: np.ndarray,
                     action: np.ndarray, *, compress: bool = False, quality: int = 90,
                     instruction: str | None = None) -> Path:
    """Write one episode in ALOHA's layout; ``images[cam]`` is uint8 (T, H, W, 3) RGB."""
    steps = qpos.shape[0]
    cameras = list(images)
    with h5py.File(path, 'w', rdcc_nbytes=1024**2 * 2) as root:
        root.attrs['sim'] = False
        root.attrs['compress'] = compress
        if instruction is not None:
            root.attrs['instruction'] = instruction
        observations = root.create_group('observations')
        image_group = observations.create_group('images')
        if compress:
            encoded = {cam: [jpeg_like_opencv(frame, quality) for frame in images[cam]]
                       for cam in cameras}
            lengths = np.array([[len(data) for data in encoded[cam]] for cam in cameras])
            padded_size = int(lengths.max())
            for cam in cameras:
                dataset = image_group.create_dataset(cam, (steps, padded_size), dtype='uint8',
                                                     chunks=(1, padded_size))
                padded = np.zeros((steps, padded_size), dtype=np.uint8)  # (T, L)
                for step, data in enumerate(encoded[cam]):
                    padded[step, : len(data)] = np.frombuffer(data, dtype=np.uint8)
                dataset[...] = padded
        else:
            for cam in cameras:
                height, width = images[cam].shape[1:3]
                dataset = image_group.create_dataset(cam, (steps, height, width, 3),
                                                     dtype='uint8', chunks=(1, height, width, 3))
                dataset[...] = images[cam]
        # ALOHA creates these without a dtype, which h5py makes float32.
        for name, value in (('qpos', qpos), ('qvel', np.zeros_like(qpos)),
                            ('effort', np.zeros_like(qpos))):
            observations.create_dataset(name, value.shape, dtype='float32')[...] = value
        root.create_dataset('action', action.shape, dtype='float32')[...] = action
        if compress:
            root.create_dataset('compress_len', (len(cameras), steps),
                                dtype='float32')[...] = lengths
    return path


class RosbagEpisodeWriter:
    """Writes the ALOHA topics into a rosbag2 bag with rosbags' serialiser."""

    def __init__(self, path: Path, storage: str = 'mcap', instruction: str | None = None):
        self.typestore = bag_typestore()
        plugin = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[storage]
        self.writer = Writer(path, version=9, storage_plugin=plugin)
        if instruction is not None:
            self.writer.set_custom_data('instruction', instruction)
        self.writer.open()
        self.connections: dict[str, object] = {}

    def _connection(self, topic: str, msgtype: str):
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msgtype,
                                                                 typestore=self.typestore)
        return self.connections[topic]

    def _header(self, stamp_ns: int):
        types = self.typestore.types
        stamp = types['builtin_interfaces/msg/Time'](sec=stamp_ns // 1_000_000_000,
                                                     nanosec=stamp_ns % 1_000_000_000)
        return types['std_msgs/msg/Header'](stamp=stamp, frame_id='')

    def _write(self, topic: str, msgtype: str, message, bag_time_ns: int) -> None:
        data = self.typestore.serialize_cdr(message, msgtype)
        self.writer.write(self._connection(topic, msgtype), bag_time_ns, data)

    def image(self, topic: str, stamp_ns: int, rgb: np.ndarray, encoding: str = 'rgb8',
              bag_delay_ns: int = 1_000_000) -> None:
        """sensor_msgs/Image from uint8 (H, W, 3) RGB (written as rgb8 or bgr8)."""
        pixels = rgb if encoding == 'rgb8' else rgb[..., ::-1]
        height, width = rgb.shape[:2]
        message = self.typestore.types['sensor_msgs/msg/Image'](
            header=self._header(stamp_ns), height=height, width=width, encoding=encoding,
            is_bigendian=0, step=width * 3,
            data=np.ascontiguousarray(pixels).reshape(-1))
        self._write(topic, 'sensor_msgs/msg/Image', message, stamp_ns + bag_delay_ns)

    def compressed_image(self, topic: str, stamp_ns: int, rgb: np.ndarray,
                         bag_delay_ns: int = 1_000_000) -> None:
        """sensor_msgs/CompressedImage (JPEG) as image_transport publishes it."""
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format='JPEG', quality=95)
        message = self.typestore.types['sensor_msgs/msg/CompressedImage'](
            header=self._header(stamp_ns), format='rgb8; jpeg compressed bgr8',
            data=np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        self._write(topic, 'sensor_msgs/msg/CompressedImage', message, stamp_ns + bag_delay_ns)

    def joint_state(self, topic: str, stamp_ns: int, arm: np.ndarray,
                    bag_delay_ns: int = 500_000) -> None:
        """Interbotix joint_states: the 7 arm values (6 joints, gripper) plus two fingers."""
        fingers = np.array([0.05, -0.05])
        message = self.typestore.types['sensor_msgs/msg/JointState'](
            header=self._header(stamp_ns), name=list(DRIVER_JOINTS),
            position=np.concatenate([arm, fingers]).astype(np.float64),
            velocity=np.zeros(0), effort=np.zeros(0))
        self._write(topic, 'sensor_msgs/msg/JointState', message, stamp_ns + bag_delay_ns)

    def string(self, topic: str, bag_time_ns: int, text: str) -> None:
        """std_msgs/String, as the recorder stores the instruction topic."""
        message = self.typestore.types['std_msgs/msg/String'](data=text)
        self._write(topic, 'std_msgs/msg/String', message, bag_time_ns)

    def float_array(self, topic: str, bag_time_ns: int, values: np.ndarray) -> None:
        """std_msgs/Float64MultiArray (no header: aligned by bag time)."""
        types = self.typestore.types
        layout = types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
        message = types['std_msgs/msg/Float64MultiArray'](
            layout=layout, data=np.asarray(values, dtype=np.float64))
        self._write(topic, 'std_msgs/msg/Float64MultiArray', message, bag_time_ns)

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml)."""
        self.writer.close()


def render_block_frame(position: np.ndarray, size: int = 64,
                       color: tuple[int, int, int] = (220, 40, 30)) -> np.ndarray:
    """uint8 (size, size, 3): a grey table, a coloured block centred at ``position``.

    ``position`` is in [-1, 1]^2 (x right, y down).
    """
    frame = np.full((size, size, 3), 90, dtype=np.uint8)
    block = max(3, size // 6)
    centre = ((np.asarray(position) + 1) / 2 * (size - block)).astype(int) + block // 2
    top, left = centre[1] - block // 2, centre[0] - block // 2
    frame[top: top + block, left: left + block] = color
    return frame


def block_episode(position: np.ndarray, steps: int, cameras: list[str], size: int = 64,
                  action_dim: int = 14) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """A learnable episode: a resting block whose position determines every action.

    The block rests at ``position`` in [-1, 1]^2 and every action dimension is a fixed linear
    function of that position, so the image determines the actions.

    Returns images {cam: (T, size, size, 3)}, qpos (T, D) (all zero, uninformative) and
    action (T, D).
    """
    weights = np.stack([np.cos(np.arange(action_dim)), np.sin(np.arange(action_dim))])  # (2, D)
    action = np.repeat((np.asarray(position) @ weights)[None], steps, axis=0)  # (T, D)
    qpos = np.zeros((steps, action_dim), dtype=np.float32)
    frames = np.repeat(render_block_frame(position, size)[None], steps, axis=0)  # (T, H, W, 3)
    return {cam: frames for cam in cameras}, qpos, action.astype(np.float32)


def write_block_policy_json(folder: Path, chunk_size: int) -> Path:
    """``folder/policy.json``: a tiny PolicyConfig for the one-camera block episodes.

    A 2-layer 64-d Qwen2 and 2-block ViTs at 56 px, 14 action and proprio dimensions.
    """
    import json

    from vla_adapter_core.tiny_policies import build_tiny_config

    config = build_tiny_config(action_dim=14, proprio_dim=14, chunk_size=chunk_size,
                               camera_names=['cam_high'], image_size=56)
    path = folder / 'policy.json'
    path.write_text(json.dumps(config.to_dict()))
    return path
