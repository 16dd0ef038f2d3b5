"""E-stop latency of the chunk executor under a flood of maximum-length chunks and CPU load.

The executor node runs in this process as `vla-adapter-executor` runs it (a single-threaded
rclpy executor, SCHED_FIFO ticking thread when the OS grants it). Child processes:
- a fake Interbotix driver (test/support/fake_interbotix_driver.py, ALOHA description);
- a flood publisher: valid ActionChunks of `max_chunk_steps` steps per arm at --chunk_rate_hz,
  every --oversized_every_th one a 100,000-step chunk (rejected by size, never decoded), and an
  e-stop (std_msgs/Bool true) every --estop_period_s, released through ~/reset_estop 0.1 s
  later;
- --cpu_load busy-loop processes.
The latency is measured inside the executor: e-stop callback entered -> first hold command
published (ChunkExecutorNode.estop_latencies_s). Printed: p50 / p99 / max of that latency, the
tick error of the same run and the chunk counters.

    source scripts/ros_env.sh
    python benchmarks/estop_latency.py [--duration_s 30] [--cpu_load 2] [--fifo_priority 50]
"""

import argparse
import multiprocessing
from pathlib import Path
import subprocess
import sys
import threading
import time

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FAKE_DRIVER = REPO / 'test' / 'support' / 'fake_interbotix_driver.py'
ROBOTS = ('estop_left', 'estop_right')
CHUNK_TOPIC = 'estop_benchmark/action_chunk'
ESTOP_TOPIC = 'estop_benchmark/estop'
NODE_NAME = 'estop_benchmark_executor'
MAX_CHUNK_STEPS = 200


def burn_cpu(stop_at: float) -> None:
    """Child: a busy loop until stop_at (monotonic seconds)."""
    value = 0
    while time.monotonic() < stop_at:
        value = (value * 31 + 7) % 1_000_003


def flood(duration_s: float, chunk_rate_hz: float, oversized_every: int,
          estop_period_s: float) -> None:
    """Child: max-length chunks, an oversized one now and then, and periodic e-stops."""
    import rclpy
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_msgs.msg import ActionChunk
    from vla_adapter_ros.pipeline.conversions import arm_trajectory, nanoseconds_to_stamp

    robot = load_robot_description('aloha').with_namespaces(ROBOTS)
    rclpy.init()
    node = rclpy.create_node('estop_benchmark_flood')
    chunks = node.create_publisher(ActionChunk, CHUNK_TOPIC, 10)
    estops = node.create_publisher(Bool, ESTOP_TOPIC, 10)
    reset = node.create_client(Trigger, f'/{NODE_NAME}/reset_estop')
    pose = robot.start_joint_angles()

    def build(steps: int) -> ActionChunk:
        chunk = ActionChunk(instruction='flood')
        nanoseconds_to_stamp(node.get_clock().now().nanoseconds, chunk.header.stamp)
        plan = np.tile(pose, (steps, 1))  # (T, J) holding the start pose
        left, right = robot.split(plan)
        chunk.left = arm_trajectory(left, robot.arms[0].command_joint_names, 0.02,
                                    chunk.header.stamp)
        chunk.right = arm_trajectory(right, robot.arms[1].command_joint_names, 0.02,
                                     chunk.header.stamp)
        return chunk

    oversized = build(100_000)
    end = time.monotonic() + duration_s
    next_estop = time.monotonic() + 2.0
    count = 0
    while time.monotonic() < end:
        count += 1
        if count % oversized_every == 0:
            chunks.publish(oversized)
        else:
            chunks.publish(build(MAX_CHUNK_STEPS))
        if time.monotonic() >= next_estop:
            estops.publish(Bool(data=True))
            time.sleep(0.1)
            reset.call_async(Trigger.Request())
            next_estop = time.monotonic() + estop_period_s
        rclpy.spin_once(node, timeout_sec=0.0)
        time.sleep(1.0 / chunk_rate_hz)
    node.destroy_node()
    rclpy.shutdown()


