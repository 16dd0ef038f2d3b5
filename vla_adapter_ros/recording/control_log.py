"""Who commanded the followers during an episode: the executor's control source, as intervals.

The chunk executor publishes its control source (pipeline/status.py ``CONTROL_*``) on every
change and at its status rate; the recorder stores the messages in the bag
(training.bag_types.CONTROL_SOURCE_TOPIC) and feeds them here, so that the sidecar lists the
intervals: ``[{source, start_s, stop_s}]``, seconds from the episode's start, the last one
ending when the episode stops. Training reads the topic itself; the intervals are for people
and reports.
"""

from __future__ import annotations

from vla_adapter_ros.pipeline import status


class ControlLog:
    """The changes of the control source seen in one episode."""

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.changes: list[tuple[int, str]] = []  # (bag time ns, source), one per change
        self.unknown = 0  # messages naming no known source (ignored)

    def update(self, time_ns: int, source: str) -> None:
        """One control-source message received at ``time_ns``."""
        if source not in status.CONTROL_SOURCES:
            self.unknown += 1
            return
        if not self.changes or self.changes[-1][1] != source:
            self.changes.append((int(time_ns), source))

    def intervals(self, start_ns: int, stop_ns: int | None) -> list[dict]:
        """The sidecar's intervals, seconds from ``start_ns``; the last ends at ``stop_ns``.

        While the episode runs (``stop_ns`` None), the last interval is open (stop_s None).
        """
        result = []
        for index, (time_ns, source) in enumerate(self.changes):
            end_ns = self.changes[index + 1][0] if index + 1 < len(self.changes) else stop_ns
            result.append({'source': source,
                           'start_s': round((time_ns - start_ns) / 1e9, 3),
                           'stop_s': None if end_ns is None
                           else round((end_ns - start_ns) / 1e9, 3)})
        return result

    def summary(self, start_ns: int, stop_ns: int | None) -> dict:
        """The sidecar entry: the intervals, the number of takeovers and the operator's time."""
        intervals = self.intervals(start_ns, stop_ns)
        operator_s = sum(entry['stop_s'] - entry['start_s'] for entry in intervals
                         if entry['source'] == status.CONTROL_OPERATOR
                         and entry['stop_s'] is not None)
        takeovers = sum(1 for entry in intervals if entry['source'] == status.CONTROL_HANDOVER)
        return {'intervals': intervals, 'takeovers': takeovers,
                'operator_s': round(operator_s, 3), 'unknown_messages': self.unknown}
