"""`vla-adapter-preflight`: the pre-flight check over DDS (and the collector the session uses).

:class:`PreflightProbe` subscribes a node to every camera and joint-state topic of a robot
description and feeds each arriving message into recording/preflight_window.py's collector (the
header stamp against this node's clock, the image size, the joint names and gripper reading); the
session and the command below call :meth:`PreflightProbe.begin`, let the window pass, and take
:meth:`PreflightProbe.failures`. Exit status of the command: 0 when every check passed, 1 when
one failed (each failure on its own line), 2 on a user error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time

from training.config_cli import build_config_parser, option, require_option, run_config_main
from vla_adapter_core.robot_description import RobotDescription, load_robot_description
from vla_adapter_ros.recording.preflight import PreflightConfig, expected_streams
from vla_adapter_ros.recording.preflight_window import PreflightCollector

PROG = 'vla-adapter-preflight'


class PreflightProbe(PreflightCollector):
    """The pre-flight collector subscribed on an existing node (callbacks only count)."""

    def __init__(self, node, robot: RobotDescription, config: PreflightConfig,
                 joint_states_topic: str = 'joint_states') -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState

        self._node = node
        super().__init__(expected_streams(robot, config.check_leaders, joint_states_topic),
                         config, lambda: node.get_clock().now().nanoseconds)
        self.subscribe(node.create_subscription, Image, JointState, qos_profile_sensor_data)

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
