"""The executor's safety layer: chunk validation, command shaping, watchdogs, latches (pure)."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.params.executor_config import ExecutorConfig
from vla_adapter_ros.pipeline.safety import (
    ChunkRejected,
    ClockMonitor,
    EStopLatch,
    SafetyConfig,
    Watchdog,
    shape_command,
    validate_chunk_timing,
    validate_chunk_values,
)

LOWER, UPPER = load_robot_description('aloha').arms[0].joint_angle_bounds()
NAMES = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate', 'gripper')


def make_config(**overrides) -> SafetyConfig:
    values = dict(lower=tuple(LOWER), upper=tuple(UPPER), max_joint_speed=(1.0,) * 6 + (2.0,),
                  tick_s=0.02, limit_margin=0.05)
    values.update(overrides)
    return SafetyConfig(**values)


def inside_chunk(steps: int = 5) -> np.ndarray:
    middle = (LOWER + UPPER) / 2.0
    return np.tile(middle, (steps, 1))  # (T, 7)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize('overrides, match', [
    ({'lower': (0.0,) * 6}, 'equal length'),
    ({'max_joint_speed': (1.0,) * 6}, 'max_joint_speed must have 7'),
    ({'max_joint_speed': (1.0,) * 6 + (0.0,)}, 'max_joint_speed'),
    ({'max_joint_speed': (1.0,) * 6 + (math.nan,)}, 'max_joint_speed'),
    ({'lower': tuple(UPPER), 'upper': tuple(LOWER)}, 'lower must be below upper'),
    ({'lower': (math.inf,) + tuple(LOWER[1:])}, 'finite'),
    ({'tick_s': 0.0}, 'tick_s'),
    ({'stale_chunk_s': -1.0}, 'stale_chunk_s'),
    ({'stale_observation_s': math.nan}, 'stale_observation_s'),
    ({'max_future_stamp_s': 0.0}, 'max_future_stamp_s'),
    ({'clock_jump_s': -0.1}, 'clock_jump_s'),
    ({'limit_margin': -0.01}, 'limit_margin'),
])
def test_safety_config_validation_names_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config(**overrides)


def test_max_step_is_speed_times_tick():
    np.testing.assert_allclose(make_config().max_step, [0.02] * 6 + [0.04])


# ----------------------------------------------------------------------------- values
def test_valid_chunk_passes_unchanged():
    chunk = inside_chunk()
    np.testing.assert_array_equal(validate_chunk_values(chunk, make_config(), NAMES), chunk)


@pytest.mark.parametrize('bad_value', [math.nan, math.inf, -math.inf])
def test_non_finite_targets_reject_the_chunk_naming_step_and_joint(bad_value):
    chunk = inside_chunk()
    chunk[3, 2] = bad_value
    with pytest.raises(ChunkRejected, match=r"non-finite target .* step 3, joint 'elbow'"):
        validate_chunk_values(chunk, make_config(), NAMES)


@pytest.mark.parametrize('joint, value', [(1, UPPER[1] + 0.2), (4, LOWER[4] - 0.051),
                                          (6, UPPER[6] + 1.0)])
def test_targets_beyond_the_margin_reject_the_chunk(joint, value):
    chunk = inside_chunk()
    chunk[1, joint] = value
    with pytest.raises(ChunkRejected, match=f'step 1, joint {NAMES[joint]!r}.*outside the limits'):
        validate_chunk_values(chunk, make_config(), NAMES)


def test_targets_within_the_margin_are_clamped_to_the_limit():
    chunk = inside_chunk()
    chunk[0, 1] = UPPER[1] + 0.04
    chunk[2, 6] = LOWER[6] - 0.01
    clamped = validate_chunk_values(chunk, make_config(), NAMES)
    assert clamped[0, 1] == UPPER[1] and clamped[2, 6] == LOWER[6]
    assert np.all(clamped >= LOWER) and np.all(clamped <= UPPER)


def test_zero_margin_rejects_any_violation():
    chunk = inside_chunk()
    chunk[0, 0] = UPPER[0] + 1e-6
    with pytest.raises(ChunkRejected, match='outside the limits'):
        validate_chunk_values(chunk, make_config(limit_margin=0.0))


@pytest.mark.parametrize('positions, match', [
    (np.zeros((0, 7)), 'empty chunk'),
    (np.zeros(7), 'empty chunk'),
    (np.zeros((3, 6)), 'expected 7'),
])
def test_empty_or_wrong_width_chunk_is_rejected(positions, match):
    with pytest.raises(ChunkRejected, match=match):
        validate_chunk_values(positions, make_config())


# ----------------------------------------------------------------------------- timing
OFFSETS = np.arange(10) * 0.02


def test_timing_accepts_a_partly_past_chunk():
    validate_chunk_timing(1000.0, OFFSETS, now_s=1000.15, config=make_config())


@pytest.mark.parametrize('stamp_s, offsets, now_s, match', [
    (1000.0, np.array([]), 1000.0, 'empty chunk'),
    (0.0, OFFSETS, 1000.0, 'stamp is unset'),
    (-5.0, OFFSETS, 1000.0, 'stamp is unset'),
    (math.nan, OFFSETS, 1000.0, 'stamp is unset'),
    (1000.0, np.array([0.0]), 1000.0, 'at least 2'),
    (1000.0, np.array([0.0, 0.04, 0.02]), 1000.0, 'strictly increasing'),
    (1000.0, np.array([-0.02, 0.0]), 1000.0, 'non-negative'),
    (1000.0, np.array([0.0, math.inf]), 1000.0, 'strictly increasing'),
    (1003600.0, OFFSETS, 1000.0, 'clock jump: chunk stamp is 1002600.000 s in the future'),
    (1000.6, OFFSETS, 1000.0, 'clock jump'),
    (1000.0, OFFSETS, 1000.19, 'chunk from the past'),
    (900.0, OFFSETS, 1000.0, 'chunk from the past: its last step ended 99.820 s ago'),
])
def test_timing_rejections(stamp_s, offsets, now_s, match):
    with pytest.raises(ChunkRejected, match=match):
        validate_chunk_timing(stamp_s, offsets, now_s, make_config())


# ----------------------------------------------------------------------------- shaping
def test_shape_command_limits_the_step_per_joint():
    config = make_config()
    previous = np.zeros(7)
    previous[6] = 1.0
    target = previous + np.array([1.0, -1.0, 0.01, 0.0, 0.5, -0.5, 0.3])
    command = shape_command(previous, target, config)
    np.testing.assert_allclose(command - previous, [0.02, -0.02, 0.01, 0.0, 0.02, -0.02, 0.04])


def test_shape_command_never_leaves_the_limits():
    config = make_config(max_joint_speed=(1000.0,) * 7)
    command = shape_command(np.zeros(7) + [0, 0, 0, 0, 0, 0, 1.0], np.full(7, 50.0), config)
    np.testing.assert_allclose(command, UPPER)


def test_shape_command_holds_a_joint_whose_target_is_not_finite():
    config = make_config()
    previous = inside_chunk(1)[0]
    target = previous + 0.01
    target[[0, 5]] = [math.nan, math.inf]
    command = shape_command(previous, target, config)
    assert command[0] == previous[0] and command[5] == previous[5]
    assert command[1] == pytest.approx(previous[1] + 0.01)


def test_shape_command_pulls_an_out_of_limit_previous_command_inside():
    config = make_config()
    previous = inside_chunk(1)[0]
    previous[1] = UPPER[1] + 0.3
    command = shape_command(previous, previous, config)
    assert command[1] == UPPER[1]


def test_shape_command_uses_a_custom_step_bound():
    config = make_config()
    command = shape_command(np.full(7, 0.8), np.full(7, 1.0), config, max_step=np.full(7, 0.001))
    np.testing.assert_allclose(command, np.full(7, 0.801))


finite_or_not = st.one_of(st.floats(-10.0, 10.0), st.just(math.nan), st.just(math.inf),
                          st.just(-math.inf), st.floats(-1e6, 1e6))


@settings(max_examples=200, deadline=None)
@given(fractions=st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7),
       target=st.lists(finite_or_not, min_size=7, max_size=7))
def test_shaped_command_is_inside_limits_and_within_the_step_bound(fractions, target):
    config = make_config()
    previous = LOWER + np.array(fractions) * (UPPER - LOWER)
    command = shape_command(previous, np.array(target), config)
    assert np.all(np.isfinite(command))
    assert np.all(command >= LOWER) and np.all(command <= UPPER)
    assert np.all(np.abs(command - previous) <= config.max_step + 1e-12)


# ----------------------------------------------------------------------------- watchdogs
def test_watchdog_fires_before_the_first_kick_and_after_the_timeout():
    watchdog = Watchdog(0.5)
    assert watchdog.expired(0.0) and not watchdog.ever_kicked and watchdog.age(3.0) == math.inf
    watchdog.kick(10.0)
    assert not watchdog.expired(10.5) and watchdog.expired(10.51)
    assert watchdog.age(10.25) == pytest.approx(0.25)
    watchdog.reset()
    assert watchdog.expired(10.0)
    with pytest.raises(ValueError, match='timeout_s'):
        Watchdog(0.0)


def test_estop_latches_until_reset_and_keeps_the_first_reason():
    latch = EStopLatch()
    assert not latch.engaged and latch.reason == ''
    latch.engage('estop topic')
    latch.engage('service')
    assert latch.engaged and latch.reason == 'e-stop engaged (estop topic)'
    assert latch.reset() is True
    assert not latch.engaged and latch.reset() is False


def test_clock_monitor_detects_backwards_time_and_jumps():
    monitor = ClockMonitor(0.5)
    assert monitor.update(100.0, 5.0) is None
    assert monitor.update(100.02, 5.02) is None
    assert monitor.update(100.6, 5.6) is None  # a late tick: both clocks moved alike
    assert 'went backwards by 1.600' in monitor.update(99.0, 5.62)
    assert monitor.update(99.02, 5.64) is None
    assert 'moved 60.000 s' in monitor.update(159.02, 5.66)
    assert 'clock jump' in monitor.update(159.04, 7.0)  # ROS time stalled (paused sim clock)
    with pytest.raises(ValueError, match='jump_s'):
        ClockMonitor(0.0)


# ----------------------------------------------------------------------------- config glue
def test_executor_config_builds_a_dual_arm_safety_config():
    config = ExecutorConfig()
    safety = config.safety_config()
    assert safety.num_joints == 14
    np.testing.assert_allclose(safety.lower_array[:7], LOWER)
    np.testing.assert_allclose(safety.upper_array[7:], UPPER)
    # The description's gripper speed limit times the default speed_scale 0.9.
    gripper_speed = load_robot_description('aloha').max_joint_speed()[6]
    assert safety.max_step[6] == pytest.approx(gripper_speed * 0.9 / 50.0)
