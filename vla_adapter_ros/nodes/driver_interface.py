"""The real robot's ROS interface, in one place, for the simulators that stand in for it.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/nodes/driver_interface.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rclpy.qos import QoSProfile, qos_profile_system_default

DRIVER_QOS = QoSProfile(depth=10)  # rclcpp's `10`: keep last 10, reliable, volatile
CAMERA_QOS = qos_profile_system_default


OPERATING_MODES_SERVICE = 'set_operating_modes'


@dataclass
class ArmInterface:
    """The endpoints of one simulated arm (keep a reference: they live as long as it)."""

    joint_states: object
    subscriptions: list
    service: object


def create_arm_interface(node, arm, on_arm: Callable, on_gripper: Callable,
                         on_modes: Callable) -> ArmInterface:
    """The driver endpoints of ``arm`` (a robot description arm) on ``node``.

    As the driver does, a joint_group command must name the arm's group and a joint_single
    command its gripper joint; any other name is ignored with a warning. The positions go to
    ``on_arm(positions)`` ((joints,) float64, rad) and ``on_gripper(angle)`` (float, rad); a
    ValueError they raise is logged as a rejected command. ``on_modes(request, response)``
    serves set_operating_modes. Trajectory commands are received (the real driver takes them)
    and refused with a warning: streaming chunks uses joint_group / joint_single.
    """
    from interbotix_xs_msgs.msg import (
        JointGroupCommand,
        JointSingleCommand,
        JointTrajectoryCommand,
    )
    from interbotix_xs_msgs.srv import OperatingModes
    from sensor_msgs.msg import JointState

    namespace, logger = arm.namespace, node.get_logger()

    def deliver(kind: str, name: str, expected: str, handler: Callable, value) -> None:
        if name != expected:
            logger.warning(f'{namespace}: ignoring {kind} command for {name!r} (only '
                           f'{expected!r} is commanded)')
            return
        try:
            handler(value)
        except ValueError as error:
            logger.error(f'{namespace}: rejected {kind} command: {error}')

    def on_group(message) -> None:
        deliver('joint_group', message.name, arm.model.arm_group, on_arm,
                np.asarray(message.cmd, dtype=np.float64))

    def on_single(message) -> None:
        deliver('joint_single', message.name, arm.model.gripper_joint, on_gripper,
                float(message.cmd))

    def on_trajectory(message) -> None:
        logger.warning(
            f'{namespace}: commands/joint_trajectory ({message.cmd_type} {message.name!r}) is '
            'not simulated; stream commands/joint_group and commands/joint_single')

    base = f'/{namespace}'
    subscriptions = [
        node.create_subscription(JointGroupCommand, f'{base}/commands/joint_group', on_group,
                                 DRIVER_QOS),
        node.create_subscription(JointSingleCommand, f'{base}/commands/joint_single', on_single,
                                 DRIVER_QOS),
        node.create_subscription(JointTrajectoryCommand, f'{base}/commands/joint_trajectory',
                                 on_trajectory, DRIVER_QOS),
    ]
    publisher = node.create_publisher(JointState, f'{base}/joint_states', DRIVER_QOS)
    service = node.create_service(OperatingModes, f'{base}/{OPERATING_MODES_SERVICE}', on_modes)
    return ArmInterface(publisher, subscriptions, service)


def create_camera_publisher(node, topic: str):
    """A RealSense-like colour image publisher on ``topic``."""
    from sensor_msgs.msg import Image
    return node.create_publisher(Image, topic, CAMERA_QOS)
