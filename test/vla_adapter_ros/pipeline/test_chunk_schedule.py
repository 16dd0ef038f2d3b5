"""Chunk timing, interpolation, past-step skipping, ensembling and switching (pure numpy)."""

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from vla_adapter_ros.pipeline.chunk_schedule import (
    ChunkScheduler,
    ScheduleConfig,
    TimedChunk,
    ensemble_weights,
)

DT = 0.02


def ramp_chunk(stamp_s: float, start: float, slope: float, steps: int = 10,
               joints: int = 2) -> TimedChunk:
    """Chunk whose joint j at step k is start + slope * k * DT + j."""
    offsets = np.arange(steps) * DT
    positions = start + slope * offsets[:, None] + np.arange(joints)[None, :]
    return TimedChunk(stamp_s=stamp_s, offsets_s=offsets, positions=positions)


def constant_chunk(stamp_s: float, value: float, steps: int = 10, joints: int = 1) -> TimedChunk:
    return TimedChunk(stamp_s=stamp_s, offsets_s=np.arange(steps) * DT,
                      positions=np.full((steps, joints), value))


# ----------------------------------------------------------------------------- TimedChunk
@pytest.mark.parametrize('offsets, positions, match', [
    ([0.0], [[1.0]], 'at least 2 steps'),
    ([0.0, 0.02], [[1.0]], 'positions must have shape'),
    ([0.0, 0.0], [[1.0], [2.0]], 'strictly increasing'),
    ([0.04, 0.02], [[1.0], [2.0]], 'strictly increasing'),
    ([-0.02, 0.0], [[1.0], [2.0]], 'non-negative'),
    ([0.0, np.nan], [[1.0], [2.0]], 'finite'),
    ([0.0, 0.02], [[1.0], [np.nan]], 'positions must be finite'),
    ([0.0, 0.02], [[1.0], [np.inf]], 'positions must be finite'),
    ([0.0, 0.02], [1.0, 2.0], 'positions must have shape'),
])
def test_timed_chunk_rejects_malformed_input(offsets, positions, match):
    with pytest.raises(ValueError, match=match):
        TimedChunk(stamp_s=100.0, offsets_s=np.array(offsets), positions=np.array(positions))


def test_timed_chunk_rejects_non_finite_stamp():
    with pytest.raises(ValueError, match='stamp_s'):
        TimedChunk(stamp_s=float('nan'), offsets_s=[0.0, 0.02], positions=[[0.0], [1.0]])


def test_sample_hits_steps_exactly_and_interpolates_between_them():
    chunk = ramp_chunk(stamp_s=100.0, start=0.5, slope=1.0)
    assert chunk.start_s == 100.0 and chunk.end_s == pytest.approx(100.18)
    np.testing.assert_allclose(chunk.sample(100.04), [0.54, 1.54])
    np.testing.assert_allclose(chunk.sample(100.05), [0.55, 1.55])  # halfway between steps
    np.testing.assert_allclose(chunk.sample(100.0), [0.5, 1.5])
    np.testing.assert_allclose(chunk.sample(100.18), [0.68, 1.68])


def test_sample_never_extrapolates():
    chunk = ramp_chunk(stamp_s=100.0, start=0.0, slope=1.0)
    for time_s in (99.999, 100.181):
        assert not chunk.covers(time_s)
        with pytest.raises(ValueError, match='outside the chunk'):
            chunk.sample(time_s)


def test_past_steps_are_skipped_from_the_observation_stamp():
    chunk = ramp_chunk(stamp_s=100.0, start=0.0, slope=1.0)
    assert chunk.first_step_at_or_after(100.0) == 0
    assert chunk.first_step_at_or_after(100.05) == 3  # steps 0..2 lie in the past
    assert chunk.first_step_at_or_after(100.06) == 3
    assert chunk.first_step_at_or_after(101.0) == 10


def test_nonuniform_offsets_interpolate_by_time():
    chunk = TimedChunk(stamp_s=10.0, offsets_s=[0.0, 0.1, 0.4], positions=[[0.0], [1.0], [4.0]])
    np.testing.assert_allclose(chunk.sample(10.25), [2.5])


