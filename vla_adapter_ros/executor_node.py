"""Chunk executor node: action chunks in, a smooth and safe 50 Hz joint command stream out.

Inputs: `vla_adapter_msgs/ActionChunk` on `chunk_topic` (header.stamp = observation time; left /
right trajectories with the arms' command joint names from the robot description, joint angles
in rad, time_from_start = k * dt); `sensor_msgs/JointState` on `<robot>/joint_states` of every arm;
`std_msgs/Bool` on `estop_topic` (true latches the e-stop).
Outputs: per arm, the commands of command_output.py (Interbotix JointGroupCommand 'arm' +
JointSingleCommand 'gripper' by default); `vla_adapter_msgs/PolicyStatus` on `status_topic`.
Services: `~/estop` (std_srvs/Trigger, latches the e-stop), `~/reset_estop` (std_srvs/Trigger,
the only way to release it). Clients: `<robot>/set_operating_modes` (interbotix_xs_msgs).

Life cycle (PolicyStatus.state):
- IDLE: waiting for joint_states from every arm; nothing is commanded.
- STARTING: the gripper operating mode is requested from each driver (asynchronously,
  `set_gripper_mode`), then the command ramps from the measured pose to `start_pose` at no more
  than `startup_speed`. Chunks arriving meanwhile are dropped.
- RUNNING: chunks are validated (safety.py), scheduled and blended (chunk_schedule.py), sampled at
  the tick time, and shaped (limits, then the speed limits x `speed_scale`) into the command.
- HOLDING: running, but no valid chunk covers now (none yet, all played, or stale): the last
  command is repeated.
- FAULT: e-stop latched, stale joint_states, a rejected chunk, a clock jump or a failed start-up
  service call: the last command is repeated and `fault_reason` says why. A rejected chunk or a
  clock jump clears on the next accepted chunk; stale joint_states clears when they resume; the
  e-stop clears only through `~/reset_estop`.
Every fault drops the scheduled chunks, so motion resumes only from fresh chunks, rate-limited
from the held position. Shutdown or e-stop never publishes torque-off: the Interbotix driver
keeps holding the last command with torque on.

Threads: the tick timer has a MutuallyExclusive callback group of its own; subscriptions,
services and the status timer share another, and shared state sits behind one lock, so the
node is correct under a MultiThreadedExecutor. main() nevertheless spins it in a
SingleThreadedExecutor: every callback here takes well under a millisecond, and on the 2-core
test machine rclpy's MultiThreadedExecutor cost 2-7x the CPU (its threads spin over busy
callback groups) and delayed single ticks by up to 1.2 s; its tick-period error p99 was 4-5x
that of the single-threaded executor (benchmarks/executor_timing.py). For the tightest timing
run the process with real-time priority (`chrt -f 50 ...`; p99 below 1 ms there while policy
inference loaded both cores). The tick's start times are kept for `tick_periods_s()`.

Parameters: executor_config.EXECUTOR_PARAMETERS (documented there). The dynamic ones
(blend_mode, ensemble_k, crossfade_s, speed_scale) apply at the next tick after `ros2 param set`;
the others are read-only.
"""

from collections import deque
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Header
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_ros.chunk_schedule import ChunkScheduler, TimedChunk
from vla_adapter_ros.command_output import ArmCommandOutput, GripperModeRequests
from vla_adapter_ros.conversions import (
    joint_positions_by_name,
    stamp_to_nanoseconds,
    trajectory_offsets_s,
    trajectory_positions,
)
from vla_adapter_ros.executor_config import EXECUTOR_PARAMETERS, ExecutorConfig
from vla_adapter_ros.health import DIAGNOSTICS_TOPIC, EventRate, TickRecorder, diagnostic_array
from vla_adapter_ros.node_main import run_node
from vla_adapter_ros.parameters import declare_parameters
from vla_adapter_ros.safety import (
    ChunkRejected,
    ClockMonitor,
    EStopLatch,
    Watchdog,
    shape_command,
    validate_chunk_timing,
    validate_chunk_values,
)

