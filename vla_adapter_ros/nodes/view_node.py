"""Live view node (`vla-adapter-view`): what the policy sees and plans, into Rerun.

    vla-adapter-view --ros-args -p robot_description:=aloha -p output:=run.rrd

Subscribes (best effort, so it matches any publisher, and publishes nothing) to the robot
description's cameras, every follower's and leader's joint_states, the executor's commands, the
policy's ActionChunk and both PolicyStatus topics; view/message_view.py decodes them (with
pipeline/conversions.py) and hands the arrays to view/rerun_view.py, which says what goes where
in the recording.
Parameters: params/view_config.py. On shutdown the recording is flushed and closed.
"""

from __future__ import annotations

import functools

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
import rerun as rr
from sensor_msgs.msg import Image, JointState

from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_ros.nodes.node_main import run_node
from vla_adapter_ros.params.parameters import declare_parameters, parameter_help
from vla_adapter_ros.params.view_config import VIEW_PARAMETERS, ViewConfig
from vla_adapter_ros.pipeline.conversions import ConversionError
from vla_adapter_ros.view.message_view import MessageView
from vla_adapter_ros.view.rerun_view import RobotView

NODE_NAME = 'live_view'
APPLICATION_ID = 'vla_adapter_view'
FLUSH_HZ = 5.0  # buffered joint samples reach the recording this often


class LiveViewNode(Node):
    """Subscriptions only; every callback decodes one message and logs it."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_parameters(self, VIEW_PARAMETERS, ViewConfig.from_dict)
        self.robot = self.config.robot
        self.recording = rr.RecordingStream(APPLICATION_ID)
        if self.config.connect:
            self.recording.connect_grpc(self.config.connect)
        else:
            self.recording.save(self.config.output)
        self.view = RobotView(self.robot, self.recording, self.config.plan_slots)
        self.messages = MessageView(self.view)
        self._frames: dict[str, int] = {}
        self._subscribe()
        self.create_timer(1.0 / FLUSH_HZ, self.view.flush)
        where = self.config.connect or self.config.output
        self.get_logger().info(f'viewing robot {self.robot.name!r} into {where}')

    def _subscribe(self) -> None:
        qos, config = qos_profile_sensor_data, self.config
        for name, topic in zip(self.robot.cameras, self.robot.camera_topics()):
            self.create_subscription(Image, topic, functools.partial(self._on_image, name), qos)
        streams = [('measured', self.robot.arms)]
        if config.leaders:
            streams.append(('leader', self.robot.leaders))
        for stream, arms in streams:
            for index, arm in enumerate(arms):
                self.create_subscription(
                    JointState, f'/{arm.namespace}/{config.joint_states_topic}',
                    functools.partial(self._on_joints, stream, index, arm), qos)
        self.create_subscription(ActionChunk, config.chunk_topic, self._on_chunk, qos)
        for source, topic in (('executor', config.executor_status_topic),
                              ('policy', config.policy_status_topic)):
            self.create_subscription(PolicyStatus, topic,
                                     functools.partial(self._on_status, source), qos)
        if config.commands:
            self._subscribe_commands(qos)

    def _subscribe_commands(self, qos) -> None:
        try:
            from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
        except ImportError:
            self.get_logger().warning('interbotix_xs_msgs is not installed: no commands shown')
            return
        for index, arm in enumerate(self.robot.arms):
            self.create_subscription(JointGroupCommand, f'/{arm.namespace}/commands/joint_group',
                                     functools.partial(self._on_group, index, arm), qos)
            self.create_subscription(JointSingleCommand,
                                     f'/{arm.namespace}/commands/joint_single',
                                     functools.partial(self._on_single, index, arm), qos)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_image(self, camera: str, message: Image) -> None:
        count = self._frames[camera] = self._frames.get(camera, -1) + 1
        if count % self.config.camera_every:
            return
        try:
            self.messages.image(camera, message)
        except ConversionError as error:
            self.get_logger().warning(f'{camera}: {error}', throttle_duration_sec=5.0)

    def _on_joints(self, stream: str, index: int, arm, message: JointState) -> None:
        try:
            self.messages.joint_state(stream, index, arm, message)
        except ConversionError as error:
            self.get_logger().warning(str(error), throttle_duration_sec=5.0)

    def _on_group(self, index: int, arm, message) -> None:
        self.messages.group_command(index, arm, message, self._now_ns())

    def _on_single(self, index: int, arm, message) -> None:
        self.messages.single_command(index, arm, message, self._now_ns())

    def _on_chunk(self, message: ActionChunk) -> None:
        try:
            self.messages.chunk(message)
        except (ConversionError, ValueError) as error:
            self.get_logger().warning(f'chunk {message.sequence}: {error}',
                                      throttle_duration_sec=5.0)

    def _on_status(self, source: str, message: PolicyStatus) -> None:
        self.messages.status(source, message)

    def close_recording(self) -> None:
        """Write everything logged and close the file or connection (once, at shutdown)."""
        self.view.flush()
        self.recording.flush()
        self.recording.disconnect()


def _shutdown(node: LiveViewNode) -> None:
    node.close_recording()


def main(args: list[str] | None = None) -> int:
    """Console entry point: `vla-adapter-view --ros-args -p output:=run.rrd ...`."""
    return run_node(LiveViewNode, NODE_NAME, args, on_shutdown=_shutdown,
                    help_text=parameter_help(VIEW_PARAMETERS, 'vla-adapter-view', NODE_NAME,
                                             __doc__.splitlines()[0]))


if __name__ == '__main__':
    raise SystemExit(main())
