"""Both simulators expose exactly the real Interbotix driver and camera endpoints (live graph).

The expected interface is written here from the driver's source (interbotix_xs_sdk
xs_sdk_obj.cpp: joint_states published and the three command topics subscribed with depth 10,
reliable, volatile; set_operating_modes served) and realsense2_camera (colour images with the
system-default QoS, reliable under Fast DDS), independently of `driver_interface.py`.
"""

import subprocess
import sys

import pytest
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from ros_test_utils import spin_until, stop_process

from vla_adapter_core.robot_description import load_robot_description

EXPECTED_ARM_TOPICS = {  # relative name -> (type, the driver's side)
    'joint_states': ('sensor_msgs/msg/JointState', 'publisher'),
    'commands/joint_group': ('interbotix_xs_msgs/msg/JointGroupCommand', 'subscription'),
    'commands/joint_single': ('interbotix_xs_msgs/msg/JointSingleCommand', 'subscription'),
    'commands/joint_trajectory': ('interbotix_xs_msgs/msg/JointTrajectoryCommand',
                                  'subscription'),
}
SIMULATORS = {
    'kinematic': ('vla_adapter_ros.nodes.sim_robot_node', 'aloha', 'simulated_robot'),
    'mujoco': ('vla_adapter_ros.nodes.mujoco_sim_node', 'aloha_sim', 'mujoco_aloha'),
}


@pytest.fixture(params=list(SIMULATORS))
def simulator(request):
    module, robot, node_name = SIMULATORS[request.param]
    process = subprocess.Popen(
        [sys.executable, '-m', module, '--ros-args', '-p', f'robot_description:={robot}',
         '-p', 'image_height:=32', '-p', 'image_width:=32'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield process, load_robot_description(robot), node_name
    stop_process(process)


def _endpoints(node, topic: str, side: str):
    if side == 'publisher':
        return node.get_publishers_info_by_topic(topic)
    return node.get_subscriptions_info_by_topic(topic)


def test_simulator_speaks_the_real_driver_interface(simulator, ros_probe):
    process, robot, node_name = simulator
    node, executor = ros_probe
    expected = {f'/{arm.namespace}/{name}': spec for arm in robot.arms
                for name, spec in EXPECTED_ARM_TOPICS.items()}
    cameras = set(robot.camera_topics())

    def own(infos) -> list:
        return [info for info in infos if info.node_name == node_name]

    def discovered() -> bool:  # the simulator's own endpoints (other tests' nodes may linger)
        return all(own(_endpoints(node, topic, side)) for topic, (_, side) in expected.items()
                   ) and all(own(node.get_publishers_info_by_topic(topic)) for topic in cameras)

    assert spin_until(executor, discovered, timeout_s=60.0), stop_process(process)
    for topic, (type_name, side) in expected.items():
        (endpoint,) = own(_endpoints(node, topic, side))
        assert endpoint.topic_type == type_name, topic
        assert endpoint.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
        assert endpoint.qos_profile.durability == DurabilityPolicy.VOLATILE, topic
    for topic in cameras:
        (endpoint,) = own(node.get_publishers_info_by_topic(topic))
        assert endpoint.topic_type == 'sensor_msgs/msg/Image'
        assert endpoint.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    # Nothing else on the driver side: every topic the simulator has in an arm namespace is one
    # of the driver's.
    arm_prefixes = tuple(f'/{arm.namespace}/' for arm in robot.arms)
    own = {name for name, _ in node.get_topic_names_and_types()
           if name.startswith(arm_prefixes)
           and any(info.node_name == node_name
                   for info in node.get_publishers_info_by_topic(name)
                   + node.get_subscriptions_info_by_topic(name))}
    assert own == set(expected)
    services = {name for name, _ in node.get_service_names_and_types_by_node(node_name, '/')}
    assert {f'/{arm.namespace}/set_operating_modes' for arm in robot.arms} <= services
