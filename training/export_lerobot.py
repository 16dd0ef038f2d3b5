"""``vla-adapter-export-lerobot``: our episodes (rosbag2 or ALOHA HDF5) -> LeRobot v3.0.

Episodes are read exactly as training reads them (:func:`training.dataset.load_episodes`: bags
through the same aligner, grid and gripper conventions), then written through the declared feature
mapping of the robot (``config/lerobot``; ALOHA: ``observation.state`` / ``action`` named
``left_waist`` ... ``right_gripper``, ``observation.images.<camera>``), so the dataset reads back
with the same mapping. Each episode's instruction is its task; the recorder's success flag and
sidecar (``episode_metadata.yaml``, as JSON) are episode metadata columns ``success`` and
``recording``. Written to ``<output>.partial`` and renamed when complete.

    vla-adapter-export-lerobot --bag ~/vla_adapter_episodes --output ~/lerobot/fold_towel
        --repo_id me/fold_towel [--video_codec h264] [--push_to_hub]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import json
from pathlib import Path
import shutil

import h5py
import yaml

from training.config_cli import REPO_ID, build_config_parser, option, run_config_main
from training.data_config import ACTION_SOURCES, GRIPPER_MODES, TIMESTAMP_SOURCES, DatasetConfig
from training.dataset import load_episodes
from training.export_hdf5 import EPISODE_METADATA_NAME, recorded_success
from training.lerobot_mapping import (
    bind_vector,
    default_mapping_name,
    dimension_names,
    load_feature_mapping,
)
from training.lerobot_video import VIDEO_CODECS
from training.lerobot_writer import CODEBASE_VERSION, LeRobotWriter

PROG = 'vla-adapter-export-lerobot'
STATS_EVERY = 10  # every 10th frame counts into the image statistics


@dataclass
class ExportLeRobotConfig:
    """What ``vla-adapter-export-lerobot`` reads and writes."""

    bag: list[str] | None = option(None, metavar='PATH', help='rosbag2 bags or folders of them '
                                                             '(exclusive with --hdf5)')
    hdf5: list[str] | None = option(None, metavar='PATH', help='ALOHA HDF5 episodes or folders '
                                                               'of them (exclusive with --bag)')
    output: str = option('', required=True, metavar='DIR', help='the dataset directory to write')
    repo_id: str = option('local/vla_adapter_episodes', metavar='OWNER/NAME',
                          help='dataset name (the Hub repo with --push_to_hub)')
    video_codec: str = option('libsvtav1', choices=tuple(VIDEO_CODECS),
                              help="camera video codec: AV1 (LeRobot's default) or H.264")
    robot: str = option('aloha', metavar='NAME|FILE', help='robot description of the episodes')
    lerobot_mapping: str | None = option(None, metavar='NAME|FILE', help=(
        'feature mapping to write through (None: the shipped mapping written for --robot)'))
    camera_names: list[str] | None = option(None, metavar='CAMERA',
                                            help="cameras to export (None: the robot's)")
    instruction: str | None = option(None, help='task of every episode (default: each '
                                                "episode's recorded instruction)")
    rate_hz: int = option(50, help='dataset fps; bags are aligned at this rate (Hz)')
    action_source: str = option('leader_joint_states', choices=ACTION_SOURCES,
                                help="bags: 'leader_joint_states' or 'topic' (--action_topic)")
    action_topic: str | None = option(None, help='bags: recorded action topic')
    timestamp_source: str = option('header', choices=TIMESTAMP_SOURCES,
                                   help="bags: align on 'header' stamps or 'bag' times")
    gripper_mode: str = option('aloha', choices=GRIPPER_MODES,
                               help="grippers as training reads them: 'aloha' (0..1) or 'raw'")
    max_gap_s: float = option(0.2, help='bags: a topic silent for longer is an error')
    push_to_hub: bool = option(False, help='upload the dataset to the Hub as --repo_id and tag '
                                           f'it {CODEBASE_VERSION} (needs network and a token)')
    private: bool = option(False, help='with --push_to_hub: create the repo private')
    overwrite: bool = option(False, help='replace an existing --output')

    def __post_init__(self) -> None:
        if (self.bag is None) == (self.hdf5 is None):
            raise ValueError(f'ExportLeRobotConfig.bag={self.bag!r}, hdf5={self.hdf5!r}: give '
                             'exactly one of --bag and --hdf5')
        if not self.output:
            raise ValueError("ExportLeRobotConfig.output='': name the dataset directory")
        if not REPO_ID.match(self.repo_id):
            raise ValueError(f'ExportLeRobotConfig.repo_id={self.repo_id!r}: expected owner/name')
        if not isinstance(self.rate_hz, int) or self.rate_hz <= 0:
            raise ValueError(f'ExportLeRobotConfig.rate_hz={self.rate_hz!r}: LeRobot needs a '
                             'positive integer fps')

    def dataset_config(self) -> DatasetConfig:
        """How training would read the episodes (full-size frames)."""
        return DatasetConfig(
            paths=list(self.bag or self.hdf5), layout='rosbag2' if self.bag else 'aloha_hdf5',
            robot=self.robot, camera_names=self.camera_names, instruction=self.instruction,
            rate_hz=float(self.rate_hz), action_source=self.action_source,
            action_topic=self.action_topic, timestamp_source=self.timestamp_source,
            gripper_mode=self.gripper_mode, max_gap_s=self.max_gap_s, jpeg_draft_size=0)


def episode_metadata(episode) -> dict:
    """Success (bool or None), recording (the sidecar as JSON or None), source (path)."""
    source = Path(episode.source)
    success, recording = recorded_success(source), None
    sidecar = source / EPISODE_METADATA_NAME if source.is_dir() else None
    if sidecar is not None and sidecar.is_file():
        recording = json.dumps(yaml.safe_load(sidecar.read_text(encoding='utf-8')) or {},
                               sort_keys=True, default=str)
    elif source.suffix in ('.hdf5', '.h5'):
        with h5py.File(source, 'r') as handle:
            value = handle.attrs.get('success')
        success = bool(value) if value is not None else None
    return {'success': success, 'recording': recording, 'source': str(source)}


def declared_features(config: ExportLeRobotConfig, data: DatasetConfig):
    """(features, state mapping, action mapping, camera -> video feature) of the export."""
    description = data.robot_description()
    mapping = load_feature_mapping(config.lerobot_mapping
                                   or default_mapping_name(description.name))
    features = {}
    for vector in (mapping.state, mapping.action):
        names = dimension_names(vector.names, description)
        features[vector.feature] = {'dtype': 'float32', 'shape': [len(names)],
                                    'names': {'motors': names}}
    missing = [camera for camera in data.camera_names if camera not in mapping.cameras]
    if missing:
        raise ValueError(f'camera {missing[0]!r} is not in the feature mapping {mapping.source}')
    cameras = {camera: mapping.cameras[camera] for camera in data.camera_names}
    for key in cameras.values():
        features[key] = {'dtype': 'video', 'shape': None,
                         'names': ['height', 'width', 'channels']}
    state = bind_vector(mapping.state, features, description, config.output)
    action = bind_vector(mapping.action, features, description, config.output)
    return features, state, action, cameras


def write_dataset(config: ExportLeRobotConfig, partial: Path) -> int:
    """Write every episode into ``partial``; the number of steps written."""
    data = config.dataset_config()
    features, state, action, cameras = declared_features(config, data)  # before any reading
    episodes = load_episodes(data)
    writer = LeRobotWriter(partial, config.rate_hz, features, config.video_codec,
                           data.robot_description().name)
    for number, episode in enumerate(episodes):
        videos = writer.video_writers(number)
        for step in range(len(episode)):
            for camera, rgb in episode.read_images(step).items():
                key = cameras[camera]
                features[key]['shape'] = list(rgb.shape)
                videos[key].add(rgb)
                if step % STATS_EVERY == 0:
                    writer.add_frame_stats(key, rgb)
        values = {state.feature: state.to_dataset(episode.proprio),
                  action.feature: action.to_dataset(episode.actions)}
        writer.add_episode(values, episode.instruction, videos, episode_metadata(episode))
        print(f'{episode.source} -> episode {number}: {len(episode)} steps', flush=True)
    writer.finish()
    return writer.total


def push_to_hub(folder: Path, repo_id: str, private: bool, api=None) -> None:
    """Upload ``folder`` as Hub dataset ``repo_id`` and tag it with the codebase version."""
    if api is None:
        from huggingface_hub import HfApi  # only when pushing

        api = HfApi()
    api.create_repo(repo_id, repo_type='dataset', private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type='dataset',
                               commit_message=f'{PROG}: {folder.name}')
    api.create_tag(repo_id, tag=CODEBASE_VERSION, repo_type='dataset',
                   revision=getattr(commit, 'oid', None), exist_ok=True)


def export(config: ExportLeRobotConfig) -> int:
    """The CLI's work: write ``config.output`` (atomically), push it when asked."""
    output = Path(config.output).expanduser()
    if output.exists() and not config.overwrite:
        raise FileExistsError(f'{output} exists; pass --overwrite to replace it')
    partial = output.with_name(f'{output.name}.partial')
    shutil.rmtree(partial, ignore_errors=True)
    try:
        steps = write_dataset(config, partial)
        if output.exists():
            shutil.rmtree(output)
        partial.rename(output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(f'{output}: LeRobot {CODEBASE_VERSION} dataset {config.repo_id}, {steps} steps')
    if config.push_to_hub:
        push_to_hub(output, config.repo_id, config.private)
        print(f'pushed to the Hub as {config.repo_id} (tag {CODEBASE_VERSION})')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; a user error is one line on stderr and exit status 2."""
    parser = build_config_parser(ExportLeRobotConfig, prog=PROG,
                                 description=__doc__.splitlines()[0])
    return run_config_main(parser, ExportLeRobotConfig, argv, export)


if __name__ == '__main__':
    raise SystemExit(main())
