"""ALOHA HDF5 episodes: both image layouts, single-arm, instructions and every bad-input error."""

from pathlib import Path

from episode_writers import jpeg_like_opencv, write_aloha_hdf5
import h5py
import numpy as np
import pytest

from training.data_config import DatasetConfig
from training.dataset import discover_episodes, load_episodes
from training.episodes import AlohaHdf5Episode, EpisodeError, decode_jpeg

CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']


def _random_episode(rng, steps=6, dim=14, cameras=CAMERAS, size=(24, 32)):
    images = {cam: rng.integers(0, 256, size=(steps, *size, 3), dtype=np.uint8)
              for cam in cameras}
    qpos = rng.normal(size=(steps, dim)).astype(np.float32)
    action = rng.normal(size=(steps, dim)).astype(np.float32)
    return images, qpos, action


def _smooth_frames(steps, size=(48, 64)):
    """Frames JPEG keeps nearly intact: flat colour patches, one colour per step."""
    frames = np.zeros((steps, *size, 3), dtype=np.uint8)
    for step in range(steps):
        frames[step, :, : size[1] // 2] = (200, 30 + 20 * step, 10)
        frames[step, :, size[1] // 2:] = (10, 60, 220 - 20 * step)
    return frames


def _config(tmp_path, **overrides):
    values = {'paths': [str(tmp_path)], 'camera_names': CAMERAS, 'chunk_size': 4,
              'instruction': None}
    values.update(overrides)
    return DatasetConfig(**values)


def test_raw_images_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images, qpos, action = _random_episode(rng)
    path = write_aloha_hdf5(tmp_path / 'episode_0.hdf5', images, qpos, action,
                            instruction='fold the towel')
    episode = AlohaHdf5Episode(path, _config(tmp_path))
    assert len(episode) == 6
    assert episode.instruction == 'fold the towel'
    np.testing.assert_array_equal(episode.proprio, qpos)
    np.testing.assert_array_equal(episode.actions, action)
    frames = episode.read_images(3)
    assert list(frames) == CAMERAS
    for cam in CAMERAS:
        np.testing.assert_array_equal(frames[cam], images[cam][3])


def test_jpeg_compressed_images_decode_to_the_recorded_rgb(tmp_path):
    frames = _smooth_frames(5)
    images = {cam: frames for cam in CAMERAS}
    qpos = np.zeros((5, 14), np.float32)
    path = write_aloha_hdf5(tmp_path / 'episode_0.hdf5', images, qpos, qpos, compress=True,
                            instruction='stack')
    with h5py.File(path) as handle:
        assert handle['/observations/images/cam_high'].ndim == 2
        assert handle['/compress_len'].shape == (3, 5)
    episode = AlohaHdf5Episode(path, _config(tmp_path, jpeg_draft_size=0))
    for step in range(5):
        decoded = episode.read_images(step)['cam_left_wrist']
        assert decoded.shape == frames[step].shape
        error = np.abs(decoded.astype(int) - frames[step].astype(int))
        assert error.mean() < 4, f'step {step}: colours swapped or corrupted'


def test_jpeg_draft_decoding_reduces_size_but_keeps_colours():
    frame = _smooth_frames(1, size=(480, 640))[0]
    data = jpeg_like_opencv(frame)
    small = decode_jpeg(data, 'bgr', draft_size=224)
    assert small.shape == (240, 320, 3)
    assert np.abs(small[120, 80].astype(int) - frame[0, 0].astype(int)).max() < 6
    full = decode_jpeg(data, 'bgr', draft_size=0)
    assert full.shape == (480, 640, 3)


def test_single_arm_seven_dimensional_episode(tmp_path):
    rng = np.random.default_rng(1)
    images, qpos, action = _random_episode(rng, steps=4, dim=7, cameras=['cam_wrist'])
    write_aloha_hdf5(tmp_path / 'arm.hdf5', images, qpos, action, instruction='push')
    config = _config(tmp_path, camera_names=['cam_wrist'], robot='wx250s')
    assert (config.proprio_dim, config.action_dim) == (7, 7)  # from the robot description
    [episode] = load_episodes(config)
    assert episode.actions.shape == (4, 7)


def test_episode_of_another_robot_names_file_field_and_sizes(tmp_path):
    rng = np.random.default_rng(2)
    images, qpos, action = _random_episode(rng, steps=3)  # 14-d ALOHA
    write_aloha_hdf5(tmp_path / 'aloha.hdf5', images, qpos, action, instruction='push')
    config = _config(tmp_path, robot='wx250')  # 5DOF single arm: 6 values per step
    with pytest.raises(EpisodeError, match=r'aloha\.hdf5: /observations/qpos: shape \(3, 14\), '
                                           r'expected \(T, 6\): the proprio_dim of --robot '
                                           r'wx250'):
        load_episodes(config)


def test_instruction_sources_and_precedence(tmp_path):
    rng = np.random.default_rng(2)
    images, qpos, action = _random_episode(rng, steps=2)
    first = write_aloha_hdf5(tmp_path / 'a.hdf5', images, qpos, action)
    second = write_aloha_hdf5(tmp_path / 'b.hdf5', images, qpos, action, instruction='meta')
    with pytest.raises(EpisodeError, match=r'a\.hdf5: instruction: no instruction'):
        AlohaHdf5Episode(first, _config(tmp_path))
    (tmp_path / 'instruction.txt').write_text('folder wide\n')
    assert AlohaHdf5Episode(first, _config(tmp_path)).instruction == 'folder wide'
    (tmp_path / 'a.hdf5.instruction.txt').write_text('this episode')
    assert AlohaHdf5Episode(first, _config(tmp_path)).instruction == 'this episode'
    assert AlohaHdf5Episode(second, _config(tmp_path)).instruction == 'meta'
    cli = _config(tmp_path, instruction='from the cli')
    assert AlohaHdf5Episode(second, cli).instruction == 'from the cli'


def _write_bad(tmp_path: Path, mutate, **writer_kwargs) -> Path:
    rng = np.random.default_rng(3)
    images, qpos, action = _random_episode(rng, steps=5)
    path = write_aloha_hdf5(tmp_path / 'bad.hdf5', images, qpos, action, instruction='x',
                            **writer_kwargs)
    with h5py.File(path, 'a') as handle:
        mutate(handle)
    return path


def _replace(handle, key, value):
    del handle[key]
    handle.create_dataset(key, data=value)


@pytest.mark.parametrize(('mutate', 'pattern'), [
    (lambda h: h.__delitem__('/observations/images/cam_left_wrist'),
     r"bad\.hdf5: /observations/images/cam_left_wrist: missing camera 'cam_left_wrist'"),
    (lambda h: (_replace(h, '/observations/qpos', np.zeros((0, 14), np.float32)),
                _replace(h, '/action', np.zeros((0, 14), np.float32))),
     r'bad\.hdf5: /observations/qpos: episode has no steps'),
    (lambda h: _replace(h, '/action', np.zeros((4, 14), np.float32)),
     r'bad\.hdf5: /observations/qpos//action: length mismatch: 5 vs 4'),
    (lambda h: h['/action'].__setitem__((2, 3), np.nan),
     r'bad\.hdf5: /action: 1 non-finite values .* step 2, dimension 3'),
    (lambda h: _replace(h, '/action', np.zeros((5, 7), np.float32)),
     r'bad\.hdf5: /action: shape \(5, 7\), expected \(T, 14\)'),
    (lambda h: h.__delitem__('/observations/qpos'),
     r'bad\.hdf5: /observations/qpos: unknown dataset layout'),
])
def test_bad_episodes_name_file_and_field(tmp_path, mutate, pattern):
    path = _write_bad(tmp_path, mutate)
    with pytest.raises(EpisodeError, match=pattern):
        load_episodes(_config(tmp_path, paths=[str(path)]))


def test_compressed_frames_need_compress_len(tmp_path):
    path = _write_bad(tmp_path, lambda h: h.__delitem__('/compress_len'), compress=True)
    with pytest.raises(EpisodeError, match=r'bad\.hdf5: /compress_len: missing'):
        AlohaHdf5Episode(path, _config(tmp_path))


def test_unknown_layouts_are_rejected(tmp_path):
    (tmp_path / 'notes.txt').write_text('not an episode')
    with pytest.raises(EpisodeError, match=r'notes\.txt: path: unknown dataset layout'):
        discover_episodes(_config(tmp_path, paths=[str(tmp_path / 'notes.txt')]))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(EpisodeError, match=r'empty: path: unknown dataset layout'):
        discover_episodes(_config(tmp_path, paths=[str(empty)]))
    (tmp_path / 'fake.hdf5').write_bytes(b'not hdf5')
    with pytest.raises(EpisodeError, match=r'fake\.hdf5: file: not a readable HDF5'):
        load_episodes(_config(tmp_path, paths=[str(tmp_path / 'fake.hdf5')]))
    with pytest.raises(EpisodeError, match=r'missing: path: does not exist'):
        discover_episodes(_config(tmp_path, paths=[str(tmp_path / 'missing')]))


def test_config_errors_name_field_and_value():
    with pytest.raises(ValueError, match=r"DatasetConfig.layout='zarr'"):
        DatasetConfig(layout='zarr')
    with pytest.raises(ValueError, match=r'DatasetConfig.chunk_size=0'):
        DatasetConfig(chunk_size=0)
    with pytest.raises(ValueError, match=r'DatasetConfig.action_topic=None'):
        DatasetConfig(action_source='topic')
    with pytest.raises(ValueError, match=r"DatasetConfig.robot='aloha3': robot 'aloha3'.*"
                                         r"built-in: \[.*'wx250s'"):
        DatasetConfig(robot='aloha3')
