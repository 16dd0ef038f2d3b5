"""LeRobot datasets for the tests: written by the real lerobot (the oracle) and, for v2.1, by hand.

lerobot 0.4.4 writes v3.0 only. The v2.1 fixture is therefore written here with pyarrow + PyAV
following the documented v2.1 layout (labelled HAND-WRITTEN v2.1), and lerobot's own v2.1 -> v3.0
converter turns a copy into v3.0, which lerobot then reads: the oracle for what our v2.1 reader
must return.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from lerobot_oracle import run_oracle
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.lerobot_video import write_video

ALOHA_JOINTS = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate',
                'gripper')
# The Hub ALOHA datasets' order; the fixture stores the right arm first to prove the reader
# picks dimensions by name.
ALOHA_NAMES = [f'{side}_{joint}' for side in ('left', 'right') for joint in ALOHA_JOINTS]
SHUFFLED_NAMES = ALOHA_NAMES[7:] + ALOHA_NAMES[:7]
IMAGE_SHAPE = (48, 64, 3)


def vector_feature(names: list[str] | None, dim: int = 14) -> dict:
    return {'dtype': 'float32', 'shape': [dim],
            'names': {'motors': names} if names is not None else None}


def video_feature() -> dict:
    return {'dtype': 'video', 'shape': list(IMAGE_SHAPE), 'names': ['height', 'width',
                                                                   'channels']}


def make_inputs(lengths: list[int], video_keys: list[str], seed: int) -> dict[str, np.ndarray]:
    """Values per episode: state / action (T, 14) and distinct block-pattern frames."""
    rng = np.random.default_rng(seed)
    height, width, _ = IMAGE_SHAPE
    inputs = {}
    for episode, length in enumerate(lengths):
        state = rng.normal(size=(length, 14)).astype(np.float32)
        state[:, [6, 13]] = rng.uniform(0, 1, size=(length, 2))
        inputs[f'ep{episode}/observation.state'] = state
        inputs[f'ep{episode}/action'] = rng.normal(size=(length, 14)).astype(np.float32)
        inputs[f'ep{episode}/timestamp'] = (np.arange(length) / 50.0).astype(np.float32)
        for key in video_keys:  # 8x8-pixel blocks survive lossy coding, each frame differs
            blocks = rng.integers(0, 256, size=(length, height // 8, width // 8, 3))
            inputs[f'ep{episode}/{key}'] = np.repeat(np.repeat(blocks, 8, 1), 8, 2).astype(
                np.uint8)
    return inputs


def write_with_lerobot(work: Path, name: str, features: dict, tasks: list[str],
                       lengths: list[int], vcodec: str = 'libsvtav1', seed: int = 0) -> tuple:
    """A v3.0 dataset written by lerobot; (root, inputs, dump of what lerobot reads back)."""
    video_keys = [key for key, value in features.items() if value['dtype'] == 'video']
    inputs = make_inputs(lengths, video_keys, seed)
    np.savez(work / f'{name}_inputs.npz', **inputs)
    spec = {'repo_id': f'local/{name}', 'fps': 50, 'features': features, 'tasks': tasks,
            'vcodec': vcodec, 'robot_type': 'aloha'}
    (work / f'{name}_spec.json').write_text(json.dumps(spec))
    root = work / name
    out = work / f'{name}_dump.npz'
    run_oracle(work, 'write', '--root', str(root), '--inputs', str(work / f'{name}_inputs.npz'),
               '--spec', str(work / f'{name}_spec.json'), '--out', str(out))
    return root, inputs, dict(np.load(out))


def lerobot_dump(work: Path, root: Path) -> dict[str, np.ndarray]:
    """Everything LeRobotDataset yields for ``root`` (see lerobot_oracle.dump)."""
    out = work / f'{root.name}_dump.npz'
    run_oracle(work, 'dump', '--root', str(root), '--out', str(out))
    return dict(np.load(out))


def write_v21_by_hand(root: Path, features: dict, tasks: list[str],
                      inputs: dict[str, np.ndarray], fps: int = 50) -> None:
    """HAND-WRITTEN v2.1 (pyarrow + PyAV) following the documented layout; see module doc."""
    video_keys = [key for key, value in features.items() if value['dtype'] == 'video']
    vector_keys = [key for key in features if key not in video_keys]
    total = 0
    episodes, stats = [], []
    for episode, task in enumerate(tasks):
        length = len(inputs[f'ep{episode}/timestamp'])
        columns = {key: pa.array(list(inputs[f'ep{episode}/{key}']), pa.list_(pa.float32(), 14))
                   for key in vector_keys}
        columns['timestamp'] = pa.array(inputs[f'ep{episode}/timestamp'], pa.float32())
        columns['frame_index'] = pa.array(np.arange(length), pa.int64())
        columns['episode_index'] = pa.array(np.full(length, episode), pa.int64())
        columns['index'] = pa.array(np.arange(total, total + length), pa.int64())
        columns['task_index'] = pa.array(np.full(length, episode), pa.int64())
        path = root / f'data/chunk-000/episode_{episode:06d}.parquet'
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
        for key in video_keys:
            info = write_video(root / f'videos/chunk-000/{key}/episode_{episode:06d}.mp4',
                               inputs[f'ep{episode}/{key}'], fps, 'h264')
            features[key] = {**features[key], 'info': info}
        episodes.append({'episode_index': episode, 'tasks': [task], 'length': length})
        stats.append({'episode_index': episode, 'stats': {key: _stats(inputs[f'ep{episode}/{key}'])
                                                          for key in vector_keys}})
        total += length
    _write_v21_meta(root, features, tasks, episodes, stats, total, fps, len(video_keys))


def _stats(values: np.ndarray) -> dict:
    return {'min': values.min(0).tolist(), 'max': values.max(0).tolist(),
            'mean': values.mean(0).tolist(), 'std': values.std(0).tolist(),
            'count': [len(values)]}


def _write_v21_meta(root: Path, features: dict, tasks: list[str], episodes: list, stats: list,
                    total: int, fps: int, cameras: int) -> None:
    defaults = {name: {'dtype': dtype, 'shape': [1], 'names': None} for name, dtype in (
        ('timestamp', 'float32'), ('frame_index', 'int64'), ('episode_index', 'int64'),
        ('index', 'int64'), ('task_index', 'int64'))}
    info = {'codebase_version': 'v2.1', 'robot_type': 'aloha', 'total_episodes': len(tasks),
            'total_frames': total, 'total_tasks': len(tasks), 'total_videos': cameras * len(tasks),
            'total_chunks': 1, 'chunks_size': 1000, 'fps': fps,
            'splits': {'train': f'0:{len(tasks)}'},
            'data_path': 'data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet',
            'video_path': 'videos/chunk-{episode_chunk:03d}/{video_key}/'
                          'episode_{episode_index:06d}.mp4',
            'features': {**features, **defaults}}
    meta = root / 'meta'
    meta.mkdir(parents=True, exist_ok=True)
    (meta / 'info.json').write_text(json.dumps(info, indent=2))
    for name, rows in (('episodes', episodes), ('episodes_stats', stats),
                       ('tasks', [{'task_index': i, 'task': t} for i, t in enumerate(tasks)])):
        (meta / f'{name}.jsonl').write_text(''.join(json.dumps(row) + '\n' for row in rows))


def write_dataset_snapshot(cache: Path, repo_id: str, root: Path, commit: str,
                           revisions: tuple[str, ...] = ('main',)) -> Path:
    """``root`` as a cached Hub dataset repo at ``commit``, as huggingface_hub lays it out.

    ``datasets--<owner>--<name>/`` with ``blobs/<sha256>`` (contents), ``snapshots/<commit>/``
    (relative symlinks to the blobs) and ``refs/<revision>`` (the commit) for each revision.
    """
    repo = cache / ('datasets--' + repo_id.replace('/', '--'))
    (repo / 'blobs').mkdir(parents=True, exist_ok=True)
    (repo / 'refs').mkdir(exist_ok=True)
    snapshot = repo / 'snapshots' / commit
    for path in sorted(p for p in root.rglob('*') if p.is_file()):
        data = path.read_bytes()
        blob = repo / 'blobs' / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for revision in revisions:
        (repo / 'refs' / revision).write_text(commit)
    return snapshot
