"""The LeRobot dataset format on disk, v2.0 / v2.1 and v3.0: metadata, episode records, rows.

Both versions keep ``meta/info.json`` (``codebase_version``, ``fps``, ``features``,
``chunks_size``, ``data_path`` and ``video_path`` templates). They differ in where episodes live:

- v2.x: one parquet file and one MP4 per camera per episode,
  ``data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet`` and
  ``videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4`` with
  ``episode_chunk = episode_index // chunks_size``; episodes and tasks in ``meta/episodes.jsonl``
  and ``meta/tasks.jsonl``; each video starts at time 0.
- v3.0: many episodes per file, ``data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet`` and
  ``videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4``; the episode table
  ``meta/episodes/chunk-*/file-*.parquet`` gives each episode's files and, per camera, the time
  its frames start at in the video (``videos/<key>/from_timestamp``); tasks in
  ``meta/tasks.parquet``.

A frame's video time is the episode's ``from_timestamp`` plus the row's ``timestamp``. A dataset is
a local directory or a Hub dataset repo id resolved through the Hugging Face cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.episodes import EpisodeError
from vla_adapter_core.cli_errors import one_line

INFO_PATH = 'meta/info.json'
STATS_PATH = 'meta/stats.json'
V2_VERSIONS = ('v2.0', 'v2.1')
V3_VERSIONS = ('v3.0',)
# Episode-table columns that are the format's own, not recorded episode metadata.
V3_OWN_COLUMNS = ('episode_index', 'tasks', 'length', 'dataset_from_index', 'dataset_to_index')
V3_OWN_PREFIXES = ('data/', 'videos/', 'meta/', 'stats/')


@dataclass(frozen=True)
class EpisodeRecord:
    """Where one episode's rows and frames are, and what the dataset says about it."""

    index: int  # episode_index
    length: int  # rows (steps)
    tasks: tuple[str, ...]  # its task strings (the instruction is the first)
    data_file: Path
    videos: dict[str, tuple[Path, float]]  # video feature -> (file, from_timestamp s)
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. success, recording


def is_lerobot_dataset(path: Path) -> bool:
    """A directory with ``meta/info.json``."""
    return path.is_dir() and (path / INFO_PATH).is_file()


def _offline() -> bool:
    value = os.environ.get('HF_HUB_OFFLINE', '')
    return value.strip().upper() in ('1', 'ON', 'YES', 'TRUE')


def resolve_hub_dataset(repo_id: str, revision: str | None) -> Path:
    """The local snapshot of Hub dataset ``repo_id`` (HF_HUB_OFFLINE=1: the cache only)."""
    from huggingface_hub import snapshot_download  # only for Hub datasets

    try:
        folder = snapshot_download(repo_id=repo_id, repo_type='dataset', revision=revision,
                                   local_files_only=_offline())
    except Exception as error:  # noqa: BLE001 - huggingface_hub raises many unrelated types
        detail = one_line(error)[:300]
        raise EpisodeError(repo_id, 'repo_id', f'not in the Hugging Face cache or not '
                                               f'downloadable (revision {revision}): '
                                               f'{type(error).__name__}: {detail}') from None
    return Path(folder)


def _read_json(path: Path, where: str, field_name: str) -> Any:
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except OSError as error:
        raise EpisodeError(where, field_name, f'cannot read {path} ({error.strerror})') from None
    except ValueError as error:
        raise EpisodeError(where, field_name, f'{path} is not valid JSON ({error})') from None


def _read_jsonl(path: Path, where: str) -> list[dict]:
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except OSError as error:
        raise EpisodeError(where, path.name, f'cannot read {path} ({error.strerror})') from None
    except ValueError as error:
        raise EpisodeError(where, path.name, f'not valid JSON lines ({error})') from None


def read_parquet(path: Path, where: str, field_name: str,
                 columns: list[str] | None = None) -> pa.Table:
    """A parquet table; a missing, truncated or damaged file is an EpisodeError."""
    if not path.is_file():
        raise EpisodeError(where, field_name, f'file missing: {path}')
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError) as error:
        detail = one_line(error)[:200]
        raise EpisodeError(where, field_name, f'unreadable parquet {path} ({detail})') from None


