"""Tick-period error of the chunk executor while policy inference loads the CPU.

The executor node runs in this process, as `vla-adapter-executor` runs it (an rclpy executor
spinning the node); a fake Interbotix driver (test/support/fake_interbotix_driver.py)
runs in a child process. The load: N child processes, each a tiny VLAPolicy
(vla_adapter_core.tiny_policies.build_tiny_policy, one torch thread) predicting chunks in a loop
and publishing every chunk as an ActionChunk (so the executor also blends real chunk traffic). With
0 load processes no chunks arrive and the executor holds.

For every (rclpy executor kind, number of load processes, live view off / on) it prints the
error |period - 1/rate| of the executor's tick starts: p50, p99, max (ms), the number of ticks,
the chunks accepted and the inference rate of the load. ``--views 0 1`` runs each case without
and with `vla-adapter-view` (a child process subscribing to the same joint states, chunks and
commands, writing a temporary .rrd): the view must not change the executor's timing.

    source scripts/ros_env.sh
    python benchmarks/executor_timing.py [--duration_s 10] [--loads 0 1 2]
        [--executors single multi] [--fifo_priority 50] [--views 0 1]
"""

import argparse
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FAKE_DRIVER = REPO / 'test' / 'support' / 'fake_interbotix_driver.py'
# The ALOHA description under namespaces of its own, so no other ROS graph on this host can
# feed or read this benchmark.
ROBOT = 'aloha'
ROBOTS = ('timing_left', 'timing_right')
CHUNK_TOPIC = 'executor_timing/action_chunk'
RATE_HZ = 50.0


def chunk_pose(robot) -> np.ndarray:
    """The joint angles (rad) the load's chunks move around: the start pose, grippers half open.

    Half open keeps the small chunk offsets inside the calibrated gripper span.
    """
    pose = np.concatenate([[*arm.start_pose[:-1], 0.5] for arm in robot.arms])
    return robot.policy_to_joint_angles(pose)


