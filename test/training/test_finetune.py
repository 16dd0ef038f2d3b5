"""Fine-tuning end to end on generated ALOHA-format episodes with tiny real models.

The block dataset: a red block rests at one of 3 x 3 positions; every action dimension is a
linear function of its position, so the images determine the actions.
"""

import dataclasses
import json
from pathlib import Path

from ddp_worker import run_rank
from episode_writers import block_episode, write_aloha_hdf5, write_block_policy_json
import numpy as np
import pytest
from safetensors.torch import load_file
import torch
import torch.multiprocessing as mp

from training.augmentation import AugmentationConfig
from training.compute_adaptive_bins import compute_bins
from training.data_config import DatasetConfig
from training.dataset import load_episodes
from training.episodes import EpisodeError
from training.finetune import main, train
from training.model_setup import (
    adapt_policy_config,
    build_model,
    load_matching_weights,
    load_policy_source,
)
from training.train_config import TrainConfig
from training.train_state import latest_resumable, resumable_tensors
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir

CHUNK = 4
GRID = np.linspace(-0.8, 0.8, 3)


@pytest.fixture(scope='module')
def block_dataset(tmp_path_factory):
    """27 JPEG-compressed one-camera episodes of 4 steps (3 per block position)."""
    folder = tmp_path_factory.mktemp('block_dataset')
    index = 0
    for _ in range(3):
        for x in GRID:
            for y in GRID:
                images, qpos, action = block_episode(np.array([x, y]), 4, ['cam_high'])
                write_aloha_hdf5(folder / f'episode_{index:03d}.hdf5', images, qpos, action,
                                 compress=True, instruction='touch the block')
                index += 1
    return folder


@pytest.fixture(scope='module')
def policy_json(tmp_path_factory):
    """A tiny PolicyConfig (2-layer 64-d Qwen2, 2-block ViTs at 56 px) as a JSON file."""
    return write_block_policy_json(tmp_path_factory.mktemp('policy'), CHUNK)


def make_config(dataset, policy_json, output_dir, cameras=('cam_high',), **overrides):
    values = {
        'data': DatasetConfig(paths=[str(dataset)], camera_names=list(cameras),
                              chunk_size=CHUNK),
        'output_dir': str(output_dir), 'policy_config': str(policy_json),
        'tokenizer_dir': default_tokenizer_dir(), 'max_steps': 4, 'batch_size': 8,
        'learning_rate': 1e-3, 'warmup_steps': 10, 'num_val_episodes': 3, 'val_every': 1000,
        'val_batches': 2, 'log_every': 1, 'save_every': 1000, 'num_workers': 0,
        'augmentation': AugmentationConfig(enabled=False), 'progress_bar': False}
    values.update(overrides)
    return TrainConfig(**values)


def read_metrics(output_dir: Path, split: str) -> list[dict]:
    lines = (Path(output_dir) / 'metrics.jsonl').read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry['split'] == split]


def block_observation(x: float, y: float) -> tuple[dict, np.ndarray]:
    images, qpos, action = block_episode(np.array([x, y]), 1, ['cam_high'])
    observation = {'images': {'cam_high': images['cam_high'][0]}, 'proprio': qpos[0],
                   'instruction': 'touch the block'}
    return observation, action[0]


def test_l1_head_learns_the_block_position(block_dataset, policy_json, tmp_path):
    config = make_config(block_dataset, policy_json, tmp_path / 'run', max_steps=300,
                         batch_size=16, val_every=300, log_every=50)
    result = train(config)
    val = read_metrics(tmp_path / 'run', 'val')
    assert [entry['step'] for entry in val] == [0, 300]
    initial, final = val[0]['l1'], val[-1]['l1']
    print(f'validation L1 (normalised): {initial:.4f} -> {final:.4f}')
    assert final <= initial / 5
    assert {f'l1_raw_joint_{i}' for i in range(14)} <= set(val[-1])
    # The final checkpoint is a VLAPolicy directory that predicts the block's actions.
    policy = VLAPolicy.from_pretrained(result.final_checkpoint, dtype='float32')
    assert policy.config.processor.center_crop_fraction == 1.0  # trained without random crop
    errors = []
    for x in GRID:
        observation, target = block_observation(x, GRID[1])
        errors.append(np.abs(policy.predict_action_chunk(observation) - target).mean())
    stats = json.loads((result.final_checkpoint / 'dataset_statistics.json').read_text())
    action_range = np.ptp(np.array([stats['default']['action']['min'],
                                    stats['default']['action']['max']]), axis=0).mean()
    assert np.mean(errors) < 0.15 * action_range


