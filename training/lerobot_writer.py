"""Writing a LeRobot v3.0 dataset (the layout :mod:`training.lerobot_format` describes).

Written with pyarrow and PyAV only: the rows in ``data/chunk-000/file-000.parquet`` (a new
file starts with the first episode past ``MAX_ROWS_PER_FILE`` rows), one MP4 per camera per
episode (``from_timestamp`` 0), the episode table with each episode's files, tasks and
metadata (``success``, ``recording``: extra columns LeRobot keeps with the episode),
``meta/tasks.parquet`` (task strings as the pandas index, as LeRobot reads it),
``meta/stats.json`` and ``meta/info.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.lerobot_video import VideoWriter

CODEBASE_VERSION = 'v3.0'
CHUNKS_SIZE = 1000
MAX_ROWS_PER_FILE = 100_000
DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
EPISODES_PATH = 'meta/episodes/chunk-000/file-000.parquet'
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
INDEX_FEATURES = {name: {'dtype': dtype, 'shape': [1], 'names': None} for name, dtype in (
    ('timestamp', 'float32'), ('frame_index', 'int64'), ('episode_index', 'int64'),
    ('index', 'int64'), ('task_index', 'int64'))}


def vector_stats(values: np.ndarray) -> dict:
    """LeRobot's per-feature statistics of (N, D) values (lists, JSON-ready)."""
    values = np.asarray(values, dtype=np.float64)
    stats = {'min': values.min(0), 'max': values.max(0), 'mean': values.mean(0),
             'std': values.std(0), 'count': np.array([len(values)])}
    for q in QUANTILES:
        stats[f'q{round(q * 100):02d}'] = np.quantile(values, q, axis=0)
    return {key: value.tolist() for key, value in stats.items()}


class ImageStats:
    """Per-channel min / max / mean / std of frames in [0, 1], LeRobot's (3, 1, 1) layout."""

    def __init__(self) -> None:
        self.count, self.sum, self.square = 0, np.zeros(3), np.zeros(3)
        self.low, self.high = np.full(3, np.inf), np.full(3, -np.inf)

    def add(self, rgb: np.ndarray) -> None:
        """One uint8 (H, W, 3) frame (every 4th pixel each way)."""
        pixels = rgb[::4, ::4].reshape(-1, 3).astype(np.float64) / 255.0  # (n, 3)
        self.count += 1
        self.sum += pixels.mean(0)
        self.square += (pixels ** 2).mean(0)
        self.low, self.high = np.minimum(self.low, pixels.min(0)), np.maximum(self.high,
                                                                                pixels.max(0))

    def result(self) -> dict:
        """JSON-ready statistics (each (3, 1, 1) but count)."""
        mean = self.sum / self.count
        std = np.sqrt(np.maximum(self.square / self.count - mean ** 2, 0.0))
        shaped = {key: value.reshape(3, 1, 1).tolist() for key, value in (
            ('min', self.low), ('max', self.high), ('mean', mean), ('std', std))}
        return {**shaped, 'count': [self.count]}


