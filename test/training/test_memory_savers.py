"""Memory savers of vla-adapter-train give the plain path's numbers (tiny model, CPU).

Gradient checkpointing (LLM layers and vision tower blocks), torch's fused AdamW and running
frozen towers without autograd must change memory only: the losses and the trained weights stay
those of the plain path (within float32 rounding).
"""

import importlib.util
import re

import numpy as np
import pytest
import torch

from training.augmentation import AugmentationConfig
from training.data_config import DatasetConfig
from training.memory_report import SavedTensorMeter, computed_memory, optimizer_state_bytes
from training.model_setup import PolicySource, build_model, build_optimizer, set_trainable
from training.train_config import TrainConfig
from training.trainer import TrainingCollate
from vla_adapter_core.processor import VLAProcessor
from vla_adapter_core.prompt import load_tokenizer
from vla_adapter_core.tiny_policies import (
    build_tiny_config,
    default_tokenizer_dir,
    randomize_for_tests,
    tiny_statistics,
)

CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']
STEPS = 3


@pytest.fixture(scope='module')
def setup():
    """A tiny dual-arm ALOHA policy config (3 cameras), its tokenizer and a batch of 2."""
    config = build_tiny_config(chunk_size=5, camera_names=CAMERAS, head_kind='dual_arm',
                               image_size=56, unnorm_key='default')
    tokenizer = load_tokenizer(default_tokenizer_dir())
    statistics = tiny_statistics(14, 14, 'default')
    rng = np.random.default_rng(0)
    samples = [{'images': {name: rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)
                           for name in CAMERAS},
                'proprio': rng.uniform(-1, 1, 14).astype(np.float32),
                'instruction': 'transfer the cube', 'actions': rng.uniform(-1, 1, (5, 14)),
                'action_mask': np.ones(5, dtype=bool)} for _ in range(2)]
    processor = VLAProcessor.from_config(config, tokenizer, statistics)
    return config, tokenizer, TrainingCollate(processor)(samples)


def train_config(**options) -> TrainConfig:
    data = DatasetConfig(paths=['unused'], camera_names=CAMERAS, chunk_size=5)
    return TrainConfig(data=data, output_dir='unused', policy_config='unused.json',
                       tokenizer_dir='unused', head_kind='dual_arm', learning_rate=1e-3,
                       augmentation=AugmentationConfig(enabled=False), **options)


def run_steps(setup, **options):
    """Losses of STEPS AdamW steps on one batch, the trained tensors and the saved bytes."""
    policy_config, tokenizer, batch = setup
    config = train_config(**options)
    model, _ = build_model(policy_config, PolicySource(policy_config, None, tokenizer, 'test'),
                           None, seed=0)
    randomize_for_tests(model)  # non-zero queries and gates: every path carries signal
    torch.manual_seed(0)  # LoRA's initialisation draws from the global generator
    set_trainable(model, config)
    model.train()
    trainable = [param for param in model.parameters() if param.requires_grad]
    optimizer = build_optimizer(trainable, config)
    losses, saved = [], []
    for _ in range(STEPS):
        with SavedTensorMeter(model) as meter:
            loss, _ = model.compute_loss(batch)
        saved.append(meter.bytes)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    weights = {name: param.detach().clone() for name, param in model.named_parameters()
               if param.requires_grad}
    return losses, weights, saved[0], (model, optimizer)


def assert_same_training(first, second, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(first[0], second[0], rtol=rtol, atol=atol)
    assert first[1].keys() == second[1].keys()
    for name in first[1]:
        torch.testing.assert_close(first[1][name], second[1][name], rtol=rtol, atol=atol,
                                   msg=name)


@pytest.mark.parametrize('mode', [{'lora_rank': 4}, {'full_finetune': True}])
def test_gradient_checkpointing_keeps_the_losses_and_saves_activations(setup, mode):
    plain = run_steps(setup, **mode)
    recomputed = run_steps(setup, gradient_checkpointing=True, **mode)
    assert plain[0][-1] < plain[0][0]  # it trains
    assert_same_training(plain, recomputed)
    assert 0 < recomputed[2] < 0.8 * plain[2], (recomputed[2], plain[2])


def test_fused_adamw_matches_adamw_and_keeps_the_same_state(setup):
    plain = run_steps(setup, full_finetune=True)
    fused = run_steps(setup, full_finetune=True, optimizer='adamw_fused')
    assert_same_training(plain, fused)
    for model, optimizer in (plain[3], fused[3]):
        trainable = [param for param in model.parameters() if param.requires_grad]
        count = sum(param.numel() for param in trainable)
        # Two fp32 moments per weight plus one fp32 step counter per tensor, as computed.
        assert optimizer_state_bytes(optimizer) == (
            computed_memory(count, count, 'adamw')['optimizer_state'] + 4 * len(trainable))
    assert isinstance(fused[3][1], torch.optim.AdamW) and fused[3][1].defaults['fused']


def test_frozen_towers_run_without_autograd_and_give_the_same_numbers(setup):
    """Frozen towers (LoRA): forcing their graph changes only the bytes kept for backward."""
    policy_config, tokenizer, batch = setup
    model, _ = build_model(policy_config, PolicySource(policy_config, None, tokenizer, 'test'),
                           None, seed=0)
    randomize_for_tests(model)
    set_trainable(model, train_config(lora_rank=4))
    grad_inside = []
    model.vision.register_forward_hook(lambda *_: grad_inside.append(torch.is_grad_enabled()))
    results = []
    for force_graph in (False, True):
        pixels = batch['pixel_values'].clone().requires_grad_(force_graph)
        with SavedTensorMeter(model) as meter:
            loss, _ = model.compute_loss(dict(batch, pixel_values=pixels))
        loss.backward()
        grads = {name: param.grad.clone() for name, param in model.named_parameters()
                 if param.requires_grad}
        model.zero_grad(set_to_none=True)
        results.append((loss.item(), grads, meter.bytes))
    assert grad_inside == [False, True]
    assert results[0][0] == results[1][0]
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], rtol=1e-5, atol=1e-7, msg=name)
    assert results[0][2] < results[1][2]


