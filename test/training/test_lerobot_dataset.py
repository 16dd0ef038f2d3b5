"""Our LeRobot reader against the real lerobot package: every value and every frame.

Datasets are written by lerobot 0.4.4's own LeRobotDataset.create / add_frame / save_episode and
read back by its LeRobotDataset (its torchcodec decoding), in a subprocess (lerobot_oracle.py);
the v2.1 fixture is hand-written (see lerobot_fixtures.py) and checked against lerobot's own
conversion of it to v3.0. Nothing here contacts a host: HF_HUB_OFFLINE=1 throughout.
"""

from __future__ import annotations

import json
import re
import shutil

from lerobot_fixtures import (
    ALOHA_NAMES,
    SHUFFLED_NAMES,
    make_inputs,
    run_oracle,
    vector_feature,
    video_feature,
    write_dataset_snapshot,
    write_v21_by_hand,
    write_with_lerobot,
)
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from torch.utils.data import DataLoader

from training import compute_dataset_statistics
from training.data_config import DatasetConfig
from training.dataset import EpisodeDataset, load_episodes
from training.episodes import EpisodeError
from training.lerobot_episodes import stats_differences

ALOHA_CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']
ALOHA_TASKS = ['pick up the cube', 'fold the towel', 'pick up the cube']
ALOHA_LENGTHS = [12, 9, 15]
# Column of the dataset (right arm stored first) holding each of our dimensions.
FROM_SHUFFLED = [SHUFFLED_NAMES.index(name) for name in ALOHA_NAMES]


@pytest.fixture(scope='module', autouse=True)
def offline(monkeypatch_module):
    monkeypatch_module.setenv('HF_HUB_OFFLINE', '1')


@pytest.fixture(scope='module')
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    return tmp_path_factory.mktemp('lerobot')


@pytest.fixture(scope='module')
def aloha_v3(work):
    features = {'observation.state': vector_feature(SHUFFLED_NAMES),
                'action': vector_feature(SHUFFLED_NAMES),
                **{f'observation.images.{cam}': video_feature() for cam in ALOHA_CAMERAS}}
    return write_with_lerobot(work, 'aloha_v3', features, ALOHA_TASKS, ALOHA_LENGTHS)


@pytest.fixture(scope='module')
def gym_v3_h264(work):
    features = {'observation.state': vector_feature(ALOHA_NAMES),
                'action': vector_feature(None),
                'observation.images.top': video_feature()}
    return write_with_lerobot(work, 'gym_h264', features, ['insert the peg'] * 2, [10, 7],
                              vcodec='h264', seed=1)


@pytest.fixture(scope='module')
def aloha_v21(work):
    """(hand-written v2.1 root, lerobot's dump of lerobot's own v3.0 conversion of a copy)."""
    features = {'observation.state': vector_feature(SHUFFLED_NAMES),
                'action': vector_feature(SHUFFLED_NAMES),
                **{f'observation.images.{cam}': video_feature() for cam in ALOHA_CAMERAS}}
    inputs = make_inputs([8, 11], list(features)[2:], seed=2)
    root = work / 'aloha_v21'
    write_v21_by_hand(root, features, ['stack the cups', 'open the drawer'], inputs)
    converted = work / 'converted' / 'aloha_v21'
    shutil.copytree(root, converted)
    out = work / 'converted_dump.npz'
    run_oracle(work, 'convert21', '--root', str(converted), '--out', str(out))
    return root, inputs, dict(np.load(out))


def dataset_config(root, **overrides) -> DatasetConfig:
    return DatasetConfig(paths=[str(root)], **overrides)


def assert_matches_lerobot(episodes, dump, inputs, columns, cameras, video_keys) -> None:
    """Values, tasks and every frame equal what lerobot returns (frames visited out of order)."""
    proprio = np.concatenate([episode.proprio for episode in episodes])  # (N, 14)
    actions = np.concatenate([episode.actions for episode in episodes])
    np.testing.assert_array_equal(proprio, dump['observation.state'][:, columns])
    np.testing.assert_array_equal(actions, dump['action'][:, columns])
    for index, episode in enumerate(episodes):
        np.testing.assert_array_equal(episode.proprio,
                                      inputs[f'ep{index}/observation.state'][:, columns])
    tasks = [episode.instruction for episode in episodes for _ in range(len(episode))]
    assert tasks == dump['task'].tolist()
    positions = [(e, t) for e, episode in enumerate(episodes) for t in range(len(episode))]
    order = np.random.default_rng(0).permutation(len(positions))
    for index in [*order.tolist(), *range(len(positions))]:  # random access, then sequential
        episode_index, step = positions[index]
        images = episodes[episode_index].read_images(step)
        for camera, key in zip(cameras, video_keys):
            assert images[camera].shape == (48, 64, 3)
            np.testing.assert_array_equal(images[camera], dump[key][index],
                                          err_msg=f'{camera} sample {index}')


