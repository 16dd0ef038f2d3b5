"""vla-adapter-export-hdf5: recorder bags (mcap, sqlite3) -> ALOHA HDF5, read back two ways.

The bags are written by the recorder's own EpisodeRecorder from rclpy-serialised messages (the
bytes a raw subscription receives); test/vla_adapter_ros/nodes/test_recorder_node.py exports
a bag the node recorded over DDS.
"""

import io

import h5py
import numpy as np
from PIL import Image as PilImage
import pytest
from recorder_bags import INSTRUCTION, frame, record_bag
import yaml

from training.data_config import DatasetConfig
from training.dataset import load_episodes
from training.episodes import AlohaHdf5Episode
from training.export_hdf5 import main


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_export_matches_the_training_reader(tmp_path, storage, capsys):
    bag = record_bag(tmp_path, storage)
    output = tmp_path / 'hdf5'
    assert main(['--bag', str(tmp_path / 'bags'), '--output', str(output)]) == 0
    assert 'episode_0000.hdf5: 30 steps' in capsys.readouterr().out
    exported = output / 'episode_0000.hdf5'
    with h5py.File(exported, 'r') as root:
        assert root.attrs['sim'] == False  # noqa: E712 - numpy bool
        assert root.attrs['compress'] and root.attrs['instruction'] == INSTRUCTION
        assert root.attrs['success']
        for key in ('/observations/qpos', '/observations/qvel', '/observations/effort',
                    '/action'):
            assert root[key].shape == (30, 14) and root[key].dtype == np.float32
        qvel, effort = root['/observations/qvel'][()], root['/observations/effort'][()]
        assert root['/compress_len'].shape == (3, 30)
    # Arm joint k of the followers: position 0.01 t + 0.1 k, velocity 2x, effort 3x.
    np.testing.assert_allclose(qvel[7, :6], 2 * (0.07 + 0.1 * np.arange(6)), atol=1e-5)
    np.testing.assert_allclose(effort[7, :7], 3 * (0.07 + 0.1 * np.arange(7)), atol=1e-5)
    config = DatasetConfig(paths=[str(bag)], robot='aloha', cache_dir=str(tmp_path / 'cache'))
    [from_bag] = load_episodes(config)
    from_hdf5 = AlohaHdf5Episode(exported, config)
    np.testing.assert_array_equal(from_hdf5.proprio, from_bag.proprio)
    np.testing.assert_array_equal(from_hdf5.actions, from_bag.actions)
    assert from_hdf5.instruction == INSTRUCTION
    for step in (0, 17):
        for camera, rgb in from_hdf5.read_images(step).items():
            assert np.abs(rgb.astype(int) - frame(step)).max() <= 4, (camera, step)


def test_raw_images_and_opencv_convention(tmp_path):
    bag = record_bag(tmp_path, 'mcap', steps=12)
    assert main(['--bag', str(bag), '--output', str(tmp_path / 'raw.hdf5'),
                 '--images', 'raw']) == 0
    with h5py.File(tmp_path / 'raw.hdf5', 'r') as root:
        assert not root.attrs['compress'] and '/compress_len' not in root
        images = root['/observations/images/cam_high'][()]
    assert images.shape == (12, 24, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[5], frame(5))
    assert main(['--bag', str(bag), '--output', str(tmp_path / 'jpeg.hdf5')]) == 0
    with h5py.File(tmp_path / 'jpeg.hdf5', 'r') as root:
        row = root['/observations/images/cam_high'][5]
        length = int(root['/compress_len'][0, 5])
    decoded = np.asarray(PilImage.open(io.BytesIO(row[:length].tobytes())).convert('RGB'))
    # A plain decoder (not cv2) sees the channels swapped, as in ALOHA's own files.
    assert np.abs(decoded[..., ::-1].astype(int) - frame(5)).max() <= 4


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    bag = record_bag(tmp_path, 'mcap', steps=5)
    output = tmp_path / 'out'
    assert main(['--bag', str(bag), '--output', str(output)]) == 0
    capsys.readouterr()
    cases = [
        (['--bag', str(bag), '--output', str(output)], '--overwrite'),
        (['--bag', str(tmp_path / 'missing'), '--output', str(output)], 'does not exist'),
        (['--bag', str(bag), '--output', str(output), '--overwrite', '--action_source', 'topic',
          '--action_topic', '/commanded_action'], '/commanded_action: topic missing from the bag'),
        (['--bag', str(bag), '--output', str(output), '--robot', str(tmp_path / 'x.yaml')],
         'x.yaml'),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        error = capsys.readouterr().err.strip()
        assert error.startswith('vla-adapter-export-hdf5: error: ') and expected in error, error
        assert '\n' not in error
    sidecar = yaml.safe_load((bag / 'episode_metadata.yaml').read_text())
    assert sidecar['success'] is True
