"""The approximate-time synchroniser, property-style over random arrival orders and delays."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from vla_adapter_ros.sync import ApproximateTimeSynchronizer, SyncConfig

MS = 1_000_000  # nanoseconds


class BruteForceReference:
    """The documented semantics, written the slow obvious way (all combinations)."""

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self.queues = {name: {} for name in config.stream_names}
        self.floors = dict.fromkeys(config.stream_names)

    def add(self, stream, stamp, item):
        floor = self.floors[stream]
        if floor is not None and stamp <= floor:
            return None
        queue = self.queues[stream]
        queue[stamp] = item
        while len(queue) > self.config.queue_size:
            del queue[min(queue)]
        best = None
        for combo in itertools.product(*(sorted(q) for q in self.queues.values())):
            if max(combo) - min(combo) > self.config.slop_ns:
                continue
            key = (max(combo), sum(combo))
            if best is None or key > best[0]:
                best = (key, combo)
        if best is None:
            return None
        chosen = dict(zip(self.queues, best[1]))
        for name, used in chosen.items():
            self.queues[name] = {s: v for s, v in self.queues[name].items() if s > used}
            self.floors[name] = used if self.floors[name] is None else max(self.floors[name], used)
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
    for index, (stream_index, stamp_ms) in enumerate(arrivals):
        stream = config.stream_names[stream_index]
        item = (stream, stamp_ms, index)
        got = sync.add(stream, stamp_ms * MS, item)
        expected = reference.add(stream, stamp_ms * MS, item)
        assert (got.stamps_ns if got else None) == expected
        assert all(length <= queue_size for length in sync.queue_lengths().values())
        if got is not None:
            assert got.spread_ns <= config.slop_ns
            for name, payload in got.items.items():
                assert payload[0] == name and payload[1] * MS == got.stamps_ns[name]


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
    assert sync.queue_lengths() == {'cam': 0, 'arm': 0}


def test_old_and_duplicate_messages_after_a_set_are_ignored():
    sync = ApproximateTimeSynchronizer(SyncConfig(('a', 'b'), queue_size=5, slop_s=0.01))
    assert sync.add('a', 100 * MS, 'a100') is None
    assert sync.add('b', 105 * MS, 'b105').items == {'a': 'a100', 'b': 'b105'}
    assert sync.add('a', 100 * MS, 'again') is None and sync.queue_lengths()['a'] == 0
    assert sync.add('b', 103 * MS, 'late') is None and sync.queue_lengths()['b'] == 0
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
])
def test_config_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyncConfig(**kwargs)


def test_unknown_stream_is_rejected():
    sync = ApproximateTimeSynchronizer(SyncConfig(('a',)))
    with pytest.raises(ValueError, match="stream='b'"):
        sync.add('b', 1, None)
