"""Latency of the ROS pipeline: cameras -> inference node -> chunk executor, over real DDS.

Processes (as `ros2 launch vla_adapter_ros aloha.launch.py` runs them, one node per process):
- cameras: test/support/fake_sensors.py, N rgb8 cameras (default 3 x 640x480 at 30 Hz);
- drivers: test/support/fake_interbotix_driver.py, both ALOHA arms' Interbotix interface
  (robot description 'aloha': joint_states at 100 Hz following the commands from the start pose,
  set_operating_modes);
- executor: this script with --executor_child, the chunk executor (ChunkExecutorNode in a
  SingleThreadedExecutor, like `vla-adapter-executor`) streaming Interbotix commands at 50 Hz;
- this process: the inference node (InferenceNode, SingleThreadedExecutor, inference worker
  thread) running the tiny dual-arm demo VLAPolicy (vla_adapter_ros.tools.showcase.demo_policy:
  real components at test sizes, random weights; its actions stay near the description's start
  pose). The overhead excludes the model's
  own time, so the model's size does not enter it.

Printed (milliseconds, after --warmup_s):
- overhead = last input's arrival in the inference node's callback -> chunk published, minus
  the model's own time (p50, p99). It includes waiting for the worker when the previous
  inference is still running; `pipeline` excludes that wait (our code's own cost).
- the executor's tick-period error |period - 1/rate_hz| (p50, p99, max) while inference runs.
Targets (issue 5): overhead <= 2 ms p50 and <= 5 ms p99; tick error <= 2 ms p99.

    source scripts/ros_env.sh
    python benchmarks/ros_pipeline.py [--duration_s 20] [--device cpu] [--cameras 3]
        [--back_to_back] [--realtime_priority 50]
"""

import argparse
import json
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FAKE_SENSORS = REPO / 'test' / 'support' / 'fake_sensors.py'
FAKE_DRIVER = REPO / 'test' / 'support' / 'fake_interbotix_driver.py'
ROBOT = 'aloha'
EXTRA_CAMERA = 'cam_low'  # the fourth camera of --cameras 4 (ALOHA's description has three)
TICKS_PREFIX = 'TICK_PERIODS_JSON '


def executor_child(duration_s: float, realtime_priority: int) -> None:
    """Child: the chunk executor until SIGTERM (or duration_s).

    Prints one JSON line: the tick periods from one second after the first accepted chunk (so
    only while inference runs), the chunk counts and the final state.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from vla_adapter_ros.nodes.executor_node import ChunkExecutorNode

    rclpy.init()
    node = ChunkExecutorNode(parameter_overrides=[
        Parameter('realtime_priority', value=realtime_priority)])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print('executor ready', flush=True)
    start, first_chunk_s, first_tick = time.monotonic(), None, None
    try:
        while rclpy.ok() and time.monotonic() - start < duration_s:
            executor.spin_once(timeout_sec=0.1)
            if first_chunk_s is None and node.status_snapshot()['accepted_chunks']:
                first_chunk_s = time.monotonic()
            if first_tick is None and first_chunk_s is not None and (
                    time.monotonic() >= first_chunk_s + 1.0):
                first_tick = len(node.tick_periods_s())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:  # spin_once racing the SIGTERM shutdown of the context
        if rclpy.ok():
            raise
    periods = node.tick_periods_s()  # (N-1,) s between monotonic tick starts
    status = node.status_snapshot()
    print(TICKS_PREFIX + json.dumps({'periods_s': periods[first_tick or 0:].tolist(),
                                     'rate_hz': node.config.rate_hz,
                                     'state': int(status['state']), 'reason': status['reason'],
                                     'accepted': status['accepted_chunks'],
                                     'rejected': status['rejected_chunks']}),
          flush=True)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


def build_policy(cameras: list[str], device: str, dtype: str):
    """The tiny dual-arm VLAPolicy for ALOHA (random weights, 25-step chunks)."""
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.tools.showcase import demo_policy

    return demo_policy(load_robot_description(ROBOT), camera_names=cameras, chunk_size=25,
                       device=device, dtype=dtype)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _collect(process: subprocess.Popen, lines: list) -> threading.Thread:
    def reader() -> None:
        for line in process.stdout:
            lines.append(line)
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread


def _percentiles_ms(values) -> str:
    values = np.asarray(values) * 1e3
    if values.size == 0:
        return 'n/a'
    return (f'p50 {np.percentile(values, 50):7.3f}  p99 {np.percentile(values, 99):7.3f}  '
            f'max {values.max():7.3f}')


def run(args: argparse.Namespace) -> dict:
    """Run the pipeline for args.duration_s and return the measurements."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.nodes.inference_node import InferenceNode

    robot = load_robot_description(ROBOT)
    cameras = [*robot.cameras, EXTRA_CAMERA][:args.cameras]
    policy = build_policy(cameras, args.device, args.dtype)
    total_s = args.duration_s + args.warmup_s
    sensor_lines, executor_lines = [], []
    sensors = _start(str(FAKE_SENSORS), '--cameras', ','.join(cameras), '--robots', '',
                     '--height', str(args.height), '--width', str(args.width), '--camera-rate',
                     str(args.camera_rate), '--duration', str(total_s + 30))
    drivers = _start(str(FAKE_DRIVER), '--robot-description', ROBOT)
    executor_process = _start(__file__, '--executor-child', str(total_s + 120),
                              '--realtime-priority', str(args.realtime_priority))
    readers = [_collect(sensors, sensor_lines), _collect(executor_process, executor_lines),
               _collect(drivers, sensor_lines)]
    rclpy.init()
    params = {'robot_description': ROBOT, 'instruction': 'transfer the cube',
              'image_height': args.height, 'image_width': args.width, 'camera_names': cameras,
              'camera_topics': [robot.camera_topic.format(camera=c) for c in cameras],
              'wait_for_fresh_observation': not args.back_to_back}
    node = InferenceNode(policy, parameter_overrides=[
        Parameter(name, value=value) for name, value in params.items()])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < total_s:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        timings = [t for t in node.timings if t.arrival_s >= start + args.warmup_s]
        dropped = node.dropped_observations
        executor_process.terminate()  # ends the tick measurement while inference still ran
        node.destroy_node()
        rclpy.try_shutdown()
        executor_process.wait(timeout=60)
        for child in (sensors, drivers):
            child.terminate()
            child.wait(timeout=10)
        for reader in readers:
            reader.join(timeout=5)
    ticks = next((json.loads(line[len(TICKS_PREFIX):]) for line in executor_lines
                  if line.startswith(TICKS_PREFIX)), None)
    if ticks is None:
        raise RuntimeError('executor child gave no tick periods:\n' + ''.join(executor_lines))
    if args.executor_log:
        pathlib.Path(args.executor_log).write_text(''.join(executor_lines))
    periods = np.asarray(ticks['periods_s'])
    return {'timings': timings, 'tick_error_s': np.abs(periods - 1.0 / ticks['rate_hz']),
            'executor_state': (ticks['state'], ticks['reason']),
            'executor_chunks': (ticks['accepted'], ticks['rejected']),
            'dropped_observations': dropped, 'measured_s': args.duration_s}


