"""The approximate-time synchroniser: a brute-force reference, seeded arrivals, edge cases."""

import random
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from vla_adapter_ros.pipeline.sync import PERIOD_WINDOW, ApproximateTimeSynchronizer, SyncConfig

MS = 1_000_000  # nanoseconds
CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
ARMS = ('left', 'right')


class BruteForceReference:
    """The documented semantics, written the slow obvious way (every candidate, every stamp)."""

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self.reference = config.stream_names[0]
        self.kept = {name: {} for name in config.stream_names}
        self.seen = {name: [] for name in config.stream_names}  # increasing stamps received
        self.floors = dict.fromkeys(config.stream_names)

    def period(self, name):
        seen = self.seen[name][-(PERIOD_WINDOW + 1):]
        if len(seen) < 2:
            return None
        return statistics.median_high(b - a for a, b in zip(seen, seen[1:]))

    def decided(self, name, ref_stamp):
        newest, period = max(self.kept[name]), self.period(name)
        return newest >= ref_stamp or period is None or 2 * (ref_stamp - newest) <= period

    def add(self, stream, stamp, item):
        if not self.seen[stream] or stamp > self.seen[stream][-1]:
            self.seen[stream].append(stamp)
        floor = self.floors[stream]
        if floor is not None and (stamp < floor or (stream == self.reference and stamp == floor)):
            return None
        kept = self.kept[stream]
        kept[stamp] = item
        for old in [s for s in kept if s < max(kept) - self.config.history_ns]:
            del kept[old]
        while len(kept) > self.config.queue_size:
            del kept[min(kept)]
        if stamp not in kept:
            return None
        best = None
        for ref_stamp in self.kept[self.reference]:
            others = [n for n in self.kept if n != self.reference]
            if not all(self.kept[n] and self.decided(n, ref_stamp) for n in others):
                continue
            chosen = {n: min(self.kept[n], key=lambda s: (abs(s - ref_stamp), -s)) for n in others}
            chosen[self.reference] = ref_stamp
            if max(chosen.values()) - min(chosen.values()) > self.config.slop_ns:
                continue
            key = (min(chosen.values()), ref_stamp)
            if best is None or key > best[0]:
                best = (key, chosen)
        if best is None:
            return None
        chosen = {name: best[1][name] for name in self.config.stream_names}
        for name, used in chosen.items():
            strict = name == self.reference
            self.kept[name] = {s: v for s, v in self.kept[name].items()
                               if s > used or (s == used and not strict)}
            self.floors[name] = used
        return chosen


arrivals_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 200)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(arrivals=arrivals_strategy, queue_size=st.integers(1, 4), slop_ms=st.integers(0, 30))
def test_matches_the_brute_force_reference_on_random_arrivals(arrivals, queue_size, slop_ms):
    config = SyncConfig(('cam_a', 'cam_b', 'arm'), queue_size=queue_size,
                        slop_s=slop_ms / 1000, max_age_s=1.0)
    sync = ApproximateTimeSynchronizer(config)
    reference = BruteForceReference(config)
    previous = None
    for index, (stream_index, stamp_ms) in enumerate(arrivals):
        stream = config.stream_names[stream_index]
        item = (stream, stamp_ms, index)
        got = sync.add(stream, stamp_ms * MS, item)
        expected = reference.add(stream, stamp_ms * MS, item)
        assert (got.stamps_ns if got else None) == expected
        assert all(length <= queue_size for length in sync.queue_lengths().values())
        if got is not None:
            assert got.spread_ns <= config.slop_ns
            assert got.stamp_ns == got.stamps_ns['cam_a']  # the observation time = the camera's
            for name, payload in got.items.items():
                assert payload[0] == name and payload[1] * MS == got.stamps_ns[name]
            if previous is not None:  # never back in time: a newer camera, no older stamp
                assert got.stamp_ns > previous.stamp_ns
                assert all(got.stamps_ns[n] >= previous.stamps_ns[n] for n in got.stamps_ns)
            previous = got