class LeRobotWriter:
    """Episodes in, a v3.0 dataset out. ``features``: the state / action / video features."""

    def __init__(self, root: Path, fps: int, features: dict, video_codec: str,
                 robot_type: str) -> None:
        self.root, self.fps, self.codec = root, fps, video_codec
        self.features = features
        self.video_keys = [key for key, value in features.items() if value['dtype'] == 'video']
        self.vector_keys = [key for key in features if key not in self.video_keys]
        self.robot_type = robot_type
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict] = []
        self.rows: dict[str, list] = {key: [] for key in self.vector_keys}
        self.image_stats = {key: ImageStats() for key in self.video_keys}
        self.total = 0
        self.file_rows = [0]  # rows per data file

    def video_writers(self, episode_index: int) -> dict[str, VideoWriter]:
        """One open MP4 per camera for the next episode (feed them, then :meth:`add_episode`)."""
        chunk, file = divmod(episode_index, CHUNKS_SIZE)
        return {key: VideoWriter(self.root / VIDEO_PATH.format(
            video_key=key, chunk_index=chunk, file_index=file), self.fps, self.codec)
            for key in self.video_keys}

    def add_frame_stats(self, key: str, rgb: np.ndarray) -> None:
        """Count a frame of video feature ``key`` into the dataset statistics."""
        self.image_stats[key].add(rgb)

    def add_episode(self, values: dict[str, np.ndarray], task: str,
                    videos: dict[str, VideoWriter], metadata: dict) -> None:
        """Close the episode's videos and record its rows (``values``: feature -> (T, D))."""
        length = len(next(iter(values.values())))
        index = len(self.episodes)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        chunk, file = divmod(index, CHUNKS_SIZE)
        if self.file_rows[-1] >= MAX_ROWS_PER_FILE:
            self.file_rows.append(0)
        self.file_rows[-1] += length
        row = {'episode_index': index, 'tasks': [task], 'length': length,
               'data/chunk_index': 0, 'data/file_index': len(self.file_rows) - 1,
               'dataset_from_index': self.total, 'dataset_to_index': self.total + length,
               'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0, **metadata}
        for key, writer in videos.items():
            info = writer.close()
            if writer.count != length:
                raise ValueError(f'{writer.path}: {writer.count} frames for {length} steps')
            self.features[key]['info'] = info
            row.update({f'videos/{key}/chunk_index': chunk, f'videos/{key}/file_index': file,
                        f'videos/{key}/from_timestamp': 0.0,
                        f'videos/{key}/to_timestamp': length / self.fps})
        for key in self.vector_keys:
            self.rows[key].append(np.asarray(values[key], dtype=np.float32))
        self.episodes.append({**row, '_task_index': task_index})
        self.total += length

    def _data_table(self, start: int, stop: int) -> pa.Table:
        """Rows ``start:stop`` of the whole dataset."""
        lengths = [episode['length'] for episode in self.episodes]
        episode_of = np.repeat(np.arange(len(lengths)), lengths)[start:stop]
        frame = np.concatenate([np.arange(n) for n in lengths])[start:stop]
        task = np.repeat([e['_task_index'] for e in self.episodes], lengths)[start:stop]
        columns = {}
        for key in self.vector_keys:
            values = np.concatenate(self.rows[key])[start:stop]  # (n, D)
            columns[key] = pa.FixedSizeListArray.from_arrays(
                pa.array(values.reshape(-1), pa.float32()), values.shape[1])
        columns['timestamp'] = pa.array((frame / self.fps).astype(np.float32))
        columns['frame_index'] = pa.array(frame.astype(np.int64))
        columns['episode_index'] = pa.array(episode_of.astype(np.int64))
        columns['index'] = pa.array(np.arange(start, stop, dtype=np.int64))
        columns['task_index'] = pa.array(task.astype(np.int64))
        return pa.table(columns)

    def finish(self) -> dict:
        """Write the tables and metadata; the ``info.json`` content."""
        if not self.episodes:
            raise ValueError(f'{self.root}: no episodes to write')
        start = 0
        for number, rows in enumerate(self.file_rows):
            path = self.root / DATA_PATH.format(chunk_index=0, file_index=number)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(self._data_table(start, start + rows), path)
            start += rows
        unset = {key for key in self.episodes[0]
                 if all(episode.get(key) is None for episode in self.episodes)}
        episodes = [{k: v for k, v in e.items() if k != '_task_index' and k not in unset}
                    for e in self.episodes]  # metadata no episode has is left out
        path = self.root / EPISODES_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(episodes), path)
        self._write_tasks()
        stats = {key: vector_stats(np.concatenate(self.rows[key])) for key in self.vector_keys}
        stats.update({key: self.image_stats[key].result() for key in self.video_keys
                      if self.image_stats[key].count})
        (self.root / 'meta/stats.json').write_text(json.dumps(stats, indent=2))
        info = self._info()
        (self.root / 'meta/info.json').write_text(json.dumps(info, indent=4))
        return info

    def _write_tasks(self) -> None:
        """Task strings as the pandas index (``__index_level_0__``), their task_index column."""
        names = list(self.tasks)
        pandas = {'index_columns': ['__index_level_0__'], 'column_indexes': [],
                  'columns': [{'name': 'task_index', 'field_name': 'task_index',
                               'pandas_type': 'int64', 'numpy_type': 'int64', 'metadata': None},
                              {'name': None, 'field_name': '__index_level_0__',
                               'pandas_type': 'unicode', 'numpy_type': 'object',
                               'metadata': None}],
                  'attributes': {}, 'creator': {'library': 'pyarrow', 'version': pa.__version__}}
        table = pa.table({'task_index': pa.array([self.tasks[n] for n in names], pa.int64()),
                          '__index_level_0__': pa.array(names, pa.string())})
        pq.write_table(table.replace_schema_metadata({'pandas': json.dumps(pandas)}),
                       self.root / 'meta/tasks.parquet')

    def _info(self) -> dict:
        return {'codebase_version': CODEBASE_VERSION, 'robot_type': self.robot_type,
                'total_episodes': len(self.episodes), 'total_frames': self.total,
                'total_tasks': len(self.tasks), 'chunks_size': CHUNKS_SIZE,
                'data_files_size_in_mb': 100, 'video_files_size_in_mb': 200, 'fps': self.fps,
                'splits': {'train': f'0:{len(self.episodes)}'}, 'data_path': DATA_PATH,
                'video_path': VIDEO_PATH if self.video_keys else None,
                'features': {**self.features, **INDEX_FEATURES}}
