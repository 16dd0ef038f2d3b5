"""What receiving one oversized (~19 MB) serialized ActionChunk costs the spinning thread.

Issue 20: the executor's chunk subscription is raw (bytes, size-checked before decoding), yet a
100,000-step chunk still delayed its 50 Hz tick by a whole tick. This isolates that receive:
- a child process publishes pre-serialized ActionChunk bytes (publish_raw, nothing built per
  message): every --period_s one --big_steps chunk, plus --small_rate_hz 200-step ones;
- --take rclpy: this process takes them with a raw subscription on a SingleThreadedExecutor,
  spin_once by spin_once; --take ctypes: a thread receives them as the executor node now does
  (nodes/unlocked_take.py: own wait set, rcl's take through ctypes, the GIL released) while
  the main thread only sleeps;
- a Python thread here sleeps 1 ms at a time and records its gaps over 2 ms (a gap as long as
  the take = the GIL was held for it);
- a probe process (no rclpy) does the same, so CPU starvation of the whole machine (Fast DDS's
  receive threads, the publisher, other load) shows there and not only here.
Printed per big message: the time from the wait's start to the callback / take's end, the
largest Python-thread gap and the largest probe gap overlapping it; then medians.
--transport shm|udp replaces the Fast DDS profile by shared memory or UDP only; --preallocated
adds a data_reader profile for the topic with historyMemoryPolicy PREALLOCATED (loaded through
RMW_FASTRTPS_USE_QOS_FROM_XML=1): Fast DDS then refuses every chunk, not only the big one,
because that policy caps samples at the type's bound (95 bytes for the unbounded ActionChunk).

    source scripts/ros_env.sh
    python benchmarks/chunk_receive_cost.py [--count 8] [--small_rate_hz 50]
        [--take rclpy|ctypes] [--transport shm|udp|default] [--preallocated] [--cpu_list 0]
"""

import argparse
import multiprocessing
import os
from pathlib import Path
import sys
import tempfile
import threading
import time

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TOPIC = 'chunk_receive_cost/action_chunk'
PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors>
    <transport_descriptor><transport_id>t_shm</transport_id><type>SHM</type>
      <segment_size>16777216</segment_size></transport_descriptor>
    <transport_descriptor><transport_id>t_udp</transport_id><type>UDPv4</type>
      <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="p" is_default_profile="true"><rtps>
    <userTransports>{transports}</userTransports>
    <useBuiltinTransports>false</useBuiltinTransports>
  </rtps></participant>{reader}