def report(args: argparse.Namespace, result: dict) -> None:
    """Print the measurements."""
    timings = result['timings']
    print(f'ros_pipeline: {args.cameras} cameras {args.width}x{args.height} rgb8 at '
          f'{args.camera_rate} Hz, tiny model on {args.device} ({args.dtype}), '
          f'wait_for_fresh_observation={not args.back_to_back}, '
          f'{result["measured_s"]:.0f} s measured after {args.warmup_s:.0f} s warm-up')
    print(f'  chunks published           {len(timings)} '
          f'({len(timings) / result["measured_s"]:.1f} /s), observations replaced unused: '
          f'{result["dropped_observations"]}')
    print(f'  model time            (ms) {_percentiles_ms([t.model_s for t in timings])}')
    print(f'  overhead              (ms) {_percentiles_ms([t.overhead_s for t in timings])}'
          '   target p50 <= 2, p99 <= 5')
    print(f'    of which busy wait  (ms) {_percentiles_ms([t.busy_wait_s for t in timings])}')
    print(f'    pipeline (own code) (ms) '
          f'{_percentiles_ms([t.pipeline_overhead_s for t in timings])}')
    before = [t.model_start_s - max(t.arrival_s, t.worker_free_s) for t in timings]
    after = [t.published_s - t.model_start_s - t.model_s for t in timings]
    print(f'      to model start    (ms) {_percentiles_ms(before)}')
    print(f'      model to publish  (ms) {_percentiles_ms(after)}')
    print(f'  executor tick error   (ms) {_percentiles_ms(result["tick_error_s"])}'
          f'   target p99 <= 2   ({result["tick_error_s"].size} ticks)')
    accepted, rejected = result['executor_chunks']
    print(f'  executor: {accepted} chunks accepted, {rejected} rejected; final state '
          f'{result["executor_state"]}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration_s', '--duration-s', type=float, default=20.0)
    parser.add_argument('--warmup_s', '--warmup-s', type=float, default=5.0)
    parser.add_argument('--cameras', type=int, default=3, choices=[1, 2, 3, 4])
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--camera_rate', '--camera-rate', type=float, default=30.0)
    parser.add_argument('--back_to_back', '--back-to-back', action='store_true',
                        help='wait_for_fresh_observation:=false (infer at once on the newest '
                             'waiting observation; it may have waited for the busy model)')
    parser.add_argument('--executor_log', '--executor-log',
                        help='write the executor child output to this file')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--realtime_priority', '--realtime-priority', type=int, default=0,
                        help="the executor's realtime_priority parameter (SCHED_FIFO, needs root "
                             'or an rtprio limit; 0 = off)')
    parser.add_argument('--executor_child', '--executor-child', type=float, metavar='DURATION_S',
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.executor_child is not None:
        executor_child(args.executor_child, args.realtime_priority)
        return
    import torch

    torch.set_num_threads(1)
    report(args, run(args))


if __name__ == '__main__':
    main()
