"""Who commanded the followers during a replayed bag: its takeovers, for the scores and report.

A policy run recorded with the takeover (README, "Run, correct, retrain") says who was in
control: the recorder's sidecar holds the intervals (recording/control_log.py, ``control:
intervals, takeovers, operator_s``) and the bag the executor's ``/control_source`` messages
(training.bag_types.CONTROL_SOURCE_TOPIC). The sidecar is read first; without one (a bare
.mcap, a sidecar of an older recorder) the topic's messages as the aligner read them go
through the recorder's own ControlLog. With neither, the bag says nothing about takeovers and
every step counts as the policy's (or, in a demonstration, the demonstrator's).

Per grid step the source becomes training's control code (training.corrections.control_codes):
the policy, the machine (the handover ramp to the leaders, or a hold) or the operator. The
replay's errors are split by the code of the step each predicted action is compared with: on
the operator's steps, how far the policy was from the correction it needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.corrections import MACHINE, OPERATOR, POLICY, control_codes
from training.episodes import EpisodeError
from vla_adapter_ros.pipeline import status
from vla_adapter_ros.recording.control_log import ControlLog

# The parts the errors are split into: the steps each control code was in force.
PARTS = {'policy': POLICY, 'operator': OPERATOR, 'machine': MACHINE}
NO_INFORMATION = 'no takeover information'


@dataclass(frozen=True)
class EpisodeControl:
    """The control intervals of one bag, in the sidecar's form (ControlLog.summary)."""

    origin: str | None  # 'sidecar', 'topic', or None: no takeover information
    start_ns: int  # the time the intervals' seconds count from (bag time)
    intervals: tuple[dict, ...] = ()  # {source, start_s, stop_s}; the last stop_s may be None
    takeovers: int = 0
    operator_s: float = 0.0
    # (bag time ns, source) where each interval starts: the topic's own times (the sidecar's
    # seconds are rounded to ms).
    changes: tuple[tuple[int, str], ...] = ()

    def codes(self, grid_ns: np.ndarray) -> np.ndarray:
        """The control code in force at every grid time, (T,) uint8 (all POLICY without any)."""
        return control_codes([time for time, _ in self.changes],
                             [source for _, source in self.changes],
                             np.asarray(grid_ns, dtype=np.int64))

    def spans(self, end_ns: int) -> list[tuple[str, int, int]]:
        """(source, start ns, stop ns) of every interval not under the policy: the shading.

        An open interval (stop_s None: a sidecar of an unfinished episode) ends at ``end_ns``.
        """
        result = []
        for entry, (start_ns, source) in zip(self.intervals, self.changes):
            if source == status.CONTROL_POLICY:
                continue
            stop_ns = end_ns if entry['stop_s'] is None else (
                self.start_ns + round(float(entry['stop_s']) * 1e9))
            result.append((source, start_ns, stop_ns))
        return result

    def summary(self, origin_ns: int) -> dict:
        """The report's entry; intervals in seconds from ``origin_ns`` (the plots' time 0)."""
        if self.origin is None:
            return {'from': None, 'takeovers': None, 'operator_s': None, 'intervals': []}
        shift_s = (self.start_ns - origin_ns) / 1e9
        return {'from': self.origin, 'takeovers': self.takeovers, 'operator_s': self.operator_s,
                'intervals': [{'source': entry['source'],
                               'start_s': round(float(entry['start_s']) + shift_s, 3),
                               'stop_s': None if entry['stop_s'] is None
                               else round(float(entry['stop_s']) + shift_s, 3)}
                              for entry in self.intervals]}


def _from_sidecar(path: Path, metadata: dict) -> EpisodeControl | None:
    recorded = metadata.get('control')
    if not isinstance(recorded, dict) or metadata.get('start_time_ns') is None:
        return None
    try:
        intervals = tuple({'source': str(entry['source']), 'start_s': float(entry['start_s']),
                           'stop_s': None if entry['stop_s'] is None else float(entry['stop_s'])}
                          for entry in recorded['intervals'])
        start_ns = int(metadata['start_time_ns'])
        changes = tuple((start_ns + round(entry['start_s'] * 1e9), entry['source'])
                        for entry in intervals)
        return EpisodeControl('sidecar', start_ns, intervals, int(recorded['takeovers']),
                              float(recorded['operator_s']), changes)
    except (KeyError, TypeError, ValueError) as error:
        raise EpisodeError(path, 'episode_metadata.yaml',
                           f'control intervals unreadable: {error!r}') from None


def episode_control(path: Path, metadata: dict, messages: tuple[list, list] | None,
                    grid_ns: np.ndarray) -> EpisodeControl:
    """The bag's control intervals: the sidecar's, else the topic's ``messages``, else none.

    ``messages``: (bag times ns, sources) of the /control_source topic as the aligner read
    them (None without the topic); their intervals count from the grid's first step and the
    last ends at its last.
    """
    recorded = _from_sidecar(path, metadata)
    if recorded is not None:
        return recorded
    start_ns = int(grid_ns[0])
    if not messages or not messages[0]:
        return EpisodeControl(None, start_ns)
    log = ControlLog()
    for time_ns, source in zip(*messages):
        log.update(time_ns, source)
    summary = log.summary(start_ns, int(grid_ns[-1]))
    return EpisodeControl('topic', start_ns, tuple(summary['intervals']), summary['takeovers'],
                          summary['operator_s'], tuple(log.changes))


def _l1(value) -> str:
    return 'n/a' if value is None else f'{value:.4f}'


def describe(name: str, control: dict, by_control: dict) -> str:
    """One line per bag: its takeovers and the policy's error on the operator's steps.

    ``control``: :meth:`EpisodeControl.summary`; ``by_control``: the policy's errors per part.
    """
    if control['from'] is None:
        return (f'{name}: {NO_INFORMATION} (no control intervals in episode_metadata.yaml, no '
                "/control_source topic): every step counts as the policy's or the "
                "demonstrator's")
    return (f"{name}: {control['takeovers']} takeover(s), {control['operator_s']:.2f} s under "
            f"the operator (from the {control['from']}); policy L1 on the operator's steps "
            f"{_l1(by_control['operator']['l1'])} ({by_control['operator']['samples']} "
            f"samples), on the policy's {_l1(by_control['policy']['l1'])}")


def aggregate_control(rows: list[dict]) -> dict:
    """Takeovers and operator time over the episodes that carry takeover information."""
    known = [row['control'] for row in rows if row['control']['from'] is not None]
    return {'episodes_with_information': len(known),
            'takeovers': sum(entry['takeovers'] for entry in known) if known else None,
            'operator_s': round(sum(entry['operator_s'] for entry in known), 3) if known
            else None}


def aggregate_text(aggregate: dict) -> str:
    """The summary line's part on takeovers (``aggregate``: the replay's aggregate)."""
    control = aggregate['control']
    if not control['episodes_with_information']:
        return NO_INFORMATION
    operator = aggregate['policy']['by_control']['operator']
    return (f"{control['takeovers']} takeover(s), {control['operator_s']:.2f} s under the "
            f"operator in {control['episodes_with_information']} of {aggregate['episodes']} "
            f"episodes: policy L1 on the operator's steps {_l1(operator['l1'])}")
