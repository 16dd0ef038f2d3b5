"""Approximate-time synchronisation of N message streams (pure Python, no rclpy).

ROS 2 message_filters cannot be installed here, so this is our own implementation of the
semantics of its ``ApproximateTimeSynchronizer``: every stream keeps a bounded queue
(``queue_size`` newest messages, by header stamp) and a *set* is one message per stream whose
stamps span at most ``slop_s`` (inclusive). Differences, chosen for a robot controller:

- Each arrival looks for the **newest complete set** among all queued messages: the set whose
  newest stamp is largest, every stream contributing its newest message not newer than that
  stamp. A set is emitted as soon as it is complete (no waiting for a better match).
- After a set is emitted, every queued message not newer than the one used from its stream is
  dropped, and later arrivals not newer than it are ignored: emitted sets are strictly
  increasing per stream, a message is never used twice, and nothing accumulates.
- Only the newest set is kept (a single slot); :meth:`latest` returns it only while it is fresh:
  ``now - oldest stamp in the set <= max_age_s``.
- A stamp older than its stream's newest one by more than ``backward_jump_s`` means the clock
  jumped back (a simulation or bag restarted): everything is forgotten and matching restarts.
- :meth:`diagnose` explains why no fresh set exists (stream never heard from, stream stale,
  no match within the slop), naming the streams, for the node's fault status.

Stamps are integer nanoseconds so that comparisons are exact.
"""

import bisect
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

NANOSECONDS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True)
class SyncConfig:
    """Parameters of :class:`ApproximateTimeSynchronizer`.

    stream_names: one name per input (camera names, arm names); at least one, unique.
    queue_size: messages kept per stream (the newest ones), >= 1.
    slop_s: largest allowed stamp spread inside one set, seconds, >= 0.
    max_age_s: a set whose oldest stamp is older than this (against the clock) is stale, > 0.
    backward_jump_s: a stamp this much older than its stream's newest resets everything, > 0.
    """

    stream_names: tuple[Hashable, ...]
    queue_size: int = 10
    slop_s: float = 0.05
    max_age_s: float = 0.5
    backward_jump_s: float = 1.0

    def __post_init__(self) -> None:
        names = tuple(self.stream_names)
        object.__setattr__(self, 'stream_names', names)
        if not names:
            raise ValueError('SyncConfig.stream_names=(): needs at least one stream')
        if len(set(names)) != len(names):
            raise ValueError(f'SyncConfig.stream_names={names!r}: names must be unique')
        if isinstance(self.queue_size, bool) or not isinstance(self.queue_size, int) or (
                self.queue_size < 1):
            raise ValueError(f'SyncConfig.queue_size={self.queue_size!r}: must be an int >= 1')
        if not self.slop_s >= 0:
            raise ValueError(f'SyncConfig.slop_s={self.slop_s!r}: must be >= 0')
        if not self.max_age_s > 0:
            raise ValueError(f'SyncConfig.max_age_s={self.max_age_s!r}: must be > 0')
        if not self.backward_jump_s > 0:
            raise ValueError(
                f'SyncConfig.backward_jump_s={self.backward_jump_s!r}: must be > 0')

    @property
    def slop_ns(self) -> int:
        """The slop in integer nanoseconds."""
        return round(self.slop_s * NANOSECONDS_PER_SECOND)

    @property
    def max_age_ns(self) -> int:
        """The maximum age in integer nanoseconds."""
        return round(self.max_age_s * NANOSECONDS_PER_SECOND)


@dataclass(frozen=True)
class SyncedSet:
    """One message per stream; ``stamps_ns[name]`` and ``items[name]`` per stream name."""

    stamps_ns: dict
    items: dict

    @property
    def newest_stamp_ns(self) -> int:
        """Largest stamp in the set."""
        return max(self.stamps_ns.values())

    @property
    def oldest_stamp_ns(self) -> int:
        """Smallest stamp in the set."""
        return min(self.stamps_ns.values())

    @property
    def spread_ns(self) -> int:
        """Newest minus oldest stamp."""
        return self.newest_stamp_ns - self.oldest_stamp_ns


