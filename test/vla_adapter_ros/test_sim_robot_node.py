"""The simulated ALOHA node over real DDS: commands move the arms, cameras and states stream."""

import subprocess
import sys

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from interbotix_xs_msgs.srv import OperatingModes
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_test_utils import spin_until, stop_process
from sensor_msgs.msg import Image, JointState

from vla_adapter_ros.conversions import image_to_rgb, joint_positions_by_name
from vla_adapter_ros.robot_model import ARM_JOINT_NAMES


@pytest.fixture()
def sim_process():
    process = subprocess.Popen(
        [sys.executable, '-m', 'vla_adapter_ros.sim_robot_node', '--ros-args',
         '-p', 'image_height:=120', '-p', 'image_width:=160',
         '-p', 'camera_names:=[cam_high, cam_left_wrist]'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield process
    stop_process(process)



def test_simulated_aloha_streams_and_follows_commands(sim_process, ros_probe):
    node, executor = ros_probe
    states: list[JointState] = []
    images: list[Image] = []
    node.create_subscription(JointState, '/follower_left/joint_states', states.append,
                             qos_profile_sensor_data)
    node.create_subscription(Image, '/cam_left_wrist/camera/color/image_rect_raw',
                             images.append, qos_profile_sensor_data)
    group = node.create_publisher(JointGroupCommand, '/follower_left/commands/joint_group', 10)
    single = node.create_publisher(JointSingleCommand, '/follower_left/commands/joint_single', 10)
    modes = node.create_client(OperatingModes, '/follower_left/set_operating_modes')

    assert spin_until(executor, lambda: len(states) > 5 and len(images) > 2, timeout_s=30.0)
    frame = image_to_rgb(images[-1])
    assert frame.shape == (120, 160, 3)

    assert modes.wait_for_service(timeout_sec=10.0)
    future = modes.call_async(OperatingModes.Request(
        cmd_type='single', name='gripper', mode='current_based_position'))
    assert spin_until(executor, future.done, timeout_s=10.0)

    target = [0.2, -0.4, 0.6, 0.0, 0.3, 0.1]

    def reached() -> bool:
        group.publish(JointGroupCommand(name='arm', cmd=target))
        single.publish(JointSingleCommand(name='gripper', cmd=1.0))
        current = joint_positions_by_name(states[-1], [*ARM_JOINT_NAMES, 'gripper'])
        return bool(np.allclose(current, [*target, 1.0], atol=1e-2))

    assert spin_until(executor, reached, timeout_s=30.0)
    assert list(states[-1].name[:7]) == [*ARM_JOINT_NAMES, 'gripper']
