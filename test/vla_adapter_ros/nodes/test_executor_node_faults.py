"""Every fault path of the chunk executor over real DDS ends in "hold position", never a jump.

One fake Interbotix driver process and one running executor serve the whole module; each test
first gets the arms moving with good chunks, then injects its fault, checks the status (FAULT or
HOLDING with the reason) and that the commands hold the last position, then recovers. The fake
driver reports any out-of-limit or non-finite command it receives (asserted at teardown).
"""

import math
import threading
import time

from executor_harness import (  # noqa: E402
    DRIVER_POSE,
    FAKE_DRIVER,
    JOINT_NAMES,
    ROBOTS,
    TEST_ROBOT_FILE,
    ChunkStream,
    ExecutorHarness,
    driver_arguments,
    make_chunk,
    make_trajectory,
    speed_scale_for,
)
import numpy as np
import pytest
from ros_test_utils import start_python_process, stop_process
from std_msgs.msg import Bool

from vla_adapter_msgs.msg import PolicyStatus

MAX_SPEED = 2.0
PARAMETERS = {
    'rate_hz': 50.0,
    'robot_description': str(TEST_ROBOT_FILE),
    'startup_speed': 2.0,
    'speed_scale': speed_scale_for(MAX_SPEED),
    'stale_chunk_s': 0.6,
    'stale_observation_s': 0.25,
    'max_future_stamp_s': 0.5,
}
STEPS = 25
GOOD = np.tile(DRIVER_POSE, (STEPS, 1))  # (T, 7)


@pytest.fixture(scope='module')
def system():
    """(harness, driver process), running; the driver's output is checked at teardown."""
    process = start_python_process(FAKE_DRIVER, *driver_arguments(ROBOTS))
    harness = None
    try:
        harness = ExecutorHarness(PARAMETERS)
        harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=30.0)
        yield harness, process
    finally:
        if harness is not None:
            harness.close()
        output = stop_process(process)
    assert 'fake driver ready' in output, output
    assert 'BAD COMMAND' not in output, output


def moving_plan(time_s: float) -> np.ndarray:
    """A slow dual-arm motion around the start pose."""
    wave = 0.15 * math.sin(2.0 * math.pi * 0.4 * (time_s % 100.0))
    return np.tile(DRIVER_POSE, 2) + wave * np.array([1, 1, 1, 0, 1, 1, 0.5] * 2)


def start_motion(harness: ExecutorHarness) -> ChunkStream:
    """Reset any latch, stream good chunks and wait until the executor runs them."""
    harness.call(harness.reset_client)
    stream = ChunkStream(harness, moving_plan, rate_hz=10.0, latency_s=0.1, horizon_s=0.5)
    harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=10.0)
    time.sleep(0.3)
    return stream


def assert_holds(harness: ExecutorHarness, fault_seen_s: float, duration_s: float = 0.4) -> None:
    """The executor holds its command of the fault (see ExecutorHarness.assert_holds)."""
    harness.assert_holds(fault_seen_s, MAX_SPEED / 50.0, duration_s)


def recover(harness: ExecutorHarness) -> None:
    """A good chunk clears a chunk fault: RUNNING again."""
    stream = ChunkStream(harness, moving_plan, rate_hz=10.0, latency_s=0.1, horizon_s=0.5)
    try:
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=10.0)
    finally:
        stream.stop()


def past_stamp(harness):
    return harness.now_ns() - 10_000_000_000


def with_value(step: int, joint: int, value: float) -> np.ndarray:
    plan = GOOD.copy()
    plan[step, joint] = value
    return plan