@pytest.mark.slow
def test_l1_head_learns_with_the_default_augmentation(block_dataset, policy_json, tmp_path):
    """Random crop 0.9 + colour jitter in training, centre crop at validation."""
    config = make_config(block_dataset, policy_json, tmp_path / 'run', max_steps=900,
                         batch_size=16, val_every=150, log_every=150,
                         augmentation=AugmentationConfig())
    result = train(config)
    val = read_metrics(tmp_path / 'run', 'val')
    print('validation L1:', [(e['step'], round(e['l1'], 4)) for e in val])
    assert val[-1]['l1'] <= val[0]['l1'] / 5
    policy = VLAPolicy.from_pretrained(result.final_checkpoint, dtype='float32')
    assert policy.config.processor.center_crop_fraction == pytest.approx(0.9)


@pytest.mark.slow
def test_discrete_head_reaches_90_percent_bin_accuracy(block_dataset, policy_json, tmp_path):
    config = make_config(block_dataset, policy_json, tmp_path / 'run', max_steps=600,
                         batch_size=16, val_every=100, log_every=100, head_kind='discrete')
    train(config)
    val = read_metrics(tmp_path / 'run', 'val')
    print('validation accuracy:', [(e['step'], round(e['action_accuracy'], 3)) for e in val])
    assert val[0]['action_accuracy'] < 0.2
    assert val[-1]['action_accuracy'] >= 0.9


def test_discrete_head_logs_accuracy_and_saves_its_bins(block_dataset, policy_json, tmp_path):
    config = make_config(block_dataset, policy_json, tmp_path / 'run', head_kind='discrete',
                         n_action_bins=32, val_every=2)
    result = train(config)
    train_log, val = read_metrics(tmp_path / 'run', 'train'), read_metrics(tmp_path / 'run', 'val')
    assert [entry['step'] for entry in train_log] == [1, 2, 3, 4]
    assert all('action_accuracy' in entry and 'grad_norm' in entry for entry in train_log)
    assert [entry['step'] for entry in val] == [0, 2, 4]
    saved = json.loads((result.final_checkpoint / 'dataset_statistics_32_bins.json').read_text())
    expected = compute_bins(load_episodes(config.data), 32)
    np.testing.assert_allclose(saved['low'], expected.low.numpy(), rtol=1e-6)
    policy = VLAPolicy.from_pretrained(result.final_checkpoint, dtype='float32')
    actions = policy.predict_action_chunk(block_observation(0.0, 0.0)[0])
    assert actions.shape == (CHUNK, 14)
    assert np.all(actions >= saved['low']) and np.all(actions <= saved['high'])


def test_bad_dataset_stops_before_training(block_dataset, policy_json, tmp_path):
    images, qpos, action = block_episode(np.array([0.0, 0.0]), 4, ['cam_high'])
    action[2, 5] = np.nan
    write_aloha_hdf5(tmp_path / 'episode_nan.hdf5', images, qpos, action, instruction='x')
    config = make_config(tmp_path / 'episode_nan.hdf5', policy_json, tmp_path / 'run',
                         num_val_episodes=0)
    with pytest.raises(EpisodeError, match=r'episode_nan\.hdf5: /action: 1 non-finite'):
        train(config)
    assert not (tmp_path / 'run').exists()


def _equal_tensors(first: dict, second: dict) -> None:
    assert set(first) == set(second)
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, msg=name)


