"""Who was in control: the control log's intervals and a takeover bag read back with rosbags.

The bag is written by the recorder's own EpisodeRecorder from rclpy-serialised bytes
(support/takeover_bags.py): the control source is a topic in the bag, its intervals are in the
sidecar, the policy's chunks decode with rosbags, the commands sent are /commanded_action.
"""

import pathlib

import numpy as np
import pytest
from recorder_bags import STEP_NS, T0
from rosbags.rosbag2 import Reader
from takeover_bags import CHUNK_EVERY, CHUNK_TOPIC, commanded, record_takeover_bag

from training.bag_types import ACTION_CHUNK_DEFINITION, CONTROL_SOURCE_TOPIC, bag_typestore
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.pipeline import status
from vla_adapter_ros.recording.bag_format import read_episode_metadata
from vla_adapter_ros.recording.control_log import ControlLog

ALOHA = load_robot_description('aloha')
REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
POLICY, HANDOVER, OPERATOR = (status.CONTROL_POLICY, status.CONTROL_HANDOVER,
                              status.CONTROL_OPERATOR)


def test_intervals_start_at_each_change_and_the_last_ends_with_the_episode():
    log = ControlLog()
    for time_s, source in [(0.0, POLICY), (0.1, POLICY), (1.0, HANDOVER), (1.5, OPERATOR),
                           (2.0, 'someone'), (3.0, POLICY)]:
        log.update(T0 + int(time_s * 1e9), source)
    assert log.intervals(T0, T0 + 4 * 10**9) == [
        {'source': POLICY, 'start_s': 0.0, 'stop_s': 1.0},
        {'source': HANDOVER, 'start_s': 1.0, 'stop_s': 1.5},
        {'source': OPERATOR, 'start_s': 1.5, 'stop_s': 3.0},
        {'source': POLICY, 'start_s': 3.0, 'stop_s': 4.0}]
    summary = log.summary(T0, T0 + 4 * 10**9)
    assert (summary['takeovers'], summary['operator_s'], summary['unknown_messages']) == (1, 1.5,
                                                                                          1)
    assert log.intervals(T0, None)[-1] == {'source': POLICY, 'start_s': 3.0, 'stop_s': None}


def test_the_chunk_definition_is_the_message_file():
    text = (REPO_ROOT / 'vla_adapter_msgs' / 'msg' / 'ActionChunk.msg').read_text()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith('#')]
    assert '\n'.join(lines) == ACTION_CHUNK_DEFINITION


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_takeover_bag_holds_control_source_chunks_and_commands(tmp_path, storage):
    sources = [POLICY] * 20 + [HANDOVER] * 5 + [OPERATOR] * 15 + [POLICY] * 10
    episode = record_takeover_bag(tmp_path, sources, storage)
    control = read_episode_metadata(episode.path)['control']
    assert control['intervals'] == [
        {'source': POLICY, 'start_s': 0.0, 'stop_s': 0.4},
        {'source': HANDOVER, 'start_s': 0.4, 'stop_s': 0.5},
        {'source': OPERATOR, 'start_s': 0.5, 'stop_s': 0.8},
        {'source': POLICY, 'start_s': 0.8, 'stop_s': 1.0}]
    assert (control['takeovers'], control['operator_s']) == (1, 0.3)
    typestore = bag_typestore()
    with Reader(episode.path) as reader:
        by_topic: dict = {}
        for connection, time_ns, raw in reader.messages():
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            by_topic.setdefault(connection.topic, []).append((time_ns, message))
    assert [message.data for _, message in by_topic[CONTROL_SOURCE_TOPIC]] == sources
    chunks = [message for _, message in by_topic[CHUNK_TOPIC]]
    assert [chunk.sequence for chunk in chunks] == list(range(0, len(sources), CHUNK_EVERY))
    assert chunks[1].header.stamp.sec * 10**9 + chunks[1].header.stamp.nanosec == (
        T0 + CHUNK_EVERY * STEP_NS)
    np.testing.assert_allclose(chunks[1].right.points[2].positions, commanded(7)[7:])
    assert chunks[1].right.points[2].time_from_start.nanosec == 2 * STEP_NS
    assert len(chunks[1].left.points[0].velocities) == 0
    actions = np.stack([message.data for _, message in by_topic['/commanded_action']])
    np.testing.assert_allclose(actions[-1], ALOHA.joint_angles_to_policy(
        commanded(len(sources) - 1)), atol=1e-6)  # float32 commands
