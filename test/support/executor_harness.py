"""Test harness for the chunk executor over real DDS.

`ExecutorHarness` runs a ChunkExecutorNode and a probe node in a private rclpy context, each
spun by a SingleThreadedExecutor in a background thread of its own (the executor node as main()
runs it). The probe records
everything the executor sends (Interbotix commands, ros2_control commands, PolicyStatus) and
the joint_states of the fake driver process, publishes ActionChunks and calls the e-stop
services. `make_chunk` builds ActionChunks, including malformed ones (NaN, wrong names, ...).
"""

from collections.abc import Callable
import threading
import time

from builtin_interfaces.msg import Duration
from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_test_utils import SUPPORT_DIR  # noqa: E402
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_ros.nodes.executor_node import ChunkExecutorNode

FAKE_DRIVER = SUPPORT_DIR / 'fake_interbotix_driver.py'
# ALOHA with the gripper starting at 1.2 rad (test/fixtures/robots/aloha_test.yaml).
TEST_ROBOT_FILE = SUPPORT_DIR.parent / 'fixtures' / 'robots' / 'aloha_test.yaml'
TEST_ROBOT = load_robot_description(TEST_ROBOT_FILE)
JOINT_NAMES = list(TEST_ROBOT.arms[0].command_joint_names)
ROBOTS = TEST_ROBOT.namespaces
DRIVER_POSE = TEST_ROBOT.start_joint_angles()[:len(JOINT_NAMES)]  # (7,) rad, gripper 1.2


def speed_scale_for(max_speed: float) -> float:
    """The executor's speed_scale that limits every joint of the test robot to max_speed."""
    return max_speed / float(TEST_ROBOT.max_joint_speed().max())


def driver_arguments(robots, initial_pose: np.ndarray | None = None) -> list[str]:
    """Command-line of the fake driver for the test robot; initial_pose in joint angles (rad)."""
    line = ['--robot-description', str(TEST_ROBOT_FILE), '--robots', *robots]
    if initial_pose is not None:
        policy_pose = TEST_ROBOT.arms[0].action_from_joint_angles(initial_pose)
        line += ['--initial-pose', *[str(v) for v in policy_pose]]
    return line
FLOAT32_TOLERANCE = 2e-6  # commands travel as float32


def make_trajectory(positions: np.ndarray | None, dt: float = 0.02,
                    joint_names: list[str] | None = None,
                    offsets_s: list[float] | None = None) -> JointTrajectory:
    """(T, 7) positions -> JointTrajectory (no value checks: tests feed bad values too)."""
    trajectory = JointTrajectory(joint_names=list(JOINT_NAMES if joint_names is None
                                                  else joint_names))
    if positions is None:
        return trajectory
    for step, row in enumerate(np.asarray(positions, dtype=np.float64)):
        elapsed = step * dt if offsets_s is None else offsets_s[step]
        nanoseconds = int(round(elapsed * 1e9))
        trajectory.points.append(JointTrajectoryPoint(
            positions=[float(value) for value in row],
            time_from_start=Duration(sec=nanoseconds // 1_000_000_000,
                                     nanosec=nanoseconds % 1_000_000_000)))
    return trajectory


def make_chunk(stamp_ns: int, left: JointTrajectory, right: JointTrajectory | None = None,
               sequence: int = 0) -> ActionChunk:
    """ActionChunk stamped with the observation time stamp_ns (ROS time, ns)."""
    chunk = ActionChunk(left=left, right=right if right is not None else JointTrajectory(),
                        instruction='test', inference_ms=12.5, sequence=sequence)
    chunk.header.stamp.sec, chunk.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return chunk


