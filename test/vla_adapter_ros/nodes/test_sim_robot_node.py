"""The simulated robot node over real DDS: commands move the arms, cameras and states stream."""

import subprocess
import sys

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from interbotix_xs_msgs.srv import OperatingModes
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_test_utils import spin_until, stop_process
from sensor_msgs.msg import Image, JointState

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.nodes.sim_robot_node import SimulatedRobotNode
from vla_adapter_ros.pipeline.conversions import image_to_rgb, joint_positions_by_name

ALOHA_CAMERAS = load_robot_description('aloha').cameras[:2]
# (robot description, extra parameters, camera to watch); the arm watched is the last one.
CASES = {
    'aloha': ('aloha', ['-p', f'camera_names:=[{", ".join(ALOHA_CAMERAS)}]'], ALOHA_CAMERAS[1]),
    'wx250_renamed': ('wx250', ['-p', 'robot_names:=[my_arm]'], None),
}


@pytest.fixture(params=list(CASES))
def sim_process(request):
    robot, extra, camera = CASES[request.param]
    process = subprocess.Popen(
        [sys.executable, '-m', 'vla_adapter_ros.nodes.sim_robot_node', '--ros-args',
         '-p', f'robot_description:={robot}', '-p', 'image_height:=120',
         '-p', 'image_width:=160', *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    description = load_robot_description(robot)
    if request.param == 'wx250_renamed':
        description = description.with_namespaces(['my_arm'])
    yield process, description, camera or description.cameras[-1]
    stop_process(process)


def test_simulated_robot_streams_and_follows_commands(sim_process, ros_probe):
    process, robot, camera = sim_process
    node, executor = ros_probe
    arm = robot.arms[-1]
    states: list[JointState] = []
    images: list[Image] = []
    node.create_subscription(JointState, f'/{arm.namespace}/joint_states', states.append,
                             qos_profile_sensor_data)
    node.create_subscription(Image, robot.camera_topic.format(camera=camera), images.append,
                             qos_profile_sensor_data)
    group = node.create_publisher(JointGroupCommand, f'/{arm.namespace}/commands/joint_group',
                                  10)
    single = node.create_publisher(JointSingleCommand,
                                   f'/{arm.namespace}/commands/joint_single', 10)
    modes = node.create_client(OperatingModes, f'/{arm.namespace}/set_operating_modes')

    assert spin_until(executor, lambda: len(states) > 5 and len(images) > 2, timeout_s=30.0), (
        stop_process(process))
    assert image_to_rgb(images[-1]).shape == (120, 160, 3)
    assert tuple(states[-1].name) == arm.driver_joint_names
    start = arm.joint_angles_from_action(arm.start_pose)
    np.testing.assert_allclose(
        joint_positions_by_name(states[0], arm.command_joint_names), start, atol=1e-3)

    assert modes.wait_for_service(timeout_sec=10.0)
    future = modes.call_async(OperatingModes.Request(
        cmd_type='single', name=arm.model.gripper_joint, mode='current_based_position'))
    assert spin_until(executor, future.done, timeout_s=10.0)

    target = np.linspace(0.1, 0.4, len(arm.joint_names))  # inside every Interbotix limit
    gripper = arm.gripper.joint_open

    def reached() -> bool:
        group.publish(JointGroupCommand(name=arm.model.arm_group, cmd=target.tolist()))
        single.publish(JointSingleCommand(name=arm.model.gripper_joint, cmd=gripper))
        current = joint_positions_by_name(states[-1], arm.command_joint_names)
        return bool(np.allclose(current, [*target, gripper], atol=1e-2))

    assert spin_until(executor, reached, timeout_s=30.0)


def test_misnamed_and_invalid_commands_are_logged_and_change_nothing(ros_probe):
    robot = load_robot_description('wx250')
    arm = robot.arms[0]
    process = subprocess.Popen(
        [sys.executable, '-m', 'vla_adapter_ros.nodes.sim_robot_node', '--ros-args',
         '-p', 'robot_description:=wx250', '-p', 'image_height:=60', '-p', 'image_width:=80'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node, executor = ros_probe
    states: list[JointState] = []
    node.create_subscription(JointState, f'/{arm.namespace}/joint_states', states.append,
                             qos_profile_sensor_data)
    group = node.create_publisher(JointGroupCommand, f'/{arm.namespace}/commands/joint_group',
                                  10)
    single = node.create_publisher(JointSingleCommand,
                                   f'/{arm.namespace}/commands/joint_single', 10)
    assert spin_until(executor, lambda: len(states) > 5, timeout_s=30.0), stop_process(process)
    start = joint_positions_by_name(states[-1], arm.command_joint_names)
    target = np.linspace(0.1, 0.4, len(arm.joint_names)).tolist()
    for _ in range(5):
        group.publish(JointGroupCommand(name='not_' + arm.model.arm_group, cmd=target))
        single.publish(JointSingleCommand(name='not_' + arm.model.gripper_joint, cmd=0.5))
        single.publish(JointSingleCommand(name=arm.model.gripper_joint, cmd=float('nan')))
        spin_until(executor, lambda: False, timeout_s=0.1)
    received = len(states)
    assert spin_until(executor, lambda: len(states) > received + 5, timeout_s=10.0)
    np.testing.assert_allclose(joint_positions_by_name(states[-1], arm.command_joint_names),
                               start, atol=1e-6)
    assert process.poll() is None
    output = stop_process(process)
    assert f"ignoring joint_group command for 'not_{arm.model.arm_group}'" in output
    assert f"ignoring joint_single command for 'not_{arm.model.gripper_joint}'" in output
    assert 'rejected joint_single command: gripper command must be finite' in output


def test_bad_parameters_stop_the_node_with_the_parameter_named():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ValueError, match=r"robot 'no_such_robot'.*built-in"):
            SimulatedRobotNode(context=context, parameter_overrides=[
                Parameter('robot_description', value='no_such_robot')])
        with pytest.raises(ValueError, match=r"camera_names=\['a/b'\]"):
            SimulatedRobotNode(context=context, parameter_overrides=[
                Parameter('camera_names', value=['a/b'])])
    finally:
        rclpy.shutdown(context=context)
