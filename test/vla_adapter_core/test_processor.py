"""VLAProcessor: image resizing / cropping / normalisation, prompts, proprio and action targets."""

import time

import numpy as np
import pytest
import torch

from vla_adapter_core.config import DINOV2_MEAN_BF16, DINOV2_STD_BF16
from vla_adapter_core.processor import VLAProcessor, center_crop_image, resize_image
from vla_adapter_core.prompt import PromptBuilder, load_tokenizer
from vla_adapter_core.tiny_policies import (
    build_tiny_policy,
    default_tokenizer_dir,
    random_observation,
)


@pytest.fixture(scope='module')
def policy():
    return build_tiny_policy(action_dim=3, proprio_dim=4, chunk_size=2,
                             camera_names=['front', 'wrist'], seed=0)


def test_pixel_values_layout_and_normalisation(policy):
    image = np.zeros((224, 224, 3), dtype=np.uint8)
    image[..., 0] = 255
    observation = random_observation(policy, seed=0)
    observation['images']['front'] = image
    pixels = policy.processor([observation])['pixel_values']
    assert pixels.shape == (1, 2, 6, 224, 224)
    front = pixels[0, 0]
    expected_dino = [(1.0 - DINOV2_MEAN_BF16[0]) / DINOV2_STD_BF16[0],
                     -DINOV2_MEAN_BF16[1] / DINOV2_STD_BF16[1],
                     -DINOV2_MEAN_BF16[2] / DINOV2_STD_BF16[2]]
    torch.testing.assert_close(front[:3, 0, 0], torch.tensor(expected_dino))
    torch.testing.assert_close(front[3:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))


def test_any_image_size_is_resized(policy):
    observation = random_observation(policy, seed=1, image_shape=(480, 640, 3))
    assert policy.processor([observation])['pixel_values'].shape[-2:] == (224, 224)


def test_resize_keeps_224_images_unchanged_and_smooths_others():
    image = torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8)
    assert resize_image(image, 224) is image
    flat = torch.full((3, 100, 60), 77, dtype=torch.uint8)
    assert torch.equal(resize_image(flat, 224), torch.full((3, 224, 224), 77, dtype=torch.uint8))


def test_center_crop_zooms_into_the_middle():
    image = torch.zeros(3, 224, 224, dtype=torch.uint8)
    image[:, 100:124, 100:124] = 255  # a bright centre square
    cropped = center_crop_image(image, 0.5)
    assert cropped.shape == image.shape and cropped.dtype == torch.uint8
    bright_before = int((image[0] > 127).sum())
    bright_after = int((cropped[0] > 127).sum())
    assert bright_after > 1.8 * bright_before  # area fraction 0.5 -> twice the size
    assert torch.equal(center_crop_image(image, 1.0), image)


def test_center_crop_fraction_changes_policy_input():
    plain = build_tiny_policy(camera_names=['cam'], seed=0)
    cropped = build_tiny_policy(camera_names=['cam'], seed=0, center_crop_fraction=0.9)
    observation = random_observation(plain, seed=3)
    assert not torch.equal(plain.processor([observation])['pixel_values'],
                           cropped.processor([observation])['pixel_values'])


def test_prompt_styles_and_left_padding():
    tokenizer = load_tokenizer(default_tokenizer_dir())
    openvla = PromptBuilder(tokenizer, 'openvla')
    assert openvla.prompt('Open The Drawer') == (
        'In: What action should the robot take to open the drawer?\nOut:')
    chat = PromptBuilder(tokenizer, 'qwen_chat')
    assert chat.token_ids('x')[0] == tokenizer.convert_tokens_to_ids('<|im_start|>')
    ids, mask = openvla.batch(['go', 'put the red block into the green bowl'])
    assert ids.shape == mask.shape and mask[1].all() and not mask[0, 0]
    assert int(ids[0, 0]) == openvla.pad_token_id
    with pytest.raises(ValueError, match='prompt style'):
        PromptBuilder(tokenizer, 'chatml')
    with pytest.raises(ValueError, match='max_prompt_tokens'):
        PromptBuilder(tokenizer, 'openvla', max_tokens=4).token_ids('a long instruction here')


def test_a_huge_instruction_is_refused_by_its_length_before_tokenising(monkeypatch):
    tokenizer = load_tokenizer(default_tokenizer_dir())
    builder = PromptBuilder(tokenizer, 'openvla', max_tokens=256)
    longest = max(len(token) for token in tokenizer.get_vocab())
    assert builder.max_chars == 256 * longest  # no 256-token prompt can be longer
    calls = []
    monkeypatch.setattr(builder, 'token_ids', lambda text: calls.append(text))
    huge = 'pick up the cube ' * 60_000  # about 1 MB
    started = time.perf_counter()
    with pytest.raises(ValueError, match=rf'{len(huge)} characters, more than a prompt of '
                                         rf'max_prompt_tokens=256 tokens can hold'):
        builder.validate_instruction(huge)
    assert time.perf_counter() - started < 0.05 and calls == []  # never tokenised
    assert builder.validate_instruction('  pick up the cube ') == 'pick up the cube'
    assert calls == ['pick up the cube']


def test_proprio_is_normalised(policy):
    observation = random_observation(policy, seed=2)
    proprio = policy.processor([observation])['proprio']
    expected = policy.normalizer.normalize_proprio(observation['proprio'])
    np.testing.assert_allclose(proprio[0].numpy(), expected, rtol=0, atol=1e-7)


def test_action_targets(policy):
    observation = random_observation(policy, seed=2)
    raw = np.full((1, 2, 3), 0.25)
    batch = policy.processor([observation], actions=raw, action_mask=np.array([[True, False]]))
    np.testing.assert_allclose(batch['raw_actions'].numpy(), raw)
    np.testing.assert_allclose(batch['actions'].numpy(),
                               policy.normalizer.normalize_actions(raw), atol=1e-7)
    assert batch['action_mask'].tolist() == [[True, False]]
    with pytest.raises(ValueError, match=r'actions must have shape \(1, 2, 3\)'):
        policy.processor([observation], actions=np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match='action_mask'):
        policy.processor([observation], actions=raw, action_mask=np.ones((1, 3), bool))


def test_observation_list_is_required(policy):
    with pytest.raises(ValueError, match='list of observation dicts'):
        policy.processor(random_observation(policy))
    with pytest.raises(ValueError, match=r"observations\[0\]\['images'\]"):
        policy.processor([{'images': None, 'proprio': np.zeros(4), 'instruction': 'x'}])


def test_training_variant_skips_only_the_center_crop():
    cropped = build_tiny_policy(camera_names=['cam'], seed=0, center_crop_fraction=0.9)
    plain = build_tiny_policy(camera_names=['cam'], seed=0)
    training = VLAProcessor.from_config(cropped.config, cropped.tokenizer, cropped.statistics,
                                        center_crop=False)
    assert training.config.processor.center_crop_fraction == 1.0
    assert cropped.config.processor.center_crop_fraction == 0.9  # the policy's is unchanged
    observation = random_observation(plain, seed=3)
    torch.testing.assert_close(training([observation])['pixel_values'],
                               plain.processor([observation])['pixel_values'], rtol=0, atol=0)
