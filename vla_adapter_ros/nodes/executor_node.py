"""Chunk executor node: action chunks in, a smooth and safe 50 Hz joint command stream out.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/nodes/executor_node.py.
"""

from collections import deque
import os
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Header
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_core.cli_errors import typed_one_line
from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_ros.nodes.command_output import ArmCommandOutput, GripperModeRequests
from vla_adapter_ros.nodes.node_main import (
    return_large_buffers_to_the_os,
    run_node,
    shutdown_logger,
)
from vla_adapter_ros.nodes.takeover_interface import TakeoverInterface
from vla_adapter_ros.nodes.unlocked_take import SerializedReceiver
from vla_adapter_ros.params.executor_config import EXECUTOR_PARAMETERS, ExecutorConfig
from vla_adapter_ros.params.parameters import declare_parameters, parameter_help
from vla_adapter_ros.pipeline import status
from vla_adapter_ros.pipeline.chunk_cdr import DecodedChunk, decode_action_chunk
from vla_adapter_ros.pipeline.chunk_intake import ChunkInbox, chunk_from_decoded
from vla_adapter_ros.pipeline.chunk_schedule import TimedChunk
from vla_adapter_ros.pipeline.conversions import joint_positions_by_name, nanoseconds_to_stamp
from vla_adapter_ros.pipeline.executor_logic import ExecutorStateMachine
from vla_adapter_ros.pipeline.health import (
    DIAGNOSTICS_TOPIC,
    EventRate,
    TickRecorder,
    diagnostic_array,
)
from vla_adapter_ros.pipeline.takeover import Takeover
from vla_adapter_ros.recording.preflight import PreflightConfig, expected_streams
from vla_adapter_ros.recording.preflight_window import PreflightCollector, StartupPreflight

NODE_NAME = 'chunk_executor'
TICK_HISTORY = 30_000  # tick start times kept (10 min at 50 Hz), preallocated
# Chunks waiting to be decoded: at 50 chunks/s, 0.16 s of backlog; older ones are superseded.
CHUNK_INBOX_DEPTH = 8
GIL_SWITCH_INTERVAL_S = 0.0005
# The start-up pre-flight check's first window waits this long at most for DDS discovery.
PREFLIGHT_DISCOVERY_S = 5.0
STATUS_TICK_WINDOW = 500  # ticks behind the tick-error figures in /diagnostics (10 s at 50 Hz)