def load_worker(duration_s: float) -> None:
    """Child: tiny-policy inference in a loop, each chunk published as an ActionChunk."""
    import rclpy
    import torch

    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_core.tiny_policies import build_tiny_policy, random_observation
    from vla_adapter_msgs.msg import ActionChunk
    from vla_adapter_ros.pipeline.conversions import arm_trajectory

    torch.set_num_threads(1)
    robot = load_robot_description(ROBOT)
    policy = build_tiny_policy(action_dim=robot.action_dim, proprio_dim=robot.proprio_dim,
                               chunk_size=25)
    observation = random_observation(policy)
    rclpy.init()
    node = rclpy.create_node('executor_timing_load')
    publisher = node.create_publisher(ActionChunk, CHUNK_TOPIC, 10)
    pose = chunk_pose(robot)  # (14,)
    (left, right), names = robot.arm_slices(), [arm.command_joint_names for arm in robot.arms]
    policy.predict_action_chunk(observation)  # warm-up
    print('load ready', flush=True)
    count, deadline = 0, time.monotonic() + duration_s
    while time.monotonic() < deadline:
        stamp = node.get_clock().now().to_msg()  # the observation time
        actions = policy.predict_action_chunk(observation)  # (25, 14)
        plan = pose + 0.05 * np.tanh(actions)  # (25, 14) rad
        chunk = ActionChunk(left=arm_trajectory(plan[:, left], names[0], 1.0 / RATE_HZ),
                            right=arm_trajectory(plan[:, right], names[1], 1.0 / RATE_HZ),
                            sequence=count)
        chunk.header.stamp = stamp
        publisher.publish(chunk)
        count += 1
    print(f'load inferences {count} in {duration_s:.1f} s', flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def start_child(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_line(process: subprocess.Popen, text: str, timeout_s: float) -> None:
    """Read the child's output until a line containing text (the child must print it)."""
    found = threading.Event()

    def reader() -> None:
        for line in process.stdout:
            if text in line:
                found.set()
                return
    threading.Thread(target=reader, daemon=True).start()
    if not found.wait(timeout_s):
        raise RuntimeError(f'child {process.args} did not print {text!r} within {timeout_s} s')


def start_view(output: Path) -> subprocess.Popen:
    """`vla-adapter-view` on the benchmark's namespaces and chunk topic, into ``output``."""
    return start_child('-m', 'vla_adapter_ros.nodes.view_node', '--ros-args', '-p',
                       f'robot_description:={ROBOT}', '-p',
                       f'robot_names:=[{",".join(ROBOTS)}]', '-p', f'chunk_topic:={CHUNK_TOPIC}',
                       '-p', f'output:={output}', '-p', 'leaders:=false')


def measure(executor_kind: str, loads: int, duration_s: float, fifo_priority: int,
            view: bool = False) -> dict:
    """One run: returns tick error percentiles (ms) and counters.

    fifo_priority > 0 runs this process (not the load) under SCHED_FIFO at that priority;
    ``view`` runs the live view beside it.
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from vla_adapter_ros.nodes.executor_node import ChunkExecutorNode, prepare_executor_process

    prepare_executor_process()  # as vla-adapter-executor runs

    driver = start_child(str(FAKE_DRIVER), '--robot-description', ROBOT, '--robots', *ROBOTS)
    workers = [start_child(__file__, '--load-worker', str(duration_s + 30.0))
               for _ in range(loads)]
    if view:
        workers.append(start_view(Path(os.environ.get('TMPDIR', '/tmp')) /
                                  f'executor_timing_view_{os.getpid()}.rrd'))
    if fifo_priority > 0:  # threads created from here on (DDS, spinner) inherit it
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
    context = rclpy.Context()
    rclpy.init(context=context)
    node = ChunkExecutorNode(context=context, parameter_overrides=[
        Parameter('rate_hz', value=RATE_HZ), Parameter('robot_description', value=ROBOT),
        Parameter('stale_chunk_s', value=5.0), Parameter('robot_names', value=list(ROBOTS)),
        Parameter('chunk_topic', value=CHUNK_TOPIC)])
    executor = (SingleThreadedExecutor(context=context) if executor_kind == 'single'
                else MultiThreadedExecutor(num_threads=3, context=context))
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        for worker in workers[:loads]:
            wait_line(worker, 'load ready', 120.0)
        if view:
            wait_line(workers[-1], 'viewing robot', 60.0)
        time.sleep(1.0)
        first = len(node.tick_periods_s())
        accepted = node.status_snapshot()['accepted_chunks']
        time.sleep(duration_s)
        periods = node.tick_periods_s()[first:]
        accepted = node.status_snapshot()['accepted_chunks'] - accepted
    finally:
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.shutdown(context=context)
        if fifo_priority > 0:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        for process in (*workers, driver):
            process.terminate()
            process.wait(timeout=10.0)
    errors_ms = np.abs(periods - 1.0 / RATE_HZ) * 1e3
    return {'p50': float(np.percentile(errors_ms, 50)), 'p99': float(np.percentile(errors_ms, 99)),
            'max': float(errors_ms.max()), 'ticks': len(periods),
            'chunks_per_s': accepted / duration_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration_s', '--duration-s', type=float, default=10.0)
    parser.add_argument('--loads', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--executors', nargs='+', default=['single', 'multi'],
                        choices=['single', 'multi'])
    parser.add_argument('--fifo_priority', '--fifo-priority', type=int, default=0,
                        help='run the executor under SCHED_FIFO at this priority (root; 0: off)')
    parser.add_argument('--views', type=int, nargs='+', default=[0], choices=[0, 1],
                        help='0: without the live view, 1: with vla-adapter-view beside it')
    parser.add_argument('--load_worker', '--load-worker', type=float, metavar='DURATION_S',
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_worker is not None:
        load_worker(args.load_worker)
        return
    print(f'executor tick-period error at {RATE_HZ:.0f} Hz, {args.duration_s:.0f} s per run, '
          f'SCHED_FIFO priority {args.fifo_priority or "off"}, {os.cpu_count()} CPUs')
    print(f'{"rclpy executor":>15} {"load procs":>10} {"view":>5} {"p50 ms":>8} {"p99 ms":>8} '
          f'{"max ms":>8} {"ticks":>6} {"chunks/s":>9}')
    for executor_kind in args.executors:
        for loads in args.loads:
            for view in args.views:
                result = measure(executor_kind, loads, args.duration_s, args.fifo_priority,
                                 bool(view))
                print(f'{executor_kind:>15} {loads:>10} {"on" if view else "off":>5} '
                      f'{result["p50"]:8.3f} {result["p99"]:8.3f} {result["max"]:8.3f} '
                      f'{result["ticks"]:6d} {result["chunks_per_s"]:9.1f}', flush=True)


if __name__ == '__main__':
    main()