def test_full_finetune_trains_every_weight_and_excludes_lora(setup):
    policy_config, tokenizer, _ = setup
    model, _ = build_model(policy_config, PolicySource(policy_config, None, tokenizer, 'test'),
                           None, seed=0)
    names = set_trainable(model, train_config(full_finetune=True))
    frozen = {name for name, _ in model.named_parameters()} - set(names)
    # Only what the features never read stays frozen: the towers' last block, final norm and
    # SigLIP's attention-pooling head (the features come from the second-to-last block).
    unread = re.compile(r'vision\.towers\.[01]\.(blocks\.1\.|norm\.|attn_pool\.)')
    assert frozen and all(unread.match(name) for name in frozen), sorted(frozen)
    assert any(name.startswith('vision.') for name in names)
    with pytest.raises(ValueError, match=r'TrainConfig.full_finetune=True: excludes '
                                         r'lora_rank=8'):
        train_config(full_finetune=True, lora_rank=8)
    with pytest.raises(ValueError, match=r"TrainConfig.optimizer='sgd': expected one of"):
        train_config(optimizer='sgd')


def test_8bit_adamw_follows_adamw_within_its_quantisation_with_uint8_moments(setup):
    pytest.importorskip('bitsandbytes')
    plain = run_steps(setup, lora_rank=4)
    eight = run_steps(setup, lora_rank=4, optimizer='adamw_8bit')
    assert plain[0][0] == eight[0][0]  # the same first forward
    np.testing.assert_allclose(eight[0], plain[0], rtol=0.02)  # 8-bit moments: not bit-equal
    assert eight[0][-1] < 0.9 * eight[0][0]  # it trains
    # uint8 moments for tensors of 4096+ values; smaller ones keep fp32 state (a third in all
    # for this tiny model, whose head has many small tensors).
    model, optimizer = eight[3]
    for param in model.parameters():
        if param.requires_grad:
            moment = optimizer.state[param]['state1']
            assert moment.dtype == (torch.uint8 if param.numel() >= 4096 else torch.float32)
    ratio = optimizer_state_bytes(optimizer) / optimizer_state_bytes(plain[3][1])
    assert 0.25 <= ratio < 0.35, ratio


@pytest.mark.skipif(importlib.util.find_spec('bitsandbytes') is not None,
                    reason='bitsandbytes is installed')
def test_8bit_adamw_without_bitsandbytes_is_a_one_line_value_error(setup):
    with pytest.raises(ValueError, match=r"optimizer='adamw_8bit': needs bitsandbytes, which is "
                                         r'not installed'):
        build_optimizer([torch.nn.Parameter(torch.zeros(2))], train_config(optimizer='adamw_8bit'))


def test_train_vision_trains_the_towers_and_leaves_the_llm_frozen(setup):
    frozen = run_steps(setup)
    towers = run_steps(setup, train_vision=True)
    assert not any(name.startswith('vision.') for name in frozen[1])
    trained = [name for name in towers[1] if name.startswith('vision.')]
    assert trained and not any(name.startswith('llm.') for name in towers[1])
    model = towers[3][0]
    unused = {id(param) for param in model.vision.unused_parameters()}
    assert all(not param.requires_grad for param in model.vision.parameters()
               if id(param) in unused)
    assert towers[0][-1] < towers[0][0]  # it trains
    with pytest.raises(ValueError, match='train_vision=True: is implied by full_finetune'):
        train_config(train_vision=True, full_finetune=True)
