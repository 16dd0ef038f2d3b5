"""`make demo`: the full ROS pipeline on a simulated robot, watched and summarised.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/tools/showcase.py.
"""

from dataclasses import dataclass
import pathlib
import sys
import tempfile
import time

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from interbotix_xs_msgs.msg import JointGroupCommand
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from training.config_cli import build_config_parser, option, require_option, run_config_main
from vla_adapter_core.robot_description import RobotDescription, load_robot_description
from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_ros.bringup.launch_description import PACKAGE, build_node_specs
from vla_adapter_ros.bringup.node_processes import NodeProcessGroup
from vla_adapter_ros.pipeline.status import state_name
from vla_adapter_ros.sim.task_facts import DEFAULT_INSTRUCTION


class PipelineMonitor(Node):
    """Counts chunks and commands and keeps the latest status of each node."""

    def __init__(self, robot_names: list[str]) -> None:
        super().__init__('vla_demo_monitor')
        self.chunks = 0
        self.inference_ms: list[float] = []
        self.commands = {name: 0 for name in robot_names}
        self.last_command = {name: None for name in robot_names}
        self.statuses: dict[str, PolicyStatus] = {}
        self.faults: list[str] = []
        self.create_subscription(ActionChunk, 'action_chunk', self._on_chunk, 10)
        for topic in ('policy_status', 'executor_status'):
            self.create_subscription(PolicyStatus, topic,
                                     lambda msg, t=topic: self._on_status(t, msg), 10)
        for name in robot_names:
            self.create_subscription(JointGroupCommand, f'/{name}/commands/joint_group',
                                     lambda msg, n=name: self._on_command(n, msg), 10)

    def _on_chunk(self, message) -> None:
        self.chunks += 1
        self.inference_ms.append(message.inference_ms)

    def _on_status(self, topic: str, message) -> None:
        self.statuses[topic] = message
        if message.state == 5 and message.fault_reason:
            self.faults.append(f'{topic}: {message.fault_reason}')

    def _on_command(self, robot: str, message) -> None:
        self.commands[robot] += 1
        self.last_command[robot] = np.asarray(message.cmd, dtype=np.float64)

    def status_line(self) -> str:
        parts = [f'chunks={self.chunks}']
        if self.inference_ms:
            parts.append(f'inference_ms(median)={np.median(self.inference_ms):.0f}')
        parts += [f'{robot}_commands={count}' for robot, count in self.commands.items()]
        for topic, status in sorted(self.statuses.items()):
            state = state_name(status.state)
            parts.append(f'{topic}={state}')
            if status.fault_reason:
                parts.append(f'({status.fault_reason})')
        return ' '.join(parts)


def statistics_near_start_pose(robot: RobotDescription, spread: float = 0.3) -> dict:
    """Dataset statistics that keep un-normalised actions near the start pose.

    Arm joints within ``spread`` (rad) of the start pose, grippers over their whole 0..1 range;
    under the tiny policy's statistics key.
    """
    from vla_adapter_core.tiny_policies import TINY_STATISTICS_KEY

    start = [np.asarray(arm.start_pose[:-1], dtype=np.float64) for arm in robot.arms]
    low = np.concatenate([[*pose - spread, 0.0] for pose in start])  # (action_dim,)
    high = np.concatenate([[*pose + spread, 1.0] for pose in start])

    def feature() -> dict:
        return {'mean': ((low + high) / 2).tolist(), 'std': ((high - low) / 4).tolist(),
                'min': low.tolist(), 'max': high.tolist(), 'q01': low.tolist(),
                'q99': high.tolist(), 'mask': [True] * low.size}

    return {TINY_STATISTICS_KEY: {'action': feature(), 'proprio': feature(),
                                  'num_transitions': 1, 'num_trajectories': 1}}


def demo_policy(robot: RobotDescription, camera_names=None, chunk_size: int = 25,
                device: str = 'cpu', dtype: str = 'float32', seed: int = 0):
    """A tiny random-weight VLAPolicy for ``robot`` that records the robot's layout.

    Its actions stay near the start pose (:func:`statistics_near_start_pose`); two-arm robots
    get the dual-arm head. ``camera_names``: default the description's cameras.
    """
    from vla_adapter_core.tiny_policies import build_tiny_policy

    policy = build_tiny_policy(
        action_dim=robot.action_dim, proprio_dim=robot.proprio_dim, chunk_size=chunk_size,
        camera_names=tuple(camera_names or robot.cameras),
        head_kind='dual_arm' if robot.num_arms == 2 else 'l1', seed=seed,
        statistics=statistics_near_start_pose(robot), device=device, dtype=dtype)
    policy.config.robot_layout = robot.layout()
    return policy


