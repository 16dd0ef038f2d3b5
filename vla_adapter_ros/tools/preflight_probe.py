"""`vla-adapter-preflight`: the pre-flight check over DDS (and the collector the session uses).

:class:`PreflightProbe` subscribes a node to every camera and joint-state topic of a robot
description and feeds each arriving message into recording/preflight.py's logic (the header
stamp against this node's clock, the image size, the joint names and gripper reading); the
session and the command below call :meth:`PreflightProbe.begin`, let the window pass, and take
:meth:`PreflightProbe.failures`. Exit status of the command: 0 when every check passed, 1 when
one failed (each failure on its own line), 2 on a user error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
import threading
import time

from training.config_cli import build_config_parser, option, require_option, run_config_main
from vla_adapter_core.robot_description import RobotDescription, load_robot_description
from vla_adapter_ros.pipeline.conversions import stamp_to_nanoseconds
from vla_adapter_ros.recording.preflight import (
    PreflightConfig,
    PreflightFailure,
    StreamExpectation,
    StreamObservation,
    check_streams,
    expected_streams,
)

PROG = 'vla-adapter-preflight'


class PreflightProbe:
    """The pre-flight collector on an existing node (callbacks only count and compare)."""

    def __init__(self, node, robot: RobotDescription, config: PreflightConfig,
                 joint_states_topic: str = 'joint_states') -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState

        self._node, self.config = node, config
        self.streams = expected_streams(robot, config.check_leaders, joint_states_topic)
        self._lock = threading.Lock()
        self._seen: dict[str, StreamObservation] = {}
        self._begin_ns = self._now_ns()
        for stream in self.streams:
            kind = Image if stream.kind == 'camera' else JointState
            callback = (self._on_image if stream.kind == 'camera' else self._on_joints)
            node.create_subscription(kind, stream.topic, functools.partial(callback, stream),
                                     qos_profile_sensor_data)

    def _now_ns(self) -> int:
        return self._node.get_clock().now().nanoseconds

    def _observation(self, topic: str) -> StreamObservation:
        return self._seen.setdefault(topic, StreamObservation())

    def _on_image(self, stream: StreamExpectation, message) -> None:
        with self._lock:
            self._observation(stream.topic).add_image(
                self._now_ns(), stamp_to_nanoseconds(message.header.stamp), message.height,
                message.width)

    def _on_joints(self, stream: StreamExpectation, message) -> None:
        with self._lock:
            self._observation(stream.topic).add_joint_state(
                self._now_ns(), stamp_to_nanoseconds(message.header.stamp), message.name,
                message.position, stream.arm)

    def begin(self) -> None:
        """Forget everything seen so far: a new window starts now."""
        with self._lock:
            self._seen, self._begin_ns = {}, self._now_ns()

    def elapsed_s(self) -> float:
        """Seconds since :meth:`begin`."""
        return max(1e-9, (self._now_ns() - self._begin_ns) / 1e9)

    def failures(self) -> list[PreflightFailure]:
        """The checks over the window since :meth:`begin` (call once it has lasted window_s)."""
        with self._lock:
            seen = dict(self._seen)
            return check_streams(self.streams, seen, self.elapsed_s(), self.config)

    def rates_hz(self) -> dict[str, float]:
        """Messages per second of every topic since :meth:`begin`."""
        elapsed = self.elapsed_s()
        with self._lock:
            return {stream.topic: self._seen.get(stream.topic, StreamObservation()).count
                    / elapsed for stream in self.streams}

    def unpublished(self) -> list[str]:
        """Topics without any publisher on the graph yet."""
        return [stream.topic for stream in self.streams
                if not self._node.get_publishers_info_by_topic(stream.topic)]


@dataclass(frozen=True)
class PreflightToolConfig:
    """What `vla-adapter-preflight` checks (the fields are its command line)."""

    robot: str = option('aloha', path='file_or_name',
                        help='robot description: a built-in name or a YAML file')
    # DDS discovery of a publisher takes up to a second or two on a loaded machine.
    discovery_s: float = option(5.0, help='longest wait for every topic to have a publisher '
                                          'before the window starts (s)')
    preflight: PreflightConfig = field(default_factory=PreflightConfig)

    def __post_init__(self) -> None:
        require_option(0.0 <= self.discovery_s <= 120.0, 'discovery_s', self.discovery_s,
                       'must be in [0, 120]')
        load_robot_description(self.robot)  # a bad name or file fails here, in one line


def run_check(executor, probe: PreflightProbe, discovery_s: float) -> list:
    """Wait for discovery (bounded), collect one window, return the failures."""
    deadline = time.monotonic() + discovery_s
    while probe.unpublished() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    probe.begin()
    end = time.monotonic() + probe.config.window_s
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    return probe.failures()


def _check(config: PreflightToolConfig) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    robot = load_robot_description(config.robot)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C: KeyboardInterrupt
    node = rclpy.create_node('preflight_check')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        probe = PreflightProbe(node, robot, config.preflight)
        failures = run_check(executor, probe, config.discovery_s)
        for topic, rate in probe.rates_hz().items():
            print(f'{topic}: {rate:.1f} Hz')
    except KeyboardInterrupt:
        return 130
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    for failure in failures:
        print(f'FAILED {failure}')
    print(f'pre-flight {"passed" if not failures else "failed"}: {len(probe.streams)} topics, '
          f'{len(failures)} failures')
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point ``vla-adapter-preflight``."""
    parser = build_config_parser(PreflightToolConfig, PROG, __doc__.splitlines()[0])
    return run_config_main(parser, PreflightToolConfig, argv, _check)


if __name__ == '__main__':
    raise SystemExit(main())
