"""Bag player node: a recorded rosbag2 episode back onto the ROS graph, for live replay.

    vla-adapter-play --ros-args -p bag:=/path/episode_0000 [-p rate:=1.0]

A rosbags reader feeds one playback thread that publishes every message at its recorded pace
(bag receive time, ``rate`` x faster) with an rclpy publisher of its type. Messages are published
as the CDR bytes the bag holds (no decoding), unless ``restamp`` is set.

Time, two ways to keep the nodes' staleness checks happy:
- ``publish_clock`` (default): ``/clock`` (rosgraph_msgs/Clock) follows the bag time at
  ``clock_rate_hz``, so nodes run with ``use_sim_time:=true`` live in the bag's time; the
  recorded header stamps are then current, and what the nodes do (chunks, commands, a recorder)
  is stamped on the bag's own time axis, comparable with its actions.
- ``restamp``: every header.stamp is moved to the wall clock of its playback (the recorded
  spacing divided by ``rate``), for nodes on the wall clock (decodes each message; exclusive
  with ``publish_clock``).

Never a command: topics carrying commands (``.../commands/...``, the Interbotix command types,
JointTrajectory, ActionChunk) are not played even when the bag has them, and naming one in
``topics`` is refused. ``exit_when_done`` ends the node after the last message, which ends a
launch (every node there is critical). Parameters: :data:`PLAYER_PARAMETERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
import threading
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from vla_adapter_ros.node_main import run_node
from vla_adapter_ros.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    declare_parameters,
    parameter_defaults,
)

NODE_NAME = 'bag_player'
COMMAND_TYPES = ('interbotix_xs_msgs/msg/JointGroupCommand',
                 'interbotix_xs_msgs/msg/JointSingleCommand',
                 'interbotix_xs_msgs/msg/JointTrajectoryCommand',
                 'trajectory_msgs/msg/JointTrajectory', 'vla_adapter_msgs/msg/ActionChunk')
NEVER_PLAYED = ('/clock', '/rosout', '/parameter_events')

PLAYER_PARAMETERS = ParameterTable((
    ParameterSpec('bag', '', 'The rosbag2 bag to play: a directory with metadata.yaml, or a '
                  '.mcap / .db3 file.'),
    ParameterSpec('rate', 1.0, 'Playback speed: 1 = the recorded pace, 2 = twice as fast.',
                  (0.01, 100.0)),
    ParameterSpec('publish_clock', True, 'Publish /clock from the bag time; run the other '
                  'nodes with use_sim_time:=true.'),
    ParameterSpec('clock_rate_hz', 100.0, 'Rate of the /clock messages (Hz).', (1.0, 1000.0)),
    ParameterSpec('restamp', False, 'Move every header.stamp to the wall clock of its playback '
                  '(recorded spacing / rate); exclusive with publish_clock.'),
    ParameterSpec('start_delay_s', 1.0, 'Wait this long before the first message (discovery '
                  'of the subscribers); /clock holds the bag start meanwhile.', (0.0, 60.0)),
    ParameterSpec('topics', (), 'Topics to play; empty = every topic of the bag that is not a '
                  'command.', element_type=str),
    ParameterSpec('exit_when_done', True, 'End the node after the last message.'),
))


@dataclass(frozen=True)
@parameter_defaults
class PlayerConfig(NodeConfig):
    """Settings of the bag player node (field names = ROS parameter names)."""

    PARAMETERS = PLAYER_PARAMETERS

    bag: str
    rate: float
    publish_clock: bool
    clock_rate_hz: float
    restamp: bool
    start_delay_s: float
    topics: tuple[str, ...]
    exit_when_done: bool

    def __post_init__(self) -> None:
        self.coerce_fields()
        if not self.bag.strip():
            PLAYER_PARAMETERS['bag'].fail(self.bag, 'name the bag to play')
        if self.restamp and self.publish_clock:
            PLAYER_PARAMETERS['restamp'].fail(self.restamp, 'exclusive with publish_clock '
                                              '(set publish_clock:=false)')
        commands = [topic for topic in self.topics if is_command_topic(topic, '')]
        if commands:
            PLAYER_PARAMETERS['topics'].fail(list(self.topics),
                                             f'{commands} carry commands: never played')


def is_command_topic(topic: str, msgtype: str) -> bool:
    """Whether a topic would command a robot (never played)."""
    return msgtype in COMMAND_TYPES or '/commands/' in f'{topic}/' or topic.endswith(
        '/action_chunk') or topic in NEVER_PLAYED


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

        from vla_adapter_ros.recorder_node import message_class

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
    return run_node(BagPlayerNode, NODE_NAME, args)


if __name__ == '__main__':
    raise SystemExit(main())
