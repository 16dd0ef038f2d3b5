"""benchmarks/jpeg_replay.py: raw camera bags to JPEG bags, and replay-eval on both.

The converted bag holds every camera as ``<topic>/compressed`` with the raw topic's message
count, bag times and header stamps, frames that decode to the raw frame's shape and close to
its pixels, and every other message byte for byte; replay-eval (--save_chunks) reads it at the
same inference points as the raw bag.
"""

import importlib.util
import json
from pathlib import Path
import sys

from inference_harness import statistics_around_the_start_pose, tiny_policy_for  # noqa: E402
import numpy as np
import pytest
from replay_bags import INSTRUCTION, write_episode  # noqa: E402
import yaml

from training.bag_types import bag_typestore
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.pipeline.conversions import compressed_image_to_rgb, image_to_rgb
from vla_adapter_ros.recording.bag_format import COMPRESSED_IMAGE, IMAGE

REPO = Path(__file__).resolve().parents[3]
ALOHA = load_robot_description('aloha')
HW = (48, 64)
SIDECAR = {'instruction': INSTRUCTION, 'jpeg_quality': 0, 'topics': {
    ALOHA.camera_topic.format(camera=camera): {'type': IMAGE, 'role': 'camera'}
    for camera in ALOHA.cameras}}


@pytest.fixture(scope='module')
def benchmark():
    spec = importlib.util.spec_from_file_location('jpeg_replay_benchmark',
                                                  REPO / 'benchmarks' / 'jpeg_replay.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _messages(bag: Path) -> dict:
    """Each topic -> (msgtype, [(bag time ns, raw CDR bytes)]), and the custom data."""
    from rosbags.rosbag2 import Reader

    topics = {}
    with Reader(bag) as reader:
        for connection in reader.connections:
            topics[connection.topic] = (connection.msgtype, [])
        for connection, time_ns, data in reader.messages():
            topics[connection.topic][1].append((time_ns, bytes(data)))
    information = yaml.safe_load((bag / 'metadata.yaml').read_text())
    topics['custom_data'] = information['rosbag2_bagfile_information']['custom_data']
    return topics


def test_jpeg_bag_keeps_every_message_and_frames_close_to_raw(benchmark, tmp_path):
    source = write_episode(tmp_path / 'raw' / 'episode_0000', ALOHA, leader_actions=True,
                           seconds=0.5, image_hw=HW, sidecar=SIDECAR)
    stats = benchmark.convert_bags([source], tmp_path / 'jpeg_95', benchmark.JpegConversion(95))
    converted = tmp_path / 'jpeg_95' / 'episode_0000'
    raw, jpeg = _messages(source), _messages(converted)
    typestore = bag_typestore()
    cameras = [ALOHA.camera_topic.format(camera=camera) for camera in ALOHA.cameras]
    assert stats['frames'] == sum(len(raw[topic][1]) for topic in cameras) > 0
    assert 0 < stats['bytes'] < stats['raw_bytes'] == stats['frames'] * HW[0] * HW[1] * 3
    assert stats['encode_s'] > 0
    for topic in cameras:
        assert topic not in jpeg and jpeg[f'{topic}/compressed'][0] == COMPRESSED_IMAGE
        before, after = raw[topic][1], jpeg[f'{topic}/compressed'][1]
        assert [t for t, _ in after] == [t for t, _ in before] and len(after) == len(before)
        for (_, raw_data), (_, jpeg_data) in zip(before, after):
            image = typestore.deserialize_cdr(raw_data, IMAGE)
            compressed = typestore.deserialize_cdr(jpeg_data, COMPRESSED_IMAGE)
            assert compressed.header.stamp == image.header.stamp
            assert compressed.format == 'rgb8; jpeg compressed bgr8'
            decoded = compressed_image_to_rgb(compressed).astype(np.int16)
            original = image_to_rgb(image).astype(np.int16)
            assert decoded.shape == original.shape == (*HW, 3)
            assert np.abs(decoded - original).mean() < 2.0  # quality 95 on smooth frames
    others = sorted(set(raw) - set(cameras))
    assert others == sorted(set(jpeg) - {f'{topic}/compressed' for topic in cameras})
    assert raw['custom_data'] == {'instruction': INSTRUCTION}
    for topic in others:
        assert jpeg[topic] == raw[topic]  # type, bag times, bytes (and the custom data)
    sidecar = yaml.safe_load((converted / 'episode_metadata.yaml').read_text())
    assert sidecar['jpeg_quality'] == 95 and sidecar['converted']['jpeg_quality'] == 95
    assert sorted(sidecar['topics']) == sorted(f'{topic}/compressed' for topic in cameras)


def test_the_benchmark_replays_raw_and_jpeg_bags_at_the_same_points(benchmark, tmp_path,
                                                                      capsys):
    checkpoint = tmp_path / 'checkpoint'
    tiny_policy_for(ALOHA, chunk_size=4, seed=1,
                    statistics=statistics_around_the_start_pose(ALOHA)).save_pretrained(
        checkpoint)
    write_episode(tmp_path / 'bags' / 'episode_0000', ALOHA, leader_actions=True, seconds=0.6,
                  image_hw=HW, sidecar=SIDECAR)
    work = tmp_path / 'work'
    assert benchmark.main(['--bag', str(tmp_path / 'bags'), '--work', str(work),
                           '--checkpoint', str(checkpoint), '--robot', 'aloha',
                           '--qualities', '60', '--noise_std', '3']) == 0
    summary = json.loads((work / 'summary.json').read_text())
    rows = {row['variant']: row for row in summary['rows']}
    assert list(rows) == ['raw', 'raw, again', 'raw + noise std 3', 'JPEG 60']
    assert rows['raw, again']['chunk_change']['mean'] == 0.0  # replay is deterministic
    for name in ('raw + noise std 3', 'JPEG 60'):
        assert rows[name]['chunk_change']['points'] == rows['raw']['chunk_change']['points'] > 0
        assert rows[name]['pixel_error'] > 0
    assert rows['JPEG 60']['bytes_per_frame'] < summary['raw_bytes_per_frame'] == HW[0] * HW[1] * 3
    assert rows['JPEG 60']['encode_ms_per_frame'] > 0
    assert rows['raw + noise std 3']['encode_ms_per_frame'] is None
    with np.load(work / 'reports' / 'jpeg_60' / 'chunks.npz') as chunks:
        metrics = json.loads((work / 'reports' / 'jpeg_60' / 'metrics.json').read_text())
        assert chunks['predicted'].shape == (metrics['aggregate']['inference_points'], 4,
                                             ALOHA.action_dim)
        assert list(chunks['bags']) == ['episode_0000']
    assert '| JPEG 60 |' in capsys.readouterr().out