# ----------------------------------------------------------------------------- weights
def test_ensemble_weights_directions():
    np.testing.assert_allclose(ensemble_weights(4, 0.0), [0.25] * 4)
    older_first = ensemble_weights(3, 1.0)
    assert older_first[0] > older_first[1] > older_first[2]
    newer_first = ensemble_weights(3, -1.0)
    assert newer_first[0] < newer_first[1] < newer_first[2]
    for weights in (older_first, newer_first):
        assert weights.sum() == pytest.approx(1.0)
    expected = np.exp(-0.5 * np.arange(3))
    np.testing.assert_allclose(ensemble_weights(3, 0.5), expected / expected.sum())
    with pytest.raises(ValueError, match='num_chunks'):
        ensemble_weights(0, 0.1)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize('kwargs, match', [
    ({'blend_mode': 'average'}, 'blend_mode'),
    ({'ensemble_k': float('nan')}, 'ensemble_k'),
    ({'ensemble_k': 100.0}, 'ensemble_k'),
    ({'crossfade_s': -0.1}, 'crossfade_s'),
    ({'max_chunks': 0}, 'max_chunks'),
])
def test_schedule_config_validation_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScheduleConfig(**kwargs)


def test_scheduler_rejects_wrong_joint_count():
    scheduler = ChunkScheduler(ScheduleConfig(), num_joints=3)
    with pytest.raises(ValueError, match='expected 3'):
        scheduler.add_chunk(constant_chunk(1.0, 0.0, joints=2))
    with pytest.raises(ValueError, match='num_joints'):
        ChunkScheduler(ScheduleConfig(), num_joints=0)


# ----------------------------------------------------------------------------- ensemble
def test_ensemble_blends_overlapping_chunks_with_exponential_weights():
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode='ensemble', ensemble_k=0.7), 1)
    scheduler.add_chunk(constant_chunk(100.00, 1.0))
    scheduler.add_chunk(constant_chunk(100.04, 3.0))
    only_old = scheduler.target(100.02)  # the newer chunk starts later
    np.testing.assert_allclose(only_old, [1.0])
    weights = ensemble_weights(2, 0.7)
    np.testing.assert_allclose(scheduler.target(100.06), [weights @ [1.0, 3.0]])
    only_new = scheduler.target(100.20)  # the older chunk ended at 100.18
    np.testing.assert_allclose(only_new, [3.0])
    assert len(scheduler.chunks) == 1


def test_ensemble_weights_follow_stamp_order_not_arrival_order():
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode='ensemble', ensemble_k=50.0), 1)
    scheduler.add_chunk(constant_chunk(100.02, 5.0))
    scheduler.add_chunk(constant_chunk(100.00, -5.0))  # arrives late, observed earlier
    np.testing.assert_allclose(scheduler.target(100.05), [-5.0], atol=1e-12)


def test_no_covering_chunk_means_hold_and_expired_chunks_are_dropped():
    scheduler = ChunkScheduler(ScheduleConfig(), 2)
    assert scheduler.target(0.0) is None
    scheduler.add_chunk(ramp_chunk(100.0, 0.0, 1.0))
    assert scheduler.target(99.0) is None  # before the first step: no extrapolation
    assert scheduler.has_active_chunk(100.1)
    assert scheduler.target(100.1) is not None
    assert scheduler.target(100.5) is None
    assert scheduler.chunks == ()


def test_a_chunk_ending_at_now_within_float_rounding_still_counts():
    # end_s = 0.1 + 0.18 rounds to 0.28000000000000003; a tick at 0.28 must still blend it in,
    # whatever the absolute time's rounding (a simulated clock reproduces an episode exactly).
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode='ensemble', ensemble_k=0.0), 1)
    scheduler.add_chunk(constant_chunk(0.1, 1.0))
    scheduler.add_chunk(constant_chunk(0.2, 3.0))
    end = scheduler.chunks[0].end_s
    assert scheduler.target(end + 5e-7) == pytest.approx([2.0])
    assert len(scheduler.chunks) == 2


def test_max_chunks_drops_the_oldest():
    scheduler = ChunkScheduler(ScheduleConfig(max_chunks=2), 1)
    for index in range(4):
        scheduler.add_chunk(constant_chunk(100.0 + index * 0.01, float(index)))
    assert [chunk.positions[0, 0] for chunk in scheduler.chunks] == [2.0, 3.0]