# Each case: (id, builder(harness) -> ActionChunk, expected text in fault_reason).
BAD_CHUNKS = [
    ('nan_target', lambda h: make_chunk(h.now_ns(), make_trajectory(with_value(5, 1, math.nan)),
                                        make_trajectory(GOOD)),
     "non-finite target nan at step 5, joint 'follower_left/shoulder'"),
    ('inf_target', lambda h: make_chunk(h.now_ns(), make_trajectory(GOOD),
                                        make_trajectory(with_value(3, 2, math.inf))),
     "non-finite target inf at step 3, joint 'follower_right/elbow'"),
    ('out_of_limit_target', lambda h: make_chunk(
        h.now_ns(), make_trajectory(with_value(10, 1, 2.5)), make_trajectory(GOOD)),
     "joint 'follower_left/shoulder' (index 1) is outside the limits"),
    ('gripper_beyond_calibration', lambda h: make_chunk(
        h.now_ns(), make_trajectory(GOOD), make_trajectory(with_value(0, 6, 3.0))),
     "joint 'follower_right/gripper' (index 13) is outside the limits"),
    ('empty_chunk', lambda h: make_chunk(h.now_ns(), make_trajectory(None),
                                         make_trajectory(None)),
     'empty chunk: left trajectory has no points'),
    ('empty_right_arm', lambda h: make_chunk(h.now_ns(), make_trajectory(GOOD),
                                             make_trajectory(None)),
     'empty chunk: right trajectory has no points'),
    ('chunk_from_the_past', lambda h: make_chunk(past_stamp(h), make_trajectory(GOOD),
                                                 make_trajectory(GOOD)),
     'chunk from the past'),
    ('clock_jump_future_stamp', lambda h: make_chunk(
        h.now_ns() + 3_600_000_000_000, make_trajectory(GOOD), make_trajectory(GOOD)),
     'clock jump: chunk stamp is 3599.9'),
    ('zero_stamp', lambda h: make_chunk(0, make_trajectory(GOOD), make_trajectory(GOOD)),
     'stamp is unset'),
    ('wrong_joint_names', lambda h: make_chunk(
        h.now_ns(), make_trajectory(GOOD, joint_names=[f'left_{n}' for n in JOINT_NAMES]),
        make_trajectory(GOOD)),
     'left joint_names'),
    ('missing_joint', lambda h: make_chunk(
        h.now_ns(), make_trajectory(GOOD), make_trajectory(GOOD[:, :6],
                                                           joint_names=JOINT_NAMES[:6])),
     'right joint_names'),
    ('duplicate_joint', lambda h: make_chunk(
        h.now_ns(), make_trajectory(GOOD, joint_names=[*JOINT_NAMES[:6], 'waist']),
        make_trajectory(GOOD)),
     'do not match'),
    ('ragged_point', lambda h: make_chunk(
        h.now_ns(), make_trajectory(GOOD[:, :6], joint_names=JOINT_NAMES),
        make_trajectory(GOOD)),
     'points have 6 positions each, expected 7'),
    ('time_not_increasing', lambda h: make_chunk(
        h.now_ns(), make_trajectory(GOOD[:3], offsets_s=[0.0, 0.04, 0.02]),
        make_trajectory(GOOD[:3], offsets_s=[0.0, 0.04, 0.02])),
     'strictly increasing'),
    ('single_step', lambda h: make_chunk(h.now_ns(), make_trajectory(GOOD[:1]),
                                         make_trajectory(GOOD[:1])),
     'at least 2'),
    ('arms_disagree_in_time', lambda h: make_chunk(h.now_ns(), make_trajectory(GOOD),
                                                   make_trajectory(GOOD, dt=0.04)),
     'left and right time_from_start differ'),
    ('too_many_steps', lambda h: make_chunk(
        h.now_ns(), make_trajectory(np.tile(GOOD[0], (201, 1))),
        make_trajectory(np.tile(GOOD[0], (201, 1)))),
     'left trajectory has 201 steps, more than max_chunk_steps=200'),
]


@pytest.mark.parametrize('build, expected', [case[1:] for case in BAD_CHUNKS],
                         ids=[case[0] for case in BAD_CHUNKS])
def test_bad_chunk_is_rejected_and_the_arms_hold(system, build, expected):
    harness, _ = system
    stream = start_motion(harness)
    stream.stop()
    rejected_before = harness.node.status_snapshot()['rejected_chunks']
    harness.publish_chunk(build(harness))
    reason = harness.wait_state(PolicyStatus.STATE_FAULT, timeout_s=5.0, reason=expected)
    fault_seen = time.monotonic()
    assert reason.startswith('chunk 0 rejected:'), reason
    assert harness.node.status_snapshot()['rejected_chunks'] == rejected_before + 1
    assert_holds(harness, fault_seen)
    harness.wait_for(lambda: any(status.state == PolicyStatus.STATE_FAULT
                                 and expected in status.fault_reason
                                 for status in harness.statuses), 2.0, 'the FAULT status')
    recover(harness)


