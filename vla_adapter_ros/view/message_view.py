"""ROS messages into the view: decoded by pipeline/conversions.py, logged by RobotView (no rclpy).

The live view node (`vla-adapter-view`) and `vla-adapter-sim-eval --rerun` subscribe to the same
topics and hand every message here, so both draw the same entities from the same decoding. A
message that cannot be decoded raises ConversionError (or ValueError for a chunk whose values
leave the description's calibration); the subscriber decides how to report it.
"""

from __future__ import annotations

import numpy as np

from vla_adapter_core.robot_description import Arm
from vla_adapter_ros.pipeline.conversions import (
    arm_state_from_joint_state,
    image_to_rgb,
    stamp_to_nanoseconds,
    trajectory_offsets_s,
    trajectory_positions,
)
from vla_adapter_ros.pipeline.status import state_name
from vla_adapter_ros.view.rerun_view import RobotView


class MessageView:
    """Decodes the messages of one robot's topics into a :class:`RobotView`."""

    def __init__(self, view: RobotView) -> None:
        self.view = view
        self.robot = view.robot

    def image(self, camera: str, message) -> None:
        """A sensor_msgs/Image of ``camera``, at its header stamp."""
        rgb = image_to_rgb(message)
        self.view.camera(camera, stamp_to_nanoseconds(message.header.stamp), rgb)

    def joint_state(self, stream: str, index: int, arm: Arm, message) -> None:
        """A sensor_msgs/JointState of arm ``index`` as ``stream`` ('measured', 'leader')."""
        values = arm_state_from_joint_state(message, arm, f'/{arm.namespace}/joint_states')
        self.view.joints(stream, index, stamp_to_nanoseconds(message.header.stamp), values)

    def group_command(self, index: int, arm: Arm, message, stamp_ns: int) -> None:
        """An interbotix JointGroupCommand of the arm group (others are not the arm's)."""
        if message.name != arm.model.arm_group or len(message.cmd) != len(arm.joint_names):
            return
        values = np.full(arm.dim, np.nan)
        values[:-1] = message.cmd
        self.view.joints('commanded', index, stamp_ns, values)

    def single_command(self, index: int, arm: Arm, message, stamp_ns: int) -> None:
        """An interbotix JointSingleCommand of the gripper joint (radians -> 0..1)."""
        if message.name != arm.model.gripper_joint:
            return
        values = np.full(arm.dim, np.nan)
        values[-1] = arm.gripper.normalize_joint(message.cmd)
        self.view.joints('commanded', index, stamp_ns, values)

    def chunk(self, message) -> None:
        """A vla_adapter_msgs/ActionChunk: its plan over the future times it covers."""
        trajectories = (message.left, message.right)[:self.robot.num_arms]
        parts = [arm.action_from_joint_angles(trajectory_positions(trajectory,
                                                                   arm.command_joint_names))
                 for arm, trajectory in zip(self.robot.arms, trajectories)]
        values = np.concatenate(parts, axis=1)  # (T, action_dim)
        self.view.chunk(message.sequence, stamp_to_nanoseconds(message.header.stamp),
                        trajectory_offsets_s(message.left), values, message.inference_ms)

    def status(self, source: str, message) -> None:
        """A vla_adapter_msgs/PolicyStatus of ``source`` ('executor', 'policy')."""
        self.view.status(source, stamp_to_nanoseconds(message.header.stamp),
                         state_name(message.state), message.fault_reason)
