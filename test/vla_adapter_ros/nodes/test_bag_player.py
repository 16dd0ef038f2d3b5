"""The bag player over real DDS, and a live replay scored with the replay metrics.

The live replay is the launch description's own ``replay_bag`` node set (build_node_specs): the
player in a child process (its console script's command line), the inference node (a real tiny
policy) and the executor in this process with the specs' command lines (parameters, namespace,
remappings), all on the player's /clock. A recorder records the executor's commands (remapped
to the replay namespace); vla-adapter-replay-eval --commands scores them against the bag.
"""

import json
import pathlib
import threading
import time

from interbotix_xs_msgs.msg import JointGroupCommand
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros_test_utils import SUPPORT_DIR, spin_until, start_python_process, stop_process
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.bringup.launch_description import build_node_specs, ros_command_line
from vla_adapter_ros.nodes.bag_player_node import BagPlayerNode, bag_time_at, playback_times
from vla_adapter_ros.nodes.executor_node import ChunkExecutorNode
from vla_adapter_ros.nodes.inference_node import InferenceNode
from vla_adapter_ros.nodes.recorder_node import EpisodeRecorderNode
from vla_adapter_ros.params.player_config import PlayerConfig, is_command_topic
from vla_adapter_ros.replay import replay_eval

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
from inference_harness import statistics_around_the_start_pose, tiny_policy_for  # noqa: E402
from replay_bags import T0, BagWriter, write_episode  # noqa: E402

ALOHA = load_robot_description('aloha')
CAMERA_TOPIC = ALOHA.camera_topics()[0]


def test_playback_pace_commands_and_config():
    times = np.array([T0, T0 + 10**9, T0 + 3 * 10**9])
    np.testing.assert_allclose(playback_times(times, 5.0, 2.0), [5.0, 5.5, 6.5])
    assert bag_time_at(4.0, 5.0, T0, 1.0) == T0  # before the start: the bag start
    assert bag_time_at(5.5, 5.0, T0, 2.0) == T0 + 10**9
    assert is_command_topic('/follower_left/commands/joint_group', 'x')
    assert is_command_topic('/a', 'interbotix_xs_msgs/msg/JointSingleCommand')
    assert is_command_topic('/action_chunk', 'vla_adapter_msgs/msg/ActionChunk')
    assert not is_command_topic('/follower_left/joint_states', 'sensor_msgs/msg/JointState')
    with pytest.raises(ValueError, match='exclusive with publish_clock'):
        PlayerConfig(bag='x', restamp=True)
    with pytest.raises(ValueError, match='carry commands'):
        PlayerConfig(bag='x', topics=('/follower_left/commands/joint_single',))
    with pytest.raises(ValueError, match='parameter bag'):
        PlayerConfig()


def _bag_with_a_command(tmp_path) -> pathlib.Path:
    """A short ALOHA bag that also holds a recorded command topic (must never be played)."""
    bag = write_episode(tmp_path / 'played', ALOHA, seconds=0.6, leader_actions=True)
    writer = BagWriter(tmp_path / 'with_command')
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        for connection, time_ns, raw in reader.messages():
            writer._write(connection.topic, connection.msgtype,
                          writer.typestore.deserialize_cdr(raw, connection.msgtype), time_ns)
    writer.float_array('/follower_left/commands/joint_group', T0 + 10**8, [0.0] * 6)
    writer.close()
    return tmp_path / 'with_command'


@pytest.mark.parametrize('restamp', [False, True])
def test_player_publishes_the_bag_at_its_pace_and_never_a_command(tmp_path, restamp):
    bag = _bag_with_a_command(tmp_path)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    probe = rclpy.create_node('player_probe', context=context)
    images, states, clocks, commands = [], [], [], []
    probe.create_subscription(Image, CAMERA_TOPIC, lambda m: images.append(
        (time.monotonic(), m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)), 100)
    probe.create_subscription(JointState, '/follower_left/joint_states', states.append, 100)
    probe.create_subscription(Clock, '/clock', lambda m: clocks.append(
        m.clock.sec * 10**9 + m.clock.nanosec), 100)
    probe.create_subscription(Float64MultiArray, '/follower_left/commands/joint_group',
                              commands.append, 10)
    player = None
    try:
        overrides = [Parameter('bag', value=str(bag)), Parameter('rate', value=2.0),
                     Parameter('start_delay_s', value=0.5),
                     Parameter('publish_clock', value=not restamp),
                     Parameter('restamp', value=restamp),
                     Parameter('exit_when_done', value=False)]
        started_ns = time.time_ns()
        player = BagPlayerNode(context=context, parameter_overrides=overrides)
        executor.add_node(probe)
        executor.add_node(player)
        assert spin_until(executor, player.finished.is_set, 20.0)
        spin_until(executor, lambda: False, 0.3)
    finally:
        executor.shutdown()
        probe.destroy_node()
        if player is not None:
            player.destroy_node()
        rclpy.shutdown(context=context)
    assert len(images) == int(0.6 * 30) + 1 and len(states) == int(0.6 * 50) + 1
    assert not commands and '/follower_left/commands/joint_group' not in player._topic_publishers
    arrival = np.array([t for t, _ in images])
    stamps = np.array([s for _, s in images])
    # Recorded spacing / rate 2: 0.6 s of camera frames in about 0.3 s.
    assert 0.2 < arrival[-1] - arrival[0] < 0.6
    if restamp:
        assert stamps[0] > started_ns and np.all(np.diff(stamps) > 0)
        np.testing.assert_allclose(np.diff(stamps) / 1e9, 1 / 30 / 2, atol=1e-3)
    else:
        assert stamps[0] == T0 and clocks and clocks[0] >= T0 - 10**8
        assert np.all(np.diff(clocks) >= 0) and clocks[-1] >= stamps[-1]


