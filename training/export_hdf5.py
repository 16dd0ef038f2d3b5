"""``vla-adapter-export-hdf5``: rosbag2 episodes -> ALOHA ``record_episodes`` HDF5 files.

The bag is aligned exactly as training aligns it (:class:`training.rosbag_episodes.RosbagAligner`:
the same grid, topics, joint look-up by name and gripper conventions), then written in the layout
ALOHA's own training reads::

    /observations/qpos    (T, P) float32   follower joints, grippers as --gripper_mode
    /observations/qvel    (T, P) float32   follower joint velocities (finger normalised like qpos)
    /observations/effort  (T, P) float32   follower efforts (arm joints, then the gripper joint)
    /action               (T, A) float32   the actions training would read
    /observations/images/<cam>  uint8 (T, H, W, 3) RGB   (--images raw)
                                uint8 (T, max_len) JPEG bytes, zero-padded   (--images jpeg)
    /compress_len         (n_cams, T) float32   (--images jpeg)
    attributes: sim=False, compress, instruction, rate_hz, source_bag, success (when recorded)

JPEG frames follow ALOHA's convention: ``cv2.imencode`` of the RGB array, i.e. the bytes hold the
channels swapped, so ``cv2.imdecode`` gives back the RGB array (attribute
``jpeg_channel_order='bgr'`` tells this package's reader the same). Velocities or efforts a
driver does not publish are zeros.

    vla-adapter-export-hdf5 --bag ~/vla_adapter_episodes --output ~/aloha_data/fold_towel
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
import yaml

from training.data_config import ACTION_SOURCES, GRIPPER_MODES, TIMESTAMP_SOURCES, DatasetConfig
from training.dataset import discover_episodes
from training.episodes import (
    ACTION_KEY,
    CHANNEL_ORDER_ATTR,
    COMPRESS_LEN_KEY,
    IMAGES_GROUP,
    QPOS_KEY,
    EpisodeError,
)
from training.rosbag_episodes import SOURCE_ATTR, AlignedStates, RosbagAligner, TopicSeries
from vla_adapter_core.cli_errors import add_debug_flag, run_reporting_errors

PROG = 'vla-adapter-export-hdf5'
QVEL_KEY = '/observations/qvel'
EFFORT_KEY = '/observations/effort'
IMAGE_MODES = ('jpeg', 'raw')
# The recorder's sidecar (vla_adapter_ros/recording/episode_recorder.py writes it; training reads
# it as YAML).
EPISODE_METADATA_NAME = 'episode_metadata.yaml'


class Hdf5Exporter(RosbagAligner):
    """Aligns one bag like training does and writes it in ALOHA's HDF5 layout."""

    def __init__(self, bag: Path, config: DatasetConfig) -> None:
        """Plan the topics of ``bag`` from ``config`` (its robot description)."""
        super().__init__(bag, config)
        self._motion: dict[str, list[np.ndarray]] = {}  # follower topic -> (2, dim) per message

    def _state_value(self, topic: str, message) -> np.ndarray:
        """The aligner's value; for follower joint_states also keep velocity and effort."""
        value = super()._state_value(topic, message)
        if topic in self.proprio_arms:
            self._motion.setdefault(topic, []).append(self._velocity_effort(topic, message))
        return value

    def _velocity_effort(self, topic: str, message) -> np.ndarray:
        """(2, arm.dim): velocities (state joints) and efforts (command joints) by name."""
        arm = self.proprio_arms[topic]
        names = list(message.name)
        rows = []
        for field, joints in (('velocity', arm.state_joint_names),
                              ('effort', arm.command_joint_names)):
            values = np.asarray(getattr(message, field), dtype=np.float64)
            if len(values) != len(names):  # the driver does not publish this field
                rows.append(np.zeros(len(joints)))
                continue
            rows.append(np.array([values[names.index(j)] if j in names else 0.0
                                  for j in joints]))
        if self.config.gripper_mode != 'raw':  # finger speed in the normalised finger units
            rows[0][-1] /= arm.gripper.finger_open - arm.gripper.finger_closed
        return np.stack(rows)

    def _motion_arrays(self, series: dict[str, TopicSeries],
                       grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The qvel (T, P) and effort (T, P) on the grid (follower topics)."""
        parts = [np.stack(self._motion[topic])[self._select(series[topic], grid)]
                 for topic in self.proprio_topics]  # each (T, 2, dim)
        stacked = np.concatenate(parts, axis=2).astype(np.float32)  # (T, 2, P)
        return stacked[:, 0], stacked[:, 1]

    def export(self, output: Path, images: str = 'jpeg', jpeg_quality: int = 90) -> int:
        """Write the episode to ``output`` (atomically); the number of steps."""
        self._motion.clear()
        reader = self.open_reader()
        partial = output.with_name(f'.{output.name}.{os.getpid()}.partial')
        try:
            aligned = self.align_states(reader)
            output.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(partial, 'w') as root:
                self._write_states(root, aligned, images == 'jpeg')
                if images == 'raw':
                    self._write_raw_frames(root, reader, aligned)
                else:
                    self._write_jpeg_frames(root, reader, aligned, jpeg_quality)
            os.replace(partial, output)
        finally:
            reader.close()
            partial.unlink(missing_ok=True)
        return len(aligned.grid)

    def _write_states(self, root: h5py.File, aligned: AlignedStates, compress: bool) -> None:
        root.attrs['sim'] = False
        root.attrs['compress'] = compress
        root.attrs[SOURCE_ATTR] = str(self.bag)
        root.attrs['rate_hz'] = self.config.rate_hz
        instruction = self.config.instruction or aligned.instruction
        if instruction:
            root.attrs['instruction'] = instruction
        success = recorded_success(self.bag)
        if success is not None:
            root.attrs['success'] = success
        qvel, effort = self._motion_arrays(aligned.series, aligned.grid)
        for key, values in ((QPOS_KEY, aligned.proprio), (QVEL_KEY, qvel),
                            (EFFORT_KEY, effort), (ACTION_KEY, aligned.actions)):
            root.create_dataset(key, data=np.asarray(values, dtype=np.float32))

    def _write_raw_frames(self, root: h5py.File, reader, aligned: AlignedStates) -> None:
        """Frames streamed into (T, H, W, 3) datasets (one decoded message in memory)."""
        steps = len(aligned.grid)
        for camera, rows, rgb in self.selected_frames(reader, aligned.series, aligned.grid):
            key = f'{IMAGES_GROUP}/{camera}'
            if key not in root:
                root.create_dataset(key, (steps, *rgb.shape), dtype=np.uint8,
                                    chunks=(1, *rgb.shape))
            dataset = root[key]
            if dataset.shape[1:] != rgb.shape:
                raise EpisodeError(self.bag, self.camera_topics[camera],
                                   f'frame size {rgb.shape} changes from {dataset.shape[1:]}')
            for row in rows:
                dataset[row] = rgb

    def _write_jpeg_frames(self, root: h5py.File, reader, aligned: AlignedStates,
                           quality: int) -> None:
        """JPEG bytes as ALOHA stores them, zero-padded rows plus /compress_len."""
        cameras = list(self.camera_topics)
        encoded = {camera: [b''] * len(aligned.grid) for camera in cameras}
        for camera, rows, rgb in self.selected_frames(reader, aligned.series, aligned.grid):
            buffer = io.BytesIO()
            # cv2.imencode reads the RGB array as BGR: the JPEG holds the channels swapped.
            Image.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(
                buffer, format='JPEG', quality=quality)
            for row in rows:
                encoded[camera][row] = buffer.getvalue()
        lengths = np.array([[len(data) for data in encoded[c]] for c in cameras])  # (n_cams, T)
        root.attrs[CHANNEL_ORDER_ATTR] = 'bgr'
        for camera in cameras:
            padded = np.zeros((len(aligned.grid), int(lengths.max())), dtype=np.uint8)  # (T, L)
            for row, data in enumerate(encoded[camera]):
                padded[row, : len(data)] = np.frombuffer(data, dtype=np.uint8)
            root.create_dataset(f'{IMAGES_GROUP}/{camera}', data=padded,
                                chunks=(1, padded.shape[1]))
        root.create_dataset(COMPRESS_LEN_KEY, data=lengths.astype(np.float32))


def recorded_success(bag: Path) -> bool | None:
    """The success flag the recorder stored beside the bag, or None."""
    sidecar = bag / EPISODE_METADATA_NAME if bag.is_dir() else None
    if sidecar is None or not sidecar.is_file():
        return None
    data = yaml.safe_load(sidecar.read_text(encoding='utf-8')) or {}
    success = data.get('success')
    return bool(success) if isinstance(success, bool) else None


def output_paths(bags: list[Path], output: Path) -> list[Path]:
    """One .hdf5 per bag: ``output`` itself for one bag named *.hdf5, else output/<bag>.hdf5."""
    if len(bags) == 1 and output.suffix in ('.hdf5', '.h5'):
        return [output]
    names = [bag.name if bag.is_dir() else bag.stem for bag in bags]
    if len(set(names)) != len(names):
        raise ValueError(f'bags with the same name would share an output file: {sorted(names)}')
    return [output / f'{name}.hdf5' for name in names]


def export_bags(args: argparse.Namespace) -> int:
    """Export every bag under ``args.bag``; print one line per episode."""
    config = DatasetConfig(
        paths=list(args.bag), layout='rosbag2', robot=args.robot, rate_hz=args.rate_hz,
        action_source=args.action_source, action_topic=args.action_topic,
        timestamp_source=args.timestamp_source, gripper_mode=args.gripper_mode,
        max_gap_s=args.max_gap_s, instruction=args.instruction)
    bags = [path for path, _ in discover_episodes(config)]
    targets = output_paths(bags, Path(args.output).expanduser())
    existing = [str(target) for target in targets if target.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f'{existing[0]} exists ({len(existing)} of {len(targets)} '
                              'outputs); pass --overwrite to replace them')
    for bag, target in zip(bags, targets):
        steps = Hdf5Exporter(bag, config).export(target, args.images, args.jpeg_quality)
        print(f'{bag} -> {target}: {steps} steps at {args.rate_hz:g} Hz', flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of vla-adapter-export-hdf5."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--bag', nargs='+', required=True, metavar='PATH',
                        help='rosbag2 bag directories (or .mcap/.db3 files) or folders of them')
    parser.add_argument('--output', required=True, metavar='PATH',
                        help='folder for <bag name>.hdf5 files (or the .hdf5 file for one bag)')
    parser.add_argument('--robot', default='aloha', metavar='NAME|FILE',
                        help='robot description that recorded the bags')
    parser.add_argument('--images', default='jpeg', choices=IMAGE_MODES,
                        help="'jpeg': ALOHA's compressed layout; 'raw': uint8 (T, H, W, 3)")
    parser.add_argument('--jpeg_quality', type=int, default=90, help='JPEG quality (1-100)')
    parser.add_argument('--rate_hz', type=float, default=50.0, help='alignment rate (Hz)')
    parser.add_argument('--action_source', default='leader_joint_states', choices=ACTION_SOURCES,
                        help="'leader_joint_states' (teleoperation) or 'topic' (--action_topic)")
    parser.add_argument('--action_topic', default=None,
                        help="recorded action topic, e.g. /commanded_action (the recorder's "
                             'executor commands)')
    parser.add_argument('--timestamp_source', default='header', choices=TIMESTAMP_SOURCES,
                        help="align on message 'header' stamps or 'bag' receive times")
    parser.add_argument('--gripper_mode', default='aloha', choices=GRIPPER_MODES,
                        help="'aloha': grippers 0 (closed) .. 1 (open); 'raw': as recorded")
    parser.add_argument('--max_gap_s', type=float, default=0.2,
                        help='a topic silent for longer inside an episode is an error')
    parser.add_argument('--instruction', default=None,
                        help="instruction attribute (default: the bag's recorded instruction)")
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point; a user error is one line on stderr and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.jpeg_quality <= 100:
        parser.error(f'--jpeg_quality {args.jpeg_quality}: must be in 1..100')
    return run_reporting_errors(PROG, lambda: export_bags(args), debug=args.debug)


if __name__ == '__main__':
    raise SystemExit(main())