class LeRobotFormat:
    """A dataset's metadata and episode records (nothing decoded yet)."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name  # the repo id or directory, for messages
        self.info = _read_json(root / INFO_PATH, name, INFO_PATH)
        if not isinstance(self.info, dict) or not isinstance(self.info.get('features'), dict):
            raise EpisodeError(name, INFO_PATH, 'no features mapping')
        self.version = str(self.info.get('codebase_version', ''))
        if self.version not in V2_VERSIONS + V3_VERSIONS:
            raise EpisodeError(name, 'codebase_version', f'{self.version!r} is not supported '
                                                         f'({V2_VERSIONS + V3_VERSIONS})')
        self.features: dict[str, dict] = self.info['features']
        fps = self.info.get('fps')
        if not isinstance(fps, (int, float)) or fps <= 0:
            raise EpisodeError(name, 'fps', f'{fps!r}: must be a positive number')
        self.fps = float(fps)
        self.video_keys = [key for key, value in self.features.items()
                           if isinstance(value, dict) and value.get('dtype') == 'video']
        self.episodes = (self._v3_episodes() if self.version in V3_VERSIONS
                         else self._v2_episodes())

    def episode_name(self, index: int) -> str:
        """How errors name an episode: ``<dataset> episode <index>``."""
        return f'{self.name} episode {index}'

    def _template(self, key: str) -> str:
        value = self.info.get(key)
        if not isinstance(value, str):
            raise EpisodeError(self.name, key, f'{value!r}: expected a path template')
        return value

    def _v2_episodes(self) -> list[EpisodeRecord]:
        rows = _read_jsonl(self.root / 'meta/episodes.jsonl', self.name)
        chunks = int(self.info.get('chunks_size', 1000))
        data_path = self._template('data_path')
        video_path = self._template('video_path') if self.video_keys else ''
        records = []
        for row in sorted(rows, key=lambda r: int(r.get('episode_index', -1))):
            index = int(row['episode_index'])
            chunk = index // chunks
            videos = {key: (self.root / video_path.format(episode_chunk=chunk, video_key=key,
                                                          episode_index=index), 0.0)
                      for key in self.video_keys}
            records.append(EpisodeRecord(
                index, int(row['length']), tuple(row.get('tasks') or ()),
                self.root / data_path.format(episode_chunk=chunk, episode_index=index), videos))
        return records

    def _v3_episodes(self) -> list[EpisodeRecord]:
        files = sorted((self.root / 'meta/episodes').glob('chunk-*/*.parquet'))
        if not files:
            raise EpisodeError(self.name, 'meta/episodes', 'no episode table (parquet) found')
        table = pa.concat_tables([read_parquet(path, self.name, 'meta/episodes') for path in
                                  files], promote_options='permissive').to_pylist()
        data_path = self._template('data_path')
        video_path = self._template('video_path') if self.video_keys else ''
        records = []
        for row in sorted(table, key=lambda r: int(r['episode_index'])):
            index = int(row['episode_index'])
            try:
                data_file = self.root / data_path.format(chunk_index=row['data/chunk_index'],
                                                         file_index=row['data/file_index'])
                videos = {key: (self.root / video_path.format(
                    video_key=key, chunk_index=row[f'videos/{key}/chunk_index'],
                    file_index=row[f'videos/{key}/file_index']),
                    float(row[f'videos/{key}/from_timestamp'])) for key in self.video_keys}
            except (KeyError, TypeError) as error:
                raise EpisodeError(self.episode_name(index), 'meta/episodes',
                                   f'episode table lacks {error}') from None
            metadata = {key: value for key, value in row.items()
                        if key not in V3_OWN_COLUMNS and not key.startswith(V3_OWN_PREFIXES)}
            records.append(EpisodeRecord(index, int(row['length']), tuple(row.get('tasks') or ()),
                                         data_file, videos, metadata))
        return records

    def stats(self) -> dict | None:
        """``meta/stats.json`` (feature -> mean/std/min/max ...), or None when absent."""
        path = self.root / STATS_PATH
        if not path.is_file():
            return None
        stats = _read_json(path, self.name, STATS_PATH)
        return stats if isinstance(stats, dict) else None


def read_episode_rows(fmt: LeRobotFormat, record: EpisodeRecord, columns: list[str],
                      tables: dict[Path, tuple]) -> dict[str, np.ndarray]:
    """The episode's rows of ``columns`` (each (T, ...)), checked against the episode table.

    ``tables`` caches whole data files, with their rows per episode, across the episodes that
    share them (v3).
    """
    where = fmt.episode_name(record.index)
    if record.data_file not in tables:
        table = read_parquet(record.data_file, where, 'data')
        missing = [name for name in columns + ['episode_index']
                   if name not in table.column_names]
        if missing:
            raise EpisodeError(where, missing[0], f'column missing from {record.data_file}')
        episode_index = column_values(table.column('episode_index')).astype(np.int64)  # (N,)
        order = np.argsort(episode_index, kind='stable')
        starts = np.searchsorted(episode_index[order], np.unique(episode_index))
        groups = dict(zip(np.unique(episode_index).tolist(), np.split(order, starts[1:])))
        tables[record.data_file] = (table, groups)
    table, groups = tables[record.data_file]
    rows = groups.get(record.index, np.zeros(0, np.int64))
    if len(rows) != record.length:
        raise EpisodeError(where, 'data', f'{len(rows)} rows in {record.data_file}, the episode '
                                          f'table says {record.length}')
    out = {}
    for name in columns:
        try:
            out[name] = column_values(table.column(name).take(pa.array(rows)))
        except (pa.ArrowException, ValueError) as error:
            raise EpisodeError(where, name, f'unreadable values ({error})') from None
    return out


def column_values(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy: (T,) for scalars, (T, D) for fixed-size or equal-length lists."""
    column = column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type) and column.null_count == 0:
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(column), column.type.list_size)
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        return np.array(column.to_pylist(), dtype=np.float64)
    return column.to_numpy(zero_copy_only=False)
