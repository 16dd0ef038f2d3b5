"""Approximate-time synchronisation of N message streams (pure Python, no rclpy).

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/pipeline/sync.py.
"""

import bisect
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

NANOSECONDS_PER_SECOND = 1_000_000_000
PERIOD_WINDOW = 8  # stamp intervals in a stream's period estimate (their median)
MAX_CANDIDATES = 16  # reference messages examined per arrival (bounded work)


@dataclass(frozen=True)
class SyncConfig:
    """Parameters of :class:`ApproximateTimeSynchronizer`.

    stream_names: one name per input (camera names, arm names); at least one, unique.
    queue_size: hard cap on the messages kept per stream (history is by time), >= 1.
    slop_s: largest allowed stamp spread inside one set, seconds, >= 0.
    max_age_s: a set whose oldest stamp is older than this (against the clock) is stale, > 0;
        each stream keeps ``max_age_s + slop_s`` of history (by its own stamps).
    backward_jump_s: a stamp this much older than its stream's newest restarts matching, > 0.
    reference_stream: the stream whose stamp is the observation time; None = the first name.
    """

    stream_names: tuple[Hashable, ...]
    queue_size: int = 200
    slop_s: float = 0.05
    max_age_s: float = 0.5
    backward_jump_s: float = 1.0
    reference_stream: Hashable | None = None

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
        if self.reference_stream is None:
            object.__setattr__(self, 'reference_stream', names[0])
        elif self.reference_stream not in names:
            raise ValueError(f'SyncConfig.reference_stream={self.reference_stream!r}: not one '
                             f'of {names!r}')

    @property
    def slop_ns(self) -> int:
        """The slop in integer nanoseconds."""
        return round(self.slop_s * NANOSECONDS_PER_SECOND)

    @property
    def max_age_ns(self) -> int:
        """The maximum age in integer nanoseconds."""
        return round(self.max_age_s * NANOSECONDS_PER_SECOND)

    @property
    def history_ns(self) -> int:
        """Stamp span of history kept per stream: max_age_s + slop_s, in nanoseconds."""
        return self.max_age_ns + self.slop_ns


