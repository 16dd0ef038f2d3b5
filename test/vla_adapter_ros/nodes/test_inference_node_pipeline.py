"""The whole chain over real DDS on loopback: cameras -> policy -> executor -> Interbotix commands.

Run for three robot descriptions: ALOHA (two 6DOF ViperX 300 S), the 5-DOF WidowX 250 single
arm, and a robot described by a YAML file written only for this test (a 5-DOF arm with its own
namespace, joint names, command group, gripper joint and camera topic pattern): adding a robot
is one file, no code.

Processes: fake_sensors.py (the description's cameras, no joint states) and
fake_interbotix_driver.py (the drivers: joint states that follow the commands, and a
`BAD COMMAND` line for anything a real arm must never receive: wrong group or joint name, wrong
joint count, values outside the limits). In this process: the inference node with a real tiny
VLAPolicy recording the robot's layout, the chunk executor (both configured with only
`robot_description`), and a probe that records the commands. Checked: joint-group and gripper
commands for every arm with the driver's names and sizes, inside the limits, no step larger than
the executor's speed limit across chunk switches, and chunk stamps moving forward.
"""

import contextlib
import time

from inference_harness import (  # noqa: E402
    DEFAULT_PARAMS,
    FAKE_SENSORS,
    statistics_around_the_start_pose,
    tiny_policy_for,
)
from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros_test_utils import SUPPORT_DIR, spin_until, start_python_process, stop_process

from vla_adapter_core.robot_description import RobotDescription, load_robot_description
from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_ros.nodes.executor_node import ChunkExecutorNode
from vla_adapter_ros.nodes.inference_node import InferenceNode
from vla_adapter_ros.params.executor_config import ExecutorConfig

COMMANDS_TO_CHECK = 60  # 1.2 s of commands at 50 Hz after the first chunk was accepted
# 1 s of steps: a chunk stays usable even when a loaded CI machine makes inference slow.
CHUNK_SIZE = 50
# Staleness limits of this chain (default 0.5 s): a make test run once saw this whole process
# stall for 0.55 s on the loaded 2-core machine, and both nodes rightly faulted on stale
# inputs. Stale inputs have their own tests; this one checks the commands of a running chain.
STALL_TOLERANCE_S = 2.0

# A robot no code knows: one 5-DOF arm with its own names everywhere (the whole description,
# arm model inline). The limits are made up but physical (rad, rad/s).
CUSTOM_ROBOT_YAML = """\
name: my_robot
control_rate_hz: 50.0
cameras: [cam_top]
camera_topic: /{camera}/image_raw
followers:
  model:
    model: my_5dof
    arm_group: my_arm_group
    joints:
      base_yaw: {lower: -3.0, upper: 3.0, max_speed: 2.5}
      shoulder_pitch: {lower: -1.8, upper: 1.9, max_speed: 2.5}
      elbow_pitch: {lower: -2.1, upper: 1.6, max_speed: 2.5}
      wrist_pitch: {lower: -1.7, upper: 2.1, max_speed: 2.5}
      wrist_roll: {lower: -3.0, upper: 3.0, max_speed: 2.5}
    gripper:
      joint: claw
      max_speed: 2.5
      finger_joints: [claw_left, claw_right]
      finger_range: [0.015, 0.037]
  arms:
    - {namespace: my_arm, side: right}
  gripper: {joint_open: 1.1, joint_closed: -0.3}
  start_pose:
    {base_yaw: 0.2, shoulder_pitch: -0.5, elbow_pitch: 0.6, wrist_pitch: 0.3, wrist_roll: 0.0,
     gripper: open}
"""


@pytest.fixture(params=['aloha', 'wx250', 'custom_yaml'])
def robot_description(request, tmp_path) -> str:
    """A built-in robot name, or the path of a description written only for this test."""
    if request.param != 'custom_yaml':
        return request.param
    path = tmp_path / 'my_robot.yaml'
    path.write_text(CUSTOM_ROBOT_YAML)
    return str(path)


@contextlib.contextmanager
def running_chain(robot: RobotDescription, description: str, logs: dict):
    """Inference node + executor + probe here, fake drivers and cameras in child processes.

    ``logs`` receives every child's output when the chain stops.
    """
    policy = tiny_policy_for(robot, chunk_size=CHUNK_SIZE, seed=4,
                             head_kind='dual_arm' if robot.num_arms == 2 else 'l1',
                             statistics=statistics_around_the_start_pose(robot))
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes, processes = [], {}
    # One thread: rclpy's MultiThreadedExecutor stalls ticks on a loaded 2-core machine (see
    # benchmarks/executor_timing.py); inference runs in the node's own worker thread anyway.
    executor = SingleThreadedExecutor(context=context)
    try:
        robot_parameter = Parameter('robot_description', value=description)
        inference = InferenceNode(policy, context=context, parameter_overrides=[
            robot_parameter, Parameter('max_observation_age_s', value=STALL_TOLERANCE_S),
            *(Parameter(name, value=value) for name, value in DEFAULT_PARAMS.items())])
        runner = ChunkExecutorNode(context=context, parameter_overrides=[
            robot_parameter, Parameter('stale_observation_s', value=STALL_TOLERANCE_S)])
        probe = rclpy.create_node('command_probe', context=context)
        nodes.extend([inference, runner, probe])
        for node in nodes:
            executor.add_node(node)
        processes['driver'] = start_python_process(
            SUPPORT_DIR / 'fake_interbotix_driver.py', '--robot-description', description)
        processes['sensors'] = start_python_process(
            FAKE_SENSORS, '--robot-description', description, '--robots', '')
        yield executor, runner, probe
    finally:
        for name, process in processes.items():
            logs[name] = stop_process(process)
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=context)