def _node_args(spec) -> list:
    """The spec's command line as in-process cli_args (the params-file / -p / -r rules)."""
    return ros_command_line(spec)


def test_live_replay_commands_only_the_replay_namespace_and_is_scored(tmp_path):
    bag = write_episode(tmp_path / 'episode', ALOHA, seconds=4.0, leader_actions=True)
    policy = tiny_policy_for(ALOHA, chunk_size=25, seed=4, head_kind='dual_arm',
                             statistics=statistics_around_the_start_pose(ALOHA))
    specs = {spec.name: spec for spec in build_node_specs('dual', {
        'checkpoint': str(tmp_path), 'replay_bag': str(bag), 'device': 'cpu',
        'instruction': 'pick up the cube'}, REPO)}
    assert set(specs) == {'vla_inference', 'chunk_executor', 'bag_player'}
    assert specs['chunk_executor'].namespace == 'replay'
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes, threads, logs = [], [], {}
    player = None
    real_commands, replay_commands = [], []
    try:
        inference = InferenceNode(policy, context=context, cli_args=_node_args(
            specs['vla_inference']), parameter_overrides=[
            Parameter('image_height', value=24), Parameter('image_width', value=32)])
        runner = ChunkExecutorNode(context=context, cli_args=_node_args(specs['chunk_executor']),
                                   parameter_overrides=[Parameter('startup_speed', value=3.0)])
        remaps = []
        for arm in ALOHA.arms:
            for name in ('joint_group', 'joint_single'):
                remaps += ['-r', f'/{arm.namespace}/commands/{name}:='
                           f'/replay/{arm.namespace}/commands/{name}']
        recorder = EpisodeRecorderNode(context=context, cli_args=['--ros-args', *remaps],
                                       parameter_overrides=[
            Parameter('output_dir', value=str(tmp_path / 'commands')),
            Parameter('action_source', value='executor_commands'),
            Parameter('require_all_topics', value=False), Parameter('use_sim_time', value=True),
            Parameter('instruction', value='pick up the cube')])
        probe = rclpy.create_node('replay_probe', context=context)
        probe.create_subscription(JointGroupCommand, '/follower_left/commands/joint_group',
                                  real_commands.append, 10)
        probe.create_subscription(JointGroupCommand, '/replay/follower_left/commands/joint_group',
                                  replay_commands.append, 100)
        nodes = [inference, runner, recorder, probe]
        for node in nodes:
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, daemon=True)
            thread.start()
            threads.append((executor, thread))
        recorder.start_episode()
        spec = specs['bag_player']
        player = start_python_process(SUPPORT_DIR / 'run_node.py', spec.executable,
                                      *ros_command_line(spec))
        deadline = time.monotonic() + 60.0
        while player.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert player.poll() == 0, 'the player did not finish the bag'
        accepted_chunks = runner.status_snapshot()['accepted_chunks']
        recorder.stop_episode('test')
        recorder.shutdown_recorder()
    finally:
        if player is not None:
            logs['player'] = stop_process(player)
        for executor, thread in threads:
            executor.shutdown(timeout_sec=2.0)
            thread.join(timeout=5.0)
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=context)
    assert 'replay finished' in logs['player'], logs['player']
    assert not real_commands, 'a replay commanded a driver topic'
    assert len(replay_commands) > 50 and accepted_chunks > 5
    command_bag = tmp_path / 'commands' / 'episode_0000'
    output = tmp_path / 'live_report'
    status = replay_eval.main(['--bag', str(bag), '--commands', str(command_bag), '--output',
                               str(output), '--no_progress'])
    assert status == 0
    metrics = json.loads((output / 'metrics.json').read_text())
    live = metrics['live']
    assert metrics['kind'] == 'live_replay' and live['samples'] > 50
    assert np.isfinite(live['l1']) and len(live['l1_per_dim']) == ALOHA.action_dim


def test_replay_launch_never_wires_the_executor_to_a_driver(tmp_path):
    bag = write_episode(tmp_path / 'episode', ALOHA, seconds=0.2, leader_actions=True)
    values = {'checkpoint': str(tmp_path), 'replay_bag': str(bag)}
    inference, executor, player = build_node_specs('dual', values, REPO)
    assert (player.name, player.parameters) == ('bag_player', [
        {'bag': str(bag.resolve()), 'publish_clock': True}])
    assert inference.parameters[-1] == {'use_sim_time': True}
    # No start-up pre-flight: the bag's sensors are what was recorded, and nothing is driven.
    assert executor.namespace == 'replay' and executor.parameters[-1] == {
        'chunk_topic': '/action_chunk', 'estop_topic': '/estop', 'set_gripper_mode': False,
        'preflight_window_s': 0.0, 'use_sim_time': True}
    assert executor.remappings == [('/replay/follower_left/joint_states',
                                    '/follower_left/joint_states'),
                                   ('/replay/follower_right/joint_states',
                                    '/follower_right/joint_states')]
    assert '__ns:=/replay' in ros_command_line(executor)
    single = build_node_specs('single', {**values, 'robot': 'aloha'}, REPO)
    assert [spec.name for spec in single] == ['vla_inference', 'chunk_executor', 'bag_player']
    with pytest.raises(ValueError, match='drop use_sim'):
        build_node_specs('dual', {**values, 'use_sim': 'true'}, REPO)
    with pytest.raises(ValueError, match='replay_bag=.*is not a rosbag2 bag'):
        build_node_specs('dual', {**values, 'replay_bag': str(tmp_path / 'nothing')}, REPO)
