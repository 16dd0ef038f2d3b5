"""The episode recorder node over real DDS: services, topics, fixed length, drops, bad input.

fake_sensors.py child processes publish the ALOHA cameras and follower joint states, and (a
second one) the leader arms' joint states; the recorder node and a probe node run in this
process, each spun in a thread of its own. Bags are read back with rosbags, with the training
reader (training.dataset.load_episodes) and, exported, with h5py and AlohaHdf5Episode.
"""

import pathlib
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from fake_sensors import camera_frame, observed_state  # noqa: E402
import h5py
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros_test_utils import SUPPORT_DIR, start_python_process, stop_process
from rosbags.rosbag2 import Reader
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger
from takeover_bags import chunk_message  # noqa: E402

from training.bag_types import bag_typestore
from training.corrections import OPERATOR
from training.data_config import DatasetConfig
from training.dataset import load_episodes
from training.episodes import AlohaHdf5Episode
from training.export_hdf5 import main as export_main
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_msgs.msg import ActionChunk
from vla_adapter_ros.nodes.recorder_node import EpisodeRecorderNode
from vla_adapter_ros.nodes.takeover_interface import CONTROL_SOURCE_QOS
from vla_adapter_ros.pipeline.conversions import stamp_to_nanoseconds
from vla_adapter_ros.recording import episode_recorder
from vla_adapter_ros.recording.bag_format import read_episode_metadata

HERE = pathlib.Path(__file__).resolve().parent
FAKE_SENSORS = SUPPORT_DIR / 'fake_sensors.py'
RUN_NODE = SUPPORT_DIR / 'run_node.py'
ALOHA = load_robot_description('aloha')
INSTRUCTION = 'put the cube in the bowl'
LATENCY_ALLOWANCE_NS = 50_000_000


@pytest.fixture(scope='module')
def sensors():
    """Cameras (48x64 at 20 Hz) + follower joint states, and the leaders' joint states."""
    processes = [start_python_process(FAKE_SENSORS, '--duration', '240'),
                 start_python_process(FAKE_SENSORS, '--duration', '240', '--cameras', '',
                                      '--robots', 'leader_left,leader_right')]
    yield processes
    for process in processes:
        assert 'sensors ready' in stop_process(process)