def test_clear_forgets_everything():
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode='switch'), 1)
    scheduler.add_chunk(constant_chunk(100.0, 1.0))
    assert scheduler.target(100.05) is not None
    scheduler.clear()
    assert scheduler.target(100.06) is None and scheduler.chunks == ()


# ----------------------------------------------------------------------------- switch
def test_switch_plays_newest_chunk_from_the_step_matching_now_after_a_crossfade():
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode='switch', crossfade_s=0.04), 2)
    scheduler.add_chunk(ramp_chunk(100.0, 0.0, 1.0, steps=50))
    np.testing.assert_allclose(scheduler.target(100.10), [0.10, 1.10])
    newer = ramp_chunk(100.08, 2.0, -1.0, steps=50)  # latency: it arrives at 100.12
    scheduler.add_chunk(newer)
    outputs = [scheduler.target(t) for t in (100.12, 100.14, 100.16, 100.18)]
    # 100.12: the fade starts at the old chunk; 100.14: halfway; then the new chunk alone.
    np.testing.assert_allclose(outputs[0], [0.12, 1.12])
    np.testing.assert_allclose(outputs[1], 0.5 * np.array([0.14, 1.14]) + 0.5 * newer.sample(
        100.14))
    np.testing.assert_allclose(outputs[2], newer.sample(100.16))
    np.testing.assert_allclose(outputs[3], [2.0 - 0.10, 3.0 - 0.10])  # step 5 of the new chunk


def test_switch_without_crossfade_jumps_to_the_newest_chunk():
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode='switch', crossfade_s=0.0), 1)
    scheduler.add_chunk(constant_chunk(100.0, 0.0))
    scheduler.target(100.02)
    scheduler.add_chunk(constant_chunk(100.01, 1.0))
    np.testing.assert_allclose(scheduler.target(100.04), [1.0])


def test_switch_crossfade_stays_continuous_when_the_old_chunk_ends_mid_fade():
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode='switch', crossfade_s=0.1), 1)
    scheduler.add_chunk(constant_chunk(100.0, 0.0, steps=5))  # ends at 100.08
    scheduler.target(100.06)
    scheduler.add_chunk(constant_chunk(100.05, 1.0, steps=20))
    values = [scheduler.target(100.06 + k * DT)[0] for k in range(8)]
    steps = np.abs(np.diff(values))
    assert steps.max() <= 0.2 + 1e-9  # 1 / (0.1 s / 0.02 s)
    assert values[-1] == pytest.approx(1.0)


def test_switch_in_the_middle_of_a_fade_starts_from_the_mixed_output():
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode='switch', crossfade_s=0.1), 1)
    scheduler.add_chunk(constant_chunk(100.0, 0.0, steps=30))
    scheduler.target(100.02)
    scheduler.add_chunk(constant_chunk(100.02, 1.0, steps=30))
    first = [scheduler.target(100.04), scheduler.target(100.06)]
    scheduler.add_chunk(constant_chunk(100.05, -1.0, steps=30))
    later = [scheduler.target(100.06 + k * DT)[0] for k in range(1, 8)]
    values = [first[0][0], first[1][0], *later]
    assert np.abs(np.diff(values)).max() <= 0.4 + 1e-9
    assert values[-1] == pytest.approx(-1.0)


# ----------------------------------------------------------------------------- properties
chunk_values = st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=12)


@settings(max_examples=60, deadline=None)
@given(blend_mode=st.sampled_from(['ensemble', 'switch']), k=st.floats(-2.0, 2.0),
       chunks=st.lists(st.tuples(st.floats(0.0, 0.2), chunk_values), min_size=1, max_size=5))
def test_output_stays_within_the_range_of_the_chunks(blend_mode, k, chunks):
    scheduler = ChunkScheduler(ScheduleConfig(blend_mode=blend_mode, ensemble_k=k), 1)
    low, high = np.inf, -np.inf
    for delay, values in chunks:
        positions = np.array(values)[:, None]
        scheduler.add_chunk(TimedChunk(stamp_s=100.0 + delay,
                                       offsets_s=np.arange(len(values)) * DT,
                                       positions=positions))
        low, high = min(low, positions.min()), max(high, positions.max())
    for time_s in 100.0 + np.arange(0, 0.5, 0.007):
        output = scheduler.target(time_s)
        if output is not None:
            assert low - 1e-9 <= output[0] <= high + 1e-9
