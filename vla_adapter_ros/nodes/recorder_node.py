"""Episode recorder node: cameras, joint states, actions and the instruction into rosbag2 bags.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/nodes/recorder_node.py.
"""

import functools
import importlib
import importlib.metadata
import os
from pathlib import Path
import platform

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from vla_adapter_core.provenance import git_revision
from vla_adapter_msgs.msg import ActionChunk
from vla_adapter_ros.nodes.node_main import run_node
from vla_adapter_ros.params.parameters import declare_parameters, parameter_help
from vla_adapter_ros.params.recorder_config import RECORDER_PARAMETERS, RecorderConfig
from vla_adapter_ros.pipeline.conversions import message_class
from vla_adapter_ros.pipeline.health import DIAGNOSTICS_TOPIC, diagnostic_array
from vla_adapter_ros.recording.bag_format import RecordingError, build_topic_plan
from vla_adapter_ros.recording.episode_recorder import EpisodeRecorder

NODE_NAME = 'episode_recorder'
# Best effort matches reliable and best-effort publishers alike; the depth absorbs bursts.
RECORD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
LENGTH_CHECK_HZ = 20.0
SOFTWARE_PACKAGES = ('rosbags', 'numpy', 'pillow', 'pyyaml', 'vla_adapter_ros', 'ros-rclpy')


def software_versions() -> dict:
    """Python, ROS and library versions of this process (None where unknown)."""
    versions = {'python': platform.python_version(), 'ros_distro': os.environ.get('ROS_DISTRO'),
                'rmw_implementation': os.environ.get('RMW_IMPLEMENTATION')}
    for package in SOFTWARE_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