def test_v3_written_by_lerobot_reads_identically(aloha_v3):
    root, inputs, dump = aloha_v3
    episodes = load_episodes(dataset_config(root))
    assert [len(episode) for episode in episodes] == ALOHA_LENGTHS
    assert [episode.instruction for episode in episodes] == ALOHA_TASKS
    assert len(dump['index']) == sum(ALOHA_LENGTHS)
    assert_matches_lerobot(episodes, dump, inputs, FROM_SHUFFLED, ALOHA_CAMERAS,
                           [f'observation.images.{cam}' for cam in ALOHA_CAMERAS])


def test_gym_aloha_h264_positional_action_reads_identically(gym_v3_h264):
    root, inputs, dump = gym_v3_h264
    episodes = load_episodes(dataset_config(root, robot='aloha_sim',
                                            camera_names=['cam_high']))
    assert [len(episode) for episode in episodes] == [10, 7]
    identity = list(range(14))
    assert_matches_lerobot(episodes, dump, inputs, identity, ['cam_high'],
                           ['observation.images.top'])


def test_v21_reads_as_lerobot_reads_its_own_conversion(aloha_v21):
    root, inputs, dump = aloha_v21
    episodes = load_episodes(dataset_config(root))
    assert [episode.instruction for episode in episodes] == ['stack the cups', 'open the drawer']
    assert_matches_lerobot(episodes, dump, inputs, FROM_SHUFFLED, ALOHA_CAMERAS,
                           [f'observation.images.{cam}' for cam in ALOHA_CAMERAS])


def test_declared_gripper_units_convert_with_the_description_calibration(aloha_v3, tmp_path):
    root, inputs, _ = aloha_v3
    mapping = tmp_path / 'finger_joint.yaml'
    mapping.write_text(
        'robot: aloha\n'
        'cameras: {cam_high: observation.images.cam_high}\n'
        "state: {feature: observation.state, names: '{side}_{joint}', gripper: finger}\n"
        "action: {feature: action, names: '{side}_{joint}', gripper: {closed: 2.0, open: -2.0}}\n")
    episodes = load_episodes(dataset_config(root, lerobot_mapping=str(mapping),
                                            camera_names=['cam_high']))
    raw_state = inputs['ep0/observation.state'][:, FROM_SHUFFLED].astype(np.float64)
    raw_action = inputs['ep0/action'][:, FROM_SHUFFLED].astype(np.float64)
    # config/robots/aloha.yaml: follower finger closed 0.0440 m, open 0.0579 m.
    expected = (raw_state[:, [6, 13]] - 0.0440) / (0.0579 - 0.0440)
    np.testing.assert_allclose(episodes[0].proprio[:, [6, 13]], expected, rtol=1e-6)
    np.testing.assert_allclose(episodes[0].actions[:, [6, 13]],
                               (raw_action[:, [6, 13]] - 2.0) / -4.0, rtol=1e-6)
    np.testing.assert_array_equal(episodes[0].proprio[:, :6], raw_state[:, :6].astype(np.float32))


def test_features_that_do_not_fit_are_refused_naming_the_feature(aloha_v3, tmp_path):
    root = aloha_v3[0]
    with pytest.raises(EpisodeError, match=r'observation\.images\.cam_low: feature missing'):
        load_episodes(dataset_config(root, camera_names=['cam_high', 'cam_low']))
    mapping = tmp_path / 'wrong_names.yaml'
    mapping.write_text("robot: aloha\ncameras: {cam_high: observation.images.cam_high}\n"
                       "state: {feature: observation.state, names: 'arm_{index}'}\n"
                       "action: {feature: action}\n")
    with pytest.raises(EpisodeError, match=r"observation\.state: names lack \['arm_0'"):
        load_episodes(dataset_config(root, lerobot_mapping=str(mapping),
                                     camera_names=['cam_high']))


def corrupt_copy(root, tmp_path, damage) -> str:
    """A copy of dataset ``root`` with ``damage(copy)`` applied."""
    copy = tmp_path / root.name
    shutil.copytree(root, copy)
    damage(copy)
    return str(copy)


