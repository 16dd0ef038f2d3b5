"""The handoff between the inference node's callbacks and its worker thread, and chunk timing.

No rclpy: a single-slot "newest observation" box (putting overwrites, it never queues) and the
latency record of one published chunk.
"""

import threading
from typing import Any, NamedTuple


class ChunkTiming(NamedTuple):
    """Timing of one published chunk (time.perf_counter() seconds).

    arrival_s: the message that completed the observation arrived; worker_free_s: the worker
    finished its previous job and was free; model_start_s / model_s: the policy call;
    published_s: the chunk and its per-arm trajectories were published.
    """

    arrival_s: float
    worker_free_s: float
    model_start_s: float
    model_s: float
    published_s: float

    @property
    def overhead_s(self) -> float:
        """Last input's arrival to publication, minus the model's own time."""
        return self.published_s - self.arrival_s - self.model_s

    @property
    def busy_wait_s(self) -> float:
        """Part of the overhead spent waiting for the worker to finish the previous chunk."""
        return max(0.0, min(self.worker_free_s, self.model_start_s) - self.arrival_s)

    @property
    def pipeline_overhead_s(self) -> float:
        """Overhead of our own code: overhead minus the wait for a busy worker."""
        return self.overhead_s - self.busy_wait_s


class LatestSlot:
    """A thread-safe single-slot buffer: ``put`` overwrites, ``take`` waits for a new item.

    The observation handed to the worker is therefore always the newest one; older ones are
    dropped (counted in ``overwritten``), never queued.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._closed = False
        self.overwritten = 0

    def put(self, item: Any) -> None:
        """Store ``item``, replacing any item not yet taken, and wake the taker."""
        with self._condition:
            if self._has_item:
                self.overwritten += 1
            self._item, self._has_item = item, True
            self._condition.notify()

    def take(self, timeout_s: float | None = None) -> Any:
        """Wait up to ``timeout_s`` for an item; return it (clearing the slot) or None."""
        with self._condition:
            self._condition.wait_for(lambda: self._has_item or self._closed, timeout=timeout_s)
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def clear(self) -> None:
        """Drop the item not yet taken, if any (counted in ``overwritten``)."""
        with self._condition:
            if self._has_item:
                self.overwritten += 1
            self._item, self._has_item = None, False

    def close(self) -> None:
        """Wake any waiting taker for good (shutdown)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed
