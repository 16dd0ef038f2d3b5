"""Joint command publishers of the chunk executor: one per arm, three output flavours.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/nodes/command_output.py.
"""

import numpy as np
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_core.robot_description import Arm
from vla_adapter_ros.params.executor_config import OUTPUT_MODES
from vla_adapter_ros.pipeline.conversions import (
    joint_group_command,
    joint_single_command,
    seconds_to_duration,
)

COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)


class ArmCommandOutput:
    """Publishes one arm's joint positions (arm joints, gripper angle) in one flavour."""

    def __init__(self, node: Node, arm: Arm, output_mode: str, tick_s: float,
                 joint_trajectory_topic: str = 'arm_controller/joint_trajectory',
                 float64_array_topic: str = 'forward_position_controller/commands') -> None:
        """Create the publishers of the arm's driver namespace (e.g. 'follower_left')."""
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f'output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}')
        robot_name = arm.namespace
        self.robot_name = robot_name
        self.output_mode = output_mode
        self.tick_s = tick_s
        self.joint_names = list(arm.command_joint_names)
        self._group_name = arm.model.arm_group
        self._gripper_name = arm.model.gripper_joint
        if output_mode == 'interbotix':
            from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
            self._group = node.create_publisher(
                JointGroupCommand, f'{robot_name}/commands/joint_group', COMMAND_QOS)
            self._single = node.create_publisher(
                JointSingleCommand, f'{robot_name}/commands/joint_single', COMMAND_QOS)
        elif output_mode == 'joint_trajectory':
            self._trajectory = node.create_publisher(
                JointTrajectory, f'{robot_name}/{joint_trajectory_topic}', COMMAND_QOS)
        else:
            self._array = node.create_publisher(
                Float64MultiArray, f'{robot_name}/{float64_array_topic}', COMMAND_QOS)

    def publish(self, positions: np.ndarray) -> None:
        """Command positions, (arm.dim,): arm joints in driver order, then the gripper."""
        values = np.asarray(positions, dtype=np.float64)
        if values.shape != (len(self.joint_names),):
            raise ValueError(f'{self.robot_name}: positions must have shape '
                             f'({len(self.joint_names)},), got {values.shape}')
        values = values.tolist()
        if self.output_mode == 'interbotix':
            self._group.publish(joint_group_command(self._group_name, values[:-1]))
            self._single.publish(joint_single_command(self._gripper_name, values[-1]))
        elif self.output_mode == 'joint_trajectory':
            point = JointTrajectoryPoint(positions=values,
                                         time_from_start=seconds_to_duration(self.tick_s))
            self._trajectory.publish(JointTrajectory(joint_names=self.joint_names,
                                                     points=[point]))
        else:
            self._array.publish(Float64MultiArray(data=values))


# A request still unanswered after this long is sent again. DDS can report a service ready once
# its request reader is matched, before its reply writer has matched this client: the reply to a
# request sent in that gap is lost. Setting an operating mode twice is harmless.
GRIPPER_MODE_RESEND_S = 1.0


class GripperModeRequests:
    """Sets the gripper operating mode of every arm through its driver, without blocking."""

    def __init__(self, node: Node, arms: tuple[Arm, ...], mode: str,
                 callback_group: CallbackGroup | None = None) -> None:
        """Create one set_operating_modes client per arm; nothing is sent yet."""
        from interbotix_xs_msgs.srv import OperatingModes
        self.robot_names = tuple(arm.namespace for arm in arms)
        self._requests = [OperatingModes.Request(
            cmd_type='single', name=arm.model.gripper_joint, mode=mode, profile_type='velocity',
            profile_velocity=0, profile_acceleration=0) for arm in arms]
        self._clients = [node.create_client(OperatingModes, f'{robot}/set_operating_modes',
                                            callback_group=callback_group)
                         for robot in self.robot_names]
        self._attempts: list[list] = []  # per arm: the futures of the requests sent
        self._sent_s = 0.0  # waited_s of the last sending

    def step(self, waited_s: float, timeout_s: float) -> str | None:
        """Advance (call once per tick): None while pending, '' when done, else the fault.

        The requests go out as soon as every service is available, and unanswered ones again
        every GRIPPER_MODE_RESEND_S; waited_s counts from the first step, and after timeout_s
        without services or answers the result is a fault.
        """
        if not self._attempts:
            ready = [client.service_is_ready() for client in self._clients]
            if all(ready):
                self._attempts = [[client.call_async(request)]
                                  for client, request in zip(self._clients, self._requests)]
                self._sent_s = waited_s
                return None
            if waited_s > timeout_s:
                absent = [robot for robot, ok in zip(self.robot_names, ready) if not ok]
                return (f'start-up: set_operating_modes of {absent} not available after '
                        f'{waited_s:.1f} s')
            return None
        answers = [next((future for future in futures if future.done()), None)
                   for futures in self._attempts]
        if all(answer is not None for answer in answers):
            self._forget_unanswered()
            failed = [robot for robot, answer in zip(self.robot_names, answers)
                      if answer.exception() is not None]
            return f'start-up: set_operating_modes failed for {failed}' if failed else ''
        if waited_s > timeout_s:
            self._forget_unanswered()
            return f'start-up: set_operating_modes gave no answer within {timeout_s} s'
        if waited_s - self._sent_s >= GRIPPER_MODE_RESEND_S:
            for client, request, futures, answer in zip(self._clients, self._requests,
                                                         self._attempts, answers):
                if answer is None:
                    futures.append(client.call_async(request))
            self._sent_s = waited_s
        return None

    def _forget_unanswered(self) -> None:
        """Drop the requests still pending, so that the clients keep no late replies."""
        for client, futures in zip(self._clients, self._attempts):
            for future in futures:
                if not future.done():
                    client.remove_pending_request(future)