def test_resume_continues_the_same_loss_curve(block_dataset, policy_json, tmp_path):
    """LoRA, augmentation, 2 loader workers, accumulation: interrupted + resumed == straight."""
    options = {'max_steps': 6, 'save_every': 3, 'lora_rank': 4, 'grad_accumulation': 2,
               'num_workers': 2, 'augmentation': AugmentationConfig(), 'val_every': 3,
               'warmup_steps': 2}
    straight = train(make_config(block_dataset, policy_json, tmp_path / 'a', **options))
    stopped = train(make_config(block_dataset, policy_json, tmp_path / 'b', **options),
                    stop_at_step=4)
    assert sorted(p.name for p in (tmp_path / 'a' / 'checkpoints').iterdir()) == [
        'step_0000003', 'step_0000006']
    step_config = tmp_path / 'a' / 'checkpoints' / 'step_0000003' / 'train_config.json'
    assert TrainConfig.from_dict(json.loads(step_config.read_text())).lora_rank == 4
    assert stopped.step == 4 and stopped.final_checkpoint is None
    assert latest_resumable(tmp_path / 'b').name == 'step_0000004'
    resumed = train(make_config(block_dataset, policy_json, tmp_path / 'b', resume=True,
                                **options))
    for split in ('train', 'val'):
        assert read_metrics(tmp_path / 'a', split) == read_metrics(tmp_path / 'b', split)
    _equal_tensors(resumable_tensors(straight.model), resumable_tensors(resumed.model))
    _equal_tensors(load_file(straight.final_checkpoint / 'model.safetensors'),
                   load_file(resumed.final_checkpoint / 'model.safetensors'))
    # The exported checkpoint has the LoRA deltas merged: same outputs, no peft needed.
    policy = VLAPolicy.from_pretrained(straight.final_checkpoint, dtype='float32')
    batch = policy.prepare_batch([block_observation(0.8, -0.8)[0]])
    straight.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(policy.model(batch), straight.model(batch), rtol=1e-4,
                                   atol=1e-5)
    other = make_config(block_dataset, policy_json, tmp_path / 'b', resume=True,
                        **dict(options, learning_rate=5e-4))
    with pytest.raises(ValueError, match=r"different settings: \['learning_rate'\]"):
        train(other)
    again = make_config(block_dataset, policy_json, tmp_path / 'b', **options)
    with pytest.raises(ValueError, match=r'output_dir=.* already holds a run: pass --resume'):
        train(again)


def test_ddp_gloo_two_processes_keep_identical_weights(block_dataset, policy_json, tmp_path):
    """Each rank sees other samples; equal weights after training prove synchronised gradients."""
    config = make_config(block_dataset, policy_json, tmp_path / 'run', max_steps=3,
                         batch_size=4, num_val_episodes=0, log_every=1)
    mp.spawn(run_rank, args=(2, str(tmp_path / 'init'), config.to_dict(), str(tmp_path)),
             nprocs=2, join=True)
    rank0 = load_file(tmp_path / 'rank0.safetensors')
    rank1 = load_file(tmp_path / 'rank1.safetensors')
    _equal_tensors(rank0, rank1)
    source = load_policy_source(config)
    initial, _ = build_model(adapt_policy_config(source.config, config), source, None,
                             config.seed)
    initial_head = initial.action_head.model.fc2.weight
    assert not torch.equal(rank0['action_head.model.fc2.weight'], initial_head)
    assert (tmp_path / 'run' / 'final' / 'model.safetensors').is_file()
    assert [e['step'] for e in read_metrics(tmp_path / 'run', 'train')] == [1, 2, 3]


