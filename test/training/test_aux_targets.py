"""Auxiliary state targets: the file, its matching to episodes, and the loss in training.

The block dataset of test_finetune (a red block at one of 3 x 3 positions, the actions a linear
function of it) with the block's x, y as the auxiliary target for the first steps.
"""

import json
from pathlib import Path

from episode_writers import block_episode, write_aloha_hdf5, write_block_policy_json
import numpy as np
import pytest
from safetensors.torch import load_file

from training.augmentation import AugmentationConfig
from training.aux_targets import AUX_TARGETS_FILE, AuxTargets, write_aux_targets
from training.data_config import DatasetConfig
from training.finetune import train
from training.train_config import TrainConfig
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.tiny_policies import default_tokenizer_dir

CHUNK = 4
GRID = np.linspace(-0.8, 0.8, 3)


def write_block_folder(folder: Path, until_step: int = 2) -> Path:
    """9 one-camera episodes of 4 steps and their aux_targets.json (the block's x, y)."""
    folder.mkdir(parents=True, exist_ok=True)
    targets = {}
    for index, (x, y) in enumerate((x, y) for x in GRID for y in GRID):
        images, qpos, action = block_episode(np.array([x, y]), 4, ['cam_high'])
        name = f'episode_{index:03d}.hdf5'
        write_aloha_hdf5(folder / name, images, qpos, action, compress=True,
                         instruction='touch the block')
        targets[name] = ([x, y], until_step)
    write_aux_targets(folder / AUX_TARGETS_FILE, ['block_x', 'block_y'], targets)
    return folder


@pytest.fixture(scope='module')
def blocks(tmp_path_factory):
    return write_block_folder(tmp_path_factory.mktemp('aux_blocks'))


@pytest.fixture(scope='module')
def policy_json(tmp_path_factory):
    return write_block_policy_json(tmp_path_factory.mktemp('aux_policy'), CHUNK)


def make_config(folder, policy_json, output_dir, **overrides) -> TrainConfig:
    values = {
        'data': DatasetConfig(paths=[str(folder)], camera_names=['cam_high'], chunk_size=CHUNK),
        'output_dir': str(output_dir), 'policy_config': str(policy_json),
        'tokenizer_dir': default_tokenizer_dir(), 'max_steps': 6, 'batch_size': 8,
        'learning_rate': 1e-3, 'warmup_steps': 2, 'num_val_episodes': 1, 'val_every': 1000,
        'val_batches': 1, 'log_every': 1, 'save_every': 3, 'num_workers': 0,
        'augmentation': AugmentationConfig(enabled=False), 'progress_bar': False,
        'aux_targets': [str(folder / AUX_TARGETS_FILE)], 'aux_weight': 1.0}
    values.update(overrides)
    return TrainConfig(**values)


def test_targets_are_zscored_and_matched_by_path_in_each_folder(tmp_path):
    first = write_block_folder(tmp_path / 'a', until_step=2)
    second = write_block_folder(tmp_path / 'b', until_step=3)  # the same episode names
    targets = AuxTargets([str(first / AUX_TARGETS_FILE), str(second / AUX_TARGETS_FILE)])
    assert targets.names == ['block_x', 'block_y'] and targets.size == 2
    target, until = targets.for_source(first / 'episode_000.hdf5')
    np.testing.assert_allclose(target, (np.array([-0.8, -0.8]) - 0.0) / np.std(GRID),
                               rtol=1e-5)
    assert until == 2 and targets.for_source(second / 'episode_000.hdf5')[1] == 3
    assert targets.for_source(tmp_path / 'episode_000.hdf5') is None


@pytest.mark.parametrize('content, message', [
    ({'names': [], 'episodes': {}}, 'names=[]'),
    ({'names': ['x'], 'episodes': {'e': {'target': [1, 2], 'until_step': 3}}},
     'episodes.e.target'),
    ({'names': ['x'], 'episodes': {'e': {'target': [float('nan')], 'until_step': 3}}},
     'episodes.e.target'),
    ({'names': ['x'], 'episodes': {'e': {'target': [1.0], 'until_step': 0}}},
     'episodes.e.until_step=0'),
])
def test_a_bad_file_names_the_field(tmp_path, content, message):
    path = tmp_path / AUX_TARGETS_FILE
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        AuxTargets([str(path)])


def test_the_auxiliary_loss_trains_resumes_and_stays_out_of_the_checkpoint(
        blocks, policy_json, tmp_path):
    straight = train(make_config(blocks, policy_json, tmp_path / 'a'))
    lines = [json.loads(line) for line in (tmp_path / 'a' / 'metrics.jsonl').read_text()
             .splitlines()]
    logged = [entry for entry in lines if entry['split'] == 'train']
    assert all({'aux_loss', 'action_loss'} <= set(entry) for entry in logged)
    assert all(entry['loss'] == pytest.approx(entry['action_loss'] + entry['aux_loss'],
                                              rel=1e-5) for entry in logged)
    weights = load_file(straight.final_checkpoint / 'model.safetensors')
    assert not [name for name in weights if 'aux' in name]
    VLAPolicy.from_pretrained(straight.final_checkpoint, dtype='float32')
    # Interrupted and resumed: the readout comes back with the model, the curve is the same.
    train(make_config(blocks, policy_json, tmp_path / 'b'), stop_at_step=4)
    train(make_config(blocks, policy_json, tmp_path / 'b', resume=True))
    assert (tmp_path / 'a' / 'metrics.jsonl').read_text() == (
        tmp_path / 'b' / 'metrics.jsonl').read_text()


def test_the_readout_learns_the_block_position(blocks, policy_json, tmp_path):
    train(make_config(blocks, policy_json, tmp_path / 'run', max_steps=200, batch_size=16,
                      log_every=20, save_every=1000, learning_rate=2e-3))
    logged = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text()
              .splitlines()]
    aux = [entry['aux_loss'] for entry in logged if entry['split'] == 'train']
    print('aux loss:', [round(value, 3) for value in aux])
    # z-scored targets: 1.0 is the error of always answering the mean position.
    assert aux[0] > 0.7 and np.mean(aux[-3:]) < 0.35 * aux[0]


def test_aux_weight_without_targets_is_refused(blocks, policy_json, tmp_path):
    with pytest.raises(ValueError, match='aux_weight'):
        make_config(blocks, policy_json, tmp_path / 'r', aux_targets=[])
    with pytest.raises(ValueError, match='aux_targets'):
        make_config(blocks, policy_json, tmp_path / 'r', aux_targets=[str(tmp_path / 'no')])
