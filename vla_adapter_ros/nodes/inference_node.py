"""The inference node: synchronised cameras + joint states in, action chunks out.

A thin rclpy shell: subscriptions feed pipeline/observation.py's assembler, a worker thread runs
the policy on the newest observation (never a queue) and publishes ActionChunk, per-arm
trajectories, PolicyStatus and /diagnostics. Topics, services, the instruction rule and the
fault model are in docs/ARCHITECTURE.md ("The inference node"); parameters in
params/inference_config.py.
"""

from collections import deque
import dataclasses
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from vla_adapter_core.cli_errors import typed_one_line
from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_msgs.srv import SetInstruction
from vla_adapter_ros.nodes.node_main import run_node
from vla_adapter_ros.params.inference_config import INFERENCE_PARAMETERS, InferenceConfig
from vla_adapter_ros.params.parameters import declare_parameters, parameter_help
from vla_adapter_ros.pipeline import conversions
from vla_adapter_ros.pipeline.health import DIAGNOSTICS_TOPIC, LatencyWindow, diagnostic_array
from vla_adapter_ros.pipeline.inference_handoff import ChunkTiming, LatestSlot
from vla_adapter_ros.pipeline.observation import InputStream, Observation, ObservationAssembler
from vla_adapter_ros.pipeline.policy_checks import (
    PolicyRunner,
    check_policy_matches_robot,
    instruction_check,
    load_policy,
    observation_age_fault,
    validate_action_chunk,
    warm_up_policy,
)
from vla_adapter_ros.pipeline.status import state_name
from vla_adapter_ros.pipeline.sync import ApproximateTimeSynchronizer, SyncConfig

NODE_NAME = 'vla_inference'
CHUNK_FIELDS = ('left', 'right')  # ActionChunk trajectory of the first / second arm
POLICY_FRAME_ID = 'vla_adapter_policy'
WARMUP_IMAGE_SIZE = 224  # image side for the warm-up when any image size is accepted
TIMING_RECORDS = 1024  # ChunkTiming records kept (benchmarks read them); bounded memory
LATENCY_WINDOW = 100  # chunks behind the latency percentiles in /diagnostics