def _demo_checkpoint(robot: RobotDescription, directory: pathlib.Path, device: str):
    print(f'[demo] building a tiny random-weight policy for {robot.name} in {directory}',
          flush=True)
    demo_policy(robot, device=device).save_pretrained(directory)
    return directory


@dataclass(frozen=True)
class ShowcaseConfig:
    """What `vla-adapter-demo` runs (the fields are its command line)."""

    checkpoint: str = option('', metavar='DIR',
                             help='policy checkpoint directory; default: a tiny random policy')
    robot: str = option('aloha', metavar='NAME|FILE',
                        help='robot description: a built-in name or a description YAML path')
    instruction: str = option(DEFAULT_INSTRUCTION, help='the instruction the policy is given')
    duration: float = option(15.0, help='seconds to run after the first chunk arrived')
    # A real-size checkpoint on a CPU takes minutes to load and warm up.
    startup_timeout: float = option(180.0, aliases=('--startup-timeout',),
                                    help='seconds to wait for the first chunk (model loading)')
    device: str = option('cpu', help="torch device, e.g. 'cuda'")
    work_dir: str = option('', aliases=('--work-dir',), metavar='DIR',
                           help='where logs and the demo policy go (default: a temporary folder)')

    def __post_init__(self) -> None:
        for name in ('duration', 'startup_timeout'):
            require_option(getattr(self, name) > 0, name, getattr(self, name), 'must be > 0')


def run(arguments: ShowcaseConfig) -> int:
    robot = load_robot_description(arguments.robot)
    work_dir = pathlib.Path(arguments.work_dir or tempfile.mkdtemp(prefix='vla_demo_'))
    checkpoint = pathlib.Path(arguments.checkpoint) if arguments.checkpoint else (
        _demo_checkpoint(robot, work_dir / 'policy', arguments.device))
    mode = 'dual' if robot.num_arms == 2 else 'single'
    specs = build_node_specs(mode, {
        'checkpoint': str(checkpoint), 'robot_description': robot.source,
        'instruction': arguments.instruction, 'device': arguments.device, 'use_sim': 'true'},
        get_package_share_directory(PACKAGE))
    executables = pathlib.Path(get_package_prefix(PACKAGE)) / 'lib' / PACKAGE
    robots = list(robot.namespaces)
    print(f'[demo] starting {[spec.name for spec in specs]}; logs in {work_dir / "logs"}',
          flush=True)
    rclpy.init()
    monitor = PipelineMonitor(robots)
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    group = NodeProcessGroup(specs, executables, work_dir / 'logs')
    try:
        group.start()
        deadline = time.monotonic() + arguments.startup_timeout
        next_report = time.monotonic() + 2.0
        running = False
        while time.monotonic() < deadline and not group.exited():
            executor.spin_once(timeout_sec=0.1)
            if not running and monitor.chunks > 0:
                running = True
                deadline = time.monotonic() + arguments.duration
            if time.monotonic() >= next_report:
                print(f'[demo] {monitor.status_line()}', flush=True)
                next_report += 2.0
    finally:
        exited_early = group.exited()
        group.stop()
        executor.shutdown()
        monitor.destroy_node()
        rclpy.try_shutdown()
    return _summarise(monitor, exited_early, work_dir)


def _summarise(monitor: PipelineMonitor, exited_early: dict, work_dir: pathlib.Path) -> int:
    print(f'[demo] final: {monitor.status_line()}')
    problems = []
    if exited_early:
        problems.append(f'nodes exited early: {exited_early} (see {work_dir / "logs"})')
    if monitor.chunks == 0:
        problems.append('no action chunk was published')
    if min(monitor.commands.values()) == 0:
        problems.append('an arm received no joint commands')
    problems += sorted(set(monitor.faults))
    for robot, command in monitor.last_command.items():
        if command is not None:
            print(f'[demo] last {robot} arm command (rad): {np.round(command, 3).tolist()}')
    if problems:
        print('[demo] problems:\n  ' + '\n  '.join(problems))
        return 1
    print('[demo] ok: the policy drove every simulated arm through the executor')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point `vla-adapter-demo`."""
    parser = build_config_parser(ShowcaseConfig, 'vla-adapter-demo', __doc__.splitlines()[0])
    return run_config_main(parser, ShowcaseConfig, argv, run)


if __name__ == '__main__':
    sys.exit(main())
