"""Child process: the leader arms of a robot description, with a gripper the test closes.

Publishes every leader arm's joint_states (sensor-data QoS, the driver's joint names, stamped
with the ROS clock) at --rate Hz: the arm joints at the start pose, the gripper joint and fingers
fully open by the leader's own calibration. Once the file --close-when exists, the first
leader's gripper closes (the recording session's start trigger); when the file is removed it
opens again. Runs until terminated or --duration seconds pass; prints 'leaders ready'.
"""

import argparse
import pathlib
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState

from vla_adapter_core.robot_description import Arm, load_robot_description

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ros_test_utils import run_child_node  # noqa: E402


def leader_message(arm: Arm, opening: float) -> JointState:
    """Joint states of ``arm`` with its gripper at ``opening`` (1 open .. 0 closed)."""
    finger = float(arm.gripper.finger_from_normalized(opening))
    positions = [*arm.start_pose[:-1], float(arm.gripper.joint_from_normalized(opening)),
                 finger, -finger]
    return JointState(name=list(arm.driver_joint_names), position=positions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--robot-description', default='aloha')
    parser.add_argument('--close-when', required=True, help='close the gripper while this exists')
    parser.add_argument('--rate', type=float, default=50.0)
    parser.add_argument('--duration', type=float, default=120.0)
    args = parser.parse_args()
    robot = load_robot_description(args.robot_description)
    rclpy.init()
    node = rclpy.create_node('scripted_leaders')
    publishers = [node.create_publisher(JointState, f'/{arm.namespace}/joint_states',
                                        qos_profile_sensor_data) for arm in robot.leaders]
    trigger = pathlib.Path(args.close_when)

    def publish() -> None:
        closed = trigger.exists()
        stamp = node.get_clock().now().to_msg()
        for index, (arm, publisher) in enumerate(zip(robot.leaders, publishers)):
            message = leader_message(arm, 0.0 if closed and index == 0 else 1.0)
            message.header.stamp = stamp
            publisher.publish(message)

    node.create_timer(1.0 / args.rate, publish)
    print('leaders ready', flush=True)
    run_child_node(node, time.monotonic() + args.duration)


if __name__ == '__main__':
    main()
