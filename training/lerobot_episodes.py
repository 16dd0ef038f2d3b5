"""LeRobot datasets (v2.0 / v2.1 / v3.0) as training episodes, beside the HDF5 and rosbag2 ones.

A dataset (a local directory or a Hub repo id, see :mod:`training.lerobot_format`) is opened
through a declared feature mapping (:mod:`training.lerobot_mapping`) onto the run's robot
description: the state feature becomes ``proprio``, the action feature ``actions`` (both in the
description's order and gripper units), the mapped cameras' videos the images. Each episode is
checked when it is opened, and every error names the episode: its rows (count, finite values,
timestamps 1/fps apart), each camera's video (present, a codec PyAV decodes, a frame within
``video_tolerance_s`` of every step's time, found by reading the packet times without decoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from training.config_cli import looks_like_repo_id
from training.data_config import DatasetConfig
from training.episodes import EpisodeError, check_state_arrays
from training.lerobot_format import (
    EpisodeRecord,
    LeRobotFormat,
    is_lerobot_dataset,
    read_episode_rows,
    resolve_hub_dataset,
)
from training.lerobot_mapping import (
    BoundVector,
    bind_cameras,
    bind_vector,
    default_mapping_name,
    load_feature_mapping,
)
from training.lerobot_video import VideoFrameError, VideoFrames, decoder_available

TIMESTAMP = 'timestamp'


@dataclass(frozen=True)
class BoundDataset:
    """One opened dataset: its name, stats file and the bound state / action mappings."""

    name: str  # the repo id or directory, naming the dataset in every message
    root: Path  # the local directory (a Hub snapshot for repo ids)
    version: str  # codebase_version: v2.0, v2.1 or v3.0
    fps: float  # steps per second; consecutive timestamps are 1/fps apart
    state: BoundVector  # observation feature -> proprio (our order and units)
    action: BoundVector  # action feature -> actions
    cameras: dict[str, str]  # camera -> video feature
    stats: dict | None  # meta/stats.json, compared with ours (never used for training)


class VideoIndex:
    """Per video file: codec check and the sorted presentation times of its frames (s)."""

    def __init__(self) -> None:
        self._times: dict[Path, np.ndarray] = {}

    def frame_times(self, path: Path, where: str, feature: str) -> np.ndarray:
        """Sorted frame times of ``path`` (packets only, nothing decoded); errors name it."""
        if path not in self._times:
            if not path.is_file():
                raise EpisodeError(where, feature, f'video file missing: {path}')
            try:
                with av.open(str(path)) as container:
                    if not container.streams.video:
                        raise EpisodeError(where, feature, f'{path} has no video stream')
                    stream = container.streams.video[0]
                    codec = stream.codec_context.name if stream.codec_context else None
                    if codec is None or not decoder_available(codec):
                        raise EpisodeError(where, feature, f'unknown video codec {codec!r} in '
                                                           f'{path}: PyAV cannot decode it')
                    pts = [packet.pts for packet in container.demux(stream)
                           if packet.pts is not None]
                    base = float(stream.time_base)
            except av.FFmpegError as error:
                raise EpisodeError(where, feature, f'unreadable video {path} ({error})') from None
            self._times[path] = np.sort(np.asarray(pts, dtype=np.float64) * base)
        return self._times[path]


def check_frame_times(where: str, feature: str, times: np.ndarray, wanted: np.ndarray,
                      tolerance_s: float) -> None:
    """Every wanted time (s) has a video frame within ``tolerance_s``."""
    if len(times) == 0:
        raise EpisodeError(where, feature, 'the video has no frames')
    right = np.clip(np.searchsorted(times, wanted), 1, len(times) - 1)
    nearest = np.minimum(np.abs(times[right - 1] - wanted), np.abs(times[right] - wanted))
    if len(times) == 1:
        nearest = np.abs(times[0] - wanted)
    bad = np.flatnonzero(nearest > tolerance_s)
    if len(bad):
        step = int(bad[0])
        raise EpisodeError(where, feature, f'timestamps do not match the video: step {step} '
                                           f'wants {wanted[step]:.4f} s, nearest frame '
                                           f'{nearest[step]:.4f} s away ({len(bad)} such steps; '
                                           f'video frames {times[0]:.4f}..{times[-1]:.4f} s)')


class LeRobotEpisode:
    """One episode of a LeRobot dataset, with the interface of the HDF5 episodes."""

    def __init__(self, dataset: BoundDataset, record: EpisodeRecord, rows: dict,
                 config: DatasetConfig) -> None:
        self.dataset = dataset
        self.index = record.index
        self.name = f'{dataset.name} episode {record.index}'
        self.path = dataset.root
        self.source = dataset.root
        self.camera_names = list(config.camera_names)
        self.metadata = dict(record.metadata)
        self.proprio = dataset.state.to_ours(rows[dataset.state.feature])  # (T, P)
        self.actions = dataset.action.to_ours(rows[dataset.action.feature])  # (T, A)
        check_state_arrays(Path(self.name), self.proprio, self.actions, config,
                           dataset.state.feature, dataset.action.feature)
        self.timestamps = np.asarray(rows[TIMESTAMP], dtype=np.float64).reshape(-1)  # (T,)
        self._check_timestamps(config.video_tolerance_s)
        self.videos = {camera: record.videos[feature]
                       for camera, feature in dataset.cameras.items()}
        if config.instruction is not None:
            self.instruction = config.instruction.strip()
        elif record.tasks and str(record.tasks[0]).strip():
            self.instruction = str(record.tasks[0]).strip()
        else:
            raise EpisodeError(self.name, 'tasks', 'no task string (the instruction); set '
                                                   '--instruction')
        self.frames = VideoFrames(config.video_tolerance_s, config.video_decoder_threads)

    def __len__(self) -> int:
        return int(self.proprio.shape[0])

    def _check_timestamps(self, tolerance_s: float) -> None:
        steps = np.diff(self.timestamps)
        period = 1.0 / self.dataset.fps
        bad = np.flatnonzero(np.abs(steps - period) > tolerance_s)
        if len(bad):
            step = int(bad[0])
            raise EpisodeError(self.name, TIMESTAMP, f'steps {step} -> {step + 1} are '
                                                     f'{steps[step]:.4f} s apart, not 1/fps = '
                                                     f'{period:.4f} s ({len(bad)} such steps)')
        if not np.isfinite(self.timestamps).all() or self.timestamps[0] < -tolerance_s:
            raise EpisodeError(self.name, TIMESTAMP, f'invalid first timestamp '
                                                     f'{self.timestamps[0]!r}')

    def check_videos(self, index: VideoIndex, tolerance_s: float) -> None:
        """Each camera's video exists, decodes and has a frame at every step's time."""
        for camera, (path, start) in self.videos.items():
            feature = self.dataset.cameras[camera]
            times = index.frame_times(path, self.name, feature)
            check_frame_times(self.name, feature, times, start + self.timestamps, tolerance_s)

    def read_images(self, step: int) -> dict[str, np.ndarray]:
        """Camera name -> uint8 (H, W, 3) RGB frame at ``step``."""
        images = {}
        for camera in self.camera_names:
            path, start = self.videos[camera]
            try:
                images[camera] = self.frames.frame_at(path, start + self.timestamps[step])
            except VideoFrameError as error:
                raise EpisodeError(self.name, f'{self.dataset.cameras[camera]}[{step}]',
                                   f'{path}: {error}') from None
        return images


def open_dataset(spec: str, config: DatasetConfig) -> tuple[LeRobotFormat, BoundDataset]:
    """Resolve ``spec`` (directory or Hub repo id) and bind the feature mapping to it."""
    path = Path(spec).expanduser()
    if is_lerobot_dataset(path):
        root, name = path, str(path)
    elif looks_like_repo_id(spec):
        root, name = resolve_hub_dataset(spec, config.revision), spec
        if not is_lerobot_dataset(root):
            raise EpisodeError(spec, 'meta/info.json', f'not a LeRobot dataset (snapshot {root})')
    else:
        raise EpisodeError(spec, 'path', 'not a LeRobot dataset directory (meta/info.json) '
                                         'nor a Hub repo id')
    fmt = LeRobotFormat(root, name)
    description = config.robot_description()
    if not config.matches_robot:
        raise EpisodeError(name, 'proprio_dim', f'LeRobot datasets are read through robot '
                                                f'{description.name!r}: proprio_dim and '
                                                f'action_dim must be {description.action_dim}')
    mapping = load_feature_mapping(config.lerobot_mapping
                                   or default_mapping_name(description.name))
    if TIMESTAMP not in fmt.features:
        raise EpisodeError(name, TIMESTAMP, 'feature missing from the dataset')
    bound = BoundDataset(
        name, root, fmt.version, fmt.fps,
        bind_vector(mapping.state, fmt.features, description, name),
        bind_vector(mapping.action, fmt.features, description, name),
        bind_cameras(mapping, fmt.features, list(config.camera_names), name), fmt.stats())
    return fmt, bound


def load_lerobot_dataset(spec: str, config: DatasetConfig) -> list[LeRobotEpisode]:
    """Open and check every episode of one LeRobot dataset; the first problem stops."""
    fmt, bound = open_dataset(spec, config)
    columns = [bound.state.feature, bound.action.feature, TIMESTAMP]
    tables: dict = {}
    index = VideoIndex()
    episodes = []
    for record in fmt.episodes:
        rows = read_episode_rows(fmt, record, columns, tables)
        episode = LeRobotEpisode(bound, record, rows, config)
        episode.check_videos(index, config.video_tolerance_s)
        episodes.append(episode)
    if not episodes:
        raise EpisodeError(fmt.name, 'episodes', 'the dataset has no episodes')
    return episodes


def stats_differences(episodes, rtol: float = 1e-3, atol: float = 1e-5) -> list[str]:
    """Where each LeRobot dataset's ``meta/stats.json`` differs from our statistics.

    Ours are over the episodes used (in our units); the file's are converted through the same
    mapping. One line per differing (dataset, feature, statistic), naming the largest gap.
    """
    by_dataset: dict[str, list[LeRobotEpisode]] = {}
    for episode in episodes:
        if isinstance(episode, LeRobotEpisode):
            by_dataset.setdefault(episode.dataset.name, []).append(episode)
    lines = []
    for name, used in by_dataset.items():
        dataset = used[0].dataset
        if dataset.stats is None:
            lines.append(f'{name}: no meta/stats.json to compare with')
            continue
        for bound, values in ((dataset.state, np.concatenate([e.proprio for e in used])),
                              (dataset.action, np.concatenate([e.actions for e in used]))):
            values = values.astype(np.float64)  # (N, D)
            ours = {'mean': values.mean(0), 'std': values.std(0), 'min': values.min(0),
                    'max': values.max(0)}
            theirs = bound.stats_to_ours(dataset.stats.get(bound.feature) or {})
            for key, reference in theirs.items():
                gap = np.abs(ours[key] - reference)
                bad = np.flatnonzero(gap > atol + rtol * np.abs(reference))
                if len(bad):
                    worst = int(bad[np.argmax(gap[bad])])
                    lines.append(f'{name}: {bound.feature} {key} differs from meta/stats.json in '
                                 f'{len(bad)} of {len(gap)} dimensions (largest: dimension '
                                 f'{worst}, ours {ours[key][worst]:.6g}, stats.json '
                                 f'{reference[worst]:.6g}; ours cover the {len(used)} episodes '
                                 'used)')
    return lines
