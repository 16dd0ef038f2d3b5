"""Child process: a fake Interbotix xs driver (the ROS interface of interbotix_xs_sdk) per robot.

Per arm of a robot description (namespace = the arm's, or --robots): subscribes
`commands/joint_group` (JointGroupCommand for the arm model's group with its joints) and
`commands/joint_single` (JointSingleCommand for the gripper joint), serves `set_operating_modes`,
and publishes `joint_states` at 100 Hz (arm joints, gripper (rad), fingers (m)) that follow the
commands with a first-order lag, and serves `torque_enable`. Like the real
driver it checks nothing, but it prints `BAD COMMAND ...` for anything a running arm should
never receive (wrong group/joint name, wrong length, non-finite or out-of-limit values, torque
off), so tests can assert there was none.

A std_msgs/Bool on `fake_driver/pause_joint_states` pauses (true) or resumes (false) the
joint_states of every robot. Exits on SIGTERM or after --lifetime-s.

Usage: fake_interbotix_driver.py [--robot-description aloha|wx250|PATH]
    [--robots follower_left follower_right] [--initial-pose arm.dim floats (policy units,
    gripper normalised)] [--time-constant-s 0.02] [--no-operating-modes] [--omit-joint gripper]
"""

import argparse
import pathlib
import sys
import time

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from interbotix_xs_msgs.srv import OperatingModes, TorqueEnable
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from vla_adapter_core.robot_description import Arm, load_robot_description

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ros_test_utils import spin_child_until  # noqa: E402

STATE_RATE_HZ = 100.0
LIMIT_TOLERANCE = 1e-4  # float32 rounding of commands


class FakeArm:
    """One arm's targets and positions (arm joints + gripper angle)."""

    def __init__(self, description: Arm, initial: np.ndarray) -> None:
        self.description = description
        self.lower, self.upper = description.joint_angle_bounds()
        self.position = initial.copy()
        self.target = initial.copy()
        self.group_commands = 0
        self.single_commands = 0
        self.modes: list[str] = []