@st.composite
def aligned_streams(draw):
    """Frames k at k*100 ms; every stream stamps frame k within +-10 ms; random network delays."""
    num_streams = draw(st.integers(1, 5))
    num_frames = draw(st.integers(1, 12))
    messages = []
    for stream in range(num_streams):
        for frame in range(num_frames):
            jitter = draw(st.integers(-10, 10))
            delay = draw(st.integers(0, 150))  # arrival after the stamp, ms
            stamp = frame * 100 + jitter
            messages.append((stamp + delay, stream, frame, stamp))
    # DDS keeps each topic in order: a stream's messages arrive in stamp order.
    arrival = {}
    for stream in range(num_streams):
        ordered = sorted((m for m in messages if m[1] == stream), key=lambda m: m[3])
        last = -10**9
        for message in ordered:
            last = max(last, message[0])
            arrival[(stream, message[2])] = last
    order = sorted(messages, key=lambda m: (arrival[(m[1], m[2])], draw(st.integers(0, 3))))
    return num_streams, num_frames, order


@settings(max_examples=300, deadline=None)
@given(data=aligned_streams())
def test_sets_never_mix_frames_and_the_newest_frame_always_arrives(data):
    num_streams, num_frames, order = data
    names = tuple(f's{i}' for i in range(num_streams))
    sync = ApproximateTimeSynchronizer(SyncConfig(names, queue_size=3, slop_s=0.02))
    emitted_frames = []
    for _, stream, frame, stamp in order:
        result = sync.add(names[stream], stamp * MS, frame)
        if result is not None:
            frames = set(result.items.values())
            assert len(frames) == 1, f'a set mixed frames {frames}'
            emitted_frames.append(frames.pop())
    assert emitted_frames == sorted(set(emitted_frames)), 'sets must only move forward'
    assert emitted_frames and emitted_frames[-1] == num_frames - 1


def test_queues_stay_bounded_when_one_stream_is_silent():
    sync = ApproximateTimeSynchronizer(SyncConfig(('cam', 'arm'), queue_size=7))
    for k in range(10_000):
        assert sync.add('arm', k * 10 * MS, k) is None
    assert sync.queue_lengths() == {'cam': 0, 'arm': 7}
    result = sync.add('cam', 99_995 * MS, 'frame')
    assert result is not None and result.items == {'cam': 'frame', 'arm': 9_999}
    assert sync.queue_lengths() == {'cam': 0, 'arm': 1}  # the arm state may serve again


def test_old_and_duplicate_messages_after_a_set_are_ignored():
    sync = ApproximateTimeSynchronizer(SyncConfig(('a', 'b'), queue_size=5, slop_s=0.01))
    assert sync.add('a', 100 * MS, 'a100') is None
    assert sync.add('b', 105 * MS, 'b105').items == {'a': 'a100', 'b': 'b105'}
    assert sync.add('a', 100 * MS, 'again') is None and sync.queue_lengths()['a'] == 0
    assert sync.add('b', 103 * MS, 'late') is None and sync.queue_lengths()['b'] == 1
    assert sync.add('a', 200 * MS, 'a200') is None
    assert sync.add('a', 200 * MS, 'a200 replaced') is None
    assert sync.add('b', 201 * MS, 'b201').items['a'] == 'a200 replaced'


