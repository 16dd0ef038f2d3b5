"""SerializedReceiver over real DDS: small chunks arrive as bytes, an oversized one never does.

A publisher in this process sends serialized ActionChunks (publish_raw): small ones and one
of ~16 MB between them. The receiver, waited on from a thread of its own as the executor does,
must hand back every small one byte for byte, report the big one by size only (no bytes), give
its buffer back afterwards, and stay out of the executor spinning the node.
"""

import threading
import time

from rclpy.serialization import serialize_message
from ros_test_utils import spin_until
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_msgs.msg import ActionChunk
from vla_adapter_ros.nodes.unlocked_take import NeverExecutedGroup, SerializedReceiver

TOPIC = 'unlocked_take_test/action_chunk'


def serialized_chunk(steps: int, instruction: str) -> bytes:
    point = JointTrajectoryPoint(positions=[0.25] * 7)
    arm = JointTrajectory(joint_names=[f'joint_{i}' for i in range(7)], points=[point] * steps)
    return serialize_message(ActionChunk(instruction=instruction, left=arm, right=arm))


def receive_for(receiver: SerializedReceiver, seconds: float, out: list) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for size, data in receiver.receive(timeout_s=0.1):
            out.append((size, data))


def test_small_chunks_arrive_and_the_oversized_one_stays_in_c(ros_probe):
    node, executor = ros_probe
    small = [serialized_chunk(200, f'small {index}') for index in range(4)]
    big = serialized_chunk(100_000, 'big')
    limit = 2 * len(small[0])
    receiver = SerializedReceiver(node, ActionChunk, TOPIC, 10, limit)
    assert isinstance(receiver.subscription.callback_group, NeverExecutedGroup)
    assert not executor.can_execute(receiver.subscription)  # no executor takes it
    publisher = node.create_publisher(ActionChunk, TOPIC, 10)
    try:
        assert spin_until(executor, lambda: publisher.get_subscription_count() >= 1, 30.0)
        received: list = []
        thread = threading.Thread(target=receive_for, args=(receiver, 8.0, received))
        thread.start()
        time.sleep(0.5)
        for data in (small[0], small[1], big, small[2], small[3]):
            publisher.publish(data)
            time.sleep(0.3)
        deadline = time.monotonic() + 7.0
        while len(received) < 5 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)  # the executor spins: it must not take them
        thread.join()
        capacity = receiver._taker._message.buffer_capacity
    finally:
        receiver.close()
    assert [size for size, _ in received] == [len(small[0]), len(small[1]), len(big),
                                              len(small[2]), len(small[3])], received
    assert [data for _, data in received] == [small[0], small[1], None, small[2], small[3]]
    assert len(big) > 15_000_000
    assert capacity == limit  # the 16 MB it grew to for the big one was handed back