class ExecutorHarness:
    """ChunkExecutorNode + probe node, each spinning in a background thread (private context)."""

    def __init__(self, parameters: dict, robots: tuple[str, ...] = ROBOTS) -> None:
        self.robots = robots
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = ChunkExecutorNode(context=self.context, parameter_overrides=overrides)
        self.probe = rclpy.create_node('executor_probe', context=self.context)
        self.lock = threading.Lock()
        self.groups: dict[str, list] = {robot: [] for robot in robots}  # (t, name, values)
        self.singles: dict[str, list] = {robot: [] for robot in robots}  # (t, name, value)
        self.other_commands: dict[str, list] = {robot: [] for robot in robots}
        self.statuses: list[PolicyStatus] = []
        self.joint_states: dict[str, JointState] = {}
        self._subscribe(robots)
        self.chunk_publisher = self.probe.create_publisher(ActionChunk, 'action_chunk', 10)
        self.estop_publisher = self.probe.create_publisher(Bool, 'estop', 10)
        self.pause_publisher = self.probe.create_publisher(
            Bool, 'fake_driver/pause_joint_states', 10)
        self.estop_client = self.probe.create_client(Trigger, '/chunk_executor/estop')
        self.reset_client = self.probe.create_client(Trigger, '/chunk_executor/reset_estop')
        self.executors = []
        self._threads = []
        for node in (self.node, self.probe):
            executor = SingleThreadedExecutor(context=self.context)
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, daemon=True)
            thread.start()
            self.executors.append(executor)
            self._threads.append(thread)

    def _subscribe(self, robots: tuple[str, ...]) -> None:
        def record(log: dict, robot: str, entry: Callable) -> Callable:
            def callback(message) -> None:
                with self.lock:
                    log[robot].append((time.monotonic(), *entry(message)))
            return callback

        for robot in robots:
            self.probe.create_subscription(
                JointGroupCommand, f'{robot}/commands/joint_group',
                record(self.groups, robot, lambda m: (m.name, np.array(m.cmd, np.float64))), 500)
            self.probe.create_subscription(
                JointSingleCommand, f'{robot}/commands/joint_single',
                record(self.singles, robot, lambda m: (m.name, float(m.cmd))), 500)
            self.probe.create_subscription(
                JointTrajectory, f'{robot}/arm_controller/joint_trajectory',
                record(self.other_commands, robot, lambda m: (m,)), 500)
            self.probe.create_subscription(
                Float64MultiArray, f'{robot}/forward_position_controller/commands',
                record(self.other_commands, robot, lambda m: (m,)), 500)
            self.probe.create_subscription(
                JointState, f'{robot}/joint_states',
                lambda message, name=robot: self.joint_states.__setitem__(name, message),
                qos_profile_sensor_data)
        self.probe.create_subscription(PolicyStatus, 'executor_status', self._on_status, 100)

    def _on_status(self, message: PolicyStatus) -> None:
        with self.lock:
            self.statuses.append(message)

    # ------------------------------------------------------------------ helpers
    def close(self) -> None:
        """Stop spinning and destroy everything (always call, e.g. in a fixture's finally)."""
        for executor in self.executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)

    def now_ns(self) -> int:
        """The executor's ROS time (ns)."""
        return self.node.get_clock().now().nanoseconds

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll predicate (the executor spins in its own thread); fail naming `what`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        snapshot = self.node.status_snapshot()
        raise AssertionError(f'timed out after {timeout_s} s waiting for {what}; executor: '
                             f'state={snapshot["state"]} reason={snapshot["reason"]!r} '
                             f'phase={snapshot["phase"]}')

    def wait_state(self, state: int, timeout_s: float = 10.0, reason: str = '') -> str:
        """Wait until the executor is in `state` with `reason` in its fault_reason."""
        def matches() -> bool:
            snapshot = self.node.status_snapshot()
            return snapshot['state'] == state and reason in snapshot['reason']
        self.wait_for(matches, timeout_s, f'state {state} with reason containing {reason!r}')
        return self.node.status_snapshot()['reason']

    def command_log(self, robot: str, since_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(times (N,), 6-joint arm commands (N, 6)) received since since_s (monotonic)."""
        with self.lock:
            entries = [entry for entry in self.groups[robot] if entry[0] >= since_s]
        if not entries:
            return np.zeros(0), np.zeros((0, 6))
        return (np.array([entry[0] for entry in entries]),
                np.stack([entry[2] for entry in entries]))

    def gripper_log(self, robot: str, since_s: float = 0.0) -> np.ndarray:
        """Gripper commands (N,) received since since_s."""
        with self.lock:
            return np.array([entry[2] for entry in self.singles[robot] if entry[0] >= since_s])

    def assert_holds(self, fault_seen_s: float, max_step: float, duration_s: float = 0.4) -> None:
        """After a fault: the command stays at the executor's command of the fault, no jump.

        Inside the executor the state and the command change together, so the command read
        right after the fault was seen is the held one. On the wire, commands are stamped when
        the probe receives them (late under load), so the check there is: the stream ends in a
        run of held commands that nothing follows, and no step exceeds max_step.
        """
        held = self.node.status_snapshot()['command']
        time.sleep(duration_s)
        np.testing.assert_array_equal(self.node.status_snapshot()['command'], held)
        for arm, robot in enumerate(self.robots):
            _, commands = self.command_log(robot, since_s=fault_seen_s - 1.0)
            is_held = np.all(np.abs(commands - held[arm * 7:arm * 7 + 6]) <= 1e-5, axis=1)
            moving = np.flatnonzero(~is_held)
            held_run = len(commands) - (moving[-1] + 1 if moving.size else 0)
            assert held_run >= 5, (f'{robot}: the stream does not end in a hold '
                                   f'({held_run} held commands at the end)')
            assert np.abs(np.diff(commands, axis=0)).max() <= max_step + FLOAT32_TOLERANCE

    def call(self, client, timeout_s: float = 5.0) -> Trigger.Response:
        """Call a Trigger service (asynchronously; the background thread spins)."""
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise AssertionError(f'service {client.srv_name} not available')
        future = client.call_async(Trigger.Request())
        self.wait_for(future.done, timeout_s, f'answer of {client.srv_name}')
        return future.result()

    def publish_chunk(self, chunk: ActionChunk) -> None:
        """Publish one ActionChunk to the executor."""
        self.chunk_publisher.publish(chunk)


class ChunkStream:
    """Publishes dual-arm chunks at rate_hz, planned along target_fn(absolute time) -> (14,).

    Each chunk is stamped latency_s before its publication (the observation time) and holds
    steps covering horizon_s; offset_fn(sequence) -> (14,) is added to every chunk (a per-chunk
    disagreement between successive plans, as policies produce).
    """

    def __init__(self, harness: ExecutorHarness, target_fn: Callable[[float], np.ndarray],
                 rate_hz: float = 10.0, latency_s: float = 0.1, horizon_s: float = 0.5,
                 offset_fn: Callable[[int], np.ndarray] | None = None, dt: float = 0.02,
                 dual: bool = True) -> None:
        self.harness, self.target_fn, self.latency_s = harness, target_fn, latency_s
        self.offset_fn = offset_fn
        self.steps = int(round(horizon_s / dt)) + 1
        self.dt, self.dual = dt, dual
        self.sequence = 0
        self._lock = threading.Lock()
        self._stopped = False
        self._timer = harness.probe.create_timer(1.0 / rate_hz, self.publish_one)

    def publish_one(self) -> None:
        """Plan and publish the next chunk (nothing once stop() has returned)."""
        with self._lock:
            if not self._stopped:
                self._publish_locked()

    def _publish_locked(self) -> None:
        stamp_ns = self.harness.now_ns() - int(self.latency_s * 1e9)
        times = stamp_ns * 1e-9 + np.arange(self.steps) * self.dt
        plan = np.stack([self.target_fn(t) for t in times])  # (T, 14)
        if self.offset_fn is not None:
            plan = plan + self.offset_fn(self.sequence)
        right = make_trajectory(plan[:, 7:], self.dt) if self.dual else None
        self.harness.publish_chunk(make_chunk(stamp_ns, make_trajectory(plan[:, :7], self.dt),
                                              right, sequence=self.sequence))
        self.sequence += 1

    def stop(self) -> None:
        """Stop publishing; no chunk of this stream is published after this returns."""
        with self._lock:
            self._stopped = True
        self._timer.cancel()