def test_estop_topic_latches_until_the_reset_service(system):
    harness, _ = system
    stream = start_motion(harness)
    try:
        harness.estop_publisher.publish(Bool(data=True))
        harness.wait_state(PolicyStatus.STATE_FAULT, reason='e-stop engaged (estop topic)')
        fault_seen = time.monotonic()
        harness.estop_publisher.publish(Bool(data=False))  # does not release the latch
        assert_holds(harness, fault_seen, duration_s=0.6)  # good chunks keep arriving
        assert harness.node.status_snapshot()['estop']
        response = harness.call(harness.reset_client)
        assert response.success and response.message == 'e-stop released'
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
    finally:
        stream.stop()


def test_estop_service_latches_and_reset_releases(system):
    harness, _ = system
    stream = start_motion(harness)
    try:
        response = harness.call(harness.estop_client)
        assert response.success and 'e-stop engaged (~/estop service)' in response.message
        harness.wait_state(PolicyStatus.STATE_FAULT, reason='e-stop engaged')
        assert_holds(harness, time.monotonic())
        assert harness.call(harness.reset_client).message == 'e-stop released'
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
        assert harness.call(harness.reset_client).message == 'e-stop was not engaged'
    finally:
        stream.stop()


def test_stale_chunk_holds_even_while_the_last_chunk_still_covers_now(system):
    harness, _ = system
    start_motion(harness).stop()
    # A long (3 s) chunk, then silence: after stale_chunk_s (0.6 s) the executor holds.
    stamp = harness.now_ns()
    times = stamp * 1e-9 + np.arange(150) * 0.02
    plan = np.stack([moving_plan(t) for t in times])
    harness.publish_chunk(make_chunk(stamp, make_trajectory(plan[:, :7]),
                                     make_trajectory(plan[:, 7:])))
    reason = harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=5.0, reason='stale chunk')
    assert 'none for' in reason
    assert_holds(harness, time.monotonic())
    recover(harness)


def test_stale_observation_faults_and_holds_until_joint_states_resume(system):
    harness, _ = system
    stream = start_motion(harness)
    try:
        harness.pause_publisher.publish(Bool(data=True))
        reason = harness.wait_state(PolicyStatus.STATE_FAULT, timeout_s=5.0,
                                    reason='stale observation')
        assert 'follower_left' in reason and 'follower_right' in reason
        assert_holds(harness, time.monotonic())
        harness.pause_publisher.publish(Bool(data=False))
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
    finally:
        harness.pause_publisher.publish(Bool(data=False))
        stream.stop()


def test_a_huge_chunk_is_rejected_undecoded_and_the_estop_still_acts_within_a_tick(
        system, monkeypatch):
    harness, _ = system
    stream = start_motion(harness)
    stream.stop()
    # Received off the executor thread and never made into Python bytes (unlocked_take.py).
    handed_over = []
    hand_over = harness.node._on_serialized_chunk
    monkeypatch.setattr(harness.node, '_on_serialized_chunk', lambda data: (
        handed_over.append((len(data), threading.current_thread().name)), hand_over(data)))
    huge = make_chunk(harness.now_ns(), make_trajectory(np.tile(GOOD[0], (100_000, 1))),
                      make_trajectory(np.tile(GOOD[0], (100_000, 1))))
    harness.publish_chunk(huge)  # serialising it here holds this process's GIL for a while
    since = time.monotonic()
    reason = harness.wait_state(PolicyStatus.STATE_FAULT, timeout_s=10.0, reason='not decoded')
    assert 'max_chunk_steps=200' in reason, reason
    harness.estop_publisher.publish(Bool(data=True))
    estop_sent = time.monotonic()
    harness.wait_state(PolicyStatus.STATE_FAULT, timeout_s=5.0, reason='e-stop engaged')
    assert time.monotonic() - estop_sent < 2.0
    assert all(size < 1_000_000 and thread == 'chunk_receive'
               for size, thread in handed_over), handed_over  # rclpy's take: 16 MB here
    time.sleep(0.5)  # the held stream goes on
    # The 50 Hz stream never stalled while the executor received it (2 loaded cores: < 100 ms).
    times, _ = harness.command_log(ROBOTS[0], since)
    assert len(times) > 10 and np.diff(times).max() < 0.1, np.diff(times).max()
    assert harness.call(harness.reset_client).success
