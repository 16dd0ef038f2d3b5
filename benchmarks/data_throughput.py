"""Samples per second of the training data path: HDF5 read + JPEG decode + augmentation.

Writes a temporary ALOHA dataset (3 cameras, 640x480 frames, JPEG-compressed as ALOHA records
them), then times a DataLoader over :class:`training.dataset.EpisodeDataset` with the training
augmentation. The LeRobot row writes the same frames as a LeRobot v3.0 dataset (AV1 or H.264 MP4
with a key frame every 2 frames, as LeRobot records) and times the same loader with video
decoding (``--format``). ``--with_processor`` runs the training collate as well (the shared
processor: resize to 224, tower normalisation, tokens, normalised proprio and actions) in the
workers, i.e. the whole input path of ``vla-adapter-train``. Prints the numbers; asserts nothing.

    .venv/bin/python benchmarks/data_throughput.py [--workers 2] [--batch_size 16]
        [--format hdf5|lerobot|both] [--video_codec libsvtav1|h264]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
from pathlib import Path
import sys
import tempfile
import time

import h5py
import numpy as np
from PIL import Image
import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.augmentation import AugmentationConfig, ImageAugmenter  # noqa: E402
from training.data_config import DatasetConfig  # noqa: E402
from training.dataset import EpisodeDataset, SeededSampler, load_episodes  # noqa: E402
from vla_adapter_core.robot_description import load_robot_description  # noqa: E402

ALOHA = load_robot_description('aloha')
ALOHA_CAMERAS = ALOHA.cameras


def synthetic_frame(rng: np.random.Generator, step: int) -> np.ndarray:
    """A 480x640 scene-like frame: gradients, a block and sensor noise."""
    rows = np.linspace(0, 255, 480, dtype=np.float32)[:, None, None]
    cols = np.linspace(0, 255, 640, dtype=np.float32)[None, :, None]
    frame = 0.5 * rows + 0.3 * cols + np.array([20, 60, 100], dtype=np.float32)
    top, left = 100 + step % 200, 200 + (3 * step) % 300
    frame[top: top + 80, left: left + 120] = (200, 40, 30)
    frame += rng.normal(0, 6, size=frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_dataset(folder: Path, episodes: int, steps: int, seed: int = 0) -> None:
    """ALOHA-layout HDF5 episodes with JPEG frames (quality 50 as aloha's recorder)."""
    rng = np.random.default_rng(seed)
    for index in range(episodes):
        encoded = {}
        for camera in ALOHA_CAMERAS:
            encoded[camera] = []
            for step in range(steps):
                buffer = io.BytesIO()
                Image.fromarray(synthetic_frame(rng, step)).save(buffer, 'JPEG', quality=50)
                encoded[camera].append(buffer.getvalue())
        lengths = np.array([[len(d) for d in encoded[c]] for c in ALOHA_CAMERAS])
        with h5py.File(folder / f'episode_{index}.hdf5', 'w') as root:
            root.attrs['sim'] = False
            root.attrs['instruction'] = 'transfer the cube'
            for camera in ALOHA_CAMERAS:
                padded = np.zeros((steps, lengths.max()), dtype=np.uint8)
                for step, data in enumerate(encoded[camera]):
                    padded[step, : len(data)] = np.frombuffer(data, dtype=np.uint8)
                root.create_dataset(f'observations/images/{camera}', data=padded,
                                    chunks=(1, padded.shape[1]))
            state = rng.normal(size=(steps, ALOHA.action_dim)).astype(np.float32)
            root.create_dataset('observations/qpos', data=state)
            root.create_dataset('action', data=state)
            root.create_dataset('compress_len', data=lengths.astype(np.float32))


def write_lerobot_dataset(folder: Path, episodes: int, steps: int, codec: str,
                          seed: int = 0) -> None:
    """The same frames and states as a LeRobot v3.0 dataset (our writer, ALOHA mapping)."""
    from training.lerobot_mapping import dimension_names
    from training.lerobot_writer import LeRobotWriter

    rng = np.random.default_rng(seed)
    names = dimension_names('{side}_{joint}', ALOHA)
    features = {key: {'dtype': 'float32', 'shape': [len(names)], 'names': {'motors': names}}
                for key in ('observation.state', 'action')}
    for camera in ALOHA_CAMERAS:
        features[f'observation.images.{camera}'] = {'dtype': 'video', 'shape': [480, 640, 3],
                                                    'names': ['height', 'width', 'channels']}
    writer = LeRobotWriter(folder, 50, features, codec, ALOHA.name)
    for index in range(episodes):
        videos = writer.video_writers(index)
        for step in range(steps):
            for camera in ALOHA_CAMERAS:
                videos[f'observation.images.{camera}'].add(synthetic_frame(rng, step))
        state = rng.normal(size=(steps, ALOHA.action_dim)).astype(np.float32)
        writer.add_episode({'observation.state': state, 'action': state}, 'transfer the cube',
                           videos, {})
    writer.finish()


def training_collate(episodes) -> object:
    """The exact collate of vla-adapter-train.

    The shared processor (resize to 224, tower normalisation, prompt tokens, proprio and action
    normalisation) on the augmented samples.
    """
    from training.compute_dataset_statistics import compute_statistics
    from training.finetune import TrainingCollate
    from vla_adapter_core.config import NormalizationConfig, PolicyConfig, ProcessorConfig
    from vla_adapter_core.heads import ActionHeadConfig
    from vla_adapter_core.processor import VLAProcessor
    from vla_adapter_core.prompt import load_tokenizer
    config = PolicyConfig(camera_names=list(ALOHA_CAMERAS), proprio_dim=ALOHA.proprio_dim,
                          action_head=ActionHeadConfig(chunk_size=25, action_dim=ALOHA.action_dim),
                          normalization=NormalizationConfig(mode='bounds'),
                          processor=ProcessorConfig(center_crop_fraction=0.9))
    tokenizer = load_tokenizer(REPO / 'vla_adapter_core' / 'assets' / 'qwen2_5_tokenizer')
    return TrainingCollate(VLAProcessor.from_config(config, tokenizer,
                                                    compute_statistics(episodes),
                                                    center_crop=False))


def stack_images(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Collate without the processor: camera -> uint8 (B, h, w, 3) tensor (shared memory)."""
    return {camera: torch.from_numpy(np.stack([s['images'][camera] for s in samples]))
            for camera in samples[0]['images']}


def measure(dataset: EpisodeDataset, workers: int, batch_size: int, batches: int,
            collate) -> float:
    """Samples per second over ``batches`` batches after one warm-up batch."""
    sampler = SeededSampler(len(dataset), seed=0)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        collate_fn=collate, persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = batches * batch_size / (time.perf_counter() - start)
    del iterator, loader  # end the persistent workers before the next row starts its own
    gc.collect()
    return rate


def cpu_cost_ms(dataset: EpisodeDataset, collate, samples: int = 64) -> float:
    """CPU milliseconds per sample in this process (immune to other processes' load)."""
    collate([dataset[(0, 0)]])
    start = time.process_time()
    for first in range(0, samples, 16):
        collate([dataset[(index, index)] for index in range(first, first + 16)])
    return (time.process_time() - start) / samples * 1000


def main() -> None:
    """Write the dataset, time the data path, print samples/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--batches', type=int, default=20)
    parser.add_argument('--episodes', type=int, default=4)
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--jpeg_draft_size', type=int, default=224)
    parser.add_argument('--with_processor', action='store_true')
    parser.add_argument('--format', choices=('hdf5', 'lerobot', 'both'), default='both')
    parser.add_argument('--video_codec', choices=('libsvtav1', 'h264'), default='libsvtav1')
    args = parser.parse_args()
    torch.set_num_threads(1)
    formats = ('hdf5', 'lerobot') if args.format == 'both' else (args.format,)
    for data_format in formats:
        with tempfile.TemporaryDirectory() as folder:
            if data_format == 'hdf5':
                write_dataset(Path(folder), args.episodes, args.steps)
                source = f'3 cameras 640x480 JPEG, jpeg_draft_size={args.jpeg_draft_size}'
            else:
                write_lerobot_dataset(Path(folder) / 'lerobot', args.episodes, args.steps,
                                      args.video_codec)
                source = f'LeRobot v3.0, 3 cameras 640x480 {args.video_codec} MP4 (PyAV decode)'
            config = DatasetConfig(paths=[folder], jpeg_draft_size=args.jpeg_draft_size)
            report(config, args, source)


def report(config: DatasetConfig, args: argparse.Namespace, source: str) -> None:
    """Time one dataset's data path and print its row."""
    episodes = load_episodes(config)
    augmenter = ImageAugmenter(AugmentationConfig(), output_size=224)
    dataset = EpisodeDataset(episodes, config.chunk_size, augmenter)
    collate = training_collate(episodes) if args.with_processor else stack_images
    cost = cpu_cost_ms(dataset, collate)
    rate = measure(dataset, args.workers, args.batch_size, args.batches, collate)
    path = 'decode + augment' + (' + processor' if args.with_processor else '')
    print(f'data path ({path}), {source}')
    print(f'  CPU cost: {cost:.2f} ms per sample = {1000 / cost:.0f} samples/s per core')
    print(f'  DataLoader with {args.workers} workers: {rate:.1f} samples/s '
          f'(load average now {os.getloadavg()[0]:.1f})', flush=True)


if __name__ == '__main__':
    main()
