"""Child process: a bare raw ActionChunk subscription and nothing else (the DDS layer's share).

    raw_subscriber.py TOPIC

The memory the reception path itself keeps after large messages, to compare a node against.
"""

import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from vla_adapter_msgs.msg import ActionChunk
from vla_adapter_ros.nodes.node_main import return_large_buffers_to_the_os

if __name__ == '__main__':
    return_large_buffers_to_the_os()  # as the executor does: only the DDS layer's share stays
    rclpy.init()
    node = Node('raw_subscriber')
    node.create_subscription(ActionChunk, sys.argv[1], lambda data: None, 10, raw=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