class FakeDriverNode(Node):
    """Fake drivers for several robots in one node."""

    def __init__(self, arms: tuple[Arm, ...], initial: np.ndarray | None, time_constant_s: float,
                 serve_operating_modes: bool, omit_joint: str = '') -> None:
        super().__init__('fake_interbotix_driver')
        self.omit_joint = omit_joint
        self.time_constant_s = time_constant_s
        self.paused = False
        self.arms = {
            arm.namespace: FakeArm(arm, arm.joint_angles_from_action(
                arm.start_pose if initial is None else initial))
            for arm in arms}
        robots = list(self.arms)
        self.state_publishers = {}
        for robot in robots:
            self.create_subscription(
                JointGroupCommand, f'{robot}/commands/joint_group',
                lambda message, name=robot: self.on_group(name, message), 10)
            self.create_subscription(
                JointSingleCommand, f'{robot}/commands/joint_single',
                lambda message, name=robot: self.on_single(name, message), 10)
            if serve_operating_modes:
                self.create_service(
                    OperatingModes, f'{robot}/set_operating_modes',
                    lambda request, response, name=robot: self.on_modes(name, request,
                                                                        response))
            self.create_service(
                TorqueEnable, f'{robot}/torque_enable',
                lambda request, response, name=robot: self.on_torque(name, request, response))
            self.state_publishers[robot] = self.create_publisher(
                JointState, f'{robot}/joint_states', qos_profile_sensor_data)
        self.create_subscription(Bool, 'fake_driver/pause_joint_states', self.on_pause, 10)
        self.create_timer(1.0 / STATE_RATE_HZ, self.publish_states)

    def bad(self, text: str) -> None:
        print(f'BAD COMMAND {text}', flush=True)

    def check_values(self, robot: str, values: np.ndarray, joints: slice) -> bool:
        arm = self.arms[robot]
        ok = bool(np.all(np.isfinite(values))
                  and np.all(values >= arm.lower[joints] - LIMIT_TOLERANCE)
                  and np.all(values <= arm.upper[joints] + LIMIT_TOLERANCE))
        if not ok:
            self.bad(f'{robot}: values {values.tolist()} non-finite or outside the limits')
        return ok

    def on_group(self, robot: str, message: JointGroupCommand) -> None:
        arm = self.arms[robot]
        arm.group_commands += 1
        values = np.asarray(message.cmd, dtype=np.float64)
        model = arm.description.model
        if message.name != model.arm_group or values.shape != (len(model.joints),):
            self.bad(f'{robot}: group {message.name!r} with {values.size} values')
            return
        if self.check_values(robot, values, slice(0, len(model.joints))):
            arm.target[:-1] = values

    def on_single(self, robot: str, message: JointSingleCommand) -> None:
        arm = self.arms[robot]
        arm.single_commands += 1
        if message.name != arm.description.model.gripper_joint:
            self.bad(f'{robot}: single joint {message.name!r}')
            return
        value = np.array([message.cmd], dtype=np.float64)
        if self.check_values(robot, value, slice(-1, None)):
            arm.target[-1] = value[0]

    def on_modes(self, robot: str, request, response):
        text = (f'{request.cmd_type} {request.name} {request.mode} {request.profile_type} '
                f'{request.profile_velocity} {request.profile_acceleration}')
        self.arms[robot].modes.append(text)
        print(f'operating mode {robot}: {text}', flush=True)
        return response

    def on_torque(self, robot: str, request, response):
        if not request.enable:
            self.bad(f'{robot}: torque off ({request.cmd_type} {request.name})')
        return response

    def on_pause(self, message: Bool) -> None:
        self.paused = bool(message.data)
        print(f'joint_states paused={self.paused}', flush=True)

    def publish_states(self) -> None:
        dt = 1.0 / STATE_RATE_HZ
        fraction = 1.0 if self.time_constant_s <= 0.0 else min(1.0, dt / self.time_constant_s)
        stamp = self.get_clock().now().to_msg()
        for robot, arm in self.arms.items():
            arm.position += fraction * (arm.target - arm.position)
            if self.paused:
                continue
            gripper = arm.description.gripper
            finger = float(gripper.finger_from_normalized(
                gripper.normalize_joint(arm.position[-1])))
            names = list(arm.description.driver_joint_names)
            positions = [*arm.position.tolist(), finger, -finger]
            kept = [index for index, name in enumerate(names) if name != self.omit_joint]
            message = JointState(name=[names[i] for i in kept],
                                 position=[positions[i] for i in kept])
            message.header.stamp = stamp
            self.state_publishers[robot].publish(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--robot-description', default='aloha')
    parser.add_argument('--robots', nargs='+', default=None,
                        help="driver namespaces (default: the description's)")
    parser.add_argument('--initial-pose', nargs='+', type=float, default=None,
                        help="one arm's pose in policy units (default: the start pose)")
    parser.add_argument('--time-constant-s', type=float, default=0.02)
    parser.add_argument('--no-operating-modes', action='store_true')
    parser.add_argument('--lifetime-s', type=float, default=300.0)
    parser.add_argument('--omit-joint', default='',
                        help='leave this joint out of joint_states (a malformed driver)')
    args = parser.parse_args()
    robot = load_robot_description(args.robot_description)
    if args.robots:
        robot = robot.with_namespaces(args.robots)
    rclpy.init()
    initial = None if args.initial_pose is None else np.array(args.initial_pose)
    node = FakeDriverNode(robot.arms, initial, args.time_constant_s,
                          not args.no_operating_modes, args.omit_joint)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print('fake driver ready', flush=True)
    deadline = time.monotonic() + args.lifetime_s
    try:
        spin_child_until(executor, deadline)
    finally:
        for robot, arm in node.arms.items():
            print(f'received {robot}: {arm.group_commands} group, {arm.single_commands} '
                  f'single commands; modes {arm.modes}', flush=True)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
