"""The chunk executor's takeover endpoints: leader joint_states in, requests in, source out.

For a node whose robot description has leader arms (the state logic is
pipeline/takeover.py, driven through pipeline/executor_logic.py):
- subscribes ``<leader>/<joint_states_topic>`` of every leader arm (sensor-data QoS);
- listens on ``takeover_topic`` (std_msgs/Bool: true = take over, false = hand back; a pedal or
  a key publishes it) and serves ``~/takeover`` (std_srvs/SetBool, the same with an answer);
- publishes ``control_source_topic`` (std_msgs/String, reliable and transient-local, so a late
  recorder gets the current source at once): 'policy', 'handover', 'operator' or 'hold', on
  every change and at the status rate.
"""

from collections.abc import Callable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.pipeline.conversions import joint_positions_by_name

CONTROL_SOURCE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TakeoverInterface:
    """Creates the takeover endpoints on ``node`` and forwards what arrives.

    ``on_leader(arm, angles or None, error)``: a leader's command-joint angles (rad), or the
    reason they could not be read. ``on_request(engage, source) -> (granted, message)``.
    """

    def __init__(self, node: Node, robot: RobotDescription, joint_states_topic: str,
                 takeover_topic: str, control_source_topic: str,
                 on_leader: Callable, on_request: Callable, callback_group) -> None:
        """Create the subscriptions, the service and the control-source publisher."""
        self._node = node
        self._robot = robot
        self._on_leader = on_leader
        self._on_request = on_request
        self._topic = takeover_topic
        for index, arm in enumerate(robot.leaders):
            node.create_subscription(
                JointState, f'{arm.namespace}/{joint_states_topic}',
                lambda message, arm_index=index: self._leader_state(arm_index, message),
                qos_profile_sensor_data, callback_group=callback_group)
        node.create_subscription(Bool, takeover_topic, self._on_topic, 10,
                                 callback_group=callback_group)
        node.create_service(SetBool, '~/takeover', self._on_service,
                            callback_group=callback_group)
        self._publisher = node.create_publisher(String, control_source_topic,
                                                CONTROL_SOURCE_QOS)
        self._published = ''

    def _leader_state(self, arm: int, message: JointState) -> None:
        leader = self._robot.leaders[arm]
        try:
            angles = joint_positions_by_name(message, leader.command_joint_names,
                                             f'{leader.namespace}/joint_states')
        except ValueError as error:
            self._node.get_logger().warning(str(error), throttle_duration_sec=1.0)
            self._on_leader(arm, None, str(error))
            return
        self._on_leader(arm, angles, '')

    def _on_topic(self, message: Bool) -> None:
        self._on_request(bool(message.data), f'{self._topic} topic')

    def _on_service(self, request: SetBool.Request, response: SetBool.Response):
        response.success, response.message = self._on_request(bool(request.data),
                                                               '~/takeover service')
        return response

    def publish(self, source: str, always: bool = False) -> None:
        """Publish ``source`` when it changed (or ``always``)."""
        if always or source != self._published:
            self._publisher.publish(String(data=source))
            self._published = source
