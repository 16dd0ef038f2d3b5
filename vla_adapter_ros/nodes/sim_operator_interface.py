"""The simulated operator's endpoints on the MuJoCo node: leader joint_states out, requests out.

The corrective expert (sim/simulated_operator.py) stands in for the human at the leader arms:
- publishes ``<leader>/<joint_states_topic>`` of every leader arm of the robot description
  (reliable, depth 10; the executor subscribes them as it does the real leaders' driver);
- asks the executor's ``takeover_service`` (std_srvs/SetBool: true = take over, false = hand
  back), the endpoint a pedal's node or a person would use, and waits for the answer.
"""

from __future__ import annotations

import threading

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.pipeline.conversions import nanoseconds_to_stamp
from vla_adapter_ros.sim.takeover_rule import TAKE_OVER


class SimOperatorInterface:
    """Creates the leader publishers and the takeover client on ``node``."""

    def __init__(self, node: Node, robot: RobotDescription, joint_states_topic: str,
                 takeover_service: str, timeout_s: float) -> None:
        """One publisher per leader arm; a client of the executor's takeover service."""
        self._node = node
        self._leaders = robot.leaders
        self._publishers = [
            node.create_publisher(JointState, f'{leader.namespace}/{joint_states_topic}',
                                  QoSProfile(depth=10))
            for leader in robot.leaders]
        self._client = node.create_client(SetBool, takeover_service)
        self._timeout_s = timeout_s
        self.replies: list[tuple[int, str, bool, str]] = []  # (step, request, granted, message)

    def publish_leaders(self, positions: list[np.ndarray], stamp_ns: int) -> None:
        """Every leader's joint_states (driver order), stamped ``stamp_ns``."""
        for leader, publisher, values in zip(self._leaders, self._publishers, positions):
            message = JointState()
            nanoseconds_to_stamp(stamp_ns, message.header.stamp)
            message.name = list(leader.driver_joint_names)
            message.position = [float(value) for value in values]
            publisher.publish(message)

    def request(self, request: str, step: int) -> bool:
        """Call the takeover service (not from the node's spin thread); whether granted.

        Blocks until the answer (at most the timeout): the executor has switched its command
        source before the simulator publishes the step's clock.
        """
        if not self._client.wait_for_service(timeout_sec=self._timeout_s):
            return self._reply(step, request, False, 'takeover service not available')
        answered = threading.Event()
        future = self._client.call_async(SetBool.Request(data=request == TAKE_OVER))
        future.add_done_callback(lambda _: answered.set())
        if not answered.wait(self._timeout_s) or future.result() is None:
            return self._reply(step, request, False, f'no answer within {self._timeout_s} s')
        return self._reply(step, request, future.result().success, future.result().message)

    def _reply(self, step: int, request: str, granted: bool, message: str) -> bool:
        self.replies.append((step, request, granted, message))
        text = f'step {step}: {request} {"granted" if granted else "refused"}: {message}'
        logger = self._node.get_logger()
        (logger.info if granted else logger.warning)(text)
        return granted
