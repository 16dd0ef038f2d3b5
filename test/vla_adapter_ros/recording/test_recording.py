"""Episode recording without DDS: topic plans, the recorder config, bags, the drop counter.

Messages are serialised by rclpy exactly as a raw subscription receives them and handed to the
real EpisodeRecorder; bags are read back with rosbags (both storages).
"""

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from ros_test_utils import decode_joint_state
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
import yaml

from training.bag_types import bag_typestore
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.params.recorder_config import RecorderConfig
from vla_adapter_ros.recording.bag_format import (
    BAG_METADATA_VERSION,
    EPISODE_METADATA_NAME,
    RecordingError,
    build_topic_plan,
    read_episode_metadata,
)
from vla_adapter_ros.recording.episode_recorder import EpisodeRecorder

ALOHA = load_robot_description('aloha')
T0 = 1_700_000_000 * 10**9


def plan_for(robot=ALOHA, **overrides):
    options = {'action_source': 'leader_joint_states', 'camera_transport': 'raw',
               'jpeg_quality': 0, 'joint_states_topic': 'joint_states',
               'instruction_topic': '/instruction'}
    options.update(overrides)
    return build_topic_plan(robot, **options)


def image_bytes(value: int, height: int = 24, width: int = 32) -> bytes:
    message = Image(height=height, width=width, encoding='rgb8', step=width * 3)
    message.data = np.full((height, width, 3), value, dtype=np.uint8).tobytes()
    return serialize_message(message)


def joint_state_bytes(positions, stamp_ns: int) -> bytes:
    """A driver's joint_states as rclpy serialises them (no velocity or effort: empty arrays)."""
    names = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate',
             'gripper', 'left_finger', 'right_finger']
    message = JointState(name=names, position=[float(v) for v in positions])
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return serialize_message(message)


def test_plan_follows_the_robot_description():
    plan = plan_for()
    roles = [entry.role for entry in plan]
    assert roles == ['camera'] * 3 + ['follower_state'] * 2 + ['leader_state'] * 2 + [
        'instruction']
    assert [entry.topic for entry in plan[:3]] == list(ALOHA.camera_topics())
    assert plan[5].topic == '/leader_left/joint_states'
    jpeg = plan_for(jpeg_quality=80)[0]
    assert (jpeg.msgtype, jpeg.bag_msgtype) == ('sensor_msgs/msg/Image',
                                                'sensor_msgs/msg/CompressedImage')
    assert jpeg.bag_topic == '/cam_high/camera/color/image_rect_raw/compressed'
    compressed = plan_for(camera_transport='compressed')[0]
    assert compressed.topic == compressed.bag_topic == jpeg.bag_topic
    commands = [entry for entry in plan_for(action_source='executor_commands')
                if 'command' in entry.role]
    assert [entry.topic for entry in commands] == [
        '/follower_left/commands/joint_group', '/follower_left/commands/joint_single',
        '/follower_right/commands/joint_group', '/follower_right/commands/joint_single']


def test_config_errors_name_the_parameter_and_the_file(tmp_path):
    with pytest.raises(ValueError, match=r'robot_description=.*nope\.yaml.*no such file'):
        RecorderConfig.from_dict({'robot_description': str(tmp_path / 'nope.yaml')})
    with pytest.raises(ValueError, match=r"action_source.*'wx250s' has no leader arms"):
        RecorderConfig.from_dict({'robot_description': 'wx250s'})
    with pytest.raises(ValueError, match='jpeg_quality'):
        RecorderConfig.from_dict({'camera_transport': 'compressed', 'jpeg_quality': 90})
    with pytest.raises(ValueError, match='storage'):
        RecorderConfig.from_dict({'storage': 'bag'})
    config = RecorderConfig.from_dict({'robot_description': 'wx250s',
                                       'action_source': 'executor_commands'})
    assert config.robot.namespaces == ('wx250s',)


def make_recorder(tmp_path, storage='mcap', queue_size=1000, **plan_options):
    return EpisodeRecorder(plan_for(**plan_options), ALOHA, output_dir=tmp_path / 'bags',
                           storage=storage, queue_size=queue_size,
                           jpeg_quality=plan_options.get('jpeg_quality', 0),
                           static_metadata={'robot': ALOHA.summary()},
                           decode_joint_state=decode_joint_state)