class EpisodeRecorderNode(Node):
    """Records episodes into rosbag2 bags; callbacks never wait for the disk."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        """Declare the parameters, plan the topics, start the writer thread, subscribe.

        kwargs go to rclpy's Node (e.g. context=, parameter_overrides=).
        """
        super().__init__(node_name, **kwargs)
        self.config = declare_parameters(self, RECORDER_PARAMETERS, RecorderConfig.from_dict,
                                         self._apply_dynamic_parameters)
        config = self.config
        self.robot = config.robot
        self._instruction = config.instruction.strip()
        self.plan = build_topic_plan(
            self.robot, action_source=config.action_source,
            camera_transport=config.camera_transport, jpeg_quality=config.jpeg_quality,
            joint_states_topic=config.joint_states_topic,
            instruction_topic=self.resolve_topic_name(config.instruction_topic),
            control_source_topic=(self.resolve_topic_name(config.control_source_topic)
                                  if config.control_source_topic else ''),
            chunk_topic=self.resolve_topic_name(config.chunk_topic) if config.chunk_topic else '')
        classes = [message_class(entry.msgtype) for entry in self.plan]  # fail before the thread
        self.recorder = EpisodeRecorder(
            self.plan, self.robot, output_dir=config.output_path,
            episode_prefix=config.episode_prefix, storage=config.storage,
            jpeg_quality=config.jpeg_quality,
            commanded_action_topic=config.commanded_action_topic,
            queue_size=config.queue_size, static_metadata=self._static_metadata(),
            decode_joint_state=functools.partial(deserialize_message, message_type=JointState),
            decode_chunk=functools.partial(deserialize_message, message_type=ActionChunk))
        self._create_interfaces(classes)
        self.get_logger().info(
            f'recording {len(self.plan)} topics of robot {self.robot.name!r} into '
            f'{config.output_path} ({config.storage}); start with ~/start_episode')

    def _static_metadata(self) -> dict:
        """What every episode's sidecar holds besides the episode itself."""
        source = Path(self.robot.source)
        return {'robot': self.robot.summary(),
                'robot_description_file': str(source.resolve()),
                'robot_description_yaml': source.read_text(encoding='utf-8'),
                'rates': {'control_rate_hz': self.robot.control_rate_hz},
                'recorder': self.config.to_dict(),
                'git_revision': git_revision(), 'software': software_versions()}

    def _apply_dynamic_parameters(self, config: RecorderConfig, changed: tuple) -> None:
        self.config = config
        if 'instruction' in changed:
            self._set_instruction(config.instruction.strip())

    def _create_interfaces(self, classes: list) -> None:
        for slot, (entry, message_type) in enumerate(zip(self.plan, classes)):
            callback = (self._on_instruction if entry.role == 'instruction'
                        else functools.partial(self._on_message, slot))
            self.create_subscription(message_type, entry.topic, callback, RECORD_QOS, raw=True)
        self._instruction_slot = next(slot for slot, entry in enumerate(self.plan)
                                      if entry.role == 'instruction')
        self.create_service(Trigger, '~/start_episode', self._on_start_service)
        self.create_service(Trigger, '~/stop_episode', self._on_stop_service)
        self.create_service(SetBool, '~/set_success', self._on_success_service)
        self.create_subscription(Bool, '~/record', self._on_record_topic, 10)
        self.create_subscription(Bool, '~/success', self._on_success_topic, 10)
        self._diagnostics = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self.create_timer(1.0 / self.config.status_rate_hz, self.publish_status)
        if self.config.max_episode_s > 0:
            self.create_timer(1.0 / LENGTH_CHECK_HZ, self._check_length)

    # ----------------------------------------------------------------- recording
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_message(self, slot: int, data: bytes) -> None:
        self.recorder.offer(slot, self._now_ns(), data)

    def _on_instruction(self, data: bytes) -> None:
        self.recorder.offer(self._instruction_slot, self._now_ns(), data)
        self._set_instruction(deserialize_message(data, String).data.strip())

    def _set_instruction(self, instruction: str) -> None:
        if instruction:
            self._instruction = instruction
            self.recorder.set_instruction(instruction)

    def topic_problems(self) -> list[str]:
        """Recorded topics without a publisher or with one of another type."""
        problems = []
        for entry in self.plan:
            if entry.role == 'instruction':
                continue
            types = {info.topic_type for info in self.get_publishers_info_by_topic(entry.topic)}
            if not types:
                problems.append(f'{entry.topic} has no publisher ({entry.msgtype} expected)')
            elif entry.msgtype not in types:
                problems.append(f'{entry.topic} is published as {sorted(types)}, recorded as '
                                f'{entry.msgtype}')
        return problems

    def start_episode(self) -> str:
        """Start recording; the bag path, or RecordingError with the reason."""
        if not self._instruction:
            raise RecordingError('no instruction: set the instruction parameter or publish one '
                                 f'on {self.plan[self._instruction_slot].topic}')
        if self.config.require_all_topics:
            problems = self.topic_problems()
            if problems:
                raise RecordingError('cannot record: ' + '; '.join(problems))
        episode = self.recorder.start(self._instruction, self._now_ns())
        self.get_logger().info(f'recording {episode.path}: {episode.instruction!r}')
        return str(episode.path)

    def stop_episode(self, reason: str) -> str:
        """Stop recording; the bag path, or RecordingError when not recording."""
        episode = self.recorder.stop(reason, self._now_ns())
        self.get_logger().info(f'stopped {episode.path} ({reason}) after '
                               f'{(episode.stop_ns - episode.start_ns) / 1e9:.2f} s; '
                               f'{episode.dropped} messages dropped')
        return str(episode.path)

    def set_success(self, success: bool) -> str:
        """Mark the current or last episode; its bag path."""
        episode = self.recorder.set_success(success)
        self.get_logger().info(f'{episode.path}: success={episode.success}')
        return str(episode.path)

    def _check_length(self) -> None:
        status = self.recorder.status(self._now_ns())
        if status['recording'] and status['elapsed_s'] >= self.config.max_episode_s:
            try:
                self.stop_episode('max_episode_s')
            except RecordingError:
                pass  # stopped meanwhile by a service or topic

    # ----------------------------------------------------------------- services and topics
    def _trigger(self, action, response):
        try:
            response.message, response.success = action(), True
        except RecordingError as error:
            response.message, response.success = str(error), False
            self.get_logger().warning(str(error))
        return response

    def _on_start_service(self, request: Trigger.Request, response: Trigger.Response):
        return self._trigger(self.start_episode, response)

    def _on_stop_service(self, request: Trigger.Request, response: Trigger.Response):
        return self._trigger(lambda: self.stop_episode('service'), response)

    def _on_success_service(self, request: SetBool.Request, response: SetBool.Response):
        return self._trigger(lambda: self.set_success(request.data), response)

    def _on_record_topic(self, message: Bool) -> None:
        action = self.start_episode if message.data else (lambda: self.stop_episode('topic'))
        self._trigger(action, Trigger.Response())

    def _on_success_topic(self, message: Bool) -> None:
        self._trigger(lambda: self.set_success(message.data), Trigger.Response())

    # ----------------------------------------------------------------- status
    def publish_status(self) -> None:
        """The recorder's counters on /diagnostics."""
        status = self.recorder.status(self._now_ns())
        level = 'warn' if status['dropped_messages'] or status['write_errors'] else 'ok'
        message = (f"recording {status['episode']} ({status['elapsed_s']:.1f} s)"
                   if status['recording'] else 'idle')
        if status['last_error']:
            message += f"; last error: {status['last_error']}"
        self._diagnostics.publish(diagnostic_array(
            self.get_clock().now().to_msg(), f'{self.get_name()}: episode recorder', level,
            message, {'state': 'RECORDING' if status['recording'] else 'IDLE', **status}))

    def shutdown_recorder(self) -> None:
        """Stop a running episode and write everything queued (called once at shutdown)."""
        self.recorder.close(self._now_ns())


def _shutdown(node: EpisodeRecorderNode) -> None:
    node.shutdown_recorder()


def main(args: list[str] | None = None) -> int:
    """Console entry point: `vla-adapter-record --ros-args -p robot_description:=aloha ...`."""
    return run_node(EpisodeRecorderNode, NODE_NAME, args, on_shutdown=_shutdown,
                    help_text=parameter_help(RECORDER_PARAMETERS, 'vla-adapter-record',
                                             NODE_NAME, __doc__.splitlines()[0]))


if __name__ == '__main__':
    raise SystemExit(main())
