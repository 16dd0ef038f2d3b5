"""Rejected giant chunks leave no buffers behind in the executor beyond the DDS layer's own.

A 100,000-step chunk (16 MB serialised) is refused undecoded. What the process still holds
afterwards must be what a bare raw subscription to the same topic holds (the rmw / Fast DDS
reception buffers, kept at the largest message seen), and a stream of such chunks must not
add more.
"""

import pathlib
import time

from ros_test_utils import SUPPORT_DIR, spin_until, start_python_process, stop_process
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_msgs.msg import ActionChunk

TOPIC = 'memory_test_chunk'
SLACK_MB = 8.0  # allocator granularity and the executor's own small buffers


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    raise AssertionError(f'no VmRSS for process {pid}')


def giant_chunk() -> ActionChunk:
    point = JointTrajectoryPoint(positions=[0.0] * 7, velocities=[0.0] * 7,
                                 accelerations=[0.0] * 7, effort=[0.0] * 7)
    return ActionChunk(left=JointTrajectory(joint_names=['waist'] * 7,
                                            points=[point] * 100_000))


def publish_and_settle(probe, executor, publisher, chunk, count: int) -> None:
    for _ in range(count):
        publisher.publish(chunk)
        deadline = time.monotonic() + 1.5
        spin_until(executor, lambda end=deadline: time.monotonic() > end, 2.0)


def test_rejected_giant_chunks_leave_only_the_dds_layers_buffers(ros_probe):
    probe, executor = ros_probe
    bare = start_python_process(SUPPORT_DIR / 'raw_subscriber.py', TOPIC)
    node = start_python_process(SUPPORT_DIR / 'run_node.py', 'vla-adapter-executor',
                                '--ros-args', '-p', 'robot_description:=aloha',
                                '-p', f'chunk_topic:={TOPIC}')
    publisher = probe.create_publisher(ActionChunk, TOPIC, 10)
    try:
        assert spin_until(executor, lambda: publisher.get_subscription_count() >= 2, 60.0)
        publish_and_settle(probe, executor, publisher, ActionChunk(), 1)  # discovery settles
        before = {'bare': rss_mb(bare.pid), 'executor': rss_mb(node.pid)}
        chunk = giant_chunk()
        publish_and_settle(probe, executor, publisher, chunk, 1)
        first = {'bare': rss_mb(bare.pid), 'executor': rss_mb(node.pid)}
        publish_and_settle(probe, executor, publisher, chunk, 4)
        stream = rss_mb(node.pid)
    finally:
        output = stop_process(node)
        stop_process(bare)
    assert 'not decoded' in output, output  # refused by size, as designed
    dds_share = first['bare'] - before['bare']
    executor_growth = first['executor'] - before['executor']
    assert executor_growth <= dds_share + SLACK_MB, (executor_growth, dds_share)
    assert stream - first['executor'] <= SLACK_MB / 2, (stream, first)