NODE_NAME = 'chunk_executor'
STATE_NAMES = {PolicyStatus.STATE_IDLE: 'IDLE', PolicyStatus.STATE_STARTING: 'STARTING',
               PolicyStatus.STATE_RUNNING: 'RUNNING', PolicyStatus.STATE_HOLDING: 'HOLDING',
               PolicyStatus.STATE_FAULT: 'FAULT'}
TICK_HISTORY = 30_000  # tick start times kept (10 min at 50 Hz), preallocated
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
        self.safety = config.safety_config()
        self.robot_names = config.arm_robot_names
        self._arm_slices = self.robot.arm_slices()
        self._joint_labels = self.robot.joint_labels()
        self._start_pose = config.start_pose()  # (J,) over all arms
        self._scheduler = ChunkScheduler(config.schedule_config(), len(self._start_pose))
        self._estop = EStopLatch()
        self._chunk_watchdog = Watchdog(config.stale_chunk_s)
        self._observation_watchdogs = [Watchdog(config.stale_observation_s)
                                       for _ in self.robot_names]
        self._clock_monitor = ClockMonitor(config.clock_jump_s)
        self._measured: list[np.ndarray | None] = [None] * len(self.robot_names)
        self._joint_state_errors = [''] * len(self.robot_names)
        self._command: np.ndarray | None = None
        self._phase = 'waiting'  # waiting -> gripper_mode -> ramp -> running
        self._phase_start_s = 0.0
        self._startup_fault = ''
        self._chunk_fault = ''
        self._state = PolicyStatus.STATE_IDLE
        self._reason = 'waiting for joint_states'
        self._last_inference_ms = 0.0
        self._ticks = TickRecorder(TICK_HISTORY)
        self._estop_received_s: float | None = None
        # E-stop received -> first hold command published, seconds (benchmarks/estop_latency.py).
        self.estop_latencies_s: deque = deque(maxlen=10_000)
        self._tick_rate = EventRate()
        self._observation_rates = [EventRate() for _ in self.robot_names]
        self._accepted_chunks = 0
        self._rejected_chunks = 0
        self._create_interfaces()

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
            self.safety = config.safety_config()
            self._scheduler.config = config.schedule_config()
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
        # Raw: the size is checked before decoding, so an oversized chunk costs no decode time.
        self._max_chunk_bytes = max_chunk_message_bytes(self.robot, config.max_chunk_steps)
        self.create_subscription(ActionChunk, config.chunk_topic, self._on_serialized_chunk, 10,
                                 callback_group=self._io_group, raw=True)
        self.create_subscription(Bool, config.estop_topic, self._on_estop_topic, 10,
                                 callback_group=self._io_group)
        self.create_service(Trigger, '~/estop', self._on_estop_service,
                            callback_group=self._io_group)
        self.create_service(Trigger, '~/reset_estop', self._on_reset_service,
                            callback_group=self._io_group)
        self.create_service(Trigger, '~/restart', self._on_restart_service,
                            callback_group=self._io_group)
        self._status_publisher = self.create_publisher(PolicyStatus, config.status_topic, 10)
        self._filed_publisher = self.create_publisher(Header, '~/chunk_filed', 10)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                                            10)
        self._gripper_modes = None
        if config.set_gripper_mode and config.output_mode == 'interbotix':
            self._gripper_modes = GripperModeRequests(
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
            self._joint_state_errors[arm] = str(error)
            self.get_logger().warning(str(error), throttle_duration_sec=1.0)
            return
        now = time.monotonic()
        with self._lock:
            self._measured[arm] = positions
            self._joint_state_errors[arm] = ''
            self._observation_watchdogs[arm].kick(now)
            self._observation_rates[arm].record(now)

    def _on_serialized_chunk(self, data: bytes) -> None:
        if len(data) > self._max_chunk_bytes:
            self._reject_chunk(
                f'chunk rejected: {len(data)} bytes is more than a max_chunk_steps='
                f'{self.config.max_chunk_steps} chunk can hold ({self._max_chunk_bytes} bytes); '
                'not decoded')
            return
        try:
            message = deserialize_message(data, ActionChunk)
        except Exception as error:  # noqa: BLE001 - any undecodable message is rejected
            self._reject_chunk(f'chunk rejected: cannot decode {len(data)} bytes: {error}')
            return
        self._on_chunk(message)

    def _reject_chunk(self, reason: str) -> None:
        """Drop every scheduled chunk, fault with ``reason`` (at once) and hold."""
        with self._lock:
            self._scheduler.clear()
            self._chunk_fault = reason
            self._rejected_chunks += 1
            if self._state != PolicyStatus.STATE_FAULT:  # reported at once, not next tick
                self._state, self._reason = PolicyStatus.STATE_FAULT, reason
        self.get_logger().warning(reason, throttle_duration_sec=0.5)
        self._publish_status()

    def _on_chunk(self, message: ActionChunk) -> None:
        now_s = self._ros_now_s()
        with self._lock:
            if self._phase != 'running':
                self.get_logger().info('chunk dropped: start-up not finished',
                                       throttle_duration_sec=2.0)
                self._report_filed(message, 'dropped: start-up not finished')
                return
        try:
            chunk = self.chunk_from_message(message, now_s)
        except ValueError as error:
            self._reject_chunk(f'chunk {message.sequence} rejected: {error}')
            self._report_filed(message, f'rejected: {error}')
            return
        with self._lock:
            self._scheduler.add_chunk(chunk)
            self._chunk_watchdog.kick(time.monotonic())
            self._chunk_fault = ''
            self._last_inference_ms = float(message.inference_ms)
            self._accepted_chunks += 1
        self._report_filed(message, 'accepted')

    def _report_filed(self, message: ActionChunk, outcome: str) -> None:
        """``~/chunk_filed``: the chunk's stamp and what became of it, once it is decided.

        A simulator on its own clock waits for it before the next tick (mujoco_sim_node).
        """
        self._filed_publisher.publish(Header(stamp=message.header.stamp, frame_id=outcome))

    def chunk_from_message(self, message: ActionChunk, now_s: float) -> TimedChunk:
        """Validate an ActionChunk and turn it into a TimedChunk of (T, J) targets (all arms).

        Raises ChunkRejected (a ValueError) naming the arm, field, joint and value at fault.
        """
        trajectories = [('left', message.left)]
        if self.config.num_arms == 2:
            trajectories.append(('right', message.right))
        elif message.right.points or message.right.joint_names:
            raise ChunkRejected('single-arm executor received a right-arm trajectory')
        offsets, blocks = None, []
        for (side, trajectory), arm in zip(trajectories, self.robot.arms):
            if not trajectory.points:
                raise ChunkRejected(f'empty chunk: {side} trajectory has no points')
            if len(trajectory.points) > self.config.max_chunk_steps:
                raise ChunkRejected(f'{side} trajectory has {len(trajectory.points)} steps, more '
                                    f'than max_chunk_steps={self.config.max_chunk_steps}')
            names, expected = list(trajectory.joint_names), list(arm.command_joint_names)
            if sorted(names) != sorted(expected):
                raise ChunkRejected(f'{side} joint_names {names} do not match the expected '
                                    f'{expected} ({arm.namespace})')
            side_offsets = trajectory_offsets_s(trajectory)
            if offsets is not None and (side_offsets.shape != offsets.shape
                                        or not np.allclose(side_offsets, offsets, atol=1e-6)):
                raise ChunkRejected('left and right time_from_start differ')
            offsets = side_offsets
            blocks.append(trajectory_positions(trajectory, expected))  # (T, arm.dim)
        stamp_s = stamp_to_nanoseconds(message.header.stamp) * 1e-9
        validate_chunk_timing(stamp_s, offsets, now_s, self.safety)
        positions = validate_chunk_values(np.hstack(blocks), self.safety, self._joint_labels)
        return TimedChunk(stamp_s=stamp_s, offsets_s=offsets, positions=positions,
                          sequence=int(message.sequence))

    def _on_estop_topic(self, message: Bool) -> None:
        if message.data:
            self.engage_estop(f'{self.config.estop_topic} topic')
        else:
            self.get_logger().info('estop false ignored: reset needs the ~/reset_estop service')

    def _on_estop_service(self, request: Trigger.Request, response: Trigger.Response):
        self.engage_estop('~/estop service')
        response.success, response.message = True, self._estop.reason
        return response

    def _on_reset_service(self, request: Trigger.Request, response: Trigger.Response):
        with self._lock:
            was_engaged = self._estop.reset()
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
            if self._estop.engaged:
                response.success = False
                response.message = f'refused: e-stop latched ({self._estop.reason})'
            else:
                self._scheduler.clear()
                self._chunk_watchdog.reset()
                self._chunk_fault = ''
                self._command = None
                self._measured = [None] * len(self.robot_names)
                if self._phase in ('ramp', 'running'):
                    self._gripper_modes = None  # the operating modes are already set
                self._phase = 'waiting'
                self._state, self._reason = PolicyStatus.STATE_IDLE, 'restarting'
                response.success, response.message = True, 'restarted: ramping to the start pose'
        self.get_logger().info(response.message)
        return response

    def engage_estop(self, source: str) -> None:
        """Latch the e-stop: drop all chunks and hold the last command."""
        with self._lock:
            if not self._estop.engaged:
                self._estop_received_s = time.monotonic()
            self._estop.engage(source)
            self._scheduler.clear()
            self._state, self._reason = PolicyStatus.STATE_FAULT, self._estop.reason
        self.get_logger().error(self._estop.reason)
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
            command, state, reason = self._next_command(now_s, monotonic_s)
            if command is not None:
                self._command = command
            self._state, self._reason = state, reason
        if command is None:
            return
        for part, output in zip(self._arm_slices, self._outputs):
            output.publish(command[part])
        if self._estop_received_s is not None and self._estop.engaged:
            # The first hold after an e-stop: its latency (received -> hold published).
            self.estop_latencies_s.append(time.monotonic() - self._estop_received_s)
            self._estop_received_s = None

    def _next_command(self, now_s: float, monotonic_s: float):
        """(command or None, state, reason) for this tick; called with the lock held."""
        jump = self._clock_monitor.update(now_s, monotonic_s)
        if jump:
            self._scheduler.clear()
            self._chunk_fault = jump
        if self._command is None:
            missing = [robot for robot, seen in zip(self.robot_names, self._measured)
                       if seen is None]
            if missing:
                errors = [error for error in self._joint_state_errors if error]
                waiting = f'waiting for joint_states of {missing}' + (
                    f'; last error: {errors[-1]}' if errors else '')
                if self._estop.engaged:
                    return None, PolicyStatus.STATE_FAULT, f'{self._estop.reason}; {waiting}'
                return None, PolicyStatus.STATE_IDLE, waiting
            measured = np.concatenate(self._measured)
            self._command = np.clip(measured, self.safety.lower_array, self.safety.upper_array)
            phase = 'gripper_mode' if self._gripper_modes is not None else 'ramp'
            self._enter_phase(phase, monotonic_s)
        hold = self._command.copy()
        fault = self._hard_fault(monotonic_s)
        if fault:
            self._scheduler.clear()
            return hold, PolicyStatus.STATE_FAULT, fault
        if self._phase == 'gripper_mode':
            return hold, *self._gripper_mode_step(monotonic_s)
        if self._phase == 'ramp':
            return self._ramp_step(monotonic_s)
        return self._running_step(now_s, monotonic_s, hold)

    def _hard_fault(self, monotonic_s: float) -> str:
        if self._estop.engaged:
            return self._estop.reason
        if self._startup_fault:
            return self._startup_fault
        stale = [f'{robot} ({watchdog.age(monotonic_s):.2f} s'
                 + (f'; last error: {error}' if error else '') + ')'
                 for robot, watchdog, error in zip(self.robot_names, self._observation_watchdogs,
                                                   self._joint_state_errors)
                 if watchdog.expired(monotonic_s)]
        if stale:
            return f'stale observation: no valid joint_states from {", ".join(stale)}'
        return ''

    def _enter_phase(self, phase: str, monotonic_s: float) -> None:
        self._phase, self._phase_start_s = phase, monotonic_s
        self.get_logger().info(f'phase: {phase}')

    def _gripper_mode_step(self, monotonic_s: float) -> tuple[int, str]:
        outcome = self._gripper_modes.step(monotonic_s - self._phase_start_s,
                                           self.config.service_timeout_s)
        if outcome:
            self._startup_fault = outcome
        elif outcome == '':
            self._enter_phase('ramp', monotonic_s)
        return PolicyStatus.STATE_STARTING, 'setting the gripper operating mode'

    def _ramp_step(self, monotonic_s: float):
        max_step = np.full(len(self._command), self.config.startup_speed * self.config.tick_s)
        command = shape_command(self._command, self._start_pose, self.safety, max_step)
        if np.allclose(command, self._start_pose, rtol=0.0, atol=1e-9):
            self._enter_phase('running', monotonic_s)
        return command, PolicyStatus.STATE_STARTING, 'moving to the start pose'

    def _running_step(self, now_s: float, monotonic_s: float, hold: np.ndarray):
        if self._chunk_fault:  # the scheduler was cleared with it
            return hold, PolicyStatus.STATE_FAULT, self._chunk_fault
        if self._chunk_watchdog.ever_kicked and self._chunk_watchdog.expired(monotonic_s):
            if self._scheduler.chunks:
                self._scheduler.clear()
            age = self._chunk_watchdog.age(monotonic_s)
            return hold, PolicyStatus.STATE_HOLDING, f'stale chunk: none for {age:.2f} s'
        target = self._scheduler.target(now_s)
        if target is None:
            reason = ('no chunk covers now' if self._chunk_watchdog.ever_kicked
                      else 'waiting for the first chunk')
            return hold, PolicyStatus.STATE_HOLDING, reason
        return shape_command(self._command, target, self.safety), PolicyStatus.STATE_RUNNING, ''

    # ----------------------------------------------------------------- status
    def _publish_status(self) -> None:
        now = time.monotonic()
        with self._lock:
            observation_rate = min(rate.rate_hz(now) for rate in self._observation_rates)
            status = PolicyStatus(
                state=self._state, fault_reason=self._reason,
                last_inference_ms=self._last_inference_ms,
                observation_rate_hz=observation_rate,
                command_rate_hz=self._tick_rate.rate_hz(now))
            counters = {'accepted_chunks': self._accepted_chunks,
                        'rejected_chunks': self._rejected_chunks}
        status.header.stamp = self.get_clock().now().to_msg()
        self._status_publisher.publish(status)
        self._publish_diagnostics(status, counters)

    def _publish_diagnostics(self, status: PolicyStatus, counters: dict) -> None:
        """The same status on /diagnostics, with the tick timing of the last 10 s."""
        level = {PolicyStatus.STATE_FAULT: 'error', PolicyStatus.STATE_IDLE: 'warn'}.get(
            status.state, 'ok')
        values = {'state': STATE_NAMES.get(status.state, str(status.state)),
                  'command_rate_hz': status.command_rate_hz,
                  'observation_rate_hz': status.observation_rate_hz,
                  'last_inference_ms': status.last_inference_ms, **counters,
                  **self._ticks.period_error_stats(self.config.tick_s, STATUS_TICK_WINDOW)}
        self._diagnostics_publisher.publish(diagnostic_array(
            status.header.stamp, f'{self.get_name()}: chunk executor', level,
            status.fault_reason or values['state'], values))

    def status_snapshot(self) -> dict:
        """Current state, reason, last command and chunk counters (for tests and tools)."""
        with self._lock:
            return {'state': self._state, 'reason': self._reason, 'phase': self._phase,
                    'command': None if self._command is None else self._command.copy(),
                    'accepted_chunks': self._accepted_chunks,
                    'rejected_chunks': self._rejected_chunks,
                    'scheduled_chunks': len(self._scheduler.chunks),
                    'estop': self._estop.engaged}

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
    node.get_logger().info('shutting down; no torque-off is sent: the drivers keep holding the '
                           'last command')


def main(args: list[str] | None = None) -> int:
    """Console entry point: `vla-adapter-executor --ros-args -p rate_hz:=50.0 ...`."""
    return run_node(ChunkExecutorNode, NODE_NAME, args, on_shutdown=_prepare_shutdown)


if __name__ == '__main__':
    raise SystemExit(main())
