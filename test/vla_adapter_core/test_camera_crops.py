"""ProcessorConfig.camera_crops: a fixed per-camera box cut before resizing (issue 19)."""

import dataclasses

import numpy as np
import pytest
import torch

from vla_adapter_core.config import PolicyConfig, ProcessorConfig
from vla_adapter_core.processor import (
    VLAProcessor,
    crop_box_pixels,
    crop_camera_image,
    crop_camera_images,
)
from vla_adapter_core.prompt import load_tokenizer
from vla_adapter_core.tiny_policies import (
    build_tiny_config,
    default_tokenizer_dir,
    tiny_statistics,
)

TABLE_BOX = [0.375, 0.1875, 40 / 96, 0.625]  # config/demo/transfer_cube_crop_policy.json
CAMERAS = ['cam_high', 'cam_left_wrist']


def _processor(crops=None, image_size=28):
    config = build_tiny_config(camera_names=CAMERAS, image_size=image_size)
    config = dataclasses.replace(config, processor=dataclasses.replace(
        config.processor, camera_crops=crops))
    return VLAProcessor.from_config(config, load_tokenizer(default_tokenizer_dir()),
                                    tiny_statistics(14, 14))


def _observation(images):
    return {'images': images, 'proprio': np.zeros(14), 'instruction': 'transfer the cube'}


def test_box_in_pixels_of_the_demo_frame():
    assert crop_box_pixels(96, 128, TABLE_BOX) == (36, 24, 40, 80)
    assert crop_box_pixels(480, 640, TABLE_BOX) == (180, 120, 200, 400)
    assert crop_box_pixels(4, 4, [0.99, 0.99, 0.001, 0.001]) == (3, 3, 1, 1)  # >= 1 pixel


def test_only_the_named_camera_is_cut():
    frame = np.arange(96 * 128 * 3, dtype=np.int64).reshape(96, 128, 3).astype(np.uint8)
    images = {'cam_high': frame, 'cam_left_wrist': frame}
    cut = crop_camera_images(images, {'cam_high': TABLE_BOX})
    assert cut['cam_high'].shape == (40, 80, 3)
    np.testing.assert_array_equal(cut['cam_high'], frame[36:76, 24:104])
    assert cut['cam_left_wrist'] is frame
    assert crop_camera_images(images, None) is images
    assert crop_camera_image(frame, None) is frame


def test_processor_feeds_the_cut_frame_to_the_model():
    rng = np.random.default_rng(0)
    high = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    wrist = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    cropping = _processor({'cam_high': TABLE_BOX})
    plain = _processor(None)
    cut = cropping([_observation({'cam_high': high, 'cam_left_wrist': wrist})])
    precut = plain([_observation({'cam_high': np.ascontiguousarray(high[36:76, 24:104]),
                                  'cam_left_wrist': wrist})])
    assert cut['pixel_values'].shape == (1, 2, 6, 28, 28)
    torch.testing.assert_close(cut['pixel_values'], precut['pixel_values'], rtol=0, atol=0)
    whole = plain([_observation({'cam_high': high, 'cam_left_wrist': wrist})])
    assert not torch.equal(whole['pixel_values'][0, 0], cut['pixel_values'][0, 0])
    torch.testing.assert_close(whole['pixel_values'][0, 1], cut['pixel_values'][0, 1])


def test_training_variant_leaves_the_cut_to_the_dataset():
    config = _processor({'cam_high': TABLE_BOX}).config
    training = VLAProcessor.from_config(config, load_tokenizer(default_tokenizer_dir()),
                                        tiny_statistics(14, 14), camera_crop=False)
    assert training.config.processor.camera_crops is None
    assert config.processor.camera_crops == {'cam_high': TABLE_BOX}


def test_config_round_trip_and_old_configs():
    config = _processor({'cam_high': TABLE_BOX}).config
    restored = PolicyConfig.from_dict(config.to_dict())
    assert restored.processor.camera_crops == {'cam_high': TABLE_BOX}
    old = config.to_dict()
    del old['processor']['camera_crops']  # a checkpoint written before the field existed
    assert PolicyConfig.from_dict(old).processor.camera_crops is None


@pytest.mark.parametrize('crops', [
    {'cam_high': [0.5, 0.0, 0.6, 1.0]},  # past the bottom edge
    {'cam_high': [0.0, 0.0, 0.0, 1.0]},  # empty
    {'cam_high': [0.0, 0.0, 1.0]},  # three numbers
    {'cam_high': 'table'},
    {},
])
def test_bad_boxes_name_the_field(crops):
    with pytest.raises(ValueError, match='ProcessorConfig.camera_crops'):
        ProcessorConfig(camera_crops=crops)


def test_a_crop_for_a_camera_the_policy_lacks_is_refused():
    config = build_tiny_config(camera_names=CAMERAS)
    with pytest.raises(ValueError, match=r"PolicyConfig.processor.camera_crops=.*'cam_low'"):
        dataclasses.replace(config, processor=ProcessorConfig(
            camera_crops={'cam_low': TABLE_BOX}))
