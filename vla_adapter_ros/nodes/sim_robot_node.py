"""Simulated robot node: the Interbotix driver interface of a described robot, plus cameras.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/nodes/sim_robot_node.py.
"""

import sys

from interbotix_xs_msgs.srv import OperatingModes
from rclpy.node import Node
from sensor_msgs.msg import JointState

from vla_adapter_ros.nodes.driver_interface import create_arm_interface, create_camera_publisher
from vla_adapter_ros.nodes.node_main import run_node
from vla_adapter_ros.params.parameters import declare_parameters, parameter_help
from vla_adapter_ros.params.sim_robot_config import SIM_ROBOT_PARAMETERS, SimRobotConfig
from vla_adapter_ros.pipeline.conversions import ConversionError, rgb_to_image
from vla_adapter_ros.sim.kinematic_robot import SceneRenderer, build_sim_arms

NODE_NAME = 'simulated_robot'


class SimulatedRobotNode(Node):
    """Kinematic robot: Interbotix command topics in, joint states and camera images out."""

    def __init__(self, **kwargs) -> None:
        """Declare the parameters, build the arms and create the driver interfaces.

        kwargs go to rclpy's Node (e.g. context=, parameter_overrides=).
        """
        super().__init__(NODE_NAME, **kwargs)
        self.config = declare_parameters(self, SIM_ROBOT_PARAMETERS, SimRobotConfig.from_dict)
        config = self.config
        self.robot = config.robot
        self.arms = build_sim_arms(self.robot, config.tracking_time_constant_s)
        self.operating_modes: dict[str, str] = {}
        self.renderer = SceneRenderer(config.image_height, config.image_width)
        self._state_period = 1.0 / config.joint_state_rate_hz
        self._interfaces = {
            name: create_arm_interface(
                self, arm.arm, arm.command_arm, arm.command_gripper,
                lambda req, res, name=name: self._on_modes(name, req, res))
            for name, arm in self.arms.items()}
        self._state_publishers = {name: interface.joint_states
                                  for name, interface in self._interfaces.items()}
        self._camera_publishers = [
            (index, name, create_camera_publisher(self, topic))
            for index, (name, topic) in enumerate(zip(config.cameras, config.camera_topics()))]
        self.create_timer(self._state_period, self._publish_joint_states)
        self.create_timer(1.0 / config.camera_rate_hz, self._publish_images)
        self.get_logger().info(
            f'simulating {self.robot.name} ({self.robot.source}): arms '
            f'{ {name: arm.arm.model.model for name, arm in self.arms.items()} }, cameras '
            f'{list(config.cameras)}')

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
            message.name = list(arm.joint_state_names)
            message.position = positions.tolist()
            message.velocity = velocities.tolist()
            message.effort = [0.0] * len(positions)
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
    return run_node(SimulatedRobotNode, NODE_NAME, args if args is not None else sys.argv,
                    help_text=parameter_help(SIM_ROBOT_PARAMETERS, 'vla-adapter-sim-robot',
                                             NODE_NAME, __doc__.splitlines()[0]))


if __name__ == '__main__':
    raise SystemExit(main())