def run(args: argparse.Namespace) -> dict:
    """One measured run; returns the printed numbers."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from vla_adapter_ros.nodes.executor_node import ChunkExecutorNode, prepare_executor_process

    prepare_executor_process()  # as vla-adapter-executor runs

    driver = subprocess.Popen([sys.executable, str(FAKE_DRIVER), '--robots', *ROBOTS,
                               '--lifetime-s', str(args.duration_s + 30)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = multiprocessing.get_context('spawn')
    stop_at = time.monotonic() + args.duration_s + 10.0
    burners = [context.Process(target=burn_cpu, args=(stop_at,)) for _ in range(args.cpu_load)]
    rclpy.init()
    node = ChunkExecutorNode(node_name=NODE_NAME, parameter_overrides=[
        Parameter('robot_names', value=list(ROBOTS)),
        Parameter('chunk_topic', value=CHUNK_TOPIC), Parameter('estop_topic', value=ESTOP_TOPIC),
        Parameter('max_chunk_steps', value=MAX_CHUNK_STEPS),
        Parameter('realtime_priority', value=args.fifo_priority)])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 30.0
        while node.status_snapshot()['phase'] != 'running' and time.monotonic() < deadline:
            time.sleep(0.1)
        for burner in burners:
            burner.start()
        flooder = context.Process(target=flood, args=(
            args.duration_s, args.chunk_rate_hz, args.oversized_every, args.estop_period_s))
        flooder.start()
        ticks_before = len(node.tick_periods_s())
        flooder.join(args.duration_s + 60.0)
        latencies_ms = np.array(node.estop_latencies_s) * 1e3
        periods = node.tick_periods_s()[ticks_before:]
        snapshot = node.status_snapshot()
    finally:
        for burner in burners:
            burner.terminate()
        node.restore_normal_scheduling()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        driver.terminate()
        driver.wait(10)
    errors_ms = np.abs(periods - 1.0 / 50.0) * 1e3
    return {'estops': latencies_ms.size,
            'latency_p50_ms': float(np.percentile(latencies_ms, 50)) if latencies_ms.size else 0,
            'latency_p99_ms': float(np.percentile(latencies_ms, 99)) if latencies_ms.size else 0,
            'latency_max_ms': float(latencies_ms.max()) if latencies_ms.size else 0,
            'tick_error_p50_ms': float(np.percentile(errors_ms, 50)) if errors_ms.size else 0,
            'tick_error_p99_ms': float(np.percentile(errors_ms, 99)) if errors_ms.size else 0,
            'accepted': snapshot['accepted_chunks'], 'rejected': snapshot['rejected_chunks']}


def main() -> None:
    """Parse the options, run, print one line of numbers."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration_s', '--duration-s', type=float, default=30.0)
    parser.add_argument('--cpu_load', '--cpu-load',
                        type=int, default=2, help='busy-loop processes')
    parser.add_argument('--chunk_rate_hz', '--chunk-rate-hz', type=float, default=50.0)
    parser.add_argument('--oversized_every', '--oversized-every', type=int, default=25)
    parser.add_argument('--estop_period_s', '--estop-period-s', type=float, default=0.3)
    parser.add_argument('--fifo_priority', '--fifo-priority', type=int, default=50)
    args = parser.parse_args()
    result = run(args)
    print(f'e-stop latency (received -> first hold published), {result["estops"]} e-stops, '
          f'{args.cpu_load} busy processes, {args.chunk_rate_hz:.0f} max-length chunks/s: '
          f'p50 {result["latency_p50_ms"]:.2f} ms, p99 {result["latency_p99_ms"]:.2f} ms, '
          f'max {result["latency_max_ms"]:.2f} ms; tick error p50 '
          f'{result["tick_error_p50_ms"]:.2f} ms, p99 {result["tick_error_p99_ms"]:.2f} ms; '
          f'chunks accepted {result["accepted"]}, '
          f'rejected {result["rejected"]}')


if __name__ == '__main__':
    main()