def _max_steps(arrivals: list, ticks: np.ndarray) -> tuple[int, np.ndarray]:
    """(commands lost in transit, largest step per joint) of one arm's received commands.

    arrivals: [(monotonic arrival time, (J,) command)]; ticks: the executor's tick start times.
    The command topic keeps only the newest sample (depth 1), so a busy receiver may lose some:
    those show up as fewer commands than ticks over the same time span.
    """
    times = np.array([t for t, _ in arrivals])
    commands = np.array([c for _, c in arrivals])  # (N, J)
    ticks_in_span = int(np.sum((ticks >= times[0] - 0.01) & (ticks <= times[-1])))
    lost = max(0, ticks_in_span - len(arrivals))
    return lost, np.abs(np.diff(commands, axis=0)).max(axis=0)  # (J,)


def _record_commands(probe, robot: RobotDescription) -> tuple[dict, dict, set]:
    """Subscribe the probe to every arm's driver commands: (groups, grippers, group names)."""
    groups = {arm.namespace: [] for arm in robot.arms}
    grippers = {arm.namespace: [] for arm in robot.arms}
    group_names = set()

    def record(log: list):
        def callback(message: JointGroupCommand) -> None:
            log.append((time.monotonic(), np.array(message.cmd)))
            group_names.add(message.name)
        return callback

    for name in groups:
        probe.create_subscription(JointGroupCommand, f'/{name}/commands/joint_group',
                                  record(groups[name]), 100)
        probe.create_subscription(JointSingleCommand, f'/{name}/commands/joint_single',
                                  grippers[name].append, 100)
    return groups, grippers, group_names


def test_camera_streams_become_safe_continuous_interbotix_commands(robot_description):
    robot = load_robot_description(robot_description)
    logs, chunks, statuses = {}, [], []
    with running_chain(robot, robot_description, logs) as (executor, runner, probe):
        groups, grippers, group_names = _record_commands(probe, robot)
        probe.create_subscription(ActionChunk, 'action_chunk', chunks.append, 50)
        probe.create_subscription(PolicyStatus, 'executor_status', statuses.append, 50)

        def running() -> bool:
            return any(s.state == PolicyStatus.STATE_RUNNING for s in statuses) and (
                len(chunks) >= 2)

        assert spin_until(executor, running, 60.0), (
            f'executor never ran on chunks: {len(chunks)} chunks, states '
            f'{sorted({(s.state, s.fault_reason) for s in statuses})}')
        start = {name: len(log) for name, log in groups.items()}
        assert spin_until(executor, lambda: all(
            len(groups[name]) - start[name] >= COMMANDS_TO_CHECK for name in groups), 30.0)
        ticks = runner._ticks.stamps()  # monotonic tick starts (no public accessor)
    # The only fault allowed is the executor refusing a chunk that arrived too late (inference
    # on a loaded 2-core CI machine); any other fault is a failure.
    faults = {s.fault_reason for s in statuses if s.state == PolicyStatus.STATE_FAULT}
    assert all('chunk from the past' in fault for fault in faults), faults
    assert 'BAD COMMAND' not in logs['driver'], logs['driver']
    assert all('Traceback' not in log for log in logs.values()), logs

    assert group_names == {arm.model.arm_group for arm in robot.arms}
    config = ExecutorConfig(robot_description=robot_description)
    for arm in robot.arms:
        _check_arm_commands(arm, groups[arm.namespace][start[arm.namespace]:], ticks,
                            grippers[arm.namespace], config)
    assert chunks[-1].left.joint_names == list(robot.arms[0].command_joint_names)
    assert len(chunks[-1].right.joint_names) == (
        len(robot.arms[1].command_joint_names) if robot.num_arms == 2 else 0)
    stamps = [(c.header.stamp.sec, c.header.stamp.nanosec) for c in chunks]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert [c.sequence for c in chunks] == list(range(len(chunks)))


def _check_arm_commands(arm, window: list, ticks: np.ndarray, grippers: list,
                        config: ExecutorConfig) -> None:
    """One arm's commands: the model's joint count, inside the limits, speed-limited steps."""
    joints = len(arm.joint_names)
    lower, upper = arm.joint_angle_bounds()
    max_step = arm.max_joint_speed()[:joints] * config.speed_scale / config.rate_hz
    commands = np.array([c for _, c in window])  # (N, joints)
    assert commands.shape[1] == joints and np.all(np.isfinite(commands))
    assert np.all(commands >= lower[:joints] - 1e-4) and np.all(commands <= upper[:joints] + 1e-4)
    lost, steps = _max_steps(window, ticks)
    # Continuity: no step between consecutive commands beyond the speed limit (a lost command
    # in between allows one more step's worth per lost command).
    assert np.all(steps <= max_step * (1 + lost) + 1e-4), (arm.namespace, lost, steps)
    assert np.any(steps > 1e-6), 'the arm never moved: chunks were not played'
    assert {g.name for g in grippers} == {arm.model.gripper_joint}
    gripper = np.array([g.cmd for g in grippers])
    assert np.all(gripper >= lower[-1] - 1e-4) and np.all(gripper <= upper[-1] + 1e-4)
