"""`vla-adapter-view` over real DDS: every stream it shows, read back from its .rrd file.

fake_sensors.py (cameras and followers) and scripted_leader.py (leaders) run as processes; the
test's probe node publishes the policy's chunks, both PolicyStatus topics and the executor's
Interbotix commands (the test-only interbotix_xs_msgs). The view node runs as its own process,
is stopped with SIGTERM (as a launch stops it), and its recording is read with Rerun's reader.
"""

import subprocess
import sys

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_test_utils import SUPPORT_DIR, spin_until, start_python_process, stop_process
from rrd_contents import rrd_entities

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_ros.pipeline.conversions import action_chunk_message

interbotix = pytest.importorskip('interbotix_xs_msgs.msg',
                                 reason='scripts/build_test_interfaces.sh builds it')
ROBOT_FILE = str(SUPPORT_DIR.parent / 'fixtures' / 'robots' / 'aloha_fake_sensors.yaml')
ROBOT = load_robot_description(ROBOT_FILE)
REPO = SUPPORT_DIR.parents[1]
CHUNK_STEPS, STEP_S = 5, 0.02


@pytest.fixture()
def streams(tmp_path):
    processes = [
        start_python_process(SUPPORT_DIR / 'fake_sensors.py', '--robot-description', ROBOT_FILE,
                             '--duration', '120'),
        start_python_process(SUPPORT_DIR / 'scripted_leader.py', '--robot-description',
                             ROBOT_FILE, '--close-when', str(tmp_path / 'never'))]
    yield
    for process in processes:
        stop_process(process)


def chunk_angles(sequence: int) -> np.ndarray:
    """(CHUNK_STEPS, 14) joint angles around the start pose; step k adds 0.01 k + 0.1 seq."""
    steps = np.arange(CHUNK_STEPS)[:, None] * 0.01 + 0.1 * sequence
    return ROBOT.start_joint_angles()[None, :] + steps


def publish_everything(node, executor) -> list[int]:
    """Chunks, statuses and commands, once the view subscribes to them; the chunk stamps."""
    chunks = node.create_publisher(ActionChunk, 'action_chunk', 10)
    executor_status = node.create_publisher(PolicyStatus, 'executor_status', 10)
    group = node.create_publisher(interbotix.JointGroupCommand,
                                  '/follower_left/commands/joint_group', qos_profile_sensor_data)
    single = node.create_publisher(interbotix.JointSingleCommand,
                                   '/follower_left/commands/joint_single',
                                   qos_profile_sensor_data)
    assert spin_until(executor, lambda: all(publisher.get_subscription_count() for publisher in
                                            (chunks, executor_status, group, single)), 30.0)
    spin_until(executor, lambda: False, 1.0)  # the view's side of the match settles too
    stamps = []
    for sequence in range(3):
        stamp = node.get_clock().now().nanoseconds
        message, _ = action_chunk_message(stamp, ROBOT, chunk_angles(sequence), STEP_S, 'test')
        message.sequence, message.inference_ms = sequence, 50.0 + sequence
        chunks.publish(message)
        stamps.append(stamp)
        group.publish(interbotix.JointGroupCommand(name='arm', cmd=[0.5] * 6))
        single.publish(interbotix.JointSingleCommand(name='gripper', cmd=1.6214))  # open
        for state, reason in ((PolicyStatus.STATE_RUNNING, ''),
                              (PolicyStatus.STATE_FAULT, 'stale joint_states')):
            status = PolicyStatus(state=state, fault_reason=reason)
            status.header.stamp = node.get_clock().now().to_msg()
            executor_status.publish(status)
        spin_until(executor, lambda: False, 0.3)
    return stamps


def test_the_view_records_every_stream(tmp_path, streams, ros_probe):
    node, executor = ros_probe
    output = tmp_path / 'view.rrd'
    view = subprocess.Popen(
        [sys.executable, '-m', 'vla_adapter_ros.nodes.view_node', '--ros-args', '-p',
         f'robot_description:={ROBOT_FILE}', '-p', f'output:={output}', '-p', 'plan_slots:=2'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        stamps = publish_everything(node, executor)
        spin_until(executor, lambda: False, 1.5)  # cameras and joints keep flowing
    finally:
        log = stop_process(view, timeout_s=20.0)
    assert view.returncode == 0 and 'Traceback' not in log, log
    entities = rrd_entities(output)
    assert len(entities['/cameras/cam_high']['Image:buffer']) >= 5
    assert len(entities['/joints/right/elbow/measured']['Scalars:scalars']) >= 10
    leader = entities['/joints/left/gripper/leader']['Scalars:scalars']
    assert len(leader) >= 10 and leader[-1][0] == pytest.approx(1.0)  # open, leader calibration
    # Best effort, as the view subscribes: a first message may precede the match.
    shoulder = [row[0] for row in entities['/joints/left/shoulder/commanded']['Scalars:scalars']]
    gripper = [row[0] for row in entities['/joints/left/gripper/commanded']['Scalars:scalars']]
    assert 2 <= len(shoulder) <= 3 and shoulder == pytest.approx([0.5] * len(shoulder))
    assert 2 <= len(gripper) <= 3 and gripper == pytest.approx([1.0] * len(gripper))  # open
    # Chunks 0 and 2 in slot 0, at their future times, in policy units (rad; gripper 0..1).
    plan = entities['/joints/right/elbow/plan/0']
    times = [stamps[s] + round(k * STEP_S * 1e9) for s in (0, 2) for k in range(CHUNK_STEPS)]
    assert plan['ros_time'] == pytest.approx(times, abs=1)
    elbow = ROBOT.arms[1].joint_names.index('elbow') + ROBOT.arms[0].dim
    expected = np.concatenate([chunk_angles(0)[:, elbow], chunk_angles(2)[:, elbow]])
    assert [row[0] for row in plan['Scalars:scalars']] == pytest.approx(expected)
    assert len(entities['/joints/left/waist/plan/1']['ros_time']) == CHUNK_STEPS
    # Changes only, a fault as an error (the first status may precede the match: best effort).
    status = [row[0] for row in entities['/status/executor']['TextLog:text']]
    levels = [row[0] for row in entities['/status/executor']['TextLog:level']]
    assert set(status) == {'RUNNING', 'FAULT: stale joint_states'} and len(status) >= 4
    assert all(before != after for before, after in zip(status, status[1:]))
    assert all((level == 'ERROR') == text.startswith('FAULT') for text, level in
               zip(status, levels))


def test_a_remote_viewer_address_is_refused_in_one_line():
    result = subprocess.run(
        [sys.executable, '-m', 'vla_adapter_ros.nodes.view_node', '--ros-args', '-p',
         "output:=''", '-p', 'connect:=rerun+http://192.0.2.7:9876/proxy'],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 1
    assert "connect='rerun+http://192.0.2.7:9876/proxy': host '192.0.2.7' is not this machine" in (
        result.stderr + result.stdout)
    assert 'Traceback' not in result.stderr + result.stdout
