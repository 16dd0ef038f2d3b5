"""EpisodeDataset cuts the policy's camera crops before the augmentation (issue 19)."""

import numpy as np

from training.augmentation import AugmentationConfig, ImageAugmenter
from training.dataset import EpisodeDataset

TABLE_BOX = [0.375, 0.1875, 40 / 96, 0.625]


class _Episode:
    """Two steps; cam_high has a red 4x4 'cube' at rows 50-54, columns 70-74."""

    instruction = 'transfer the cube'

    def __init__(self):
        self.actions = np.zeros((2, 14), dtype=np.float32)
        self.proprio = np.zeros((2, 14), dtype=np.float32)
        self.high = np.full((96, 128, 3), 60, dtype=np.uint8)
        self.high[50:54, 70:74] = (255, 0, 0)
        self.wrist = np.full((96, 128, 3), 90, dtype=np.uint8)

    def __len__(self):
        return 2

    def read_images(self, step):
        return {'cam_high': self.high, 'cam_left_wrist': self.wrist}


def test_crop_is_cut_before_augmenting():
    episode = _Episode()
    plain = EpisodeDataset([episode], chunk_size=2, camera_crops={'cam_high': TABLE_BOX})
    images = plain[0]['images']
    assert images['cam_high'].shape == (40, 80, 3)
    assert images['cam_left_wrist'].shape == (96, 128, 3)
    red = np.argwhere(images['cam_high'][..., 0] == 255)
    assert red.min(axis=0).tolist() == [14, 46] and red.max(axis=0).tolist() == [17, 49]

    # Position-keeping augmentation (no random crop, no hue): the cube stays where it was,
    # now 84 / 40 = 2.1 times taller and 84 / 80 = 1.05 times wider.
    augmenter = ImageAugmenter(AugmentationConfig(crop_area=1.0, hue=0.0, brightness=0.0,
                                                  contrast=0.0, saturation=0.0), 84)
    augmented = EpisodeDataset([episode], 2, augmenter, {'cam_high': TABLE_BOX})[(0, 7)]
    high = augmented['images']['cam_high']
    assert high.shape == (84, 84, 3)
    rows, cols = np.nonzero(high[..., 0] > 160)
    # pixel-index centres: (16 * 2.1 - 0.5, 48 * 1.05 - 0.5)
    assert abs(rows.mean() - 33.1) < 0.1 and abs(cols.mean() - 49.9) < 0.2
    assert 7 <= np.ptp(rows) + 1 <= 10 and 4 <= np.ptp(cols) + 1 <= 5


def test_without_crops_the_frames_pass_unchanged():
    episode = _Episode()
    images = EpisodeDataset([episode], chunk_size=2)[1]['images']
    assert images['cam_high'] is episode.high
