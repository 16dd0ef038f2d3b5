"""Tick and event bookkeeping of the nodes' health reports (no ROS needed)."""

import time

import numpy as np
import pytest

from vla_adapter_ros.pipeline.health import EventRate, TickRecorder


def test_stamps_come_back_oldest_first_before_and_after_the_ring_wraps():
    ticks = TickRecorder(5)
    assert ticks.stamps().size == 0 and ticks.periods().size == 0
    for stamp in range(3):
        ticks.record(float(stamp))
    assert ticks.stamps().tolist() == [0.0, 1.0, 2.0]
    for stamp in range(3, 12):
        ticks.record(float(stamp))
    assert ticks.count == 12
    assert ticks.stamps().tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    ticks.record(12.0)
    assert ticks.stamps().tolist() == [8.0, 9.0, 10.0, 11.0, 12.0]


@pytest.mark.parametrize('recorded', [2, 4, 5, 6, 10, 13])
def test_the_newest_window_equals_the_tail_of_the_whole_history(recorded):
    ticks = TickRecorder(5)
    for stamp in range(recorded):
        ticks.record(float(stamp) ** 1.5)
    whole = ticks.stamps()
    for last in range(1, 8):
        assert ticks.stamps(last).tolist() == whole[-last:].tolist()
        assert np.array_equal(ticks.periods(last), np.diff(whole)[-last:])


def test_period_error_stats_over_the_last_periods_only():
    ticks = TickRecorder(100)
    stamp = 0.0
    for period in [0.02] * 50 + [0.06] + [0.021] * 10:  # two ticks missed, then 1 ms late
        stamp += period
        ticks.record(stamp)
    whole = ticks.period_error_stats(0.02)
    assert whole['missed_ticks'] == 2
    recent = ticks.period_error_stats(0.02, last=10)
    assert recent['missed_ticks'] == 0
    assert recent['tick_error_p50_ms'] == pytest.approx(1.0, abs=1e-6)
    assert recent['tick_error_p99_ms'] == pytest.approx(1.0, abs=1e-6)
    assert TickRecorder(4).period_error_stats(0.02) == {
        'tick_error_p50_ms': 0.0, 'tick_error_p99_ms': 0.0, 'missed_ticks': 0}


def test_capacity_below_two_is_refused():
    with pytest.raises(ValueError, match='capacity=1'):
        TickRecorder(1)


def test_event_rate_counts_the_window_only():
    rate = EventRate(window_s=1.0, capacity=64)
    assert rate.rate_hz(10.0) == 0.0
    for index in range(40):  # 20 Hz from t = 8.05 s to 10.0 s
        rate.record(8.05 + index * 0.05)
    assert rate.rate_hz(10.0) == pytest.approx(20.0, rel=1e-6)
    assert rate.rate_hz(20.0) == 0.0  # nothing in the last second


def test_latency_window_keeps_the_last_entries_and_reports_percentiles():
    from vla_adapter_ros.pipeline.health import LatencyWindow

    window = LatencyWindow(4)
    assert window.percentiles_ms() == (0.0, 0.0)
    for seconds in (1.0, 0.010, 0.020, 0.030, 0.040):  # the first one leaves the window
        window.record(seconds)
    p50, p99 = window.percentiles_ms()
    assert p50 == pytest.approx(25.0) and p99 == pytest.approx(39.7)


def test_phase_times_add_up_per_phase_and_reset():
    from vla_adapter_ros.pipeline.health import PhaseTimes

    phases = PhaseTimes()
    for _ in range(3):
        with phases.measure('settle'):
            time.sleep(0.01)
    with phases.measure('physics'):
        pass
    assert list(phases.seconds) == ['settle', 'physics']
    assert 0.03 <= phases.seconds['settle'] < 1.0
    assert phases.summary().startswith('settle 0.0') and '(total ' in phases.summary()
    phases.reset()
    assert phases.seconds == {}
