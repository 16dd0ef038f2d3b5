"""Health reporting shared by the nodes: bounded timing records and /diagnostics messages.

- :class:`TickRecorder`: start times of a periodic callback in a preallocated ring buffer (no
  allocation per tick, so a node's memory does not grow while it runs), with the period error
  percentiles and missed ticks a status reports.
- :class:`EventRate`: events per second over a sliding window, again in a fixed buffer.
- :func:`diagnostic_array`: one ``diagnostic_msgs/DiagnosticArray`` with a node's status, as
  rqt_robot_monitor and Foxglove show any driver's (level OK / WARN / ERROR, a message, and
  key-value pairs such as rates and latencies).
"""

from collections.abc import Iterator, Mapping
import contextlib
import time

import numpy as np

DIAGNOSTICS_TOPIC = '/diagnostics'
HARDWARE_ID = 'vla_adapter_ros'


class TickRecorder:
    """The last ``capacity`` start times (monotonic seconds) of a periodic callback."""

    def __init__(self, capacity: int) -> None:
        """Preallocate room for ``capacity`` stamps, every page written now.

        ``np.zeros`` would map zero pages that become resident only as the ring fills (the
        executor's 30,000 stamps: 240 kB over its first 10 minutes); writing them up front keeps
        page faults out of the tick and the resident size flat from the start.
        """
        if capacity < 2:
            raise ValueError(f'capacity={capacity}: must be >= 2')
        self._stamps = np.empty(capacity, dtype=np.float64)
        self._stamps.fill(0.0)
        self._count = 0

    def record(self, time_s: float) -> None:
        """Store one start time (overwrites the oldest when full)."""
        self._stamps[self._count % self._stamps.size] = time_s
        self._count += 1

    @property
    def count(self) -> int:
        """Stamps recorded since creation (not only the kept ones)."""
        return self._count

    def stamps(self, last: int = 0) -> np.ndarray:
        """The kept stamps, oldest first, (N,) seconds; ``last`` > 0: only the newest ``last``.

        Only the requested stamps are copied, so a periodic caller that wants a short window
        allocates that window, not the whole history.
        """
        size = self._stamps.size
        kept = min(self._count, size)
        wanted = kept if last <= 0 else min(last, kept)
        end = self._count % size  # one past the newest stamp in the ring
        start = end - wanted
        if start >= 0:
            return self._stamps[start:end].copy()
        return np.concatenate([self._stamps[start:], self._stamps[:end]])

    def periods(self, last: int = 0) -> np.ndarray:
        """Times between consecutive kept stamps, (N - 1,) seconds; ``last`` > 0: the newest."""
        return np.diff(self.stamps(last + 1 if last > 0 else 0))

    def period_error_stats(self, period_s: float, last: int = 0) -> dict[str, float]:
        """p50 / p99 of |period - period_s| (ms) and ticks missed (a period > 1.5 x nominal).

        ``last`` > 0 looks at the last ``last`` periods only.
        """
        periods = self.periods(last)
        if periods.size == 0:
            return {'tick_error_p50_ms': 0.0, 'tick_error_p99_ms': 0.0, 'missed_ticks': 0}
        errors_ms = np.abs(periods - period_s) * 1e3
        missed = np.maximum(np.round(periods / period_s) - 1, 0)
        return {'tick_error_p50_ms': float(np.percentile(errors_ms, 50)),
                'tick_error_p99_ms': float(np.percentile(errors_ms, 99)),
                'missed_ticks': int(missed[periods > 1.5 * period_s].sum())}


class EventRate:
    """Events per second over the last ``window_s`` seconds (at most ``capacity`` events)."""

    def __init__(self, window_s: float = 1.0, capacity: int = 512) -> None:
        """An empty window."""
        self.window_s = window_s
        self._recorder = TickRecorder(capacity)

    def record(self, time_s: float) -> None:
        """One event at ``time_s`` (monotonic seconds)."""
        self._recorder.record(time_s)

    def rate_hz(self, now_s: float) -> float:
        """Events per second among those of the window (0 with fewer than two)."""
        stamps = self._recorder.stamps()
        recent = stamps[stamps >= now_s - self.window_s]
        if recent.size < 2 or recent[-1] <= recent[0]:
            return 0.0
        return float((recent.size - 1) / (recent[-1] - recent[0]))


class LatencyWindow:
    """The last ``capacity`` latencies in a preallocated ring, and their percentiles."""

    def __init__(self, capacity: int) -> None:
        """An empty window of ``capacity`` entries."""
        self._seconds = np.zeros(capacity)
        self._count = 0

    def record(self, seconds: float) -> None:
        """One latency, replacing the oldest when the window is full."""
        self._seconds[self._count % len(self._seconds)] = seconds
        self._count += 1

    def percentiles_ms(self) -> tuple[float, float]:
        """(p50, p99) in milliseconds; (0, 0) before the first latency."""
        kept = self._seconds[:min(self._count, len(self._seconds))] * 1e3
        if not kept.size:
            return 0.0, 0.0
        return float(np.percentile(kept, 50)), float(np.percentile(kept, 99))


class PhaseTimes:
    """Wall time spent in each named phase of a loop since the last reset (its profile)."""

    def __init__(self) -> None:
        """No phase measured yet."""
        self.seconds: dict[str, float] = {}

    def reset(self) -> None:
        """Forget what was measured."""
        self.seconds = {}

    @contextlib.contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        """Add the wall time of the ``with`` body to ``phase``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def summary(self) -> str:
        """'sensors 1.20 s, settle 2.05 s, ... (total 9.80 s)'."""
        parts = [f'{phase} {seconds:.2f} s' for phase, seconds in self.seconds.items()]
        return f'{", ".join(parts)} (total {sum(self.seconds.values()):.2f} s)'


def diagnostic_array(stamp, name: str, level_name: str, message: str,
                     values: Mapping[str, object]):
    """A DiagnosticArray holding one DiagnosticStatus (level 'ok', 'warn', 'error' or 'stale')."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    levels = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN,
              'error': DiagnosticStatus.ERROR, 'stale': DiagnosticStatus.STALE}
    status = DiagnosticStatus(level=levels[level_name], name=name, message=message,
                              hardware_id=HARDWARE_ID)
    status.values = [KeyValue(key=key, value=_format(value)) for key, value in values.items()]
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def _format(value: object) -> str:
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)