def test_latest_applies_the_maximum_age_and_diagnose_names_streams():
    config = SyncConfig(('cam_high', 'cam_left_wrist', 'follower_left'), slop_s=0.02,
                        max_age_s=0.5)
    sync = ApproximateTimeSynchronizer(config)
    now = 10_000 * MS
    assert "no message received yet from ['cam_high', 'cam_left_wrist', 'follower_left']" in (
        sync.diagnose(now))
    sync.add('cam_high', now, 'h')
    sync.add('follower_left', now, 'l')
    assert "['cam_left_wrist']" in sync.diagnose(now)
    sync.add('cam_left_wrist', now - 2_000 * MS, 'stale')
    reason = sync.diagnose(now)
    assert 'stale' in reason and 'cam_left_wrist 2.000 s' in reason and 'cam_high' not in reason
    sync.add('cam_left_wrist', now - 100 * MS, 'late')
    assert 'no set of stamps within slop_s=0.02' in sync.diagnose(now)
    assert sync.add('cam_left_wrist', now + 5 * MS, 'w') is not None
    assert sync.latest(now + 400 * MS).items['cam_left_wrist'] == 'w'
    assert sync.diagnose(now + 400 * MS) is None
    assert sync.latest(now + 600 * MS) is None
    assert 'stale' in sync.diagnose(now + 600 * MS)
    sync.reset()
    assert sync.latest(now) is None and sync.queue_lengths()['cam_high'] == 0


def test_each_stream_gives_its_message_closest_to_the_camera_time():
    """Joint states arrive before the (slower) images: the one nearest the frame is used."""
    sync = ApproximateTimeSynchronizer(SyncConfig(('cam', 'arm'), slop_s=0.05))
    for stamp in (44, 64, 84, 104, 124):  # 50 Hz arm, 2 ms transport
        assert sync.add('arm', stamp * MS, f'arm{stamp}') is None
    result = sync.add('cam', 100 * MS, 'cam100')  # 30 ms transport: arrives after arm 124
    assert result.items == {'cam': 'cam100', 'arm': 'arm104'}  # not the newest, arm124
    assert result.stamp_ns == 100 * MS and result.spread_ns == 4 * MS
    assert sync.add('arm', 144 * MS, 'arm144') is None
    assert sync.add('cam', 133 * MS, 'cam133').items['arm'] == 'arm124'  # 9 ms < 11 ms


def test_a_set_waits_until_the_closest_message_is_known_then_skips_older_frames():
    sync = ApproximateTimeSynchronizer(SyncConfig(('cam', 'arm'), slop_s=0.05))
    for stamp in (40, 60, 80):
        sync.add('arm', stamp * MS, f'arm{stamp}')  # period 20 ms: stamps to 90 ms are decided
    assert sync.add('cam', 100 * MS, 'cam100') is None  # arm 80 is 20 ms off; 100-120 may come
    assert sync.add('cam', 133 * MS, 'cam133') is None
    result = sync.add('arm', 140 * MS, 'arm140')  # both frames decided: the newer set wins
    assert result.items == {'cam': 'cam133', 'arm': 'arm140'} and result.stamp_ns == 133 * MS
    assert sync.queue_lengths()['cam'] == 0  # cam 100 is older than a set: skipped for good
    assert sync.add('cam', 166 * MS, 'cam166') is None  # arm 140 is 26 ms off: wait
    assert sync.add('arm', 160 * MS, 'arm160').items == {'cam': 'cam166', 'arm': 'arm160'}


def seeded_arrivals(seed: int, seconds: float, arm_hz: float = 50.0, lags_s=None):
    """(arrival s, stream, stamp ns) of 3 cameras at 30 Hz and 2 arms, sorted by arrival.

    Each camera has its own phase, stamp jitter and transport delay (20-45 ms plus an
    exponential tail), each arm 1-3 ms; ``lags_s[name]`` adds a fixed lag to a stream; a stream
    arrives in stamp order (DDS keeps a topic's order).
    """
    rng = random.Random(seed)
    lags_s = lags_s or {}
    messages = []
    for name, hz, delay_s, tail_s in (
            *((camera, 30.0, rng.uniform(0.020, 0.045), 0.003) for camera in CAMERAS),
            *((arm, arm_hz, rng.uniform(0.001, 0.003), 0.0005) for arm in ARMS)):
        phase_s, arrival_s = rng.uniform(0.0, 1.0 / hz), 0.0
        for k in range(int(seconds * hz)):
            stamp_s = 1.0 + phase_s + k / hz + rng.gauss(0.0, 0.0005)
            arrival_s = max(arrival_s, stamp_s + delay_s + rng.expovariate(1.0 / tail_s)
                            + lags_s.get(name, 0.0))
            messages.append((arrival_s, name, round(stamp_s * 1e9)))
    return sorted(messages)


