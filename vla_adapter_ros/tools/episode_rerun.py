"""`vla-adapter-sim-eval --rerun`: each simulated episode as the live view draws it.

Per episode ``<output_dir>/rerun/seed_<seed>.rrd`` (open it with ``rerun FILE``), on the
entities of `vla-adapter-view` (view/rerun_view.py), decoded by the same code
(view/message_view.py): every camera frame, the followers' joint_states, the executor's
commands, every predicted chunk at the future times it plans for, both PolicyStatus topics, and
the simulator's reward at each step (``episode/reward``). One timeline, ``ros_time``: the
simulator's clock (the sim-eval node runs on it, so the commands and the rewards, which carry
no stamp, are placed at the sim time they arrived).
"""

from __future__ import annotations

import functools
from pathlib import Path

RERUN_FOLDER = 'rerun'
APPLICATION_ID = 'vla_adapter_sim_eval'


class EpisodeRerun:
    """Subscriptions on sim-eval's node that log into the open episode's recording, if any."""

    def __init__(self, node, robot, folder: Path, reward_topic: str) -> None:
        """Subscribe ``node`` (on the simulator's clock) to the topics of ``robot``."""
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64

        from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
        self.node, self.robot, self.folder = node, robot, Path(folder)
        self._recording = self._messages = None
        self.paths: list[Path] = []
        sensors = qos_profile_sensor_data
        for camera, topic in zip(robot.cameras, robot.camera_topics()):
            node.create_subscription(Image, topic, functools.partial(self._log, 'image', camera),
                                     sensors)
        for index, arm in enumerate(robot.arms):
            node.create_subscription(
                JointState, f'/{arm.namespace}/joint_states',
                functools.partial(self._log, 'joint_state', 'measured', index, arm), sensors)
            self._subscribe_commands(index, arm)
        node.create_subscription(ActionChunk, 'action_chunk',
                                 functools.partial(self._log, 'chunk'), QoSProfile(depth=100))
        for source, topic in (('executor', 'executor_status'), ('policy', 'policy_status')):
            node.create_subscription(PolicyStatus, topic,
                                     functools.partial(self._log, 'status', source), 10)
        node.create_subscription(Float64, reward_topic, self._on_reward, QoSProfile(depth=1000))

    def _subscribe_commands(self, index: int, arm) -> None:
        from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
        for kind, topic, method in ((JointGroupCommand, 'joint_group', 'group_command'),
                                    (JointSingleCommand, 'joint_single', 'single_command')):
            self.node.create_subscription(
                kind, f'/{arm.namespace}/commands/{topic}',
                functools.partial(self._log_command, method, index, arm), 100)

    def _now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _log(self, method: str, *arguments) -> None:
        from vla_adapter_ros.pipeline.conversions import ConversionError
        if self._messages is None:
            return
        try:
            getattr(self._messages, method)(*arguments)
        except (ConversionError, ValueError) as error:  # the episode goes on without it
            self.node.get_logger().warning(f'rerun: {method}: {error}',
                                           throttle_duration_sec=5.0)

    def _log_command(self, method: str, index: int, arm, message) -> None:
        if self._messages is not None:
            getattr(self._messages, method)(index, arm, message, self._now_ns())

    def _on_reward(self, message) -> None:
        if self._messages is not None:
            self._messages.view.reward(self._now_ns(), message.data)

    def begin(self, seed: int) -> Path:
        """Open ``seed_<seed>.rrd``: what arrives from now on is logged into it."""
        import rerun as rr

        from vla_adapter_ros.view.message_view import MessageView
        from vla_adapter_ros.view.rerun_view import RobotView
        self.end()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f'seed_{seed}.rrd'
        self._recording = rr.RecordingStream(APPLICATION_ID, recording_id=f'seed_{seed}')
        self._recording.save(str(path))
        self._messages = MessageView(RobotView(self.robot, self._recording, reward=True))
        self.paths.append(path)
        return path

    def end(self) -> None:
        """Write the open recording and close it (nothing is logged until the next begin)."""
        if self._messages is None:
            return
        self._messages.view.flush()
        self._recording.flush()
        self._recording.disconnect()
        self._recording = self._messages = None