@dataclass(frozen=True)
class SyncedSet:
    """One message per stream; ``stamps_ns[name]`` and ``items[name]`` per stream name.

    ``stamp_ns`` is the observation time: the reference stream's stamp (the camera time).
    """

    stamps_ns: dict
    items: dict
    stamp_ns: int

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
class _StreamHistory:
    """Sorted stamps with their items: the last ``span_ns`` of stamps, at most ``capacity``."""

    capacity: int
    span_ns: int
    stamps: list = field(default_factory=list)
    items: list = field(default_factory=list)
    floor_ns: int | None = None  # stamps below it (at or below when strict) are refused
    strict_floor: bool = False
    newest_seen_ns: int | None = None  # newest stamp ever received (diagnostics, clock jumps)
    recent: deque = field(default_factory=lambda: deque(maxlen=PERIOD_WINDOW + 1))
    period_ns: int | None = None  # median interval of the recent in-order stamps

    def insert(self, stamp_ns: int, item: Any) -> bool:
        if self.newest_seen_ns is None or stamp_ns > self.newest_seen_ns:
            self.newest_seen_ns = stamp_ns
            self._note_period(stamp_ns)
        if self.floor_ns is not None and (
                stamp_ns < self.floor_ns or (self.strict_floor and stamp_ns == self.floor_ns)):
            return False
        position = bisect.bisect_left(self.stamps, stamp_ns)
        if position < len(self.stamps) and self.stamps[position] == stamp_ns:
            self.items[position] = item  # same stamp again: the newer message replaces it
            return True
        self.stamps.insert(position, stamp_ns)
        self.items.insert(position, item)
        cut = max(len(self.stamps) - self.capacity,
                  bisect.bisect_left(self.stamps, self.stamps[-1] - self.span_ns))
        if cut > 0:
            del self.stamps[:cut]
            del self.items[:cut]
        return bool(self.stamps) and self.stamps[0] <= stamp_ns

    def _note_period(self, stamp_ns: int) -> None:
        self.recent.append(stamp_ns)
        if len(self.recent) >= 2:
            stamps = list(self.recent)
            intervals = sorted(b - a for a, b in zip(stamps, stamps[1:]))
            self.period_ns = intervals[len(intervals) // 2]

    def decided_until_ns(self) -> float:
        """Reference stamps up to this have their closest message here already known."""
        if not self.stamps:
            return float('-inf')
        if self.period_ns is None:
            return float('inf')  # no period known yet: take what there is
        return self.stamps[-1] + self.period_ns // 2

    def closest(self, stamp_ns: int) -> int:
        """Index of the stamp closest to stamp_ns (a tie goes to the newer); needs stamps."""
        position = bisect.bisect_left(self.stamps, stamp_ns)
        if position == len(self.stamps):
            return position - 1
        if position > 0 and stamp_ns - self.stamps[position - 1] < (
                self.stamps[position] - stamp_ns):
            return position - 1
        return position

    def forget_after(self, limit_ns: int) -> None:
        """Drop stamps after limit_ns; a stream that had seen one starts afresh."""
        cut = bisect.bisect_right(self.stamps, limit_ns)
        del self.stamps[cut:]
        del self.items[cut:]
        if self.newest_seen_ns is not None and self.newest_seen_ns > limit_ns:
            self.newest_seen_ns, self.period_ns, self.floor_ns = None, None, None
            self.recent.clear()

    def consume(self, stamp_ns: int, strict: bool) -> None:
        """Drop stamps older than stamp_ns (through it when strict) and refuse them later."""
        cut = (bisect.bisect_right if strict else bisect.bisect_left)(self.stamps, stamp_ns)
        del self.stamps[:cut]
        del self.items[:cut]
        self.floor_ns, self.strict_floor = stamp_ns, strict


class ApproximateTimeSynchronizer:
    """Approximate-time matcher over named streams; see the module docstring for semantics.

    Not thread-safe: call it from one thread (the node's subscription callbacks).
    """

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self._queues: dict = {}
        self._latest: SyncedSet | None = None
        self.resets = 0  # backward clock jumps seen
        self.reset()

    def add(self, stream: Hashable, stamp_ns: int, item: Any) -> SyncedSet | None:
        """Keep one message; return the set this arrival completed, if it completed one."""
        queue = self._queues.get(stream)
        if queue is None:
            raise ValueError(f'stream={stream!r} is not one of {self.config.stream_names!r}')
        stamp_ns = int(stamp_ns)
        jump_ns = round(self.config.backward_jump_s * NANOSECONDS_PER_SECOND)
        if queue.newest_seen_ns is not None and queue.newest_seen_ns - stamp_ns > jump_ns:
            self._clock_jumped(stamp_ns + jump_ns)
        if not queue.insert(stamp_ns, item):
            return None
        found = self._find_set()
        if found is None:
            return None
        reference = self.config.reference_stream
        for name, stamp in found.stamps_ns.items():
            self._queues[name].consume(stamp, strict=name == reference)
        self._latest = found
        return found

    def _find_set(self) -> SyncedSet | None:
        """The decided candidate within the slop whose oldest stamp is newest, or None."""
        reference = self.config.reference_stream
        slop = self.config.slop_ns
        others = [(name, q) for name, q in self._queues.items() if name != reference]
        horizon = min((q.decided_until_ns() for _, q in others), default=float('inf'))
        ref_stamps = self._queues[reference].stamps
        last = bisect.bisect_right(ref_stamps, horizon) - 1  # newest decided candidate
        best, best_oldest = None, None
        for index in range(last, max(last - MAX_CANDIDATES, -1), -1):
            ref_ns = ref_stamps[index]
            if best_oldest is not None and ref_ns <= best_oldest:
                break  # its oldest stamp cannot be newer than the best one's
            chosen = {reference: index}
            oldest = newest = ref_ns
            for name, queue in others:
                at = queue.closest(ref_ns)
                stamp = queue.stamps[at]
                oldest, newest = min(oldest, stamp), max(newest, stamp)
                if newest - oldest > slop:
                    break
                chosen[name] = at
            else:
                if best_oldest is None or oldest > best_oldest:
                    best, best_oldest = (ref_ns, chosen), oldest
        if best is None:
            return None
        ref_ns, chosen = best
        names = self.config.stream_names
        stamps = {name: self._queues[name].stamps[chosen[name]] for name in names}
        items = {name: self._queues[name].items[chosen[name]] for name in names}
        return SyncedSet(stamps_ns=stamps, items=items, stamp_ns=ref_ns)

    def _clock_jumped(self, limit_ns: int) -> None:
        """Forget everything stamped after limit_ns: the clock that stamped it is gone.

        Messages already stamped by the new clock (on streams that switched first) are kept, so
        an old-clock message still in flight on another stream does not cost a second restart.
        """
        self.resets += 1
        for queue in self._queues.values():
            queue.forget_after(limit_ns)
        if self._latest is not None and self._latest.newest_stamp_ns > limit_ns:
            self._latest = None

    def latest(self, now_ns: int) -> SyncedSet | None:
        """The newest emitted set if its oldest stamp is at most max_age_s old, else None."""
        if self._latest is None or now_ns - self._latest.oldest_stamp_ns > self.config.max_age_ns:
            return None
        return self._latest

    def queue_lengths(self) -> dict:
        """Messages currently kept per stream."""
        return {name: len(queue.stamps) for name, queue in self._queues.items()}

    def reset(self) -> None:
        """Forget everything (e.g. after the clock jumped backwards)."""
        self._queues = {name: _StreamHistory(self.config.queue_size, self.config.history_ns)
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