def run_arrivals(sync, messages):
    """Feed the messages; return the sets with their emission time (s)."""
    emitted = []
    for arrival_s, name, stamp_ns in messages:
        result = sync.add(name, stamp_ns, (name, stamp_ns))
        if result is not None:
            emitted.append((arrival_s, result))
    return emitted


@pytest.mark.parametrize(('seed', 'arm_hz'), [(0, 50.0), (1, 50.0), (2, 100.0)])
def test_seeded_camera_and_arm_arrivals_give_tight_sets_stamped_at_camera_time(seed, arm_hz):
    sync = ApproximateTimeSynchronizer(SyncConfig((*CAMERAS, *ARMS), slop_s=0.05))
    emitted = run_arrivals(sync, seeded_arrivals(seed, 20.0, arm_hz))
    assert len(emitted) >= 0.9 * 20.0 * 30  # (nearly) one set per frame of the first camera
    spreads_ms = [result.spread_ns / MS for _, result in emitted]
    assert statistics.median(spreads_ms) <= 20.0 and max(spreads_ms) <= 50.0
    for _, result in emitted:
        assert result.stamp_ns == result.stamps_ns['cam_high']
        for arm in ARMS:  # the arm state nearest the camera time: within half a period + jitter
            assert abs(result.stamps_ns[arm] - result.stamp_ns) <= (0.5 / arm_hz + 0.002) * 1e9
    ages_s = [arrival_s - result.oldest_stamp_ns / 1e9 for arrival_s, result in emitted]
    assert statistics.median(ages_s) <= 0.08  # handed over as soon as it is decided


def test_a_camera_lagging_the_arms_by_250_ms_still_synchronises():
    messages = seeded_arrivals(3, 10.0, 100.0, lags_s={'cam_left_wrist': 0.25})
    sync = ApproximateTimeSynchronizer(SyncConfig((*CAMERAS, *ARMS), slop_s=0.05,
                                                  max_age_s=0.5))
    emitted = run_arrivals(sync, messages)
    assert len(emitted) >= 0.9 * 10.0 * 30
    assert statistics.median(result.spread_ns / MS for _, result in emitted) <= 20.0
    assert all(arrival_s - result.oldest_stamp_ns / 1e9 <= 0.35 for arrival_s, result in emitted)
    assert max(sync.queue_lengths().values()) <= 0.55 * 100 + 1  # history by time, not count
    # History shorter than the lag: never a set, and the fault names the lagging camera.
    short = ApproximateTimeSynchronizer(SyncConfig((*CAMERAS, *ARMS), slop_s=0.05,
                                                   max_age_s=0.1))
    flowing = [message for message in messages if message[0] <= 10.9]  # before streams end
    assert run_arrivals(short, flowing) == []
    reason = short.diagnose(round(flowing[-1][0] * 1e9))
    assert 'stale input' in reason and 'cam_left_wrist' in reason and 'cam_high' not in reason


def test_history_is_bounded_in_time_and_in_entries():
    config = SyncConfig(('cam', 'arm'), queue_size=200, slop_s=0.05, max_age_s=0.5)
    sync = ApproximateTimeSynchronizer(config)
    for k in range(5_000):  # 100 Hz, the camera silent (an outage)
        assert sync.add('arm', k * 10 * MS, k) is None
    assert sync.queue_lengths()['arm'] == 56  # 0.55 s of stamps: 0, 10, ..., 550 ms back
    assert sync.latest(50_000 * MS) is None and 'cam' in sync.diagnose(50_000 * MS)
    for k in range(50_000):  # 1 kHz: the hard cap holds
        sync.add('arm', 50_000 * MS + k * MS, k)
    assert sync.queue_lengths()['arm'] == 200
    camera_only = ApproximateTimeSynchronizer(SyncConfig(('cam', 'arm'), max_age_s=0.5))
    for k in range(300):  # 30 Hz camera, the arms silent: no set, 0.55 s of frames kept
        camera_only.add('cam', round(k * 1e9 / 30), k)
    assert camera_only.queue_lengths() == {'cam': 17, 'arm': 0}