</profiles></dds>
"""

READER_PROFILE = """
  <data_reader profile_name="/{topic}"><historyMemoryPolicy>PREALLOCATED</historyMemoryPolicy>
  </data_reader>"""


def serialized_chunk(steps: int) -> bytes:
    """A two-arm ActionChunk of ``steps`` positions per arm (7 joints), serialized.

    The layout of benchmarks/estop_latency.py's chunks: 100,000 steps are ~16 MB.
    """
    from rclpy.serialization import serialize_message
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from vla_adapter_msgs.msg import ActionChunk

    values = [0.0] * 7
    point = JointTrajectoryPoint(positions=values)
    arm = JointTrajectory(joint_names=[f'j{i}' for i in range(7)], points=[point] * steps)
    return serialize_message(ActionChunk(instruction='cost', left=arm, right=arm))


def publish(duration_s: float, big_steps: int, period_s: float, small_rate_hz: float,
            ready) -> None:
    """Child: the big message every period_s, small ones at small_rate_hz in between."""
    import rclpy

    from vla_adapter_msgs.msg import ActionChunk

    rclpy.init()
    node = rclpy.create_node('chunk_receive_cost_publisher')
    publisher = node.create_publisher(ActionChunk, TOPIC, 10)
    big, small = serialized_chunk(big_steps), serialized_chunk(200)
    ready.set()
    time.sleep(2.0)  # discovery
    end = time.monotonic() + duration_s
    next_big = time.monotonic()
    step = 1.0 / small_rate_hz if small_rate_hz > 0 else period_s
    while time.monotonic() < end:
        if time.monotonic() >= next_big:
            publisher.publish(big)
            next_big += period_s
        elif small_rate_hz > 0:
            publisher.publish(small)
        time.sleep(step)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def gaps_recorder(stop: threading.Event, out: list) -> None:
    """Sleep 1 ms at a time; record (start, end) of every gap over 2 ms (monotonic seconds)."""
    last = time.monotonic()
    while not stop.is_set():
        time.sleep(0.001)
        now = time.monotonic()
        if now - last > 0.002:
            out.append((last, now))
        last = now


def probe(duration_s: float, queue) -> None:
    """Child: the same gap recorder in a process of its own (sees machine-wide starvation)."""
    out: list = []
    stop = threading.Event()
    timer = threading.Timer(duration_s, stop.set)
    timer.start()
    gaps_recorder(stop, out)
    queue.put(out)


def unlocked_intake(node, topic: str, small_limit: int, stop: threading.Event,
                    received: list) -> None:
    """Thread: receive as the executor node does (nodes/unlocked_take.py, GIL released)."""
    from vla_adapter_msgs.msg import ActionChunk
    from vla_adapter_ros.nodes.unlocked_take import SerializedReceiver

    receiver = SerializedReceiver(node, ActionChunk, topic, 10, small_limit)
    while not stop.is_set():
        start = time.monotonic()
        for size, _ in receiver.receive(timeout_s=0.05):
            received.append((size, start, time.monotonic()))
            start = time.monotonic()


def widest_overlap(gaps: list, start: float, end: float) -> float:
    """The longest gap overlapping [start, end], milliseconds (0 when none)."""
    widths = [(b - a) for a, b in gaps if b >= start and a <= end]
    return max(widths, default=0.0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--count', type=int, default=8, help='big messages to receive')
    parser.add_argument('--big_steps', type=int, default=100_000)
    parser.add_argument('--period_s', type=float, default=0.5)
    parser.add_argument('--small_rate_hz', type=float, default=0.0)
    parser.add_argument('--transport', choices=('default', 'shm', 'udp'), default='default',
                        help='default: the FASTDDS_DEFAULT_PROFILES_FILE already set')
    parser.add_argument('--preallocated', action='store_true',
                        help='a data_reader profile for the topic with historyMemoryPolicy '
                        'PREALLOCATED (RMW_FASTRTPS_USE_QOS_FROM_XML=1)')
    parser.add_argument('--take', choices=('rclpy', 'ctypes'), default='rclpy',
                        help='ctypes: a thread receives as the executor node does '
                        '(SerializedReceiver: GIL released) instead of a raw subscription')
    parser.add_argument('--cpu_list', default='',
                        help='pin this process and the probe (not the publisher), e.g. "0"')
    args = parser.parse_args()
    if args.transport != 'default' or args.preallocated:
        transports = {'shm': '<transport_id>t_shm</transport_id>',
                      'udp': '<transport_id>t_udp</transport_id>'}.get(
            args.transport, '<transport_id>t_shm</transport_id><transport_id>t_udp</transport_id>')
        reader = READER_PROFILE.format(topic=TOPIC) if args.preallocated else ''
        profile = Path(tempfile.mkdtemp()) / 'profile.xml'
        profile.write_text(PROFILE.format(transports=transports, reader=reader))
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
        if args.preallocated:
            os.environ['RMW_FASTRTPS_USE_QOS_FROM_XML'] = '1'
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from vla_adapter_msgs.msg import ActionChunk

    small_limit = len(serialized_chunk(200)) * 2
    context = multiprocessing.get_context('spawn')
    ready = context.Event()
    duration_s = args.count * args.period_s + 1.0
    publisher = context.Process(target=publish, args=(
        duration_s, args.big_steps, args.period_s, args.small_rate_hz, ready))
    publisher.start()
    if args.cpu_list:  # after the publisher's start: it stays unpinned (the probe is pinned)
        os.sched_setaffinity(0, {int(c) for c in args.cpu_list.split(',')})
    rclpy.init()
    node = rclpy.create_node('chunk_receive_cost_subscriber')
    received: list = []  # (size, take start, take end), monotonic seconds
    stop = threading.Event()
    executor = SingleThreadedExecutor()
    if args.take == 'rclpy':
        node.create_subscription(ActionChunk, TOPIC, lambda data: received.append(
            (len(data), spin_start[0], time.monotonic())), 10, raw=True)
        executor.add_node(node)
    else:  # the executor spins nothing here; the intake thread takes
        intake = threading.Thread(target=unlocked_intake, daemon=True,
                                  args=(node, TOPIC, small_limit, stop, received))
        intake.start()
    ready.wait(120)
    queue = context.Queue()
    prober = context.Process(target=probe, args=(duration_s + 3.0, queue))
    prober.start()
    gaps: list = []
    ticker = threading.Thread(target=gaps_recorder, args=(stop, gaps), daemon=True)
    ticker.start()
    spin_start = [0.0]
    end = time.monotonic() + duration_s + 2.0
    while time.monotonic() < end:
        spin_start[0] = time.monotonic()
        if args.take == 'rclpy':
            executor.spin_once(timeout_sec=0.05)
        else:
            time.sleep(0.05)
    stop.set()
    probe_gaps = queue.get(timeout=30)
    prober.join(10)
    publisher.join(30)
    spins = [(start, finish, size) for size, start, finish in received if size > small_limit]
    small = sum(size <= small_limit for size, _, _ in received)
    rows = []
    for start, finish, size in spins:
        rows.append(((finish - start) * 1e3, widest_overlap(gaps, start, finish),
                     widest_overlap(probe_gaps, start, finish)))
        print(f'big message {size} bytes: take {rows[-1][0]:.1f} ms, python-thread gap '
              f'{rows[-1][1]:.1f} ms, probe-process gap {rows[-1][2]:.1f} ms')
    label = f'take {args.take}, transport {args.transport}, cpus {args.cpu_list or "all"}'
    if rows:
        medians = np.median(np.array(rows), axis=0)
        print(f'{label}: {len(rows)} big, {small} small received; median take '
              f'{medians[0]:.1f} ms (wait included), python-thread gap '
              f'{medians[1]:.1f} ms, probe gap {medians[2]:.1f} ms')
    else:
        print(f'{label}: no big message received ({small} small)')
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
