"""Chunks on their way into the executor: a bounded inbox, then checked into a TimedChunk.

The executor's subscription only hands the received bytes to :class:`ChunkInbox`; a thread of
its own decodes them (pipeline/chunk_cdr.py) and checks them (:func:`chunk_from_decoded`), so
the 50 Hz tick never waits for a decode whatever arrives. Pure: numpy and threading. Every
problem is a ChunkRejected (a ValueError) naming the arm, field, joint and value at fault.
"""

import collections
import threading

import numpy as np

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.pipeline.chunk_cdr import ArmPlan, DecodedChunk, decoded_from_message
from vla_adapter_ros.pipeline.chunk_schedule import TimedChunk
from vla_adapter_ros.pipeline.safety import (
    ChunkRejected,
    SafetyConfig,
    validate_chunk_timing,
    validate_chunk_values,
)


def _arm_positions(side: str, plan: ArmPlan, expected: list[str]) -> np.ndarray:
    """One arm's (T, arm.dim) targets, columns in ``expected`` order."""
    names = list(plan.joint_names)
    if sorted(names) != sorted(expected):
        raise ChunkRejected(f'{side} joint_names {names} do not match the expected {expected}')
    if plan.positions.shape[1] != len(names):
        raise ChunkRejected(f'{side} trajectory points have {plan.positions.shape[1]} positions '
                            f'each, expected {len(names)} (one per joint name)')
    columns = [names.index(name) for name in expected]
    return plan.positions[:, columns]  # (T, arm.dim)


def chunk_from_decoded(chunk: DecodedChunk, robot: RobotDescription, safety: SafetyConfig,
                       max_chunk_steps: int, now_s: float) -> TimedChunk:
    """Validate a decoded ActionChunk and turn it into a TimedChunk of (T, J) targets."""
    plans = [('left', chunk.left)]
    if robot.num_arms == 2:
        plans.append(('right', chunk.right))
    elif chunk.right.num_points or chunk.right.joint_names:
        raise ChunkRejected('single-arm executor received a right-arm trajectory')
    offsets, blocks = None, []
    for (side, plan), arm in zip(plans, robot.arms):
        if not plan.num_points:
            raise ChunkRejected(f'empty chunk: {side} trajectory has no points')
        if plan.num_points > max_chunk_steps:
            raise ChunkRejected(f'{side} trajectory has {plan.num_points} steps, more '
                                f'than max_chunk_steps={max_chunk_steps}')
        if offsets is not None and (plan.offsets_s.shape != offsets.shape
                                    or not np.allclose(plan.offsets_s, offsets, atol=1e-6)):
            raise ChunkRejected('left and right time_from_start differ')
        offsets = plan.offsets_s  # (T,)
        try:
            blocks.append(_arm_positions(side, plan, list(arm.command_joint_names)))
        except ChunkRejected as error:
            raise ChunkRejected(f'{error} ({arm.namespace})') from None
    stamp_s = chunk.stamp_ns * 1e-9
    validate_chunk_timing(stamp_s, offsets, now_s, safety)
    positions = validate_chunk_values(np.hstack(blocks), safety, robot.joint_labels())  # (T, J)
    return TimedChunk(stamp_s=stamp_s, offsets_s=offsets, positions=positions,
                      sequence=chunk.sequence)


def chunk_from_message(message, robot: RobotDescription, safety: SafetyConfig,
                       max_chunk_steps: int, now_s: float) -> TimedChunk:
    """Validate an ActionChunk message object (in-process callers; the node reads bytes)."""
    return chunk_from_decoded(decoded_from_message(message), robot, safety, max_chunk_steps,
                              now_s)


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