def test_cli_trains_dual_arm_and_the_checkpoint_loads(tmp_path):
    cameras = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']
    rng = np.random.default_rng(0)
    for index in range(3):
        images, qpos, action = block_episode(rng.uniform(-1, 1, 2), 5, cameras, size=48)
        write_aloha_hdf5(tmp_path / f'episode_{index}.hdf5', images, qpos, action,
                         compress=index % 2 == 0)
    config = build_tiny_config(chunk_size=CHUNK, camera_names=['cam_high'], image_size=56)
    (tmp_path / 'policy.json').write_text(json.dumps(config.to_dict()))
    code = main(['--data', str(tmp_path), '--camera_names', *cameras, '--chunk_size', str(CHUNK),
                 '--instruction', 'hand over the block', '--policy_config',
                 str(tmp_path / 'policy.json'), '--tokenizer_dir', default_tokenizer_dir(),
                 '--use_dual_arm', '--output_dir', str(tmp_path / 'run'), '--max_steps', '2',
                 '--batch_size', '2', '--num_workers', '0', '--num_val_episodes', '1',
                 '--no_progress_bar'])
    assert code == 0
    policy = VLAPolicy.from_pretrained(tmp_path / 'run' / 'final', dtype='float32')
    assert policy.config.action_head.kind == 'dual_arm'
    assert policy.config.num_action_queries == 128
    assert policy.config.camera_names == cameras
    assert policy.config.processor.center_crop_fraction == pytest.approx(0.9)
    observation = {'images': {c: np.zeros((48, 64, 3), np.uint8) for c in cameras},
                   'proprio': np.zeros(14), 'instruction': 'hand over the block'}
    assert policy.predict_action_chunk(observation).shape == (CHUNK, 14)
    assert list((tmp_path / 'run' / 'tensorboard').glob('events.out.tfevents.*'))
    record = json.loads((tmp_path / 'run' / 'final' / 'training_record.json').read_text())
    assert record['step'] == 2 and 'git_revision' in record
    saved = json.loads((tmp_path / 'run' / 'train_config.json').read_text())
    assert saved['head_kind'] == 'dual_arm'
    assert saved['data']['instruction'] == 'hand over the block'
    # Every checkpoint carries the resolved config, readable and usable as --config.
    assert json.loads((tmp_path / 'run' / 'final' / 'train_config.json').read_text()) == saved
    assert dataclasses.asdict(TrainConfig.from_dict(saved).augmentation)['crop_area'] == 0.9


UPSTREAM = (Path(__file__).resolve().parents[1] / 'fixtures' / 'upstream_vla_adapter'
            / 'libero_pro_2cam' / 'checkpoint')


def test_fine_tunes_an_upstream_checkpoint(tmp_path):
    """Start from the tiny upstream VLA-Adapter run (LIBERO: 2 cameras, 7-d actions, 8-d state)."""
    cameras = ['full_image', 'wrist_image']
    rng = np.random.default_rng(1)
    for index in range(2):
        images = {c: rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8) for c in cameras}
        qpos = rng.normal(size=(3, 8)).astype(np.float32)
        action = rng.normal(size=(3, 7)).astype(np.float32)
        write_aloha_hdf5(tmp_path / f'episode_{index}.hdf5', images, qpos, action,
                         instruction='put the bowl on the plate')
    data = DatasetConfig(paths=[str(tmp_path)], camera_names=cameras, proprio_dim=8,
                         action_dim=7, chunk_size=8)
    config = TrainConfig(data=data, output_dir=str(tmp_path / 'run'), pretrained=str(UPSTREAM),
                         max_steps=1, batch_size=2, num_val_episodes=0, num_workers=0,
                         normalization_mode='bounds_q99', progress_bar=False)
    result = train(config)
    policy = VLAPolicy.from_pretrained(result.final_checkpoint, dtype='float32')
    assert policy.config.layout == 'upstream_compat'  # same head and cameras: upstream windows
    assert policy.config.processor.center_crop_fraction == pytest.approx(0.9)
    upstream = VLAPolicy.from_pretrained(UPSTREAM, dtype='float32')
    tuned = policy.model.state_dict()
    for name, value in upstream.model.state_dict().items():  # the VLM is frozen
        if name.startswith(('vision.', 'llm.')):
            torch.testing.assert_close(tuned[name], value, rtol=0, atol=0, msg=name)
    assert not torch.equal(tuned['action_queries.weight'],
                           upstream.model.state_dict()['action_queries.weight'])


def test_pretrained_weights_load_except_a_new_head_and_never_a_wrong_vlm():
    source = VLAAdapterModel(build_tiny_config(chunk_size=CHUNK, image_size=56))
    discrete = VLAAdapterModel(build_tiny_config(chunk_size=8, image_size=56,
                                                 head_kind='discrete', n_action_bins=16))
    fresh = load_matching_weights(discrete, source.state_dict())
    assert fresh and all(name.startswith('action_head.') for name in fresh)
    for name, value in source.state_dict().items():
        if name.startswith(('vision.', 'llm.', 'projector.', 'action_queries.')):
            torch.testing.assert_close(discrete.state_dict()[name], value, rtol=0, atol=0)
    wider = VLAAdapterModel(build_tiny_config(chunk_size=CHUNK, image_size=56, hidden_size=32))
    with pytest.raises(ValueError, match='do not fit the configured VLM'):
        load_matching_weights(wider, source.state_dict())
