"""Episode datasets: discovery, train/validation split, samples with action chunks, sampling.

A sample (raw, before the shared processor)::

    {
        'images': {camera: uint8 (H, W, 3)},   # the configured cameras, augmented in training
        'proprio': float32 (proprio_dim,),     # raw robot state at step t
        'instruction': str,
        'actions': float32 (chunk_size, action_dim),  # raw actions t .. t + chunk - 1
        'action_mask': bool (chunk_size,),     # False for steps past the episode end
    }

Steps past the end repeat the last action (masked out of the loss).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, DistributedSampler, Sampler

from training.augmentation import ImageAugmenter
from training.aux_targets import AuxTargets
from training.config_cli import looks_like_repo_id
from training.corrections import CorrectionSampling
from training.data_config import DatasetConfig
from training.episodes import HDF5_SUFFIXES, AlohaHdf5Episode, EpisodeError
from training.lerobot_episodes import LeRobotEpisode, load_lerobot_dataset
from training.lerobot_format import is_lerobot_dataset
from training.rosbag_episodes import is_rosbag, load_rosbag_episode
from vla_adapter_core.processor import crop_camera_images

Episode = AlohaHdf5Episode | LeRobotEpisode


def _layout_of(path: Path) -> str | None:
    if is_lerobot_dataset(path):
        return 'lerobot'
    if path.is_file() and path.suffix in HDF5_SUFFIXES:
        return 'aloha_hdf5'
    if is_rosbag(path) and path.exists():
        return 'rosbag2'
    return None


def discover_episodes(config: DatasetConfig) -> list[tuple[Path, str]]:
    """(path, layout) of every episode under ``config.paths``, sorted, in the configured layout.

    A path is an episode (``.hdf5``/``.h5`` file, rosbag2 directory, ``.mcap``/``.db3`` file), a
    LeRobot dataset (directory with ``meta/info.json``, or a Hub repo id ``owner/name``: many
    episodes) or a folder searched recursively for them (bags and datasets are not searched
    inside).
    """
    if not config.paths:
        raise ValueError('DatasetConfig.paths=[]: no episode paths given')
    found: list[tuple[Path, str]] = []
    for root in map(Path, config.paths):
        if looks_like_repo_id(str(root)):
            found.append((root, 'lerobot'))
            continue
        if not root.exists():
            raise EpisodeError(root, 'path', 'does not exist')
        layout = _layout_of(root)
        if layout is not None:
            found.append((root, layout))
        elif root.is_dir():
            before = len(found)
            found.extend(_search_folder(root))
            if len(found) == before:
                raise EpisodeError(root, 'path', 'unknown dataset layout: no .hdf5/.h5 episodes, '
                                                 'rosbag2 bags (metadata.yaml, .mcap, .db3) or '
                                                 'LeRobot datasets (meta/info.json)')
        else:
            raise EpisodeError(root, 'path', 'unknown dataset layout: expected an ALOHA .hdf5/.h5 '
                                             'file, a rosbag2 bag (directory, .mcap, .db3) or a '
                                             'LeRobot dataset')
    if config.layout != 'auto':
        wrong = [str(path) for path, layout in found if layout != config.layout]
        if wrong:
            raise EpisodeError(wrong[0], 'layout', f'not {config.layout!r} '
                                                   f'(DatasetConfig.layout); {len(wrong)} such')
    return found


def _search_folder(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith('.'):
            continue  # hidden, e.g. the aligned-bag cache
        layout = _layout_of(child)
        if layout is not None:
            found.append((child, layout))
        elif child.is_dir():
            found.extend(_search_folder(child))
    return found


def load_episodes(config: DatasetConfig) -> list[Episode]:
    """Open (and validate) every episode; the first problem stops with a clear error."""
    episodes = []
    for path, layout in discover_episodes(config):
        if layout == 'aloha_hdf5':
            episodes.append(AlohaHdf5Episode(path, config))
        elif layout == 'lerobot':
            episodes.extend(load_lerobot_dataset(str(path), config))
        else:
            episodes.append(load_rosbag_episode(path, config))
    return episodes


def split_episodes(episodes: Sequence[Episode], num_val: int,
                   seed: int) -> tuple[list[Episode], list[Episode]]:
    """Hold out ``num_val`` whole episodes (chosen with ``seed``) for validation."""
    if num_val < 0 or num_val >= len(episodes):
        raise ValueError(f'num_val_episodes={num_val}: need 0 <= n < {len(episodes)} episodes')
    order = np.random.default_rng(seed).permutation(len(episodes))
    held_out = set(order[:num_val].tolist())
    train = [ep for i, ep in enumerate(episodes) if i not in held_out]
    val = [ep for i, ep in enumerate(episodes) if i in held_out]
    return train, val


class EpisodeDataset(Dataset):
    """Every step of every episode is one sample; see the module docstring for its fields.

    Indexed by ``int`` or by ``(int, augmentation_seed)`` as :class:`SeededSampler` yields.
    ``camera_crops`` (the policy's ``ProcessorConfig.camera_crops``) are cut before the
    augmentation, with the processor's own function, so training sees what inference sees.
    ``start_steps`` / ``start_repeat``: the first steps of every episode appear ``start_repeat``
    times per epoch (where only the cameras tell where the object is; see
    docs/demo_policy_diagnosis.md). ``proprio_noise_std``: Gaussian noise (raw units, rad) added
    to the arm state, drawn from the sample's seed. ``corrections``: which steps of takeover
    recordings are samples and their weight (training/corrections.py); None = every step.
    ``aux_targets``: each sample also carries ``aux_target`` (K,) and ``aux_mask`` (its episode
    has a target and the step is before its ``until_step``; training/aux_targets.py).
    """

    def __init__(self, episodes: Sequence[Episode], chunk_size: int,
                 augmenter: ImageAugmenter | None = None,
                 camera_crops: dict | None = None, start_steps: int = 0,
                 start_repeat: int = 1, proprio_noise_std: float = 0.0,
                 corrections: CorrectionSampling | None = None,
                 aux_targets: AuxTargets | None = None) -> None:
        if chunk_size <= 0:
            raise ValueError(f'chunk_size={chunk_size}: must be positive')
        if start_steps < 0 or start_repeat < 1:
            raise ValueError(f'start_steps={start_steps}, start_repeat={start_repeat}: need '
                             'start_steps >= 0 and start_repeat >= 1')
        if not proprio_noise_std >= 0.0:
            raise ValueError(f'proprio_noise_std={proprio_noise_std!r}: must be >= 0')
        self.episodes = list(episodes)
        self.chunk_size = chunk_size
        self.aux_targets = aux_targets
        self.aux_by_episode = [] if aux_targets is None else [
            aux_targets.for_source(getattr(episode, 'source', '')) for episode in self.episodes]
        self.augmenter = augmenter
        self.camera_crops = camera_crops
        self.proprio_noise_std = proprio_noise_std
        lengths = np.array([len(episode) for episode in self.episodes], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])  # (E + 1,)
        selection = corrections or CorrectionSampling('all')
        steps, starts, fixes = [], [], []
        for index, episode in enumerate(self.episodes):
            chosen, corrective = selection.steps(getattr(episode, 'control', None),
                                                 int(lengths[index]))
            ids = self.offsets[index] + chosen  # (n,) flat step ids
            steps.append(ids)
            starts.append(ids[chosen < start_steps])
            if corrective:
                fixes.append(ids)
        self.correction_samples = sum(len(ids) for ids in fixes)
        repeats = [np.tile(np.concatenate([[], *group]).astype(np.int64), times - 1)
                   for group, times in ((starts, start_repeat), (fixes, selection.repeat))]
        self.samples = np.concatenate([np.concatenate([[], *steps]).astype(np.int64),
                                       *repeats])  # (N,) flat step ids

    def __len__(self) -> int:
        return len(self.samples)

    def locate(self, index: int) -> tuple[int, int]:
        """Sample index -> (episode index, step)."""
        if not 0 <= index < len(self):
            raise IndexError(f'sample index {index} outside [0, {len(self)})')
        flat = int(self.samples[index])
        episode = int(np.searchsorted(self.offsets, flat, side='right')) - 1
        return episode, flat - int(self.offsets[episode])

    def action_chunk(self, episode: Episode, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw actions step .. step + chunk - 1 (T, A) and their validity mask (chunk,)."""
        end = min(step + self.chunk_size, len(episode))
        chunk = episode.actions[step:end]  # (n, A)
        mask = np.zeros(self.chunk_size, dtype=bool)
        mask[: end - step] = True
        padding = np.repeat(chunk[-1:], self.chunk_size - len(chunk), axis=0)
        return np.concatenate([chunk, padding], axis=0), mask  # (chunk, A), (chunk,)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, None)
        episode_index, step = self.locate(int(index))
        episode = self.episodes[episode_index]
        images = crop_camera_images(episode.read_images(step), self.camera_crops)
        if self.augmenter is not None:
            images = self.augmenter(images, seed if seed is not None else index)
        actions, mask = self.action_chunk(episode, step)
        proprio = episode.proprio[step].copy()  # (P,)
        if self.proprio_noise_std > 0:
            rng = np.random.default_rng(seed if seed is not None else index)
            proprio += rng.normal(0.0, self.proprio_noise_std, proprio.shape).astype(proprio.dtype)
        sample = {
            'images': images,
            'proprio': proprio,
            'instruction': episode.instruction,
            'actions': actions,
            'action_mask': mask,
        }
        if self.aux_targets is not None:
            entry = self.aux_by_episode[episode_index]
            sample['aux_target'] = (entry[0] if entry is not None
                                    else np.zeros(self.aux_targets.size, np.float32))  # (K,)
            sample['aux_mask'] = entry is not None and step < entry[1]
        return sample


class SeededSampler(Sampler):
    """DistributedSampler order, each index paired with a per-(epoch, index) augmentation seed.

    ``set_epoch(epoch, skip)`` starts the epoch ``skip`` samples in, which is how a resumed run
    continues exactly where the interrupted one stopped. With one process it is a plain shuffle.
    """

    def __init__(self, dataset_size: int, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        self._inner = DistributedSampler(range(dataset_size), num_replicas=num_replicas,
                                         rank=rank, shuffle=shuffle, seed=seed,
                                         drop_last=drop_last)
        self.seed = seed
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's permutation and how many of this rank's samples to skip."""
        self.epoch = epoch
        self.skip = skip
        self._inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in list(self._inner)[self.skip:]:
            seed = (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index
            yield index, seed % (2**63 - 1)

    def __len__(self) -> int:
        return max(0, len(self._inner) - self.skip)

    @property
    def samples_per_epoch(self) -> int:
        """Samples this rank sees in a full epoch."""
        return len(self._inner)