def truncate_data(root) -> None:
    path = root / 'data/chunk-000/file-000.parquet'
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete_wrist_video(root) -> None:
    (root / 'videos/observation.images.cam_left_wrist/chunk-000/file-000.mp4').unlink()


def shift_timestamp(root) -> None:
    path = root / 'data/chunk-000/file-000.parquet'
    table = pq.read_table(path)
    timestamps = table.column('timestamp').to_numpy().copy()
    timestamps[ALOHA_LENGTHS[0] + 3] += 0.013  # episode 1, step 3
    table = table.set_column(table.column_names.index('timestamp'), 'timestamp',
                             pa.array(timestamps, pa.float32()))
    pq.write_table(table, path)


def shift_video_start(root) -> None:
    path = next((root / 'meta/episodes').glob('chunk-*/*.parquet'))
    table = pq.read_table(path)
    name = 'videos/observation.images.cam_high/from_timestamp'
    starts = table.column(name).to_numpy().copy()
    starts[2] += 0.05  # episode 2's frames 2.5 frame periods off
    pq.write_table(table.set_column(table.column_names.index(name), name, pa.array(starts)),
                   path)


def unknown_codec(root) -> None:
    path = root / 'videos/observation.images.cam_high/chunk-000/file-000.mp4'
    path.write_bytes(path.read_bytes().replace(b'av01', b'zzzz'))  # the sample entry's fourcc


@pytest.mark.parametrize('damage, expected', [
    (truncate_data, r'aloha_v3 episode 0: data: unreadable parquet .*file-000\.parquet'),
    (delete_wrist_video, r'aloha_v3 episode 0: observation\.images\.cam_left_wrist: video file '
                         r'missing: .*file-000\.mp4'),
    (shift_timestamp, r'aloha_v3 episode 1: timestamp: steps 2 -> 3 are 0\.0330 s apart, not '
                      r'1/fps = 0\.0200 s'),
    (shift_video_start, r'aloha_v3 episode 2: observation\.images\.cam_high: timestamps do not '
                        r'match the video: step 0 wants 0\.4700 s, nearest frame 0\.0100 s away'),
    (unknown_codec, r'aloha_v3 episode 0: observation\.images\.cam_high: unknown video codec '
                    r'None in .*: PyAV cannot decode it'),
], ids=['truncated_parquet', 'missing_video', 'mismatched_timestamps', 'video_offset',
        'unknown_codec'])
def test_damaged_dataset_is_one_line_naming_the_episode(aloha_v3, tmp_path, capsys, damage,
                                                        expected):
    path = corrupt_copy(aloha_v3[0], tmp_path, damage)
    status = compute_dataset_statistics.main(['--data', path, '--output',
                                              str(tmp_path / 'stats.json')])
    error = capsys.readouterr().err
    assert status == 2
    assert len(error.strip().splitlines()) == 1, error
    assert re.match(r'vla-adapter-stats: error: ' + r'.*' + expected, error.strip()), error