class ChunkExecutorNode(Node):
    """Streams scheduled, blended and safety-shaped chunk targets to the arm drivers."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        """Declare the parameters, create publishers/subscriptions/services and the tick timer.

        kwargs go to rclpy's Node (e.g. context=, parameter_overrides=).
        """
        super().__init__(node_name, **kwargs)
        self._lock = threading.Lock()
        self.config = declare_parameters(self, EXECUTOR_PARAMETERS, ExecutorConfig.from_dict,
                                         self._apply_dynamic_parameters)
        config = self.config
        self._apply_realtime_priority(config.realtime_priority)
        self.robot = config.robot
        self.robot_names = config.arm_robot_names
        self._arm_slices = self.robot.arm_slices()
        self._preflight = self._startup_preflight()
        self._machine = ExecutorStateMachine(
            self.robot_names, config.start_pose(), config.safety_config(),
            config.schedule_config(),
            config.state_machine_timings(), log=self.get_logger().info,
            takeover=Takeover(self.robot, config.takeover_config()), preflight=self._preflight)
        self._last_inference_ms = 0.0
        self._ticks = TickRecorder(TICK_HISTORY)
        self._estop_received_s: float | None = None
        # E-stop received -> first hold command published, seconds (benchmarks/estop_latency.py).
        self.estop_latencies_s: deque = deque(maxlen=10_000)
        self._tick_rate = EventRate()
        self._observation_rates = [EventRate() for _ in self.robot_names]
        self._inbox = ChunkInbox(CHUNK_INBOX_DEPTH)
        self.context.on_shutdown(self._inbox.close)  # nothing is filed (or logged) after it
        self._create_interfaces()
        self._intake_thread = threading.Thread(target=self._intake_loop, name='chunk_intake',
                                               daemon=True)
        self._intake_thread.start()
        self._receive_thread = None
        if self._chunk_receiver is not None:
            self._receive_thread = threading.Thread(target=self._receive_loop,
                                                    name='chunk_receive', daemon=True)
            self._receive_thread.start()

    # ----------------------------------------------------------------- set-up
    def _apply_realtime_priority(self, priority: int) -> None:
        """Run this (the spinning) thread under SCHED_FIFO; warn when the OS refuses."""
        self._realtime = False
        if priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except (PermissionError, OSError) as error:
            self.get_logger().warning(
                f'realtime_priority={priority} refused by the OS ({error}); running with '
                'normal scheduling (grant rtprio to this user to enable it)')
            return
        self._realtime = True
        self.get_logger().info(f'ticking under SCHED_FIFO priority {priority}')

    def _startup_preflight(self) -> StartupPreflight | None:
        """The inputs' pre-flight check before the first ramp (None: preflight_window_s 0).

        The followers only (leader arms are not the policy's inputs), on this node's clock and
        the joint_states topics this node reads (relative: remappings apply to both).
        """
        config = self.config
        if config.preflight_window_s <= 0.0:
            return None
        streams = expected_streams(self.robot, False, config.joint_states_topic,
                                   config.preflight_camera_topics, relative=True)
        clock = self.get_clock()

        def now_ns() -> int:
            return clock.now().nanoseconds

        collector = PreflightCollector(
            streams, PreflightConfig(window_s=config.preflight_window_s, check_leaders=False),
            now_ns)
        topics = [self.resolve_topic_name(stream.topic) for stream in streams]  # remapped
        return StartupPreflight(collector, now_ns,
                                lambda: all(map(self.get_publishers_info_by_topic, topics)),
                                PREFLIGHT_DISCOVERY_S)

    def restore_normal_scheduling(self) -> None:
        """Back to SCHED_OTHER before teardown.

        rclpy's signal thread triggers guard conditions while the nodes are destroyed; with the
        main thread still under SCHED_FIFO that race crashed about 1 run in 4 on one SIGINT.
        """
        if getattr(self, '_realtime', False):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            self._realtime = False

    def _apply_dynamic_parameters(self, config: ExecutorConfig, changed: tuple) -> None:
        """A validated `ros2 param set`: new blending and speed limits from the next tick."""
        with self._lock:
            self.config = config
            self._machine.set_limits(config.safety_config(), config.schedule_config())
        self.get_logger().info(f'parameters changed: '
                               f'{ {name: getattr(config, name) for name in changed} }')

    def _create_interfaces(self) -> None:
        config = self.config
        self._tick_group = MutuallyExclusiveCallbackGroup()
        self._io_group = MutuallyExclusiveCallbackGroup()
        self._outputs = [
            ArmCommandOutput(self, arm, config.output_mode, config.tick_s,
                             config.joint_trajectory_topic, config.float64_array_topic)
            for arm in self.robot.arms]
        for index, robot in enumerate(self.robot_names):
            self.create_subscription(
                JointState, f'{robot}/{config.joint_states_topic}',
                lambda message, arm=index: self._on_joint_state(arm, message),
                qos_profile_sensor_data, callback_group=self._io_group)
        self._preflight_subscriptions = [] if self._preflight is None else (
            self._preflight.collector.subscribe(self.create_subscription, Image, JointState,
                                                qos_profile_sensor_data,
                                                callback_group=self._io_group))
        # Raw: the size is checked before decoding, so an oversized chunk costs no decode time.
        # Received by a thread of its own with the GIL released (nodes/unlocked_take.py): a
        # 16 MB chunk taken by rclpy on this thread would cost the tick ~20-30 ms of copying.
        self._max_chunk_bytes = max_chunk_message_bytes(self.robot, config.max_chunk_steps)
        self._chunk_receiver = None
        try:
            self._chunk_receiver = SerializedReceiver(self, ActionChunk, config.chunk_topic, 10,
                                                      self._max_chunk_bytes)
        except (OSError, AttributeError) as error:
            self.get_logger().warning(
                f'chunks are received on the executor thread (rcl not loadable through '
                f'ctypes: {typed_one_line(error)}); a large chunk delays the tick')
            self.create_subscription(ActionChunk, config.chunk_topic, self._on_serialized_chunk,
                                     10, callback_group=self._io_group, raw=True)
        self.create_subscription(Bool, config.estop_topic, self._on_estop_topic, 10,
                                 callback_group=self._io_group)
        self.create_service(Trigger, '~/estop', self._on_estop_service,
                            callback_group=self._io_group)
        self.create_service(Trigger, '~/reset_estop', self._on_reset_service,
                            callback_group=self._io_group)
        self.create_service(Trigger, '~/restart', self._on_restart_service,
                            callback_group=self._io_group)
        self._takeover = TakeoverInterface(
            self, self.robot, config.joint_states_topic, config.takeover_topic,
            config.control_source_topic, self._on_leader_state, self.request_takeover,
            self._io_group)
        self._status_publisher = self.create_publisher(PolicyStatus, config.status_topic, 10)
        self._filed_publisher = self.create_publisher(Header, '~/chunk_filed', 10)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                                            10)
        if config.set_gripper_mode and config.output_mode == 'interbotix':
            self._machine.gripper_modes = GripperModeRequests(
                self, self.robot.arms, config.gripper_operating_mode, self._io_group)
        self.create_timer(1.0 / config.status_rate_hz, self._publish_status,
                          callback_group=self._io_group)
        self._tick_timer = self.create_timer(config.tick_s, self._on_tick,
                                             callback_group=self._tick_group)

    # ----------------------------------------------------------------- inputs
    def _on_joint_state(self, arm: int, message: JointState) -> None:
        try:
            positions = joint_positions_by_name(
                message, self.robot.arms[arm].command_joint_names,
                f'{self.robot_names[arm]}/joint_states')
        except ValueError as error:
            with self._lock:
                self._machine.measurement_failed(arm, str(error))
            self.get_logger().warning(str(error), throttle_duration_sec=1.0)
            return
        now = time.monotonic()
        with self._lock:
            self._machine.measure(arm, positions, now)
            self._observation_rates[arm].record(now)

    def _on_leader_state(self, arm: int, angles, error: str) -> None:
        with self._lock:
            if angles is None:
                self._machine.takeover.leader_failed(arm, error)
            else:
                self._machine.takeover.measure_leader(arm, angles, time.monotonic())

    def request_takeover(self, engage: bool, source: str) -> tuple[bool, str]:
        """The leader arms take over (``engage``) or hand back to the policy; the answer."""
        with self._lock:
            granted, message = self._machine.request_takeover(engage, time.monotonic())
        if granted:  # rclpy refuses two severities from one logging line
            self.get_logger().info(f'{source}: {message}')
        else:
            self.get_logger().error(f'{source}: {message}')
        self._publish_status()
        return granted, message

    def _on_serialized_chunk(self, data: bytes) -> None:
        """A received chunk's whole share outside the intake thread: a size check, a hand-over.

        Called by the receive thread (or, without it, by the executor thread).
        """
        if len(data) > self._max_chunk_bytes:
            self._reject_oversized_chunk(len(data))
            return
        self._inbox.put(data)

    def _reject_oversized_chunk(self, size: int) -> None:
        self._reject_chunk(
            f'chunk rejected: {size} bytes is more than a max_chunk_steps='
            f'{self.config.max_chunk_steps} chunk can hold ({self._max_chunk_bytes} bytes); '
            'not decoded')

    def _receive_loop(self) -> None:
        """Take chunks as they arrive, the GIL released while waiting and while copying.

        Under normal scheduling even when the node ticks under SCHED_FIFO (threads inherit
        it): copying a 16 MB chunk takes a core for 10-20 ms, and a FIFO thread of the same
        priority on each of 2 cores would keep the ticking thread waiting that long.
        """
        if self._realtime:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # this thread only
        while not self._inbox.closed:
            try:
                for size, data in self._chunk_receiver.receive(timeout_s=0.2):
                    if self._inbox.closed:
                        return
                    if data is None:  # above the limit: never became a Python object
                        self._reject_oversized_chunk(size)
                    else:
                        self._on_serialized_chunk(data)
            except Exception as error:  # noqa: BLE001 - the thread must outlive any chunk
                if self._inbox.closed or not self.context.ok():
                    return  # shut down while waiting or taking
                self.get_logger().error(f'chunk receive: {typed_one_line(error)}')
                time.sleep(0.2)

    def _intake_loop(self) -> None:
        """Decode, check and file chunks off the executor thread (the tick never waits)."""
        while not self._inbox.closed:
            data = self._inbox.take(timeout_s=0.2)
            if data is None:
                continue
            try:
                self._file_serialized_chunk(data)
            except Exception as error:  # noqa: BLE001 - the thread must outlive any chunk
                if not self.context.ok():
                    return  # shut down while a chunk was being filed
                self.get_logger().error(f'chunk intake: {typed_one_line(error)}')

    def _file_serialized_chunk(self, data: bytes) -> None:
        try:
            chunk = decode_action_chunk(data)
        except ValueError as error:  # any undecodable message is rejected
            self._reject_chunk(f'chunk rejected: cannot decode {len(data)} bytes: {error}')
            return
        self._on_chunk(chunk)

    def _reject_chunk(self, reason: str) -> None:
        """Drop every scheduled chunk, fault with ``reason`` (at once) and hold."""
        with self._lock:
            self._machine.reject_chunk(reason)  # a new fault is reported at once, not next tick
        self.get_logger().warning(reason, throttle_duration_sec=0.5)
        self._publish_status()

    def _on_chunk(self, decoded: DecodedChunk) -> None:
        now_s = self._ros_now_s()
        with self._lock:
            running = self._machine.accepts_chunks
        if not running:
            self.get_logger().info('chunk dropped: start-up not finished',
                                   throttle_duration_sec=2.0)
            self._report_filed(decoded, status.CHUNK_DROPPED_STARTING)
            return
        try:
            chunk = self.chunk_from_decoded(decoded, now_s)
        except ValueError as error:
            self._reject_chunk(f'chunk {decoded.sequence} rejected: {error}')
            self._report_filed(decoded, f'rejected: {error}')
            return
        with self._lock:
            self._machine.accept_chunk(chunk, time.monotonic())
            self._last_inference_ms = decoded.inference_ms
            operator = self._machine.operator_commands
        self._report_filed(decoded, status.CHUNK_NOT_EXECUTED if operator
                           else status.CHUNK_ACCEPTED)

    def _report_filed(self, decoded: DecodedChunk, outcome: str) -> None:
        """``~/chunk_filed``: the chunk's stamp and what became of it, once it is decided.

        A simulator on its own clock waits for it before the next tick (mujoco_sim_node).
        """
        header = Header(frame_id=outcome)
        nanoseconds_to_stamp(decoded.stamp_ns, header.stamp)
        self._filed_publisher.publish(header)

    @property
    def safety(self):
        """The safety limits in force (the state machine's; dynamic parameters replace them)."""
        return self._machine.safety

    def chunk_from_decoded(self, decoded: DecodedChunk, now_s: float) -> TimedChunk:
        """Validate a decoded ActionChunk into a TimedChunk (pipeline/chunk_intake.py)."""
        return chunk_from_decoded(decoded, self.robot, self.safety, self.config.max_chunk_steps,
                                  now_s)

    def _on_estop_topic(self, message: Bool) -> None:
        if message.data:
            self.engage_estop(f'{self.config.estop_topic} topic')
        else:
            self.get_logger().info('estop false ignored: reset needs the ~/reset_estop service')

    def _on_estop_service(self, request: Trigger.Request, response: Trigger.Response):
        self.engage_estop('~/estop service')
        response.success, response.message = True, self._machine.estop.reason
        return response

    def _on_reset_service(self, request: Trigger.Request, response: Trigger.Response):
        with self._lock:
            was_engaged = self._machine.reset_estop()
        response.success = True
        response.message = 'e-stop released' if was_engaged else 'e-stop was not engaged'
        self.get_logger().warning(response.message)
        return response

    def _on_restart_service(self, request: Trigger.Request, response: Trigger.Response):
        """Start over between episodes: drop every chunk, re-read the arms, ramp to the start.

        The next command comes from fresh joint_states (the robot may have been moved or
        reset), so nothing of the previous episode is replayed. Refused while the e-stop is
        latched (that needs ~/reset_estop first).
        """
        with self._lock:
            response.success, response.message = self._machine.restart()
        if response.success:
            self._inbox.clear()
        self.get_logger().info(response.message)
        return response

    def engage_estop(self, source: str) -> None:
        """Latch the e-stop: drop all chunks and hold the last command."""
        self._inbox.clear()
        with self._lock:
            if self._machine.engage_estop(source):
                self._estop_received_s = time.monotonic()
            reason = self._machine.reason
        self.get_logger().error(reason)
        self._publish_status()

    # ----------------------------------------------------------------- tick
    def _ros_now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_tick(self) -> None:
        monotonic_s = time.monotonic()
        self._ticks.record(monotonic_s)
        self._tick_rate.record(monotonic_s)
        now_s = self._ros_now_s()
        with self._lock:
            command, _, _ = self._machine.tick(now_s, monotonic_s)
            estop_engaged = self._machine.estop.engaged
            source = self._machine.control_source
            preflight_over = self._machine.preflight is None
        if preflight_over and self._preflight_subscriptions:
            self._end_preflight()
        self._takeover.publish(source)  # only when it changed
        if command is None:
            return
        for part, output in zip(self._arm_slices, self._outputs):
            output.publish(command[part])
        if self._estop_received_s is not None and estop_engaged:
            # The first hold after an e-stop: its latency (received -> hold published).
            self.estop_latencies_s.append(time.monotonic() - self._estop_received_s)
            self._estop_received_s = None

    def _end_preflight(self) -> None:
        """The check passed: stop receiving its camera frames (they would cost tick time)."""
        for subscription in self._preflight_subscriptions:
            self.destroy_subscription(subscription)
        self._preflight_subscriptions = []

    # ----------------------------------------------------------------- status
    def _publish_status(self) -> None:
        now = time.monotonic()
        with self._lock:
            observation_rate = min(rate.rate_hz(now) for rate in self._observation_rates)
            machine = self._machine
            report = PolicyStatus(
                state=machine.state, fault_reason=machine.reason,
                last_inference_ms=self._last_inference_ms,
                observation_rate_hz=observation_rate,
                command_rate_hz=self._tick_rate.rate_hz(now),
                control_source=machine.control_source)
            counters = {'takeovers': machine.takeover.takeovers,
                        'accepted_chunks': machine.accepted_chunks,
                        'rejected_chunks': machine.rejected_chunks,
                        'superseded_chunks': self._inbox.dropped}
        report.header.stamp = self.get_clock().now().to_msg()
        self._status_publisher.publish(report)
        self._takeover.publish(report.control_source, always=True)
        self._publish_diagnostics(report, counters)

    def _publish_diagnostics(self, report: PolicyStatus, counters: dict) -> None:
        """The same status on /diagnostics, with the tick timing of the last 10 s."""
        level = {PolicyStatus.STATE_FAULT: 'error', PolicyStatus.STATE_IDLE: 'warn'}.get(
            report.state, 'ok')
        values = {'state': status.state_name(report.state),
                  'control_source': report.control_source,
                  'command_rate_hz': report.command_rate_hz,
                  'observation_rate_hz': report.observation_rate_hz,
                  'last_inference_ms': report.last_inference_ms, **counters,
                  **self._ticks.period_error_stats(self.config.tick_s, STATUS_TICK_WINDOW)}
        self._diagnostics_publisher.publish(diagnostic_array(
            report.header.stamp, f'{self.get_name()}: chunk executor', level,
            report.fault_reason or values['state'], values))

    def status_snapshot(self) -> dict:
        """Current state, reason, last command and chunk counters (for tests and tools)."""
        with self._lock:
            machine = self._machine
            return {'state': machine.state, 'reason': machine.reason, 'phase': machine.phase,
                    'command': None if machine.command is None else machine.command.copy(),
                    'accepted_chunks': machine.accepted_chunks,
                    'rejected_chunks': machine.rejected_chunks,
                    'scheduled_chunks': len(machine.scheduler.chunks),
                    'estop': machine.estop.engaged,
                    'control_source': machine.control_source,
                    'leader_problem': machine.takeover.leader_problem(time.monotonic())}

    def destroy_node(self) -> None:
        """Stop the receive and intake threads, then destroy the node."""
        inbox = getattr(self, '_inbox', None)
        if inbox is not None:
            inbox.close()
            for name in ('_receive_thread', '_intake_thread'):
                thread = getattr(self, name, None)
                if thread is not None and thread is not threading.current_thread():
                    thread.join(timeout=5.0)
        receiver = getattr(self, '_chunk_receiver', None)
        receive_thread = getattr(self, '_receive_thread', None)
        if receiver is not None and not (receive_thread and receive_thread.is_alive()):
            receiver.close()
        super().destroy_node()

    def tick_periods_s(self) -> np.ndarray:
        """Periods between consecutive tick starts (monotonic clock), (N-1,) seconds."""
        return self._ticks.periods()


def max_chunk_message_bytes(robot, max_steps: int, text_bytes: int = 65536) -> int:
    """Serialized size of the largest acceptable ActionChunk for ``robot``.

    A chunk of ``max_steps`` points per arm, each with positions, velocities, accelerations and
    efforts for every joint, plus ``text_bytes`` for the joint names, frame id and instruction.
    """
    trajectories = []
    for arm in robot.arms:
        values = [0.0] * arm.dim
        point = JointTrajectoryPoint(positions=values, velocities=values,
                                     accelerations=values, effort=values)
        trajectories.append(JointTrajectory(points=[point] * max_steps))
    empty = JointTrajectory()
    chunk = ActionChunk(left=trajectories[0],
                        right=trajectories[1] if len(trajectories) > 1 else empty)
    return len(serialize_message(chunk)) + text_bytes


def _prepare_shutdown(node: ChunkExecutorNode) -> None:
    node.restore_normal_scheduling()
    shutdown_logger(node).info('shutting down; no torque-off is sent: the drivers keep holding '
                               'the last command')


def prepare_executor_process() -> None:
    """Process-wide settings the executor runs with (its main() and the benchmarks)."""
    # The intake thread decodes chunks holding the GIL; the ticking thread asks for it back
    # after this long (Python's default is 5 ms, a quarter of a 50 Hz tick).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    return_large_buffers_to_the_os()  # a rejected 16 MB chunk leaves no heap behind


def main(args: list[str] | None = None) -> int:
    """Console entry point: `vla-adapter-executor --ros-args -p rate_hz:=50.0 ...`."""
    prepare_executor_process()
    return run_node(ChunkExecutorNode, NODE_NAME, args, on_shutdown=_prepare_shutdown,
                    help_text=parameter_help(EXECUTOR_PARAMETERS, 'vla-adapter-executor',
                                             NODE_NAME, __doc__.splitlines()[0]))


if __name__ == '__main__':
    raise SystemExit(main())
