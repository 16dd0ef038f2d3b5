"""Chunks on their way into the executor: a bounded inbox, then checked into a TimedChunk.

The executor's subscription only hands the received bytes to :class:`ChunkInbox`; a thread of
its own decodes and checks them (:func:`chunk_from_message`), so the 50 Hz tick never waits for
a decode whatever arrives. Pure: message classes, numpy and threading. Every problem is a
ChunkRejected (a ValueError) naming the arm, field, joint and value at fault.
"""

import collections
import threading

import numpy as np

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.pipeline.chunk_schedule import TimedChunk
from vla_adapter_ros.pipeline.conversions import (
    stamp_to_nanoseconds,
    trajectory_offsets_s,
    trajectory_positions,
)
from vla_adapter_ros.pipeline.safety import (
    ChunkRejected,
    SafetyConfig,
    validate_chunk_timing,
    validate_chunk_values,
)


def chunk_from_message(message, robot: RobotDescription, safety: SafetyConfig,
                       max_chunk_steps: int, now_s: float) -> TimedChunk:
    """Validate an ActionChunk and turn it into a TimedChunk of (T, J) targets (all arms)."""
    trajectories = [('left', message.left)]
    if robot.num_arms == 2:
        trajectories.append(('right', message.right))
    elif message.right.points or message.right.joint_names:
        raise ChunkRejected('single-arm executor received a right-arm trajectory')
    offsets, blocks = None, []
    for (side, trajectory), arm in zip(trajectories, robot.arms):
        if not trajectory.points:
            raise ChunkRejected(f'empty chunk: {side} trajectory has no points')
        if len(trajectory.points) > max_chunk_steps:
            raise ChunkRejected(f'{side} trajectory has {len(trajectory.points)} steps, more '
                                f'than max_chunk_steps={max_chunk_steps}')
        names, expected = list(trajectory.joint_names), list(arm.command_joint_names)
        if sorted(names) != sorted(expected):
            raise ChunkRejected(f'{side} joint_names {names} do not match the expected '
                                f'{expected} ({arm.namespace})')
        side_offsets = trajectory_offsets_s(trajectory)  # (T,)
        if offsets is not None and (side_offsets.shape != offsets.shape
                                    or not np.allclose(side_offsets, offsets, atol=1e-6)):
            raise ChunkRejected('left and right time_from_start differ')
        offsets = side_offsets
        blocks.append(trajectory_positions(trajectory, expected))  # (T, arm.dim)
    stamp_s = stamp_to_nanoseconds(message.header.stamp) * 1e-9
    validate_chunk_timing(stamp_s, offsets, now_s, safety)
    positions = validate_chunk_values(np.hstack(blocks), safety, robot.joint_labels())  # (T, J)
    return TimedChunk(stamp_s=stamp_s, offsets_s=offsets, positions=positions,
                      sequence=int(message.sequence))


class ChunkInbox:
    """FIFO of serialised chunks between the subscription and the intake thread.

    Bounded: when ``depth`` chunks wait, the oldest is dropped (a newer plan replaces it) and
    counted; nothing ever blocks the caller of :meth:`put`.
    """

    def __init__(self, depth: int) -> None:
        """An empty, open inbox holding at most ``depth`` chunks."""
        if depth < 1:
            raise ValueError(f'depth={depth}: must be >= 1')
        self._items: collections.deque = collections.deque(maxlen=depth)
        self._ready = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, data: bytes) -> None:
        """Queue one serialised chunk (dropping the oldest when full)."""
        with self._ready:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(data)
            self._ready.notify()

    def take(self, timeout_s: float) -> bytes | None:
        """The oldest waiting chunk, or None after ``timeout_s`` or once closed."""
        with self._ready:
            if not self._items and not self._closed:
                self._ready.wait(timeout_s)
            return self._items.popleft() if self._items and not self._closed else None

    def clear(self) -> None:
        """Forget every waiting chunk (an e-stop or restart: none of them may play)."""
        with self._ready:
            self._items.clear()

    def close(self) -> None:
        """Wake and end the consumer; later chunks are ignored."""
        with self._ready:
            self._closed = True
            self._items.clear()
            self._ready.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed
