"""vla-adapter-export-lerobot: HDF5 episodes and recorder bags -> LeRobot v3.0, read by lerobot.

The real lerobot 0.4.4 (lerobot_oracle.py, a subprocess) loads and iterates every export; its
values must equal the source episodes as training reads them, its frames our decoding of the
same videos. Nothing contacts a host: the Hub push is checked against a local cache layout.
"""

from __future__ import annotations

import json
from pathlib import Path
import re

from episode_writers import write_aloha_hdf5
import h5py
from lerobot_fixtures import lerobot_dump, write_dataset_snapshot
import numpy as np
import pytest
from recorder_bags import INSTRUCTION, record_bag

from training.data_config import DatasetConfig
from training.dataset import load_episodes
from training.export_lerobot import main

CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')


def smooth_frames(rng, steps: int) -> np.ndarray:
    """(T, 48, 64, 3) gradients plus a moving square: small lossy-coding error, distinct frames."""
    y, x = np.mgrid[0:48, 0:64]
    frames = np.empty((steps, 48, 64, 3), np.uint8)
    base = rng.integers(0, 150, size=3)
    for step in range(steps):
        frames[step] = np.stack([base[0] + x, base[1] + y * 2, base[2] + (x + y) // 2], -1)
        frames[step, 10:22, 4 + 3 * step: 16 + 3 * step] = (250, 250, 20)
    return frames


def write_hdf5_episodes(folder, lengths=(14, 9)) -> list:
    rng = np.random.default_rng(3)
    folder.mkdir()
    sources = []
    for number, steps in enumerate(lengths):
        images = {camera: smooth_frames(rng, steps) for camera in CAMERAS}
        qpos = rng.normal(size=(steps, 14)).astype(np.float32)
        action = rng.normal(size=(steps, 14)).astype(np.float32)
        write_aloha_hdf5(folder / f'episode_{number}.hdf5', images, qpos, action,
                         instruction=f'task {number % 2}')
        sources.append((images, qpos, action))
    with h5py.File(folder / 'episode_0.hdf5', 'a') as handle:
        handle.attrs['success'] = True
    return sources


def check_against_lerobot(work, output, episodes) -> dict:
    """Lerobot's iteration of ``output`` equals our reading of it (values and every frame)."""
    dump = lerobot_dump(work, output)
    ours = load_episodes(DatasetConfig(paths=[str(output)]))
    np.testing.assert_array_equal(dump['observation.state'],
                                  np.concatenate([e.proprio for e in episodes]))
    np.testing.assert_array_equal(dump['action'], np.concatenate([e.actions for e in episodes]))
    assert dump['task'].tolist() == [e.instruction for e in episodes for _ in range(len(e))]
    sample = 0
    for episode in ours:
        for step in range(len(episode)):
            images = episode.read_images(step)
            for camera in CAMERAS:
                np.testing.assert_array_equal(images[camera],
                                              dump[f'observation.images.{camera}'][sample])
            sample += 1
    assert sample == len(dump['index'])
    return dump


def test_hdf5_export_is_read_by_lerobot_as_training_reads_the_source(tmp_path, capsys):
    sources = write_hdf5_episodes(tmp_path / 'hdf5')
    output = tmp_path / 'exported'
    assert main(['--hdf5', str(tmp_path / 'hdf5'), '--output', str(output), '--repo_id',
                 'me/exported', '--video_codec', 'h264']) == 0
    assert 'LeRobot v3.0 dataset me/exported, 23 steps' in capsys.readouterr().out
    info = json.loads((output / 'meta/info.json').read_text())
    assert info['features']['observation.images.cam_high']['info']['video.codec'] == 'h264'
    assert info['features']['action']['names']['motors'][:2] == ['left_waist', 'left_shoulder']
    training = load_episodes(DatasetConfig(paths=[str(tmp_path / 'hdf5')], jpeg_draft_size=0))
    dump = check_against_lerobot(tmp_path, output, training)
    assert [json.loads(value) for value in dump['episodes/success']] == [True, None]
    exported = load_episodes(DatasetConfig(paths=[str(output)]))
    for episode, (images, qpos, action) in zip(exported, sources):
        np.testing.assert_array_equal(episode.proprio, qpos)
        np.testing.assert_array_equal(episode.actions, action)
        decoded = episode.read_images(5)['cam_high'].astype(int)  # (H, W, 3)
        errors = [np.abs(decoded - images['cam_high'][step]).mean() for step in (4, 5, 6)]
        assert errors[1] < 4.0 < min(errors[0], errors[2])  # lossy, but the frame of step 5
    assert exported[0].metadata['success'] is True


def test_bag_export_carries_the_recording_as_episode_metadata(tmp_path):
    bag = record_bag(tmp_path, 'mcap', steps=12)
    output = tmp_path / 'from_bag'
    assert main(['--bag', str(bag), '--output', str(output)]) == 0
    training = load_episodes(DatasetConfig(paths=[str(bag)], jpeg_draft_size=0))
    dump = check_against_lerobot(tmp_path, output, training)
    recording = json.loads(json.loads(str(dump['episodes/recording'][0])))
    assert [json.loads(value) for value in dump['episodes/success']] == [True]
    assert recording['success'] is True and recording['instruction'] == INSTRUCTION
    assert dump['task'][0] == INSTRUCTION


class LocalCacheHub:
    """HfApi's create_repo / upload_folder / create_tag into a Hugging Face cache layout."""

    def __init__(self, cache) -> None:
        self.cache, self.calls = cache, []

    def folder(self, repo_id: str):
        return self.cache / f"datasets--{repo_id.replace('/', '--')}"

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        self.calls.append(('create_repo', repo_id, repo_type, private))
        (self.folder(repo_id) / 'refs').mkdir(parents=True, exist_ok=True)

    def upload_folder(self, repo_id, folder_path, repo_type, commit_message):
        self.calls.append(('upload_folder', repo_id, repo_type))
        commit = 'a' * 40
        write_dataset_snapshot(self.cache, repo_id, Path(folder_path), commit)
        return type('CommitInfo', (), {'oid': commit})()

    def create_tag(self, repo_id, tag, repo_type, revision, exist_ok):
        self.calls.append(('create_tag', repo_id, tag, revision))
        (self.folder(repo_id) / 'refs' / tag).write_text(revision)


def test_push_to_hub_then_read_by_repo_id_and_tag(tmp_path, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants

    write_hdf5_episodes(tmp_path / 'hdf5', lengths=(6,))
    hub = LocalCacheHub(tmp_path / 'hub')
    monkeypatch.setattr(huggingface_hub, 'HfApi', lambda: hub)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    assert main(['--hdf5', str(tmp_path / 'hdf5'), '--output', str(tmp_path / 'out'),
                 '--repo_id', 'me/pushed', '--push_to_hub', '--private']) == 0
    assert hub.calls == [('create_repo', 'me/pushed', 'dataset', True),
                         ('upload_folder', 'me/pushed', 'dataset'),
                         ('create_tag', 'me/pushed', 'v3.0', 'a' * 40)]
    pushed = load_episodes(DatasetConfig(paths=['me/pushed'], revision='v3.0'))
    assert [len(episode) for episode in pushed] == [6]


def exit_status(argv: list[str]) -> int:
    """Main's status; argparse's ``parser.error`` (a config value) exits instead of returning."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


@pytest.mark.parametrize('arguments, message', [
    (['--bag', 'a', '--hdf5', 'b'], r'give exactly one of --bag and --hdf5'),
    (['--hdf5', '{hdf5}', '--repo_id', 'no_owner'], r"repo_id='no_owner': expected owner/name"),
    (['--hdf5', '{hdf5}', '--camera_names', 'cam_high', 'cam_side'],
     r"camera 'cam_side' is not in the feature mapping"),
    (['--hdf5', '{missing}'], r'missing: path: does not exist'),
], ids=['both_sources', 'repo_id', 'camera', 'missing'])
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, arguments, message):
    write_hdf5_episodes(tmp_path / 'hdf5', lengths=(4,))
    arguments = [a.format(hdf5=tmp_path / 'hdf5', missing=tmp_path / 'missing')
                 for a in arguments]
    status = exit_status([*arguments, '--output', str(tmp_path / 'out')])
    error = capsys.readouterr().err.strip()
    assert status == 2 and 'Traceback' not in error, error
    last = error.splitlines()[-1]  # argparse's usage may precede a config value's error
    assert last.startswith('vla-adapter-export-lerobot: error: ') and re.search(message, last)
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'out.partial').exists()
