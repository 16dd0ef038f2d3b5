"""Simulated ALOHA node: the Interbotix driver interface of two (or one) arms plus cameras.

Speaks exactly what the real robot speaks, so the inference node and the chunk executor run
unchanged against it:
- per robot (namespace = robot name): subscribes `commands/joint_group` (JointGroupCommand 'arm')
  and `commands/joint_single` (JointSingleCommand 'gripper'); serves `set_operating_modes`;
  publishes `joint_states` (6 arm joints, gripper, left_finger, right_finger) at 100 Hz;
- per camera: publishes rgb8 sensor_msgs/Image on `/<camera>/camera/color/image_rect_raw`.

The kinematics and rendering live in `sim_robot.py` (pure numpy).
"""

import sys

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from interbotix_xs_msgs.srv import OperatingModes
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from vla_adapter_ros.conversions import ConversionError, rgb_to_image
from vla_adapter_ros.node_main import run_node
from vla_adapter_ros.sim_robot import JOINT_STATE_NAMES, SceneRenderer, SimArm, SimArmConfig

NODE_NAME = 'simulated_aloha'
ARM_GROUP_NAME = 'arm'
GRIPPER_NAME = 'gripper'


class SimulatedAlohaNode(Node):
    """Kinematic ALOHA: Interbotix command topics in, joint states and camera images out."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        robot_names = self._declare('robot_names', ['follower_left', 'follower_right'],
                                    'Robot (driver namespace) names, left arm first')
        camera_names = self._declare('camera_names',
                                     ['cam_high', 'cam_left_wrist', 'cam_right_wrist'],
                                     'Cameras to publish on /<name>/camera/color/image_rect_raw')
        height = self._declare('image_height', 480, 'Camera image height, pixels')
        width = self._declare('image_width', 640, 'Camera image width, pixels')
        camera_rate = self._declare('camera_rate_hz', 30.0, 'Camera frame rate')
        state_rate = self._declare('joint_state_rate_hz', 100.0, 'joint_states rate')
        time_constant = self._declare('tracking_time_constant_s', 0.05,
                                      'First-order lag of the joints behind the commands')
        if not 1 <= len(robot_names) <= 2:
            raise ValueError(f'robot_names must name 1 or 2 robots, got {robot_names}')
        self.arms = {name: SimArm(SimArmConfig(time_constant_s=time_constant))
                     for name in robot_names}
        self.operating_modes: dict[str, str] = {}
        self.renderer = SceneRenderer(height, width)
        self._state_period = 1.0 / state_rate
        self._state_publishers = {}
        for name in robot_names:
            self._state_publishers[name] = self.create_publisher(
                JointState, f'/{name}/joint_states', qos_profile_sensor_data)
            self.create_subscription(JointGroupCommand, f'/{name}/commands/joint_group',
                                     lambda msg, arm=name: self._on_group(arm, msg), 10)
            self.create_subscription(JointSingleCommand, f'/{name}/commands/joint_single',
                                     lambda msg, arm=name: self._on_single(arm, msg), 10)
            self.create_service(OperatingModes, f'/{name}/set_operating_modes',
                                lambda req, res, arm=name: self._on_modes(arm, req, res))
        self._camera_publishers = [
            (index, name, self.create_publisher(
                Image, f'/{name}/camera/color/image_rect_raw', qos_profile_sensor_data))
            for index, name in enumerate(camera_names)]
        self.create_timer(self._state_period, self._publish_joint_states)
        self.create_timer(1.0 / camera_rate, self._publish_images)

    def _declare(self, name: str, default, description: str):
        return self.declare_parameter(
            name, default, ParameterDescriptor(description=description)).value

    def _on_group(self, arm: str, message: JointGroupCommand) -> None:
        if message.name != ARM_GROUP_NAME:
            self.get_logger().warning(f'{arm}: ignoring joint_group command for group '
                                      f'{message.name!r} (only {ARM_GROUP_NAME!r} exists)')
            return
        try:
            self.arms[arm].command_arm(np.asarray(message.cmd, dtype=np.float64))
        except ValueError as error:
            self.get_logger().error(f'{arm}: rejected joint_group command: {error}')

    def _on_single(self, arm: str, message: JointSingleCommand) -> None:
        if message.name != GRIPPER_NAME:
            self.get_logger().warning(f'{arm}: ignoring joint_single command for {message.name!r}')
            return
        try:
            self.arms[arm].command_gripper(float(message.cmd))
        except ValueError as error:
            self.get_logger().error(f'{arm}: rejected gripper command: {error}')

    def _on_modes(self, arm: str, request: OperatingModes.Request,
                  response: OperatingModes.Response) -> OperatingModes.Response:
        self.operating_modes[f'{arm}/{request.name}'] = request.mode
        self.get_logger().info(f'{arm}: {request.cmd_type} {request.name!r} -> {request.mode}')
        return response

    def _publish_joint_states(self) -> None:
        stamp = self.get_clock().now().to_msg()
        for name, arm in self.arms.items():
            arm.step(self._state_period)
            positions, velocities = arm.joint_state()
            message = JointState()
            message.header.stamp = stamp
            message.name = list(JOINT_STATE_NAMES)
            message.position = positions.tolist()
            message.velocity = velocities.tolist()
            message.effort = [0.0] * len(JOINT_STATE_NAMES)
            self._state_publishers[name].publish(message)

    def _publish_images(self) -> None:
        stamp = self.get_clock().now().to_msg()
        arm_positions = [arm.position for arm in self.arms.values()]
        for index, name, publisher in self._camera_publishers:
            try:
                message = rgb_to_image(self.renderer.render(index, arm_positions),
                                       frame_id=f'{name}_color_optical_frame')
            except ConversionError as error:
                self.get_logger().error(f'{name}: {error}')
                continue
            message.header.stamp = stamp
            publisher.publish(message)


def main(args: list[str] | None = None) -> int:
    """Entry point `vla-adapter-sim-robot` (ROS arguments are accepted)."""
    return run_node(SimulatedAlohaNode, NODE_NAME, args if args is not None else sys.argv)


if __name__ == '__main__':
    raise SystemExit(main())