class InferenceNode(Node):
    """Runs a VLA policy on synchronised observations; see the module docstring.

    ``policy`` may be injected (tests, benchmarks); otherwise it is loaded from the
    ``checkpoint`` parameter. Raises ValueError at construction for bad parameters or a
    checkpoint that does not fit the robot.
    """

    def __init__(self, policy: PolicyRunner | None = None, node_name: str = NODE_NAME,
                 **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self._setup(policy)
        except BaseException:
            self.destroy_node()
            raise

    # ----------------------------------------------------------------------------- set-up
    def _setup(self, policy: PolicyRunner | None) -> None:
        self._check_instruction = None  # the policy's rule, once the policy is loaded
        self.settings = declare_parameters(self, INFERENCE_PARAMETERS, self._build_settings,
                                           self._apply_settings)
        settings = self.settings
        self.robot = settings.robot
        self._lock = threading.Lock()
        self._sync: ApproximateTimeSynchronizer | None = None
        self._input_faults: dict[str, str] = {}
        self._policy_fault = ''
        self._reported_fault = ''
        self._last_inference_ms = 0.0
        self._sequence = 0
        self._set_times: deque[float] = deque(maxlen=256)
        self._started_ns = 0
        self._status_publisher = self.create_publisher(PolicyStatus, 'policy_status', 10)
        self._state = PolicyStatus.STATE_STARTING
        self._publish_status()
        if settings.cpu_threads:
            import torch

            torch.set_num_threads(settings.cpu_threads)
        self.policy = policy if policy is not None else load_policy(
            settings.checkpoint, settings.device, settings.dtype, settings.compile)
        warning = check_policy_matches_robot(self.policy.config, self.robot,
                                             settings.resolved_camera_names)
        if warning:
            self.get_logger().warning(warning)
        self._policy_cameras = list(self.policy.config.camera_names)
        self._check_instruction = instruction_check(self.policy)
        if settings.instruction:  # empty at start-up = wait for an instruction
            self.settings = settings = settings.with_checked_instruction(self._check_instruction)
        self._instruction = settings.instruction
        self._warm_up()
        # One record per published chunk, the last TIMING_RECORDS only (latency measurements,
        # benchmarks/ros_pipeline.py); the latencies of /diagnostics in a preallocated ring.
        self.timings: deque[ChunkTiming] = deque(maxlen=TIMING_RECORDS)
        self._latencies = LatencyWindow(LATENCY_WINDOW)
        stream_names = [*self._policy_cameras, *self.robot.namespaces]
        self._assembler = ObservationAssembler(
            self.robot, settings.cameras, self._policy_cameras,
            SyncConfig(tuple(stream_names), settings.sync_queue_size, settings.sync_slop_s,
                       settings.max_observation_age_s),
            expected_image_hw=settings.expected_image_hw,
            max_future_stamp_s=settings.max_future_stamp_s,
            joint_states_topic=settings.joint_states_topic)
        self._sync = self._assembler.sync
        self._slot = LatestSlot()
        self._started_ns = self.get_clock().now().nanoseconds
        self._create_interfaces()
        self._state = (PolicyStatus.STATE_RUNNING if settings.autostart
                       else PolicyStatus.STATE_IDLE)
        self._worker = threading.Thread(target=self._worker_loop, name='vla_inference_worker',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'ready: robot {self.robot.name!r} ({self.robot.source}), arms '
            f'{list(self.robot.namespaces)}, cameras {self._policy_cameras}, chunk '
            f'{self.policy.config.chunk_size} x {self.policy.config.action_dim} every '
            f'{settings.step_s} s')

    def _build_settings(self, values: dict) -> InferenceConfig:
        """Validated settings from parameter values (start-up and every ``ros2 param set``).

        Once the policy is loaded, a changed instruction must pass the policy's rule (so an
        empty one is refused at run time; at start-up empty means: wait for one).
        """
        settings = InferenceConfig.from_dict(values)
        if self._check_instruction is None:  # start-up: checked once the policy is loaded
            return settings
        if settings.instruction == self.get_parameter('instruction').value:  # unchanged
            return dataclasses.replace(settings, instruction=self.settings.instruction)
        return settings.with_checked_instruction(self._check_instruction)

    def _apply_settings(self, settings: InferenceConfig, changed: tuple) -> None:
        """A validated ``ros2 param set`` (or instruction service / topic): apply at once."""
        with self._lock:
            self.settings = settings
            self._instruction = settings.instruction
        if 'status_rate_hz' in changed:
            self._status_timer.cancel()
            self.destroy_timer(self._status_timer)
            self._status_timer = self.create_timer(1.0 / settings.status_rate_hz,
                                                   self._on_status_timer)
        if 'instruction' in changed:
            self.get_logger().info(f'instruction set: {settings.instruction!r}')
            if self.policy.compiles_for(settings.instruction):
                self.get_logger().warning(
                    'this instruction is in a prompt-length bucket the compiled policy has not '
                    'run yet: its first chunks compile / record a CUDA graph (minutes at real '
                    'size on the first compile); the executor holds position meanwhile')
        others = [name for name in changed if name != 'instruction']
        if others:
            self.get_logger().info(
                f'parameters changed: { {name: getattr(settings, name) for name in others} }')

    @property
    def dropped_observations(self) -> int:
        """Synchronised observations replaced in the handoff slot before inference used them."""
        return self._slot.overwritten

    def _warm_up(self) -> None:
        """Run the policy on a blank observation; a policy that cannot run fails start-up."""
        image_hw = self.settings.expected_image_hw or (WARMUP_IMAGE_SIZE, WARMUP_IMAGE_SIZE)
        runs = self.settings.warmup_runs
        if runs:
            runs = max(runs, self.policy.warmup_calls)  # CUDA graphs: compile, record, replay
        warm_up_policy(self.policy, self._policy_cameras, image_hw,
                       self._instruction or 'warm up', runs)

    def _sensor_qos(self) -> QoSProfile:
        reliability = (ReliabilityPolicy.BEST_EFFORT
                       if self.settings.sensor_qos_reliability == 'best_effort'
                       else ReliabilityPolicy.RELIABLE)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.settings.sensor_qos_depth,
                          reliability=reliability)

    def _create_interfaces(self) -> None:
        settings, qos = self.settings, self._sensor_qos()
        for camera, topic in self._assembler.unused_cameras:
            self.get_logger().warning(f'camera {camera!r} ({topic}) is not used by the policy')
        for stream in self._assembler.streams.values():
            if stream.arm is not None:
                message_type = JointState
            else:
                message_type = CompressedImage if stream.compressed else Image
            self.create_subscription(message_type, stream.topic,
                                     self._make_input_callback(stream), qos)
        self.create_subscription(String, 'instruction', self._on_instruction_topic, 10)
        self._chunk_publisher = self.create_publisher(ActionChunk, 'action_chunk', 10)
        self._arm_publishers = [
            self.create_publisher(JointTrajectory, f'action_chunk/{side}', 10)
            for side in CHUNK_FIELDS[:self.robot.num_arms]]
        self.create_service(SetInstruction, 'set_instruction', self._on_set_instruction)
        self.create_service(Trigger, 'start', self._on_start)
        self.create_service(Trigger, 'pause', self._on_pause)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                                            10)
        self._status_timer = self.create_timer(1.0 / settings.status_rate_hz,
                                               self._on_status_timer)

    # ------------------------------------------------------------------------- inputs
    def _guarded(self, stream: str, source: str, callback):
        """``callback`` reporting any unexpected exception as a fault of ``stream``.

        No message may end the node: a conversion bug or an input nobody foresaw becomes a FAULT
        naming the source and the exception, cleared by the stream's next good message.
        """
        def guarded(message) -> None:
            try:
                callback(message)
            except Exception as error:  # noqa: BLE001 - reported as a fault, never raised
                self._report_input_fault(
                    stream, f'{source}: message not handled: {typed_one_line(error)}')

        return guarded

    def _make_input_callback(self, stream: InputStream):
        """The subscription callback of one camera or joint-state stream."""
        def on_message(message) -> None:
            arrival_s = time.perf_counter()
            try:
                stamp_ns, value = self._assembler.convert(
                    stream, message, self.get_clock().now().nanoseconds)
            except ValueError as error:
                self._report_input_fault(stream.name, str(error))
                return
            self._accept(stream, stamp_ns, value, arrival_s)

        return self._guarded(stream.name, stream.source, on_message)

    def _accept(self, stream: InputStream, stamp_ns: int, value, arrival_s: float) -> None:
        with self._lock:
            self._input_faults.pop(stream.name, None)
            synced = self._assembler.synchronise(stream, stamp_ns, value)
            if synced is None:
                return
            self._set_times.append(time.monotonic())
        try:
            observation = self._assembler.observation(synced, arrival_s)
        except ValueError as error:
            self._report_input_fault(stream.name, str(error))
            return
        self._slot.put(observation)

    def _report_input_fault(self, stream: str, reason: str) -> None:
        with self._lock:
            is_new = self._input_faults.get(stream) != reason
            self._input_faults[stream] = reason
        if is_new:  # a camera sending bad frames at 30 Hz must not flood policy_status
            self._publish_status()

    # -------------------------------------------------------------------- instruction
    def _set_instruction_parameter(self, text: str) -> str:
        """Set the ``instruction`` parameter (its callback validates and applies); return why not.

        '' when applied, else the refusal reason (the policy's rule, naming count and limit).
        """
        result = self.set_parameters([Parameter('instruction', value=text)])[0]
        return '' if result.successful else result.reason

    def _on_set_instruction(self, request, response):
        reason = self._set_instruction_parameter(request.instruction)
        response.success = not reason
        response.message = reason or f'instruction set: {self.settings.instruction!r}'
        return response

    def _on_instruction_topic(self, message: String) -> None:
        try:
            reason = self._set_instruction_parameter(message.data)
        except Exception as error:  # noqa: BLE001 - no message may end the node
            reason = f'message not handled: {typed_one_line(error)}'
        if reason:
            self.get_logger().warning(f'instruction topic: {reason}')

    # ---------------------------------------------------------------- start / pause
    def _on_start(self, request, response):
        with self._lock:
            self._state = PolicyStatus.STATE_RUNNING
        response.success, response.message = True, 'running'
        self._publish_status()
        return response

    def _on_pause(self, request, response):
        with self._lock:
            self._state = PolicyStatus.STATE_PAUSED
        response.success, response.message = True, 'paused: no chunks are published'
        self._publish_status()
        return response

    # ------------------------------------------------------------------------ worker
    def _worker_loop(self) -> None:
        free_since_s = time.perf_counter()
        while not self._slot.closed:
            observation = self._slot.take(timeout_s=0.2)
            if observation is None:
                continue
            try:
                self._run_inference(observation, free_since_s)
            except RuntimeError as error:  # rclpy's RCLError: publishing failed
                if not self.context.ok():
                    return  # shut down (SIGTERM) while a chunk was in flight
                self.get_logger().error(f'inference worker: {error}')
            if self.settings.wait_for_fresh_observation:  # dynamic: read every time
                self._slot.clear()
            free_since_s = time.perf_counter()

    def _run_inference(self, observation: Observation, worker_free_s: float) -> None:
        with self._lock:
            running = self._state == PolicyStatus.STATE_RUNNING
            instruction = self._instruction
        if not running:
            return
        if not instruction:
            self._set_policy_fault('no instruction: call set_instruction or publish instruction')
            return
        age_s = (self.get_clock().now().nanoseconds - observation.stamp_ns) * 1e-9
        fault = observation_age_fault(age_s, self.settings.max_observation_age_s,
                                      self.settings.max_future_stamp_s)
        if fault:
            self._set_policy_fault(fault)
            return
        model_start_s = time.perf_counter()
        try:
            raw = self.policy.predict_action_chunk(observation.as_policy_input(instruction))
        except Exception as error:  # noqa: BLE001 - any policy failure must become a fault
            self._set_policy_fault(f'policy raised {type(error).__name__}: {error}')
            return
        model_s = time.perf_counter() - model_start_s
        try:
            actions = validate_action_chunk(raw, int(self.policy.config.action_dim))
            angles = self.robot.policy_to_joint_angles(actions)  # (T, action_dim) rad
        except ValueError as error:
            self._set_policy_fault(str(error))
            return
        published_s = self._publish_chunk(observation, instruction, angles, model_s)
        self.timings.append(ChunkTiming(
            arrival_s=observation.last_arrival_s, worker_free_s=worker_free_s,
            model_start_s=model_start_s, model_s=model_s, published_s=published_s))
        with self._lock:
            self._latencies.record(published_s - observation.last_arrival_s)

    def _set_policy_fault(self, reason: str) -> None:
        with self._lock:
            self._policy_fault = reason
        self._publish_status()

    def _publish_chunk(self, observation: Observation, instruction: str, angles,
                       model_s: float) -> float:
        """Publish the ActionChunk, then the per-arm trajectories; return the chunk's time."""
        chunk, trajectories = conversions.action_chunk_message(
            observation.stamp_ns, self.robot, angles, self.settings.step_s, POLICY_FRAME_ID)
        chunk.instruction = instruction
        chunk.inference_ms = model_s * 1e3
        with self._lock:
            chunk.sequence = self._sequence
            self._sequence += 1
            self._last_inference_ms = chunk.inference_ms
            had_fault, self._policy_fault = self._policy_fault, ''
        self._chunk_publisher.publish(chunk)
        published_s = time.perf_counter()
        for publisher, trajectory in zip(self._arm_publishers, trajectories):
            publisher.publish(trajectory)
        if had_fault:
            self._publish_status()
        return published_s

    # ------------------------------------------------------------------------ status
    def _current_fault(self, now_ns: int) -> str:
        """The most specific fault now: bad input > missing/stale stream > policy fault."""
        with self._lock:
            if self._input_faults:
                return '; '.join(self._input_faults.values())
            if self._state == PolicyStatus.STATE_RUNNING and self._sync is not None:
                grace_over = (now_ns - self._started_ns
                              > self.settings.max_observation_age_s * 1e9)
                diagnosis = self._sync.diagnose(now_ns) if grace_over else None
                if diagnosis:
                    return diagnosis
            return self._policy_fault

    def _observation_rate_hz(self) -> float:
        now = time.monotonic()
        with self._lock:
            return float(sum(1 for t in self._set_times if now - t <= 1.0))

    def _publish_status(self) -> PolicyStatus:
        """Publish the current PolicyStatus now and return it."""
        now = self.get_clock().now()
        status = PolicyStatus()
        status.header.stamp = now.to_msg()
        state = self._state
        fault = self._current_fault(now.nanoseconds)
        if fault and state == PolicyStatus.STATE_RUNNING:
            state = PolicyStatus.STATE_FAULT
        status.state = state
        status.fault_reason = fault
        status.last_inference_ms = float(self._last_inference_ms)
        status.observation_rate_hz = self._observation_rate_hz()
        if fault and fault != self._reported_fault:
            self.get_logger().warning(f'fault: {fault}', throttle_duration_sec=1.0)
        self._reported_fault = fault
        self._status_publisher.publish(status)
        return status

    def _on_status_timer(self) -> None:
        self._publish_diagnostics(self._publish_status())

    def _publish_diagnostics(self, status: PolicyStatus) -> None:
        """The same status on /diagnostics, with latency and drop counts.

        latency: arrival of the message that completed an observation to the publication of its
        chunk, over the last LATENCY_WINDOW chunks.
        """
        with self._lock:
            p50_ms, p99_ms = self._latencies.percentiles_ms()
            chunks = self._sequence
        level = {PolicyStatus.STATE_FAULT: 'error', PolicyStatus.STATE_RUNNING: 'ok'}.get(
            status.state, 'warn')
        values = {
            'state': state_name(status.state), 'fault_reason': status.fault_reason,
            'observation_rate_hz': status.observation_rate_hz,
            'last_inference_ms': status.last_inference_ms, 'latency_p50_ms': p50_ms,
            'latency_p99_ms': p99_ms, 'chunks_published': chunks,
            'dropped_observations': self.dropped_observations}
        self._diagnostics_publisher.publish(diagnostic_array(
            status.header.stamp, f'{self.get_name()}: policy inference', level,
            status.fault_reason or values['state'], values))

    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the node."""
        slot = getattr(self, '_slot', None)
        if slot is not None:
            slot.close()
            worker = getattr(self, '_worker', None)
            if worker is not None and worker is not threading.current_thread():
                worker.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console entry point ``vla-adapter-inference``."""
    return run_node(InferenceNode, NODE_NAME, args,
                    help_text=parameter_help(INFERENCE_PARAMETERS, 'vla-adapter-inference',
                                             NODE_NAME, __doc__.splitlines()[0]))


if __name__ == '__main__':
    raise SystemExit(main())