class RecorderHarness:
    """The recorder node and a probe, each spinning in its own thread (private context)."""

    def __init__(self, parameters: dict) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = EpisodeRecorderNode(context=self.context, parameter_overrides=overrides)
        self.probe = rclpy.create_node('recorder_probe', context=self.context)
        self.diagnostics: list = []
        self.probe.create_subscription(DiagnosticArray, '/diagnostics',
                                       self.diagnostics.append, 10)
        self.record = self.probe.create_publisher(Bool, '/episode_recorder/record', 10)
        self.success = self.probe.create_publisher(Bool, '/episode_recorder/success', 10)
        self.executors, self.threads = [], []
        for node in (self.node, self.probe):
            executor = SingleThreadedExecutor(context=self.context)
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, daemon=True)
            thread.start()
            self.executors.append(executor)
            self.threads.append(thread)

    def call(self, service_type, name: str, request=None):
        client = self.probe.create_client(service_type, f'/episode_recorder/{name}')
        assert client.wait_for_service(timeout_sec=10.0), name
        future = client.call_async(request or service_type.Request())
        deadline = time.monotonic() + 10.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done(), name
        return future.result()

    def wait_for(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f'timed out waiting for {what}'
            time.sleep(0.05)

    def wait_for_publishers(self) -> None:
        self.wait_for(lambda: not self.node.topic_problems(), 15.0, 'the sensor publishers')

    def close(self) -> None:
        self.node.shutdown_recorder()
        for executor in self.executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in self.threads:
            thread.join(timeout=5.0)
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture()
def make_harness(request, tmp_path, sensors):
    def make(wait_for_publishers: bool = True, **parameters) -> RecorderHarness:
        assert all(process.poll() is None for process in sensors), 'a sensor process died'
        values = {'output_dir': str(tmp_path / 'bags'), 'instruction': INSTRUCTION,
                  'status_rate_hz': 20.0, **parameters}
        harness = RecorderHarness(values)
        request.addfinalizer(harness.close)
        if wait_for_publishers:
            harness.wait_for_publishers()
        return harness
    return make


def bag_counts(bag: pathlib.Path) -> dict:
    with Reader(bag) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def stamped_within(bag: pathlib.Path, start_ns: int, stop_ns: int) -> dict:
    """Per topic, the messages whose header stamp lies in the episode's window.

    The bag's counts also hold messages that a stalled executor delivered after the start
    although they were sent before it (the subscriptions' queues hold them), so a count
    bound holds only for the stamps. Publish-to-receive latency is allowed for at the start.
    """
    typestore = bag_typestore()
    counts: dict = {}
    with Reader(bag) as reader:
        for connection, _, raw in reader.messages():
            if connection.msgtype not in ('sensor_msgs/msg/Image', 'sensor_msgs/msg/JointState'):
                continue
            stamp_ns = stamp_to_nanoseconds(
                typestore.deserialize_cdr(raw, connection.msgtype).header.stamp)
            if start_ns - LATENCY_ALLOWANCE_NS <= stamp_ns <= stop_ns:
                counts[connection.topic] = counts.get(connection.topic, 0) + 1
    return counts


def check_training_reader(bag: pathlib.Path, cache: pathlib.Path, **options) -> None:
    config = DatasetConfig(paths=[str(bag)], robot='aloha', cache_dir=str(cache), **options)
    [episode] = load_episodes(config)
    assert episode.instruction == INSTRUCTION and len(episode) > 20
    expected = np.concatenate([observed_state(arm, index)
                               for index, arm in enumerate(ALOHA.arms)])
    np.testing.assert_allclose(episode.proprio[len(episode) // 2], expected, atol=1e-5)
    images = episode.read_images(len(episode) // 2)
    assert images['cam_high'].shape == (48, 64, 3)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_episode_by_service_reads_back(make_harness, tmp_path, storage):
    harness = make_harness(storage=storage)
    response = harness.call(Trigger, 'start_episode')
    assert response.success, response.message
    bag = pathlib.Path(response.message)
    time.sleep(1.5)
    stopped = harness.call(Trigger, 'stop_episode')
    assert stopped.success and stopped.message == str(bag)
    assert not harness.call(Trigger, 'stop_episode').success  # not recording
    assert harness.call(SetBool, 'set_success', SetBool.Request(data=True)).success
    assert harness.node.recorder.wait_until_written(10.0)
    harness.wait_for(lambda: read_episode_metadata(bag).get('success') is True, 5.0, 'success')

    counts = bag_counts(bag)
    sidecar = read_episode_metadata(bag)
    in_window = stamped_within(bag, sidecar['start_time_ns'], sidecar['stop_time_ns'])
    for topic in ALOHA.camera_topics():
        assert counts[topic][0] == 'sensor_msgs/msg/Image' and 15 <= in_window[topic] <= 33
    for arm in ('follower_left', 'follower_right', 'leader_left', 'leader_right'):
        topic = f'/{arm}/joint_states'
        assert counts[topic][0] == 'sensor_msgs/msg/JointState'
        assert 40 <= in_window[topic] <= 80
    typestore = bag_typestore()
    with Reader(bag) as reader:
        first = next(raw for c, _, raw in reader.messages() if c.topic == ALOHA.camera_topics()[0])
        image = typestore.deserialize_cdr(first, 'sensor_msgs/msg/Image')
    np.testing.assert_array_equal(image.data.reshape(48, 64, 3), camera_frame(0, 48, 64))
    assert sidecar['complete'] and sidecar['instruction'] == INSTRUCTION
    assert sidecar['dropped_messages'] == 0 and sidecar['storage'] == storage
    assert sidecar['robot']['name'] == 'aloha' and 'followers' in sidecar['robot_description_yaml']
    assert sidecar['git_revision'] and sidecar['software']['rosbags'] == '0.11.9'
    assert 1.4 < sidecar['duration_s'] < 4.0 and sidecar['missing_topics'] == []
    check_training_reader(bag, tmp_path / 'cache')
    status = harness.diagnostics[-1].status[0]
    values = {item.key: item.value for item in status.values}
    assert values['dropped_messages'] == '0' and values['episodes_finished'] == '1'

    assert export_main(['--bag', str(bag), '--output', str(tmp_path / 'ep.hdf5')]) == 0
    with h5py.File(tmp_path / 'ep.hdf5', 'r') as root:
        steps = root['/action'].shape[0]
        assert root['/action'].shape == (steps, 14) and root['/action'].dtype == np.float32
        assert root['/observations/qvel'].shape == root['/observations/effort'].shape
        assert root['/compress_len'].shape == (3, steps) and root.attrs['success']
    episode = AlohaHdf5Episode(tmp_path / 'ep.hdf5', DatasetConfig(paths=['x'], robot='aloha'))
    frame = episode.read_images(0)['cam_left_wrist'].astype(int)
    assert np.abs(frame - camera_frame(1, 48, 64)).mean() < 60  # JPEG of noise, not swapped


def test_topic_control_jpeg_and_fixed_length(make_harness, tmp_path):
    harness = make_harness(jpeg_quality=90, max_episode_s=1.0)
    harness.record.publish(Bool(data=True))
    harness.wait_for(lambda: harness.node.recorder.episodes_finished == 1, 10.0,
                     'the fixed-length stop')
    first = tmp_path / 'bags' / 'episode_0000'
    sidecar = read_episode_metadata(first)
    assert sidecar['stop_reason'] == 'max_episode_s' and 0.95 <= sidecar['duration_s'] <= 2.0
    harness.success.publish(Bool(data=False))
    harness.wait_for(lambda: read_episode_metadata(first).get('success') is False, 5.0,
                     'the success topic')
    counts = bag_counts(first)
    compressed = f'{ALOHA.camera_topics()[0]}/compressed'
    assert counts[compressed][0] == 'sensor_msgs/msg/CompressedImage'
    assert ALOHA.camera_topics()[0] not in counts

    harness.record.publish(Bool(data=True))  # a second episode, one bag of its own
    harness.wait_for(lambda: harness.node.recorder.recording is not None, 5.0, 'start')
    time.sleep(0.6)
    harness.record.publish(Bool(data=False))
    harness.wait_for(lambda: harness.node.recorder.episodes_finished == 2, 10.0, 'stop')
    second = tmp_path / 'bags' / 'episode_0001'
    assert read_episode_metadata(second)['stop_reason'] == 'topic'
    assert sorted(path.name for path in (tmp_path / 'bags').iterdir()) == [
        'episode_0000', 'episode_0001']
    check_training_reader(first, tmp_path / 'cache')


def test_slow_disk_drops_are_counted_and_reported(make_harness, monkeypatch):
    write = episode_recorder.EpisodeBagWriter.write

    def slow_write(self, *args) -> None:
        time.sleep(0.02)  # a disk far slower than the sensors
        write(self, *args)

    monkeypatch.setattr(episode_recorder.EpisodeBagWriter, 'write', slow_write)
    harness = make_harness(queue_size=5)
    bag = pathlib.Path(harness.call(Trigger, 'start_episode').message)
    time.sleep(1.0)
    harness.call(Trigger, 'stop_episode')
    assert harness.node.recorder.wait_until_written(10.0)
    dropped = read_episode_metadata(bag)['dropped_messages']
    assert dropped > 20

    def reported() -> bool:
        status = harness.diagnostics[-1].status[0] if harness.diagnostics else None
        values = {item.key: item.value for item in status.values} if status else {}
        return values.get('dropped_messages') == str(dropped) and status.level == b'\x01'
    harness.wait_for(reported, 5.0, 'the dropped counter in /diagnostics (WARN)')


def test_missing_topic_refuses_to_start(make_harness, tmp_path):
    robot = tmp_path / 'aloha_low.yaml'
    robot.write_text('extends: aloha\nname: aloha_low\ncameras: [cam_high, cam_low]\n')
    harness = RecorderHarness({'output_dir': str(tmp_path / 'bags'), 'instruction': 'x',
                               'robot_description': str(robot)})
    try:
        response = harness.call(Trigger, 'start_episode')
    finally:
        harness.close()
    assert not response.success
    assert '/cam_low/camera/color/image_rect_raw has no publisher' in response.message
    assert not (tmp_path / 'bags').exists() or not list((tmp_path / 'bags').iterdir())


def test_wrong_description_stops_the_node_naming_it(tmp_path):
    missing = tmp_path / 'no_such_robot.yaml'
    process = start_python_process(RUN_NODE, 'vla-adapter-record', '--ros-args', '-p',
                                   f'robot_description:={missing}')
    process.wait(timeout=60)
    output = stop_process(process)
    assert process.returncode == 1, output
    assert 'cannot start' in output and str(missing) in output


def test_executor_commands_train_as_the_action_topic(make_harness, tmp_path):
    from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand

    harness = make_harness(action_source='executor_commands', wait_for_publishers=False)
    angles = ALOHA.start_joint_angles()  # (14,) rad
    publishers = []
    for index, arm in enumerate(ALOHA.arms):
        group = harness.probe.create_publisher(JointGroupCommand,
                                               f'/{arm.namespace}/commands/joint_group', 10)
        single = harness.probe.create_publisher(JointSingleCommand,
                                                f'/{arm.namespace}/commands/joint_single', 10)
        part = angles[index * 7:(index + 1) * 7]
        publishers.append((group, JointGroupCommand(name='arm', cmd=part[:6].tolist()),
                           single, JointSingleCommand(name='gripper', cmd=float(part[6]))))

    def command() -> None:
        for group, group_message, single, single_message in publishers:
            group.publish(group_message)
            single.publish(single_message)

    harness.probe.create_timer(0.02, command)
    harness.wait_for(lambda: not harness.node.topic_problems(), 10.0, 'command publishers')
    bag = pathlib.Path(harness.call(Trigger, 'start_episode').message)
    time.sleep(1.5)
    harness.call(Trigger, 'stop_episode')
    assert harness.node.recorder.wait_until_written(10.0)
    counts = bag_counts(bag)
    assert counts['/follower_right/commands/joint_group'][0] == (
        'interbotix_xs_msgs/msg/JointGroupCommand')
    assert counts['/commanded_action'][1] > 20
    config = DatasetConfig(paths=[str(bag)], robot='aloha', action_source='topic',
                           action_topic='/commanded_action', cache_dir=str(tmp_path / 'c'))
    [episode] = load_episodes(config)
    np.testing.assert_allclose(episode.actions[5], ALOHA.joint_angles_to_policy(angles),
                               atol=1e-6)


def test_takeover_run_records_the_control_source_and_the_chunks(make_harness, tmp_path):
    """A policy run's recorder (launch record:=true): control intervals, chunks, corrections."""
    from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand

    harness = make_harness(action_source='executor_commands', wait_for_publishers=False,
                           control_source_topic='/control_source', chunk_topic='/action_chunk')
    source = {'now': 'policy'}
    control = harness.probe.create_publisher(String, '/control_source', CONTROL_SOURCE_QOS)
    chunks = harness.probe.create_publisher(ActionChunk, '/action_chunk', 10)
    angles = ALOHA.start_joint_angles()
    commands = []
    for index, arm in enumerate(ALOHA.arms):
        part = angles[index * 7:(index + 1) * 7]
        base = f'/{arm.namespace}/commands'
        commands += [(harness.probe.create_publisher(JointGroupCommand, f'{base}/joint_group',
                                                     10),
                      JointGroupCommand(name='arm', cmd=part[:6].tolist())),
                     (harness.probe.create_publisher(JointSingleCommand,
                                                     f'{base}/joint_single', 10),
                      JointSingleCommand(name='gripper', cmd=float(part[6])))]

    def tick() -> None:  # the executor: commands every tick, its control source
        for publisher, message in commands:
            publisher.publish(message)
        control.publish(String(data=source['now']))

    sequence = iter(range(10**6))
    harness.probe.create_timer(0.02, tick)
    harness.probe.create_timer(0.2, lambda: chunks.publish(chunk_message(
        next(sequence), harness.probe.get_clock().now().nanoseconds)))
    harness.wait_for(lambda: not harness.node.topic_problems(), 10.0, 'the publishers')
    bag = pathlib.Path(harness.call(Trigger, 'start_episode').message)
    for state in ('policy', 'handover', 'operator', 'policy'):
        source['now'] = state
        time.sleep(0.8)
    harness.call(Trigger, 'stop_episode')
    assert harness.node.recorder.wait_until_written(10.0)
    control_info = read_episode_metadata(bag)['control']
    assert [entry['source'] for entry in control_info['intervals']] == [
        'policy', 'handover', 'operator', 'policy']
    assert control_info['takeovers'] == 1 and 0.3 < control_info['operator_s'] < 1.5
    counts = bag_counts(bag)
    assert counts['/action_chunk'][0] == 'vla_adapter_msgs/msg/ActionChunk'
    assert counts['/action_chunk'][1] >= 5 and counts['/control_source'][1] > 50
    typestore = bag_typestore()
    with Reader(bag) as reader:
        decoded = [typestore.deserialize_cdr(raw, connection.msgtype)
                   for connection, _, raw in reader.messages()
                   if connection.topic == '/action_chunk']
    assert decoded and all(len(chunk.left.points) == 10 for chunk in decoded)
    config = DatasetConfig(paths=[str(bag)], robot='aloha', action_source='topic',
                           action_topic='/commanded_action', cache_dir=str(tmp_path / 'c'))
    [episode] = load_episodes(config)
    assert episode.control is not None and (episode.control == OPERATOR).sum() > 15
