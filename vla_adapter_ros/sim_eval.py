"""`vla-adapter-sim-eval`: closed-loop success on the MuJoCo ALOHA, through the real nodes.

Starts the node specs of ``aloha.launch.py use_sim:=true sim:=mujoco sim_clock:=sim`` as
processes (inference node with the checkpoint, chunk executor, MuJoCo ALOHA), then runs
``--episodes`` episodes with seeds ``--seed``, ``--seed + 1``, ...: per episode it sets the
simulator's ``seed`` parameter, restarts the executor (``~/restart``: no chunk of the previous
episode survives), resets the simulator and waits for ``~/episode_done``. The simulator owns
the clock and waits for each command and chunk, so an episode's outcome does not depend on
how fast this machine is, and the same seed gives the same episode.

Beside the policy, two baselines run in-process on the same seeds and simulator (no nodes):
- ``hold_still``: the arms stay at the start pose;
- ``mean_demonstration``: the mean of the scripted demonstrations' joint targets (seeds
  ``--demo_seeds``), replayed open loop. A policy that beats it is using its cameras.

Writes ``report.json`` (per episode and summary), ``rewards.png`` (reward over time),
``success.png`` (success and mean max reward of the policy and the baselines) and
``top_camera.png`` / ``top_camera.gif`` (the first episode through cam_high).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

from vla_adapter_core.cli_errors import add_debug_flag, run_reporting_errors

PROG = 'vla-adapter-sim-eval'
SIM_NODE = 'mujoco_aloha'
DEFAULT_INSTRUCTION = 'transfer the red cube to the other arm'
SUCCESS_REWARD = 4
WAITING_FOR_CHUNK = 'waiting for the first chunk'  # the executor's reason after ~/restart


# ----------------------------------------------------------------------------- baselines
def baseline_rewards(kind: str, seeds: list[int], targets: np.ndarray | None, steps: int,
                     task: str = 'transfer_cube') -> list[list[int]]:
    """Per-seed reward sequences of an open-loop baseline on the joint-space scene.

    ``kind`` 'hold_still' keeps the start pose; 'mean_demonstration' commands ``targets``
    (steps, 14) in policy units.
    """
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.mujoco_aloha import MujocoAloha
    scene = MujocoAloha(load_robot_description('aloha_sim'), task)
    rewards = []
    for seed in seeds:
        scene.reset(seed)
        sequence = []
        for step in range(steps):
            if kind == 'mean_demonstration':
                scene.command_policy_action(targets[min(step, len(targets) - 1)])
            sequence.append(scene.step())
        rewards.append(sequence)
    return rewards


def mean_demonstration(demo_seeds: list[int], steps: int) -> np.ndarray:
    """(steps, 14) mean joint targets of the scripted demonstrations of ``demo_seeds``."""
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.sim_demos import scripted_joint_trajectory
    robot = load_robot_description('aloha_sim')
    return np.mean([scripted_joint_trajectory(robot, seed, steps)[0] for seed in demo_seeds],
                   axis=0)


def summarise(rewards: list[list[float]]) -> dict:
    """Success rate (reward 4 reached), mean and max of the per-episode max reward."""
    best = np.array([max(sequence) if sequence else 0.0 for sequence in rewards])
    return {'episodes': len(rewards), 'success_rate': float(np.mean(best >= SUCCESS_REWARD)),
            'mean_max_reward': float(best.mean()), 'max_reward': float(best.max())}


# ----------------------------------------------------------------------------- nodes
def eval_node_specs(checkpoint: str, device: str, instruction: str, steps: int,
                    image_hw: tuple[int, int]) -> list:
    """The specs of ``aloha.launch.py use_sim:=true sim:=mujoco sim_clock:=sim`` (no autostart)."""
    from ament_index_python.packages import get_package_share_directory

    from vla_adapter_ros.launch_description import PACKAGE, build_node_specs
    specs = build_node_specs('dual', {
        'checkpoint': checkpoint, 'instruction': instruction, 'device': device,
        'use_sim': 'true', 'sim': 'mujoco', 'sim_clock': 'sim', 'log_level': 'warn'},
        get_package_share_directory(PACKAGE))
    height, width = image_hw
    for spec in specs:
        if spec.name == SIM_NODE:
            spec.parameters.append({'autostart': False, 'episode_steps': steps,
                                    'image_height': height, 'image_width': width})
        elif spec.name == 'vla_inference':
            spec.parameters.append({'image_height': height, 'image_width': width})
    return specs


class EpisodeDriver:
    """An rclpy node that runs episodes on the simulator and collects what happened."""

    def __init__(self, robot, exited=lambda: {}) -> None:
        """``exited()``: the node processes that have ended (name -> exit code)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64, Int32
        from std_srvs.srv import Trigger

        from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
        self.exited = exited
        self.node = Node('vla_sim_eval')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=1000)
        self.rewards: list[float] = []
        self.done_seed: int | None = None
        self.inference_ms: list[float] = []
        self.frames: list[np.ndarray] = []
        self.capture = False
        self.faults: list[str] = []
        node = self.node
        node.create_subscription(Float64, f'/{SIM_NODE}/reward',
                                 lambda msg: self.rewards.append(msg.data), reliable)
        node.create_subscription(Int32, f'/{SIM_NODE}/episode_done', self._on_done, reliable)
        node.create_subscription(ActionChunk, 'action_chunk',
                                 lambda msg: self.inference_ms.append(msg.inference_ms), 100)
        node.create_subscription(Image, robot.camera_topic.format(camera=robot.cameras[0]),
                                 self._on_image, qos_profile_sensor_data)
        node.create_subscription(PolicyStatus, 'executor_status', self._on_status, 10)
        self.policy_state = None
        node.create_subscription(PolicyStatus, 'policy_status',
                                 lambda msg: setattr(self, 'policy_state', msg.state), 10)
        self._starting = PolicyStatus.STATE_STARTING
        self.robot = robot
        self.joint_states: list = [None] * robot.num_arms
        for index, arm in enumerate(robot.arms):
            node.create_subscription(
                JointState, f'/{arm.namespace}/joint_states',
                lambda msg, i=index: self.joint_states.__setitem__(i, msg),
                qos_profile_sensor_data)
        self._seed_client = node.create_client(SetParameters, f'/{SIM_NODE}/set_parameters')
        self._reset_client = node.create_client(Trigger, f'/{SIM_NODE}/reset')
        self._restart_client = node.create_client(Trigger, '/chunk_executor/restart')
        self._fault_state = PolicyStatus.STATE_FAULT
        self._holding = PolicyStatus.STATE_HOLDING
        self.executor_state = None
        self._start_client = node.create_client(Trigger, f'/{SIM_NODE}/start')

    def _on_done(self, message) -> None:
        self.done_seed = message.data

    def _on_image(self, message) -> None:
        if self.capture:
            from vla_adapter_ros.conversions import image_to_rgb
            self.frames.append(image_to_rgb(message))

    def _on_status(self, message) -> None:
        self.executor_state = (message.state, message.fault_reason)
        if message.state == self._fault_state and message.fault_reason:
            self.faults.append(message.fault_reason)

    def spin_until(self, predicate, timeout_s: float, what: str) -> None:
        """Spin until ``predicate()``; TimeoutError naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            ended = self.exited()
            if ended:
                raise RuntimeError(f'nodes exited while waiting for {what}: {ended}')
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out after {timeout_s:.0f} s waiting for {what}')
            self.executor.spin_once(timeout_sec=0.05)

    def _call(self, client, request, what: str, timeout_s: float = 60.0):
        self.spin_until(client.service_is_ready, timeout_s, f'the {what} service')
        future = client.call_async(request)
        self.spin_until(future.done, timeout_s, f'the {what} reply')
        return future.result()

    def wait_for_policy(self, timeout_s: float) -> None:
        """Until the inference node has loaded (and warmed up) its policy."""
        self.spin_until(lambda: self.policy_state not in (None, self._starting), timeout_s,
                        'the inference node to load the policy')

    def run_episode(self, seed: int, steps: int, timeout_s: float,
                    capture: bool) -> list[float]:
        """One episode of ``steps`` on ``seed``; its per-step rewards."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters
        from std_srvs.srv import Trigger
        value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=int(seed))
        result = self._call(self._seed_client, SetParameters.Request(
            parameters=[Parameter(name='seed', value=value)]), 'simulator set_parameters')
        if not result.results[0].successful:
            raise RuntimeError(f'simulator refused seed {seed}: {result.results[0].reason}')
        self.rewards, self.done_seed = [], None
        self.capture, self.frames = capture, []
        self._call(self._reset_client, Trigger.Request(), 'simulator reset')
        restart = self._call(self._restart_client, Trigger.Request(), 'executor restart')
        if not restart.success:
            raise RuntimeError(f'executor restart refused: {restart.message}')
        # Start only once the executor holds the start pose and waits for chunks, so every
        # episode begins from the same executor state.
        self.executor_state = None
        self.spin_until(lambda: self.executor_state == (self._holding, WAITING_FOR_CHUNK), 60.0,
                        'the executor to hold the start pose')
        started = self._call(self._start_client, Trigger.Request(), 'simulator start')
        if not started.success:
            raise RuntimeError(f'simulator did not start: {started.message}')
        self.spin_until(lambda: self.done_seed == seed, timeout_s, f'episode {seed} to end')
        self.spin_until(lambda: len(self.rewards) >= steps, 10.0, f'episode {seed} rewards')
        settle = time.monotonic() + 0.2  # joint_states of the paused, final pose
        self.spin_until(lambda: time.monotonic() > settle, 1.0, 'the final joint_states')
        self.capture = False
        return list(self.rewards)

    def arm_positions(self) -> list[float]:
        """The latest joint_states of every arm in policy units (the end of an episode)."""
        from vla_adapter_ros.conversions import arm_state_from_joint_state
        values = [arm_state_from_joint_state(message, arm)
                  for message, arm in zip(self.joint_states, self.robot.arms)]
        return np.round(np.concatenate(values), 6).tolist()

    def close(self) -> None:
        """Destroy the node."""
        self.executor.shutdown()
        self.node.destroy_node()


