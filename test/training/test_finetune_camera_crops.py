"""Training with a declared camera crop: the run's checkpoint keeps it, inference applies it."""

import json

from episode_writers import block_episode, write_aloha_hdf5
import numpy as np

from training.augmentation import AugmentationConfig
from training.data_config import DatasetConfig
from training.finetune import train
from training.train_config import TrainConfig
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir

BOX = [0.25, 0.25, 0.5, 0.5]  # the middle of the 64x64 block frames: rows and columns 16-48


def test_crop_travels_from_policy_json_to_the_checkpoint(tmp_path):
    (tmp_path / 'data').mkdir()
    for index, x in enumerate(np.linspace(-0.3, 0.3, 4)):
        images, qpos, action = block_episode(np.array([x, 0.0]), 4, ['cam_high'])
        write_aloha_hdf5(tmp_path / 'data' / f'episode_{index}.hdf5', images, qpos, action,
                         instruction='touch the block')
    config = build_tiny_config(action_dim=14, proprio_dim=14, chunk_size=4,
                               camera_names=['cam_high'], image_size=28)
    policy_dict = config.to_dict()
    policy_dict['processor']['camera_crops'] = {'cam_high': BOX}
    (tmp_path / 'policy.json').write_text(json.dumps(policy_dict))
    result = train(TrainConfig(
        data=DatasetConfig(paths=[str(tmp_path / 'data')], camera_names=['cam_high'],
                           chunk_size=4),
        output_dir=str(tmp_path / 'run'), policy_config=str(tmp_path / 'policy.json'),
        tokenizer_dir=default_tokenizer_dir(), max_steps=2, batch_size=4, warmup_steps=1,
        num_val_episodes=1, val_every=2, val_batches=1, log_every=1, save_every=1000,
        num_workers=0, progress_bar=False,
        augmentation=AugmentationConfig(crop_area=1.0, hue=0.0)))
    policy = VLAPolicy.from_pretrained(result.final_checkpoint, dtype='float32')
    assert policy.config.processor.camera_crops == {'cam_high': BOX}
    assert policy.config.processor.center_crop_fraction == 1.0  # no random crop, no centre crop
    frame = block_episode(np.array([0.1, 0.0]), 1, ['cam_high'])[0]['cam_high'][0]
    observation = {'images': {'cam_high': frame}, 'proprio': np.zeros(14),
                   'instruction': 'touch the block'}
    outside = frame.copy()
    outside[:16] = 255  # only rows outside the box change
    changed = {**observation, 'images': {'cam_high': outside}}
    np.testing.assert_array_equal(policy.predict_action_chunk(observation),
                                  policy.predict_action_chunk(changed))
    inside = frame.copy()
    inside[20:40, 20:40] = 255
    moved = {**observation, 'images': {'cam_high': inside}}
    assert not np.allclose(policy.predict_action_chunk(observation),
                           policy.predict_action_chunk(moved))