def test_sets_never_go_back_in_time():
    sync = ApproximateTimeSynchronizer(SyncConfig(('cam', 'arm'), slop_s=0.05))
    sync.add('arm', 200 * MS, 'arm200')
    assert sync.add('cam', 200 * MS, 'cam200').stamp_ns == 200 * MS
    assert sync.add('cam', 150 * MS, 'late frame') is None  # closer to arm 140 but older
    assert sync.add('arm', 140 * MS, 'late state') is None
    assert sync.add('cam', 190 * MS, 'late frame 2') is None
    assert sync.queue_lengths() == {'cam': 0, 'arm': 1}
    assert sync.add('cam', 233 * MS, 'cam233').items == {'cam': 'cam233', 'arm': 'arm200'}


def test_a_restart_with_old_clock_messages_in_flight_resynchronises_at_once():
    sync = ApproximateTimeSynchronizer(SyncConfig(('cam', 'arm'), slop_s=0.05))
    for k in range(10):  # a bag playing at 100 s
        sync.add('arm', 100_000 * MS + k * 20 * MS, 'old arm')
        sync.add('cam', 100_000 * MS + k * 20 * MS, 'old cam')
    assert sync.latest(100_200 * MS) is not None
    assert sync.add('cam', 5 * MS, 'new cam') is None and sync.resets == 1  # bag restarted
    assert sync.latest(5 * MS) is None and sync.queue_lengths() == {'cam': 1, 'arm': 0}
    assert sync.add('arm', 100_200 * MS, 'old arm in flight') is None
    result = sync.add('arm', 6 * MS, 'new arm')  # the arm's own jump keeps the new camera frame
    assert sync.resets == 2 and result.items == {'cam': 'new cam', 'arm': 'new arm'}
    assert sync.latest(10 * MS) is result


def test_a_backward_clock_jump_restarts_matching():
    sync = ApproximateTimeSynchronizer(SyncConfig(('a', 'b'), slop_s=0.01, backward_jump_s=1.0))
    sync.add('a', 100_000 * MS, 'a-old')
    assert sync.add('b', 100_000 * MS, 'b-old') is not None
    assert sync.add('a', 99_500 * MS, 'late but no jump') is None and sync.resets == 0
    assert sync.add('a', 5 * MS, 'a-new') is None and sync.resets == 1
    assert sync.latest(5 * MS) is None and sync.queue_lengths() == {'a': 1, 'b': 0}
    assert sync.add('b', 6 * MS, 'b-new').items == {'a': 'a-new', 'b': 'b-new'}


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'stream_names': ()}, 'at least one stream'),
    ({'stream_names': ('a', 'a')}, 'unique'),
    ({'stream_names': ('a',), 'queue_size': 0}, 'queue_size=0'),
    ({'stream_names': ('a',), 'slop_s': -0.1}, 'slop_s=-0.1'),
    ({'stream_names': ('a',), 'max_age_s': 0.0}, 'max_age_s=0.0'),
    ({'stream_names': ('a',), 'backward_jump_s': -1.0}, 'backward_jump_s=-1.0'),
    ({'stream_names': ('a',), 'reference_stream': 'b'}, "reference_stream='b'"),
])
def test_config_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyncConfig(**kwargs)


def test_unknown_stream_is_rejected():
    sync = ApproximateTimeSynchronizer(SyncConfig(('a',)))
    with pytest.raises(ValueError, match="stream='b'"):
        sync.add('b', 1, None)
