"""Samples (chunks, masks), the seeded sampler, augmentation, statistics and adaptive bins."""

import json

from episode_writers import write_aloha_hdf5
import numpy as np
import pytest
import torch

from training.augmentation import AugmentationConfig, ImageAugmenter
from training.compute_adaptive_bins import main as bins_main
from training.compute_dataset_statistics import main as stats_main
from training.data_config import DatasetConfig
from training.dataset import EpisodeDataset, SeededSampler, load_episodes, split_episodes
from vla_adapter_core.heads import ActionBins
from vla_adapter_core.normalization import load_statistics
from vla_adapter_core.processor import resize_image

CAMERAS = ['cam_high', 'cam_left_wrist']


@pytest.fixture
def two_episodes(tmp_path):
    """Episodes of 5 and 3 steps; action[t] = 100 * episode + t in every dimension."""
    for index, steps in enumerate((5, 3)):
        frames = np.full((steps, 20, 30, 3), 10 * index, dtype=np.uint8)
        qpos = np.tile(np.arange(14, dtype=np.float32), (steps, 1)) + index
        action = np.repeat(100.0 * index + np.arange(steps, dtype=np.float32)[:, None], 14, 1)
        write_aloha_hdf5(tmp_path / f'episode_{index}.hdf5', {c: frames for c in CAMERAS},
                         qpos, action, compress=index == 1, instruction=f'task {index}')
    return tmp_path


def _config(folder, **overrides):
    values = {'paths': [str(folder)], 'camera_names': CAMERAS, 'chunk_size': 4}
    values.update(overrides)
    return DatasetConfig(**values)


def test_sample_has_chunk_and_mask_past_episode_end(two_episodes):
    dataset = EpisodeDataset(load_episodes(_config(two_episodes)), chunk_size=4)
    assert len(dataset) == 8
    first = dataset[0]
    assert set(first) == {'images', 'proprio', 'instruction', 'actions', 'action_mask'}
    assert first['instruction'] == 'task 0'
    assert first['images']['cam_high'].dtype == np.uint8
    np.testing.assert_array_equal(first['actions'][:, 0], [0, 1, 2, 3])
    assert first['action_mask'].all()
    last = dataset[4]  # step 4 of the 5-step episode
    np.testing.assert_array_equal(last['actions'][:, 0], [4, 4, 4, 4])
    np.testing.assert_array_equal(last['action_mask'], [True, False, False, False])
    second = dataset[6]  # step 1 of the 3-step episode
    np.testing.assert_array_equal(second['actions'][:, 5], [101, 102, 102, 102])
    np.testing.assert_array_equal(second['action_mask'], [True, True, False, False])
    np.testing.assert_array_equal(second['proprio'], np.arange(14) + 1)
    with pytest.raises(IndexError):
        dataset[8]


def test_start_steps_are_repeated_and_proprio_noise_is_seeded(two_episodes):
    episodes = load_episodes(_config(two_episodes))
    dataset = EpisodeDataset(episodes, 4, start_steps=2, start_repeat=3)
    assert len(dataset) == 8 + 2 * 2 * 2  # two extra copies of two start steps per episode
    located = [dataset.locate(index) for index in range(len(dataset))]
    assert located.count((0, 0)) == 3 and located.count((1, 1)) == 3
    assert located.count((0, 2)) == 1 and located.count((1, 2)) == 1
    np.testing.assert_array_equal(dataset[8]['actions'][:, 0], [0, 1, 2, 3])  # a repeat of (0, 0)
    noisy = EpisodeDataset(episodes, 4, proprio_noise_std=0.5)
    first, again, other = noisy[(6, 11)], noisy[(6, 11)], noisy[(6, 12)]
    np.testing.assert_array_equal(first['proprio'], again['proprio'])
    assert not np.array_equal(first['proprio'], other['proprio'])
    assert 0.05 < np.abs(first['proprio'] - (np.arange(14) + 1)).mean() < 2.0
    np.testing.assert_array_equal(noisy[(6, 11)]['actions'], dataset[6]['actions'])
    with pytest.raises(ValueError, match='start_repeat=0'):
        EpisodeDataset(episodes, 4, start_steps=2, start_repeat=0)


def test_split_holds_out_whole_episodes(two_episodes):
    episodes = load_episodes(_config(two_episodes))
    train, val = split_episodes(episodes, 1, seed=0)
    assert len(train) == len(val) == 1 and train[0] is not val[0]
    with pytest.raises(ValueError, match='num_val_episodes=2'):
        split_episodes(episodes, 2, seed=0)