# ----------------------------------------------------------------------------- outputs
def write_plots(output: Path, policy: list[list[float]], baselines: dict[str, list[list[int]]],
                summaries: dict[str, dict]) -> None:
    """rewards.png (mean reward per step) and success.png (success and mean max reward)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    figure, axis = pyplot.subplots(figsize=(7, 4))
    for name, rewards in {'policy': policy, **baselines}.items():
        length = min(len(sequence) for sequence in rewards)
        curve = np.mean([sequence[:length] for sequence in rewards], axis=0)
        axis.plot(np.arange(length) * 0.02, curve, label=name)
    axis.set_xlabel('time in episode (s)')
    axis.set_ylabel('mean reward (4 = transferred)')
    axis.legend()
    figure.tight_layout()
    figure.savefig(output / 'rewards.png', dpi=100)
    pyplot.close(figure)
    figure, axes = pyplot.subplots(1, 2, figsize=(8, 3.5))
    names = list(summaries)
    axes[0].bar(names, [100 * summaries[name]['success_rate'] for name in names])
    axes[0].set_ylabel('success (%)')
    axes[1].bar(names, [summaries[name]['mean_max_reward'] for name in names])
    axes[1].set_ylabel('mean max reward')
    for axis in axes:
        axis.tick_params(axis='x', rotation=20)
    figure.tight_layout()
    figure.savefig(output / 'success.png', dpi=100)
    pyplot.close(figure)


def write_strip(output: Path, frames: list[np.ndarray], columns: int = 8) -> None:
    """top_camera.png: ``columns`` frames spread over the episode; top_camera.gif: all."""
    from PIL import Image as PilImage
    if not frames:
        return
    picks = np.linspace(0, len(frames) - 1, min(columns, len(frames))).round().astype(int)
    strip = np.concatenate([frames[index] for index in picks], axis=1)  # (H, W * columns, 3)
    PilImage.fromarray(strip).save(output / 'top_camera.png')
    images = [PilImage.fromarray(frame) for frame in frames]
    images[0].save(output / 'top_camera.gif', save_all=True, append_images=images[1:],
                   duration=100, loop=0)


# ----------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', required=True, help='policy checkpoint directory')
    parser.add_argument('--episodes', type=int, default=50)
    parser.add_argument('--seed', type=int, default=1000,
                        help='first seed (episodes use seed .. seed+episodes-1; default 1000, '
                        'never used by the demonstrations)')
    parser.add_argument('--episode_steps', '--episode-steps', type=int, default=400,
                        help='20 ms steps per episode (default 400, as gym-aloha)')
    parser.add_argument('--demo_seeds', '--demo-seeds', type=int, default=50,
                        help='the mean-demonstration baseline averages seeds 0..N-1')
    parser.add_argument('--no_baselines', '--no-baselines', action='store_true')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--instruction', default=DEFAULT_INSTRUCTION)
    parser.add_argument('--image_height', '--image-height', type=int, default=96)
    parser.add_argument('--image_width', '--image-width', type=int, default=128)
    parser.add_argument('--output_dir', '--output-dir', type=Path, default=None,
                        help='where report.json and the plots go (default: a temporary folder)')
    parser.add_argument('--episode_timeout_s', '--episode-timeout-s', type=float, default=600.0)
    add_debug_flag(parser)
    return parser


def _check(args: argparse.Namespace) -> None:
    if not Path(args.checkpoint, 'config.json').is_file():
        raise ValueError(f'--checkpoint={args.checkpoint}: no config.json (not a checkpoint '
                         'directory)')
    for name, low in (('episodes', 1), ('episode_steps', 1), ('demo_seeds', 1)):
        if getattr(args, name) < low:
            raise ValueError(f'--{name}={getattr(args, name)}: must be >= {low}')
    if args.seed < 0:
        raise ValueError(f'--seed={args.seed}: must be >= 0')


def run_policy_episodes(args: argparse.Namespace, output: Path, seeds: list[int]) -> dict:
    """Start the nodes, run every seed; per-episode rewards, latencies and first-episode frames."""
    from ament_index_python.packages import get_package_prefix
    import rclpy
    from tqdm import tqdm

    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.launch_description import PACKAGE
    from vla_adapter_ros.node_processes import NodeProcessGroup
    specs = eval_node_specs(str(Path(args.checkpoint).resolve()), args.device, args.instruction,
                            args.episode_steps, (args.image_height, args.image_width))
    executables = Path(get_package_prefix(PACKAGE)) / 'lib' / PACKAGE
    group = NodeProcessGroup(specs, executables, output / 'logs')
    rclpy.init()
    driver = EpisodeDriver(load_robot_description('aloha_sim'), group.exited)
    episodes, frames = [], []
    try:
        group.start()
        driver.wait_for_policy(args.episode_timeout_s)
        for index, seed in enumerate(tqdm(seeds, desc='episodes', unit='episode')):
            started = time.monotonic()
            chunks_before = len(driver.inference_ms)
            rewards = driver.run_episode(seed, args.episode_steps, args.episode_timeout_s,
                                         capture=index == 0)
            if index == 0:
                frames = list(driver.frames)
            latencies = driver.inference_ms[chunks_before:]
            episodes.append({'seed': seed, 'success': max(rewards, default=0) >= SUCCESS_REWARD,
                             'max_reward': max(rewards, default=0.0),
                             'final_reward': rewards[-1] if rewards else 0.0,
                             'steps': len(rewards), 'chunks': len(latencies),
                             'final_state': driver.arm_positions(),
                             'wall_s': round(time.monotonic() - started, 2),
                             'rewards': rewards})
    except RuntimeError as error:
        raise RuntimeError(f'{error} (logs in {output / "logs"})') from error
    finally:
        exited = group.exited()
        group.stop()
        latencies = list(driver.inference_ms)
        faults = sorted(set(driver.faults))
        driver.close()
        rclpy.try_shutdown()
    return {'episodes': episodes, 'frames': frames, 'inference_ms': latencies,
            'faults': faults, 'exited_early': exited}


def evaluate(args: argparse.Namespace) -> dict:
    """The whole evaluation; the report (also written as report.json)."""
    _check(args)
    os.environ.setdefault('MUJOCO_GL', 'egl')
    output = args.output_dir or Path(tempfile.mkdtemp(prefix='vla_sim_eval_'))
    output.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.episodes))
    baselines = {}
    if not args.no_baselines:
        print(f'[{PROG}] baselines on seeds {seeds[0]}..{seeds[-1]}', flush=True)
        baselines['hold_still'] = baseline_rewards('hold_still', seeds, None,
                                                   args.episode_steps)
        mean = mean_demonstration(list(range(args.demo_seeds)), args.episode_steps)
        baselines['mean_demonstration'] = baseline_rewards('mean_demonstration', seeds, mean,
                                                           args.episode_steps)
    result = run_policy_episodes(args, output, seeds)
    policy_rewards = [episode['rewards'] for episode in result['episodes']]
    latencies = np.asarray(result['inference_ms'], dtype=np.float64)
    summaries = {'policy': summarise(policy_rewards),
                 **{name: summarise(rewards) for name, rewards in baselines.items()}}
    report = {
        'checkpoint': str(Path(args.checkpoint).resolve()), 'seeds': [seeds[0], seeds[-1]],
        'episode_steps': args.episode_steps, 'summary': summaries,
        'inference_ms': {'chunks': int(latencies.size),
                         'p50': float(np.percentile(latencies, 50)) if latencies.size else None,
                         'p99': float(np.percentile(latencies, 99)) if latencies.size else None},
        'executor_faults': result['faults'],
        'episodes': [{key: value for key, value in episode.items() if key != 'rewards'}
                     for episode in result['episodes']]}
    (output / 'report.json').write_text(json.dumps(report, indent=1))
    write_plots(output, policy_rewards, baselines, summaries)
    write_strip(output, result['frames'])
    report['output_dir'] = str(output)
    return report


def print_report(report: dict) -> None:
    """The summary table on stdout."""
    print(f'{"":20s} {"success":>8s} {"mean max reward":>16s}')
    for name, summary in report['summary'].items():
        print(f'{name:20s} {100 * summary["success_rate"]:7.0f}% '
              f'{summary["mean_max_reward"]:16.2f}')
    latency = report['inference_ms']
    if latency['chunks']:
        print(f'inference latency: p50 {latency["p50"]:.0f} ms, p99 {latency["p99"]:.0f} ms '
              f'over {latency["chunks"]} chunks')
    if report['executor_faults']:
        print(f'executor faults: {report["executor_faults"]}')
    print(f'report, plots and camera strip: {report["output_dir"]}')


def main(argv: list[str] | None = None) -> int:
    """Entry point ``vla-adapter-sim-eval``."""
    args = _parser().parse_args(argv)

    def work() -> int:
        print_report(evaluate(args))
        return 0
    return run_reporting_errors(PROG, work, debug=args.debug)


if __name__ == '__main__':
    sys.exit(main())
