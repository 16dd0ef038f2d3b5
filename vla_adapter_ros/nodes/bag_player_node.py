"""Bag player node: a recorded rosbag2 episode back onto the ROS graph, for live replay.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/nodes/bag_player_node.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from vla_adapter_ros.nodes.node_main import run_node
from vla_adapter_ros.params.parameters import declare_parameters, parameter_help
from vla_adapter_ros.params.player_config import PLAYER_PARAMETERS, PlayerConfig, is_command_topic
from vla_adapter_ros.pipeline.conversions import message_class

NODE_NAME = 'bag_player'
def playback_times(bag_times_ns: np.ndarray, start_s: float, rate: float) -> np.ndarray:
    """When (monotonic s) each message is due: the first at start_s, then paced by rate.

    The recorded spacing of ``bag_times_ns`` divided by ``rate``.
    """
    times = np.asarray(bag_times_ns, dtype=np.int64)
    if times.size == 0:
        return np.zeros(0)
    return start_s + (times - times[0]) * 1e-9 / rate


def bag_time_at(monotonic_s: float, start_s: float, first_ns: int, rate: float) -> int:
    """The bag time (ns) the playback has reached at ``monotonic_s`` (the bag start before)."""
    return first_ns + max(0, round((monotonic_s - start_s) * rate * 1e9))


class BagPlayerNode(Node):
    """Publishes a bag's messages at their recorded pace; see the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        """Open the bag, create one publisher per played topic, start the playback thread."""
        super().__init__(node_name, **kwargs)
        self.config = declare_parameters(self, PLAYER_PARAMETERS, PlayerConfig.from_dict)
        from rosbags.rosbag2 import Reader


        try:
            self._reader = Reader(self.config.bag)
            self._reader.open()
        except Exception as error:  # noqa: BLE001 - rosbags raises many types for bad bags
            raise ValueError(f'parameter bag={self.config.bag!r}: not a readable rosbag2 '
                             f'({error})') from None
        wanted = set(self.config.topics)
        self._connections = [c for c in self._reader.connections
                             if not is_command_topic(c.topic, c.msgtype)
                             and (not wanted or c.topic in wanted)]
        missing = sorted(wanted - {c.topic for c in self._connections})
        if missing or not self._connections:
            self._reader.close()
            raise ValueError(f'parameter topics: {missing or "nothing"} to play in '
                             f'{self.config.bag} (topics: '
                             f'{sorted(c.topic for c in self._reader.connections)})')
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._classes = {c.topic: message_class(c.msgtype) for c in self._connections}
        self._topic_publishers = {topic: self.create_publisher(cls, topic, qos)
                            for topic, cls in self._classes.items()}
        self._clock_out = None
        if self.config.publish_clock:
            from rosgraph_msgs.msg import Clock

            self._clock_type = Clock
            self._clock_out = self.create_publisher(Clock, '/clock', 10)
        self.published = 0
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name='bag_playback', daemon=True)
        self._thread.start()
        self.get_logger().info(
            f'playing {self.config.bag} at x{self.config.rate}: '
            f'{sorted(self._topic_publishers)}' + (' with /clock' if self._clock_out else ''))

    # ----------------------------------------------------------------- playback thread
    def _publish_clock(self, bag_ns: int) -> None:
        if self._clock_out is not None:
            message = self._clock_type()
            message.clock.sec, message.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
            self._clock_out.publish(message)

    def _wait_until(self, due_s: float, start_s: float, first_ns: int) -> bool:
        """Sleep until ``due_s`` (monotonic), publishing /clock meanwhile; False when stopped."""
        period = 1.0 / self.config.clock_rate_hz
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= due_s:
                return True
            self._publish_clock(bag_time_at(now, start_s, first_ns, self.config.rate))
            self._stop.wait(min(period, due_s - now))
        return False

    def _restamped(self, topic: str, data: bytes, first_ns: int, wall_start_ns: int) -> object:
        from rclpy.serialization import deserialize_message

        message = deserialize_message(data, self._classes[topic])
        header = getattr(message, 'header', None)
        if header is None:
            return data
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        if stamp_ns > 0:
            moved = wall_start_ns + round((stamp_ns - first_ns) / self.config.rate)
            header.stamp.sec, header.stamp.nanosec = divmod(moved, 1_000_000_000)
        return message

    def _play(self) -> None:
        config = self.config
        start_s = time.monotonic() + config.start_delay_s
        first_ns, wall_start_ns = None, 0
        try:
            for connection, bag_ns, data in self._reader.messages(connections=self._connections):
                if first_ns is None:
                    first_ns = bag_ns
                    wall_start_ns = time.time_ns() + round(config.start_delay_s * 1e9)
                due = float(playback_times(np.array([first_ns, bag_ns]), start_s, config.rate)[1])
                if not self._wait_until(due, start_s, first_ns):
                    return
                payload = self._restamped(connection.topic, bytes(data), first_ns,
                                          wall_start_ns) if config.restamp else bytes(data)
                self._topic_publishers[connection.topic].publish(payload)
                self.published += 1
            if first_ns is not None:
                self._publish_clock(bag_time_at(time.monotonic(), start_s, first_ns, config.rate))
        except Exception as error:  # noqa: BLE001 - a damaged bag ends the playback, logged
            if not self._stop.is_set():
                self.get_logger().error(f'playback of {config.bag} failed: {error}')
        finally:
            self._finish()

    def _finish(self) -> None:
        self.finished.set()
        if self._stop.is_set():
            return
        self.get_logger().info(f'replay finished: {self.published} messages')
        if self.config.exit_when_done:
            self.context.try_shutdown()

    def destroy_node(self) -> None:
        """Stop the playback thread, close the bag, destroy the node."""
        stop = getattr(self, '_stop', None)
        if stop is not None:
            stop.set()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5.0)
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001, S110 - rosbags refuses to close twice
                pass
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console entry point ``vla-adapter-play``."""
    return run_node(BagPlayerNode, NODE_NAME, args,
                    help_text=parameter_help(PLAYER_PARAMETERS, 'vla-adapter-play',
                                             NODE_NAME, __doc__.splitlines()[0]))


if __name__ == '__main__':
    raise SystemExit(main())
