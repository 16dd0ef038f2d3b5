"""Set spread, observation stamp and freshness of the approximate-time synchroniser.

Feeds :class:`vla_adapter_ros.pipeline.sync.ApproximateTimeSynchronizer` seeded arrival sequences
(no ROS): 3 cameras at 30 Hz, each with its own phase, clock-rate error (so the phases drift
against
each other), stamp jitter and transport delay (20-45 ms plus an exponential tail), and 2 arms at
50 or 100 Hz (1-3 ms transport); every stream arrives in stamp order, as DDS keeps a topic's
order. Scenarios add a camera lagging the arms by 250 ms and a 2 % message loss.

Per scenario it prints, over all seeds: sets per second; the set spread (newest - oldest stamp)
p50/p90/max; the observation stamp relative to the cameras' mean stamp (p50) and each arm's
distance to it (p50); the age of each set when emitted (freshness): emission time - its oldest
stamp (p50/p90) and - its oldest camera stamp (p50/p90/mean); and the mean cost per message in
microseconds. ``--compare PATH`` runs
another sync.py (e.g. a copy of an earlier version) on the same arrivals; a version without
``SyncedSet.stamp_ns`` is taken to stamp the observation with the set's newest stamp. Prints
the numbers; asserts nothing.

    .venv/bin/python benchmarks/sync_spread.py [--seconds 60] [--seeds 3]
        [--compare /tmp/sync_old.py [--compare_queue_size 10]]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
import random
import statistics
import sys
import time

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vla_adapter_ros.pipeline import sync as current_sync  # noqa: E402

CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
ARMS = ('left', 'right')
CAMERA_HZ = 30.0
SLOP_S = 0.05
MAX_AGE_S = 0.5
NS = 1e9

# name: (arm rate Hz, extra lag per stream s, loss probability)
SCENARIOS = {
    'arms 50 Hz': (50.0, {}, 0.0),
    'arms 100 Hz': (100.0, {}, 0.0),
    'arms 50 Hz, 2% loss': (50.0, {}, 0.02),
    'wrist cam lags 250 ms': (50.0, {'cam_left_wrist': 0.25}, 0.0),
    'first cam lags 250 ms': (100.0, {'cam_high': 0.25}, 0.0),
}


def arrivals(seed: int, seconds: float, arm_hz: float, lags_s: dict, loss: float) -> list:
    """(arrival s, stream, stamp ns) for the 5 streams, sorted by arrival time."""
    rng = random.Random(seed)
    streams = [(name, CAMERA_HZ * (1.0 + rng.uniform(-1e-3, 1e-3)), rng.uniform(0.020, 0.045),
                0.003, 0.0005) for name in CAMERAS]
    streams += [(name, arm_hz, rng.uniform(0.001, 0.003), 0.0005, 0.0002) for name in ARMS]
    messages = []
    for name, hz, delay_s, tail_s, jitter_s in streams:
        phase_s, arrival_s = rng.uniform(0.0, 1.0 / hz), 0.0
        for k in range(int(seconds * hz)):
            stamp_s = 1.0 + phase_s + k / hz + rng.gauss(0.0, jitter_s)
            arrival_s = max(arrival_s, stamp_s + delay_s + rng.expovariate(1.0 / tail_s)
                            + lags_s.get(name, 0.0))
            if rng.random() >= loss:
                messages.append((arrival_s, name, round(stamp_s * NS)))
    return sorted(messages)


def run(module, queue_size: int | None, messages: list) -> tuple[list, float]:
    """Feed one sequence; return [(emission s, set)] and the seconds spent in add()."""
    kwargs = {} if queue_size is None else {'queue_size': queue_size}
    sync = module.ApproximateTimeSynchronizer(module.SyncConfig(
        (*CAMERAS, *ARMS), slop_s=SLOP_S, max_age_s=MAX_AGE_S, **kwargs))
    add = sync.add
    emitted = []
    started = time.perf_counter()
    for arrival_s, name, stamp_ns in messages:
        result = add(name, stamp_ns, None)
        if result is not None:
            emitted.append((arrival_s, result))
    return emitted, time.perf_counter() - started


def percentile(values: list, fraction: float) -> float:
    if not values:
        return float('nan')
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summarise(emitted: list, seconds: float, messages: int, busy_s: float) -> dict:
    """The printed numbers of one scenario (times in ms)."""
    spread, to_cameras, arm_offset, age, camera_age = [], [], [], [], []
    for emitted_s, synced in emitted:
        stamp = getattr(synced, 'stamp_ns', None)
        stamp = synced.newest_stamp_ns if stamp is None else stamp
        cameras_ns = statistics.fmean(synced.stamps_ns[name] for name in CAMERAS)
        spread.append(synced.spread_ns / 1e6)
        to_cameras.append((stamp - cameras_ns) / 1e6)
        arm_offset += [abs(synced.stamps_ns[arm] - stamp) / 1e6 for arm in ARMS]
        age.append((emitted_s - synced.oldest_stamp_ns / NS) * 1e3)
        camera_age.append((emitted_s - min(synced.stamps_ns[n] for n in CAMERAS) / NS) * 1e3)
    return {'sets/s': len(emitted) / seconds,
            'spread p50': percentile(spread, 0.5), 'p90': percentile(spread, 0.9),
            'max': max(spread, default=float('nan')),
            'stamp-cams p50': percentile(to_cameras, 0.5),
            '|arm-stamp| p50': percentile(arm_offset, 0.5),
            'age p50': percentile(age, 0.5), 'age p90': percentile(age, 0.9),
            'cam age p50': percentile(camera_age, 0.5), 'p90 ': percentile(camera_age, 0.9),
            'mean': statistics.fmean(camera_age) if camera_age else float('nan'),
            'us/msg': busy_s / max(messages, 1) * 1e6}


def load_module(path: str):
    spec = importlib.util.spec_from_file_location('sync_compare', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=60.0, help='stamp time per sequence')
    parser.add_argument('--seeds', type=int, default=3, help='sequences per scenario')
    parser.add_argument('--compare', help='path of another sync.py to run on the same arrivals')
    parser.add_argument('--compare_queue_size', '--compare-queue-size', type=int, default=10,
                        help='queue_size for --compare (10 = the old node default)')
    args = parser.parse_args()
    versions = [('current', current_sync, None)]
    if args.compare:
        versions.append(('compare', load_module(args.compare), args.compare_queue_size))
    columns = ['sets/s', 'spread p50', 'p90', 'max', 'stamp-cams p50', '|arm-stamp| p50',
               'age p50', 'age p90', 'cam age p50', 'p90 ', 'mean', 'us/msg']
    print(f'{args.seeds} seeds x {args.seconds:.0f} s, slop {SLOP_S * 1e3:.0f} ms, max age '
          f'{MAX_AGE_S * 1e3:.0f} ms; times in ms (cost in us per message)')
    print(f'{"scenario":<24} {"version":<8} ' + ' '.join(f'{c:>8}' for c in columns))
    for scenario, (arm_hz, lags_s, loss) in SCENARIOS.items():
        sequences = [arrivals(seed, args.seconds, arm_hz, lags_s, loss)
                     for seed in range(args.seeds)]
        for label, module, queue_size in versions:
            emitted, busy_s, count = [], 0.0, 0
            for messages in sequences:
                sets, spent = run(module, queue_size, messages)
                emitted += sets
                busy_s += spent
                count += len(messages)
            row = summarise(emitted, args.seconds * args.seeds, count, busy_s)
            print(f'{scenario:<24} {label:<8} '
                  + ' '.join(f'{row[c]:>8.1f}' for c in columns))


if __name__ == '__main__':
    main()