def record_teleop_episode(recorder, steps=20):
    recorder.start('stack the cups', T0)
    for step in range(steps):
        time = T0 + step * 20_000_000
        for slot in range(3):
            recorder.offer(slot, time, image_bytes(step))
        for slot in range(3, 7):
            recorder.offer(slot, time, joint_state_bytes(np.arange(9) * 0.1 + slot, time))
    recorder.offer(7, T0, serialize_message(String(data='stack the cups')))
    return recorder.stop('service', T0 + steps * 20_000_000)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_reads_back_with_rosbags(tmp_path, storage):
    recorder = make_recorder(tmp_path, storage)
    episode = record_teleop_episode(recorder)
    recorder.set_success(False)
    assert recorder.wait_until_written(10)
    recorder.close(T0)
    typestore = bag_typestore()
    with Reader(episode.path) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        states = [typestore.deserialize_cdr(raw, c.msgtype)
                  for c, _, raw in reader.messages()
                  if c.topic == '/follower_left/joint_states']
    assert counts['/cam_high/camera/color/image_rect_raw'] == 20
    assert counts['/leader_right/joint_states'] == 20 and counts['/instruction'] == 1
    np.testing.assert_allclose(states[5].position, np.arange(9) * 0.1 + 3)
    assert states[5].header.stamp.nanosec == 100_000_000 and len(states[5].velocity) == 0
    standard = yaml.safe_load((episode.path / 'metadata.yaml').read_text())
    info = standard['rosbag2_bagfile_information']
    assert info['version'] == BAG_METADATA_VERSION == 8
    assert info['storage_identifier'] == storage and info['message_count'] == 141
    assert info['custom_data'] == {'instruction': 'stack the cups'}
    # Humble's reader wants offered_qos_profiles as a string (version 9 writes a list).
    assert all(isinstance(t['topic_metadata']['offered_qos_profiles'], str)
               for t in info['topics_with_message_count'])
    sidecar = read_episode_metadata(episode.path)
    assert sidecar['complete'] and sidecar['success'] is False
    assert sidecar['stop_reason'] == 'service' and sidecar['dropped_messages'] == 0
    assert sidecar['topics']['/leader_left/joint_states']['messages'] == 20
    assert sidecar['robot']['name'] == 'aloha' and sidecar['missing_topics'] == []


def test_jpeg_on_the_fly(tmp_path):
    recorder = make_recorder(tmp_path, jpeg_quality=90)
    episode = record_teleop_episode(recorder, steps=3)
    recorder.close(T0)
    typestore = bag_typestore()
    with Reader(episode.path) as reader:
        [connection] = [c for c in reader.connections
                        if c.topic == '/cam_high/camera/color/image_rect_raw/compressed']
        frames = [typestore.deserialize_cdr(raw, c.msgtype)
                  for c, _, raw in reader.messages(connections=[connection])]
    assert connection.msgtype == 'sensor_msgs/msg/CompressedImage' and len(frames) == 3
    assert frames[2].format == 'rgb8; jpeg compressed bgr8'
    assert bytes(frames[2].data[:2]) == b'\xff\xd8'  # a JPEG


def test_flooded_queue_drops_and_counts(tmp_path):
    recorder = make_recorder(tmp_path, queue_size=2)
    recorder.start('flood', T0)
    data = joint_state_bytes(np.zeros(9), T0)
    for index in range(500):
        recorder.offer(3, T0 + index, data)
    episode = recorder.stop('service', T0 + 10**9)
    recorder.close(T0)
    sidecar = read_episode_metadata(episode.path)
    written = sidecar['topics']['/follower_left/joint_states']['messages']
    assert sidecar['dropped_messages'] == episode.dropped == recorder.dropped_total > 0
    assert written + episode.dropped == 500
    assert recorder.status(T0)['dropped_messages'] == episode.dropped


def test_one_bag_per_episode_and_state_errors(tmp_path):
    recorder = make_recorder(tmp_path)
    with pytest.raises(RecordingError, match='not recording'):
        recorder.stop('service', T0)
    with pytest.raises(RecordingError, match='no episode'):
        recorder.set_success(True)
    first = recorder.start('a', T0)
    with pytest.raises(RecordingError, match='already recording'):
        recorder.start('b', T0)
    recorder.stop('topic', T0 + 1)
    second = recorder.start('b', T0 + 2)
    recorder.close(T0 + 3)  # stops the running episode
    assert (first.name, second.name) == ('episode_0000', 'episode_0001')
    assert read_episode_metadata(second.path)['stop_reason'] == 'shutdown'
    assert sorted(p.name for p in (tmp_path / 'bags').iterdir()) == [first.name, second.name]
    assert (first.path / EPISODE_METADATA_NAME).is_file()


def test_executor_commands_are_combined_in_policy_units(tmp_path):
    from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand

    recorder = make_recorder(tmp_path, action_source='executor_commands')
    recorder.start('drive', T0)
    slots = {entry.topic: slot for slot, entry in enumerate(recorder.plan)}
    angles = np.linspace(-0.5, 0.5, 14)
    angles[6], angles[13] = 1.0, 0.8  # gripper joint angles (rad)
    for arm, offset in (('follower_left', 0), ('follower_right', 7)):
        recorder.offer(slots[f'/{arm}/commands/joint_group'], T0, serialize_message(
            JointGroupCommand(name='arm', cmd=angles[offset:offset + 6].tolist())))
        recorder.offer(slots[f'/{arm}/commands/joint_single'], T0, serialize_message(
            JointSingleCommand(name='gripper', cmd=float(angles[offset + 6]))))
    recorder.offer(slots['/follower_left/commands/joint_single'], T0, serialize_message(
        JointSingleCommand(name='left_finger', cmd=0.0)))  # not combined
    episode = recorder.stop('service', T0 + 1)
    recorder.close(T0)
    typestore = bag_typestore()
    with Reader(episode.path) as reader:
        actions = [typestore.deserialize_cdr(raw, c.msgtype).data
                   for c, _, raw in reader.messages() if c.topic == '/commanded_action']
    assert len(actions) == 1  # once every arm had a group and a gripper command
    np.testing.assert_allclose(actions[0], ALOHA.joint_angles_to_policy(angles), atol=1e-6)
    assert read_episode_metadata(episode.path)['ignored_commands'] == 1