def test_sampler_partitions_ranks_and_resumes_mid_epoch():
    ranks = [SeededSampler(10, num_replicas=2, rank=r, seed=3) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(1)
    indices = [i for sampler in ranks for i, _ in sampler]
    assert sorted(indices) == list(range(10))
    full = list(ranks[0])
    ranks[0].set_epoch(1, skip=2)
    assert list(ranks[0]) == full[2:]
    ranks[0].set_epoch(2)
    assert [seed for _, seed in ranks[0]] != [seed for _, seed in full]


def test_augmentation_crops_area_and_is_seeded():
    rng = np.random.default_rng(0)
    images = {'cam': rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)}
    augmenter = ImageAugmenter(AugmentationConfig())
    first = augmenter(images, seed=5)['cam']
    assert first.shape == (95, 190, 3) and first.dtype == np.uint8  # sqrt(0.9) per side
    np.testing.assert_array_equal(first, augmenter(images, seed=5)['cam'])
    assert not np.array_equal(first, augmenter(images, seed=6)['cam'])
    resized = ImageAugmenter(AugmentationConfig(), output_size=56)(images, seed=5)['cam']
    assert resized.shape == (56, 56, 3) and resized.dtype == np.uint8
    off = ImageAugmenter(AugmentationConfig(enabled=False))
    assert off(images, seed=5)['cam'] is images['cam']
    with pytest.raises(ValueError, match=r'AugmentationConfig.crop_area=0'):
        AugmentationConfig(crop_area=0)


def test_statistics_cli_matches_numpy(two_episodes, tmp_path):
    output = tmp_path / 'out' / 'dataset_statistics.json'
    stats_main(['--data', str(two_episodes), '--camera_names', *CAMERAS, '--output', str(output)])
    entry = load_statistics(output)['default']
    actions = np.concatenate([np.repeat(np.arange(5.0)[:, None], 14, 1),
                              np.repeat(100 + np.arange(3.0)[:, None], 14, 1)])
    assert entry['num_transitions'] == 8 and entry['num_trajectories'] == 2
    np.testing.assert_allclose(entry['action']['mean'], actions.mean(0))
    np.testing.assert_allclose(entry['action']['std'], actions.std(0))
    np.testing.assert_allclose(entry['action']['q99'], np.quantile(actions, 0.99, axis=0))
    np.testing.assert_allclose(entry['proprio']['max'], np.arange(14) + 1)
    assert entry['action']['mask'] == [True] * 14


def test_adaptive_bins_cli(two_episodes, tmp_path):
    bins_main(['--data', str(two_episodes), '--camera_names', *CAMERAS, '--n_action_bins', '64',
               '--output_dir', str(tmp_path / 'bins')])
    path = tmp_path / 'bins' / 'dataset_statistics_64_bins.json'
    data = json.loads(path.read_text())
    np.testing.assert_allclose(data['low'], [-0.05 * 102] * 14, rtol=1e-6)
    np.testing.assert_allclose(data['high'], [102 + 0.05 * 102] * 14, rtol=1e-6)
    assert ActionBins.from_json(path).n_bins == 64


def test_colour_jitter_is_identity_at_zero_strength_and_keeps_grey_grey():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    still = ImageAugmenter(AugmentationConfig(crop_area=1.0, brightness=0, contrast=0,
                                              saturation=0, hue=0))
    np.testing.assert_array_equal(still({'cam': image}, seed=3)['cam'], image)
    grey = np.repeat(rng.integers(40, 200, (30, 40, 1), dtype=np.uint8), 3, axis=2)
    chroma_only = ImageAugmenter(AugmentationConfig(crop_area=1.0, brightness=0, contrast=0,
                                                    saturation=0.5, hue=0.5))
    for seed in range(5):
        out = chroma_only({'cam': grey}, seed=seed)['cam'].astype(int)
        assert np.abs(out - grey).max() <= 1  # saturation and hue leave grey pixels alone
    brighter = ImageAugmenter(AugmentationConfig(crop_area=1.0, brightness=0.5, contrast=0,
                                                 saturation=0, hue=0))
    outputs = [brighter({'cam': grey}, seed=s)['cam'].astype(float) for s in range(5)]
    ratios = [out.mean() / grey.mean() for out in outputs]
    assert min(ratios) >= 0.5 - 0.01 and max(ratios) <= 1.5 + 0.01 and np.ptp(ratios) > 0.05


def test_augmented_samples_depend_only_on_the_sampler_seed(two_episodes):
    episodes = load_episodes(_config(two_episodes))
    dataset = EpisodeDataset(episodes, 4, ImageAugmenter(AugmentationConfig()))
    first = dataset[(2, 1234)]['images']['cam_high']
    again = EpisodeDataset(episodes, 4, ImageAugmenter(AugmentationConfig()))[(2, 1234)]
    np.testing.assert_array_equal(first, again['images']['cam_high'])
    assert first.shape == (19, 28, 3)


def test_augmentation_resize_matches_the_processor_resize():
    """Training resizes crops with PIL; inference with the processor: the same filter."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 303)[None, :, None] * np.ones((228, 1, 3))
    image = np.clip(ramp + rng.integers(-20, 20, ramp.shape), 0, 255).astype(np.uint8)
    plain = ImageAugmenter(AugmentationConfig(crop_area=1.0, brightness=0, contrast=0,
                                              saturation=0, hue=0), output_size=224)
    ours = plain({'cam': image}, seed=0)['cam'].astype(int)
    chw = torch.from_numpy(image).permute(2, 0, 1)
    theirs = resize_image(chw, 224).permute(1, 2, 0).numpy().astype(int)
    assert np.abs(ours - theirs).mean() < 0.05 and np.abs(ours - theirs).max() <= 2
