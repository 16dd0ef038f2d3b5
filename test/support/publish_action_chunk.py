"""
Child process for test_interfaces_over_dds: publishes the sample ActionChunk at 20 Hz.

Runs until it is terminated (SIGTERM arrives as ExternalShutdownException) or 30 s pass.
"""

import pathlib
import sys
import time

import rclpy

from vla_adapter_msgs.msg import ActionChunk

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ros_test_utils import run_child_node  # noqa: E402
from sample_messages import make_sample_action_chunk  # noqa: E402

TOPIC = sys.argv[1] if len(sys.argv) > 1 else 'action_chunk'


def main() -> None:
    rclpy.init()
    node = rclpy.create_node('sample_action_chunk_publisher')
    publisher = node.create_publisher(ActionChunk, TOPIC, 10)
    message = make_sample_action_chunk()
    node.create_timer(0.05, lambda: publisher.publish(message))
    print('publisher ready', flush=True)
    run_child_node(node, time.monotonic() + 30.0)


if __name__ == '__main__':
    main()