def test_hub_repo_id_reads_the_cache_at_a_revision(aloha_v3, aloha_v21, tmp_path,
                                                   monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / 'hub'
    write_dataset_snapshot(cache, 'lerobot/aloha_fixture', aloha_v21[0], '1' * 40, ('v2.1',))
    write_dataset_snapshot(cache, 'lerobot/aloha_fixture', aloha_v3[0], '2' * 40, ('main',))
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    latest = load_episodes(DatasetConfig(paths=['lerobot/aloha_fixture']))
    old = load_episodes(DatasetConfig(paths=['lerobot/aloha_fixture'], revision='v2.1'))
    assert [len(episode) for episode in latest] == ALOHA_LENGTHS
    assert [len(episode) for episode in old] == [8, 11]
    assert latest[0].dataset.version == 'v3.0' and old[0].dataset.version == 'v2.1'
    with pytest.raises(EpisodeError, match=r'lerobot/aloha_fixture: repo_id: not in the Hugging '
                                           r'Face cache .*revision v9'):
        load_episodes(DatasetConfig(paths=['lerobot/aloha_fixture'], revision='v9'))


def test_statistics_are_ours_and_agree_with_lerobots_stats_json(aloha_v3, tmp_path, capsys):
    root, inputs, _ = aloha_v3
    output = tmp_path / 'stats.json'
    assert compute_dataset_statistics.main(['--data', str(root), '--output', str(output)]) == 0
    assert 'note:' not in capsys.readouterr().out  # lerobot's own statistics, within 1e-3
    entry = json.loads(output.read_text())['default']
    actions = np.concatenate([inputs[f'ep{e}/action'] for e in range(3)])[:, FROM_SHUFFLED]
    np.testing.assert_allclose(entry['action']['mean'], actions.astype(np.float64).mean(0),
                               rtol=1e-12)
    assert entry['num_trajectories'] == 3 and entry['num_transitions'] == sum(ALOHA_LENGTHS)
    # A gripper mapping with a negative scale converts the file's statistics the same way.
    mapping = tmp_path / 'flipped.yaml'
    mapping.write_text('robot: aloha\ncameras: {cam_high: observation.images.cam_high}\n'
                       'state: {feature: observation.state}\n'
                       'action: {feature: action, gripper: {closed: 2.0, open: -2.0}}\n')
    episodes = load_episodes(dataset_config(root, lerobot_mapping=str(mapping),
                                            camera_names=['cam_high']))
    assert stats_differences(episodes) == []
    stats = json.loads((root / 'meta/stats.json').read_text())
    stats['observation.state']['mean'][7] += 1.0  # left_waist: our dimension 0
    copy = corrupt_copy(root, tmp_path, lambda r: (r / 'meta/stats.json').write_text(
        json.dumps(stats)))
    lines = stats_differences(load_episodes(dataset_config(copy)))
    assert len(lines) == 1 and re.search(
        r'observation\.state mean differs from meta/stats\.json in 1 of 14 dimensions '
        r'\(largest: dimension 0, ours -?[\d.e-]+, stats\.json -?[\d.e-]+; ours cover the 3 '
        r'episodes used\)', lines[0]), lines


def test_training_mixes_a_lerobot_dataset_with_hdf5_episodes(aloha_v3, tmp_path):
    from episode_writers import block_episode, write_aloha_hdf5

    from training.finetune import main as train_main
    from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir

    rng = np.random.default_rng(5)
    for index in range(2):
        images, qpos, action = block_episode(rng.uniform(-1, 1, 2), 5, ALOHA_CAMERAS, size=48)
        write_aloha_hdf5(tmp_path / f'episode_{index}.hdf5', images, qpos, action,
                         instruction='hand over the block')
    config = build_tiny_config(chunk_size=4, camera_names=ALOHA_CAMERAS, image_size=56)
    (tmp_path / 'policy.json').write_text(json.dumps(config.to_dict()))
    code = train_main(['--data', str(aloha_v3[0]), str(tmp_path), '--chunk_size', '4',
                       '--policy_config', str(tmp_path / 'policy.json'), '--tokenizer_dir',
                       default_tokenizer_dir(), '--output_dir', str(tmp_path / 'run'),
                       '--max_steps', '2', '--batch_size', '2', '--num_workers', '2',
                       '--num_val_episodes', '1', '--no_progress_bar'])
    assert code == 0
    saved = json.loads(next((tmp_path / 'run').rglob('dataset_statistics.json')).read_text())
    entry = next(iter(saved.values()))
    assert entry['num_trajectories'] == 5 and entry['num_transitions'] == 36 + 10


def test_forked_dataloader_workers_decode_after_the_parent_did(aloha_v3):
    """A fork copies no FFmpeg decoder threads: inherited decoders must never be closed."""
    episodes = load_episodes(dataset_config(aloha_v3[0]))
    dataset = EpisodeDataset(episodes, chunk_size=4)
    expected = [dataset[index]['images']['cam_high'] for index in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=list, timeout=60,
                        multiprocessing_context='fork')
    frames = [sample['images']['cam_high'] for batch in loader for sample in batch]
    assert len(frames) == sum(ALOHA_LENGTHS)
    for got, want in zip(frames, expected):
        np.testing.assert_array_equal(got, want)


def test_adaptive_bins_come_from_our_reading_of_the_actions(aloha_v3, tmp_path):
    from training.compute_adaptive_bins import main as bins_main
    from vla_adapter_core.heads import ActionBins

    root, inputs, dump = aloha_v3
    assert bins_main(['--data', str(root), '--n_action_bins', '16', '--output_dir',
                      str(tmp_path)]) == 0
    bins = ActionBins.from_json(next(tmp_path.glob('dataset_statistics_16_bins.json')))
    actions = dump['action'][:, FROM_SHUFFLED].astype(np.float64)  # what lerobot returns
    span = actions.max(0) - actions.min(0)
    np.testing.assert_allclose(bins.low.numpy(), actions.min(0) - 0.05 * span, rtol=1e-6)
    np.testing.assert_allclose(bins.high.numpy(), actions.max(0) + 0.05 * span, rtol=1e-6)
