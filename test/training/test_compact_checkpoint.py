"""vla-adapter-compact-checkpoint: frozen tensors to bfloat16, trained ones untouched."""

from pathlib import Path

from episode_writers import block_episode, write_aloha_hdf5, write_block_policy_json
import numpy as np
import pytest
from safetensors.torch import load_file
import torch

from training.augmentation import AugmentationConfig
from training.compact_checkpoint import frozen_tensor_names, main
from training.data_config import DatasetConfig
from training.finetune import train
from training.train_config import TrainConfig
from vla_adapter_core.checkpoint import WEIGHTS_FILE
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.tiny_policies import default_tokenizer_dir, random_observation

CHUNK = 4


@pytest.fixture(scope='module')
def blocks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('compact_blocks')
    for index, position in enumerate(([-0.5, 0.5], [0.5, -0.5], [0.0, 0.0])):
        images, qpos, action = block_episode(np.array(position), 4, ['cam_high'])
        write_aloha_hdf5(folder / f'episode_{index}.hdf5', images, qpos, action,
                         instruction='touch the block')
    return folder


def trained_checkpoint(blocks: Path, output: Path, **overrides) -> Path:
    """A 3-step vla-adapter-train run on the block episodes; its final checkpoint."""
    values = {
        'data': DatasetConfig(paths=[str(blocks)], camera_names=['cam_high'], chunk_size=CHUNK),
        'output_dir': str(output), 'max_steps': 3, 'batch_size': 4, 'learning_rate': 1e-2,
        'policy_config': str(write_block_policy_json(output.parent, CHUNK)),
        'tokenizer_dir': default_tokenizer_dir(), 'warmup_steps': 1, 'num_val_episodes': 1,
        'val_every': 1000, 'val_batches': 1, 'log_every': 1, 'save_every': 1000,
        'num_workers': 0, 'augmentation': AugmentationConfig(enabled=False),
        'progress_bar': False, **overrides}
    return Path(train(TrainConfig(**values)).final_checkpoint)


def test_frozen_tensors_halve_and_the_policy_predicts_the_same(blocks, tmp_path, capsys):
    source = trained_checkpoint(blocks, tmp_path / 'run', train_vision=True)
    assert main(['--checkpoint', str(source), '--output_dir', str(tmp_path / 'compact')]) == 0
    assert 'tensors (frozen) in bfloat16' in capsys.readouterr().out
    before = load_file(str(source / WEIGHTS_FILE))
    after = load_file(str(tmp_path / 'compact' / WEIGHTS_FILE))
    assert before.keys() == after.keys()
    frozen = set(frozen_tensor_names(source))
    assert frozen and all(name.startswith('llm.') or name.startswith('vision.')
                          for name in frozen)
    assert any(name.startswith('llm.') for name in frozen)
    for name, tensor in after.items():
        if name in frozen:
            assert tensor.dtype == torch.bfloat16, name
            torch.testing.assert_close(tensor, before[name].to(torch.bfloat16))
        else:  # trained (the towers too: train_vision) or not floating: bit for bit
            assert torch.equal(tensor, before[name]), name
    assert (tmp_path / 'compact' / WEIGHTS_FILE).stat().st_size < (
        0.75 * (source / WEIGHTS_FILE).stat().st_size)
    original = VLAPolicy.from_pretrained(source, dtype='float32')
    compact = VLAPolicy.from_pretrained(tmp_path / 'compact', dtype='float32')
    observation = random_observation(original, seed=3, image_shape=(64, 64, 3))
    chunk = original.predict_action_chunk(observation)
    assert np.abs(compact.predict_action_chunk(observation) - chunk).max() < 1e-2 * (
        1.0 + np.abs(chunk).max())


def test_all_rounds_every_floating_tensor(blocks, tmp_path):
    source = trained_checkpoint(blocks, tmp_path / 'run')
    assert main(['--checkpoint', str(source), '--output_dir', str(tmp_path / 'all'),
                 '--tensors', 'all']) == 0
    before = load_file(str(source / WEIGHTS_FILE))
    after = load_file(str(tmp_path / 'all' / WEIGHTS_FILE))
    for name, tensor in after.items():
        assert tensor.dtype == (torch.bfloat16 if before[name].is_floating_point()
                                else before[name].dtype), name


def test_lora_runs_keep_the_merged_llm_in_float32(blocks, tmp_path):
    source = trained_checkpoint(blocks, tmp_path / 'run', lora_rank=2)
    frozen = frozen_tensor_names(source)
    assert frozen and not any(name.startswith('llm.') for name in frozen)


def test_user_errors_are_one_line(blocks, tmp_path, capsys):
    assert main(['--checkpoint', str(tmp_path), '--output_dir', str(tmp_path / 'out')]) == 2
    assert capsys.readouterr().err.strip() == (
        f'vla-adapter-compact-checkpoint: error: --checkpoint {tmp_path}: no train_config.json, '
        'so which tensors training froze is unknown (only vla-adapter-train checkpoints)')
    source = trained_checkpoint(blocks, tmp_path / 'run')
    assert main(['--checkpoint', str(source), '--output_dir', str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f'vla-adapter-compact-checkpoint: error: --output_dir {tmp_path}: already exists '
        '(choose a new folder)')