@dataclass
class _StreamQueue:
    """Sorted stamps with their items, bounded to the newest ``capacity``."""

    capacity: int
    stamps: list = field(default_factory=list)
    items: list = field(default_factory=list)
    floor_ns: int | None = None  # stamps <= floor were used or superseded by an emitted set
    newest_seen_ns: int | None = None  # newest stamp ever received (for diagnostics)

    def insert(self, stamp_ns: int, item: Any) -> bool:
        if self.newest_seen_ns is None or stamp_ns > self.newest_seen_ns:
            self.newest_seen_ns = stamp_ns
        if self.floor_ns is not None and stamp_ns <= self.floor_ns:
            return False
        position = bisect.bisect_left(self.stamps, stamp_ns)
        if position < len(self.stamps) and self.stamps[position] == stamp_ns:
            self.items[position] = item  # same stamp again: the newer message replaces it
            return True
        self.stamps.insert(position, stamp_ns)
        self.items.insert(position, item)
        if len(self.stamps) > self.capacity:
            del self.stamps[0]
            del self.items[0]
        return True

    def newest_not_after(self, stamp_ns: int) -> int | None:
        """Index of the newest stamp <= stamp_ns, or None."""
        position = bisect.bisect_right(self.stamps, stamp_ns) - 1
        return position if position >= 0 else None

    def drop_through(self, stamp_ns: int) -> None:
        cut = bisect.bisect_right(self.stamps, stamp_ns)
        del self.stamps[:cut]
        del self.items[:cut]
        self.floor_ns = stamp_ns if self.floor_ns is None else max(self.floor_ns, stamp_ns)


class ApproximateTimeSynchronizer:
    """Approximate-time matcher over named streams; see the module docstring for semantics.

    Not thread-safe: call it from one thread (the node's subscription callbacks).
    """

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self._queues = {name: _StreamQueue(config.queue_size) for name in config.stream_names}
        self._latest: SyncedSet | None = None
        self.resets = 0  # backward clock jumps seen

    def add(self, stream: Hashable, stamp_ns: int, item: Any) -> SyncedSet | None:
        """Queue one message; return the newly completed newest set, if this arrival made one."""
        queue = self._queues.get(stream)
        if queue is None:
            raise ValueError(f'stream={stream!r} is not one of {self.config.stream_names!r}')
        jump_ns = round(self.config.backward_jump_s * NANOSECONDS_PER_SECOND)
        if queue.newest_seen_ns is not None and queue.newest_seen_ns - stamp_ns > jump_ns:
            self.reset()
            self.resets += 1
            queue = self._queues[stream]
        if not queue.insert(int(stamp_ns), item):
            return None
        found = self._find_newest_set()
        if found is None:
            return None
        for name, stamp in found.stamps_ns.items():
            self._queues[name].drop_through(stamp)
        self._latest = found
        return found

    def _find_newest_set(self) -> SyncedSet | None:
        slop = self.config.slop_ns
        anchors = sorted({s for q in self._queues.values() for s in q.stamps}, reverse=True)
        for newest in anchors:
            stamps, items = {}, {}
            for name, queue in self._queues.items():
                index = queue.newest_not_after(newest)
                if index is None or newest - queue.stamps[index] > slop:
                    break
                stamps[name], items[name] = queue.stamps[index], queue.items[index]
            else:
                return SyncedSet(stamps_ns=stamps, items=items)
        return None

    def latest(self, now_ns: int) -> SyncedSet | None:
        """The newest emitted set if its oldest stamp is at most max_age_s old, else None."""
        if self._latest is None or now_ns - self._latest.oldest_stamp_ns > self.config.max_age_ns:
            return None
        return self._latest

    def queue_lengths(self) -> dict:
        """Messages currently queued per stream."""
        return {name: len(queue.stamps) for name, queue in self._queues.items()}

    def reset(self) -> None:
        """Forget everything (e.g. after the clock jumped backwards)."""
        self._queues = {name: _StreamQueue(self.config.queue_size)
                        for name in self.config.stream_names}
        self._latest = None

    def diagnose(self, now_ns: int) -> str | None:
        """Why there is no fresh set at ``now_ns`` (naming the streams); None if there is one."""
        if self.latest(now_ns) is not None:
            return None
        missing = [name for name, q in self._queues.items() if q.newest_seen_ns is None]
        if missing:
            return f'no message received yet from {missing}'
        max_age_ns = self.config.max_age_ns
        stale = {name: (now_ns - q.newest_seen_ns) / NANOSECONDS_PER_SECOND
                 for name, q in self._queues.items() if now_ns - q.newest_seen_ns > max_age_ns}
        if stale:
            ages = ', '.join(f'{name} {age:.3f} s' for name, age in stale.items())
            return f'stale input, newest stamp age: {ages} (max_age_s={self.config.max_age_s})'
        newest = {name: q.newest_seen_ns for name, q in self._queues.items()}
        return (f'no set of stamps within slop_s={self.config.slop_s}; newest stamps (ns): '
                f'{newest}')
