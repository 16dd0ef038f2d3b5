"""Chunk executor over real DDS: start-up, Interbotix command stream, scheduling, continuity.

A fake Interbotix driver runs as a child process (namespaces follower_left / follower_right:
command topics in, joint_states at 100 Hz out, set_operating_modes); the executor and a probe
run in this process (executor_harness.py); chunks are published by the probe.
"""

import threading
import time

from executor_harness import (  # noqa: E402
    DRIVER_POSE,
    FAKE_DRIVER,
    FLOAT32_TOLERANCE,
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
from rosgraph_msgs.msg import Clock
from std_srvs.srv import Trigger

from vla_adapter_msgs.msg import PolicyStatus

BASE_PARAMETERS = {
    'rate_hz': 50.0,
    'robot_description': str(TEST_ROBOT_FILE),
    'startup_speed': 2.0,
    'speed_scale': speed_scale_for(2.0),  # 2 rad/s on every joint
    'service_timeout_s': 10.0,
}
MAX_STEP = np.array([2.0] * 6) / 50.0  # arm joints, rad per tick


@pytest.fixture(scope='module')
def driver():
    """One fake driver process for the whole module (the arms keep their pose between tests)."""
    process = start_python_process(FAKE_DRIVER, *driver_arguments(ROBOTS))
    yield process
    output = stop_process(process)
    assert 'fake driver ready' in output, output
    assert 'BAD COMMAND' not in output, output


def make_harness(request, driver, **parameters) -> ExecutorHarness:
    assert driver.poll() is None, 'the fake driver process died'
    harness = ExecutorHarness({**BASE_PARAMETERS, **parameters},
                              robots=tuple(parameters.get('robot_names', ROBOTS)))
    request.addfinalizer(harness.close)
    return harness


def sine_plan(amplitude: float = 0.2, frequency_hz: float = 0.5):
    """Smooth dual-arm target function of absolute time around the start pose."""
    pose = np.tile(DRIVER_POSE, 2)
    moving = np.array([1, 1, 1, 1, 1, 1, 0.5] * 2) * amplitude

    def target(time_s: float) -> np.ndarray:
        return pose + moving * np.sin(2 * np.pi * frequency_hz * (time_s % 100.0))
    return target


def max_arm_step(harness: ExecutorHarness, since_s: float) -> float:
    steps = []
    for robot in harness.robots:
        _, commands = harness.command_log(robot, since_s)
        if len(commands) > 1:
            steps.append(np.abs(np.diff(commands, axis=0)).max())
    assert steps, 'no commands received'
    return max(steps)


def test_startup_sets_gripper_mode_then_ramps_at_bounded_speed(request):
    initial = DRIVER_POSE + np.array([0.4, 0.2, -0.3, 0.0, 0.3, -0.4, 0.3])
    robots = ['ramp_left', 'ramp_right']  # not the module driver's robots
    process = start_python_process(FAKE_DRIVER, *driver_arguments(robots, initial),
                                   '--time-constant-s', '0.05')
    try:
        harness = make_harness(request, process, startup_speed=1.0, robot_names=robots)
        harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0,
                           reason='waiting for the first chunk')
        for robot in robots:
            times, commands = harness.command_log(robot)
            grippers = harness.gripper_log(robot)
            # The first command holds the measured pose; then a ramp no faster than 1 rad/s.
            np.testing.assert_allclose(commands[0], initial[:6], atol=1e-5)
            assert np.abs(np.diff(commands, axis=0)).max() <= 1.0 / 50.0 + FLOAT32_TOLERANCE
            assert np.abs(np.diff(grippers)).max() <= 1.0 / 50.0 + FLOAT32_TOLERANCE
            np.testing.assert_allclose(commands[-1], DRIVER_POSE[:6], atol=1e-5)
            assert grippers[-1] == pytest.approx(DRIVER_POSE[6], abs=1e-5)
            # 0.4 rad at 1 rad/s: at least 20 ticks.
            assert len(commands) >= 20
        # The closed loop: the driver's joint states reach the start pose.
        harness.wait_for(lambda: all(
            robot in harness.joint_states
            and np.allclose(harness.joint_states[robot].position[:6], DRIVER_POSE[:6],
                            atol=1e-3) for robot in robots), 5.0, 'the driver at the start pose')
        statuses = [status.state for status in harness.statuses]
        assert PolicyStatus.STATE_STARTING in statuses
    finally:
        output = stop_process(process)
    for robot in robots:
        assert (f'operating mode {robot}: single gripper current_based_position velocity 0 0'
                in output), output
    assert 'BAD COMMAND' not in output, output


def test_chunks_before_startup_finishes_are_dropped(request):
    far = DRIVER_POSE + np.array([0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
    robots = ['early_left', 'early_right']
    process = start_python_process(FAKE_DRIVER, *driver_arguments(robots, far))
    try:
        harness = make_harness(request, process, startup_speed=0.2, robot_names=robots)
        harness.wait_state(PolicyStatus.STATE_STARTING, timeout_s=20.0,
                           reason='moving to the start pose')
        plan = np.tile(DRIVER_POSE + 0.1, (50, 1))
        plan[:, 6] = DRIVER_POSE[6]
        harness.publish_chunk(make_chunk(harness.now_ns(), make_trajectory(plan),
                                         make_trajectory(plan)))
        harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=10.0)
        assert harness.node.status_snapshot()['accepted_chunks'] == 0
    finally:
        assert 'BAD COMMAND' not in stop_process(process)


def test_interbotix_commands_names_order_and_rate(request, driver):
    harness = make_harness(request, driver)
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0)
    # Distinct value per joint; the left trajectory lists its joints in a shuffled order.
    left = DRIVER_POSE + np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
    right = DRIVER_POSE - np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
    order = [3, 0, 6, 5, 1, 4, 2]
    shuffled_names = [JOINT_NAMES[i] for i in order]
    steps = 150  # 3 s
    left_trajectory = make_trajectory(np.tile(left[order], (steps, 1)),
                                      joint_names=shuffled_names)
    since = harness.command_log(ROBOTS[0])[0][-1]
    harness.publish_chunk(make_chunk(harness.now_ns(), left_trajectory,
                                     make_trajectory(np.tile(right, (steps, 1)))))
    harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
    harness.wait_for(lambda: len(harness.command_log(ROBOTS[0], since)[0]) > 60, 10.0,
                     '60 commands')
    for robot, expected in zip(ROBOTS, (left, right)):
        with harness.lock:
            groups = [entry for entry in harness.groups[robot] if entry[0] > since]
            singles = [entry for entry in harness.singles[robot] if entry[0] > since]
        assert {entry[1] for entry in groups} == {'arm'}
        assert {entry[2].shape for entry in groups} == {(6,)}
        assert {entry[1] for entry in singles} == {'gripper'}
        np.testing.assert_allclose(groups[-1][2], expected[:6], atol=1e-5)
        assert singles[-1][2] == pytest.approx(expected[6], abs=1e-5)
    times, _ = harness.command_log(ROBOTS[0], since)
    received_period = float(np.median(np.diff(times)))
    tick_period = float(np.median(harness.node.tick_periods_s()))
    # Loose statistical bounds only (2 shared cores): 50 Hz means 20 ms.
    assert 0.015 <= received_period <= 0.03, received_period
    assert 0.015 <= tick_period <= 0.03, tick_period
    status = harness.statuses[-1]
    assert status.last_inference_ms == pytest.approx(12.5)
    assert 30.0 <= status.command_rate_hz <= 70.0
    assert 50.0 <= status.observation_rate_hz <= 150.0


def test_past_steps_are_skipped_using_the_chunk_stamp(request, driver):
    harness = make_harness(request, driver)
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0)
    speed = 0.2  # rad/s along the waist of both arms
    origin_s = harness.now_ns() * 1e-9

    def plan(time_s: float) -> np.ndarray:
        pose = np.tile(DRIVER_POSE, 2)
        pose[[0, 7]] += speed * (time_s - origin_s)
        return pose

    # Observation 0.4 s old when published: playing from step 0 would lag 0.08 rad behind.
    stream = ChunkStream(harness, plan, rate_hz=10.0, latency_s=0.4, horizon_s=1.0)
    try:
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
        time.sleep(1.0)
        ros_minus_monotonic = harness.now_ns() * 1e-9 - time.monotonic()
        times, commands = harness.command_log(ROBOTS[0], since_s=time.monotonic() - 0.5)
    finally:
        stream.stop()
    expected = DRIVER_POSE[0] + speed * (times + ros_minus_monotonic - origin_s)
    # The command matches the plan at its arrival time (it arrives a little after its tick, so
    # it lags slightly); playing each chunk from its first step would lag 0.4 s = 0.08 rad.
    lag = expected - commands[:, 0]
    assert -0.005 <= float(np.median(lag)) <= 0.03, lag


@pytest.mark.parametrize('blend_mode', ['ensemble', 'switch'])
def test_no_step_above_the_speed_limit_across_disagreeing_chunks(request, driver, blend_mode):
    harness = make_harness(request, driver, blend_mode=blend_mode, crossfade_s=0.1,
                           ensemble_k=0.01)
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0)
    generator = np.random.default_rng(7)
    offsets = generator.uniform(-0.25, 0.25, size=(200, 14))
    offsets[:, [6, 13]] *= 0.5
    since = harness.command_log(ROBOTS[0])[0][-1]
    stream = ChunkStream(harness, sine_plan(), rate_hz=8.0, latency_s=0.15, horizon_s=0.5,
                         offset_fn=lambda sequence: offsets[sequence % 200])
    try:
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
        harness.wait_for(lambda: stream.sequence >= 16, 10.0, '16 chunks')
    finally:
        stream.stop()
    assert harness.node.status_snapshot()['rejected_chunks'] == 0
    largest_step = max_arm_step(harness, since)
    assert largest_step <= MAX_STEP.max() + FLOAT32_TOLERANCE
    # The chunks disagree by up to 0.5 rad: the limiter had to act (steps at the bound).
    assert largest_step >= MAX_STEP.max() - 1e-4
    for robot in ROBOTS:
        grippers = harness.gripper_log(robot, since)
        assert np.abs(np.diff(grippers)).max() <= 4.0 / 50.0 + FLOAT32_TOLERANCE
    # The motion still followed the plans.
    _, commands = harness.command_log(ROBOTS[0], since)
    assert np.ptp(commands[:, 1]) > 0.1


@pytest.mark.parametrize('output_mode', ['joint_trajectory', 'float64_array'])
def test_single_arm_ros2_control_outputs(request, driver, output_mode):
    # The built-in single-arm ViperX description, driving the module driver's left arm.
    harness = make_harness(request, driver, robot_description='vx300s',
                           robot_names=['follower_left'], output_mode=output_mode)
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0)
    target = DRIVER_POSE + np.array([0.03, -0.02, 0.01, 0.0, 0.02, -0.01, 0.05])
    harness.publish_chunk(make_chunk(harness.now_ns(),
                                     make_trajectory(np.tile(target, (100, 1)))))
    harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)

    def last_values():
        with harness.lock:
            message = harness.other_commands['follower_left'][-1][1]
        if output_mode == 'joint_trajectory':
            assert message.joint_names == JOINT_NAMES and len(message.points) == 1
            assert message.points[0].time_from_start.nanosec == 20_000_000
            return np.array(message.points[0].positions)
        return np.array(message.data)
    harness.wait_for(lambda: np.allclose(last_values(), target, atol=1e-9), 5.0,
                     'the commanded target')
    assert not harness.groups['follower_left']  # no Interbotix commands in this mode
    # A dual-arm chunk is rejected by a single-arm executor.
    harness.publish_chunk(make_chunk(harness.now_ns(), make_trajectory(np.tile(target, (9, 1))),
                                     make_trajectory(np.tile(target, (9, 1)))))
    harness.wait_state(PolicyStatus.STATE_FAULT, timeout_s=5.0, reason='right-arm trajectory')


def test_missing_operating_modes_service_faults_and_holds(request):
    robots = ['nomode_left', 'nomode_right']
    process = start_python_process(FAKE_DRIVER, *driver_arguments(robots),
                                   '--no-operating-modes')
    try:
        harness = make_harness(request, process, service_timeout_s=1.0, robot_names=robots)
        reason = harness.wait_state(PolicyStatus.STATE_FAULT, timeout_s=20.0,
                                    reason='set_operating_modes')
        assert 'set_operating_modes' in reason and 'not available' in reason
        for robot in robots:
            _, commands = harness.command_log(robot)
            np.testing.assert_allclose(commands, np.tile(DRIVER_POSE[:6], (len(commands), 1)),
                                       atol=1e-5)
    finally:
        assert 'BAD COMMAND' not in stop_process(process)


def test_ros_time_going_backwards_faults_drops_chunks_and_holds(request, driver):
    # The fake driver stamps wall time, far from this clock: the start-up pre-flight check
    # would rightly refuse it (test_executor_preflight.py), so it is off here.
    harness = make_harness(request, driver, use_sim_time=True, preflight_window_s=0.0)
    clock_publisher = harness.probe.create_publisher(Clock, '/clock', 10)
    started, offset_s = time.monotonic(), [1000.0]

    def publish_clock() -> None:
        sim_ns = int((offset_s[0] + time.monotonic() - started) * 1e9)
        message = Clock()
        message.clock.sec, message.clock.nanosec = divmod(sim_ns, 1_000_000_000)
        clock_publisher.publish(message)
    clock_timer = harness.probe.create_timer(0.005, publish_clock)
    try:
        harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0)
        assert harness.now_ns() > 1000e9  # the executor runs on the simulated clock
        stream = ChunkStream(harness, sine_plan(), rate_hz=10.0, latency_s=0.1, horizon_s=0.5)
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
        stream.stop()
        offset_s[0] -= 5.0
        reason = harness.wait_state(PolicyStatus.STATE_FAULT, timeout_s=5.0,
                                    reason='clock jump: ROS time went backwards')
        assert 'by 4.' in reason or 'by 5.' in reason, reason
        harness.assert_holds(time.monotonic(), MAX_STEP.max())
        stream = ChunkStream(harness, sine_plan(), rate_hz=10.0, latency_s=0.1, horizon_s=0.5)
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)  # fresh chunks resume
        stream.stop()
    finally:
        clock_timer.cancel()


def test_estop_before_startup_blocks_the_ramp_until_reset(request):
    robots = ['late_left', 'late_right']
    harness = ExecutorHarness({**BASE_PARAMETERS, 'robot_names': robots}, robots=tuple(robots))
    request.addfinalizer(harness.close)
    assert harness.call(harness.estop_client).success
    harness.wait_state(PolicyStatus.STATE_FAULT, reason='waiting for joint_states')
    away = DRIVER_POSE + np.array([0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    process = start_python_process(FAKE_DRIVER, *driver_arguments(robots, away))
    try:
        harness.wait_for(lambda: len(harness.command_log(robots[0])[0]) >= 20, 20.0,
                         '20 held commands')
        snapshot = harness.node.status_snapshot()
        assert snapshot['state'] == PolicyStatus.STATE_FAULT and snapshot['phase'] != 'running'
        _, commands = harness.command_log(robots[0])
        np.testing.assert_allclose(commands, np.tile(away[:6], (len(commands), 1)), atol=1e-5)
        assert harness.call(harness.reset_client).message == 'e-stop released'
        harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=10.0,
                           reason='waiting for the first chunk')
        _, commands = harness.command_log(robots[0])
        np.testing.assert_allclose(commands[-1], DRIVER_POSE[:6], atol=1e-5)
        assert np.abs(np.diff(commands, axis=0)).max() <= 2.0 / 50.0 + FLOAT32_TOLERANCE
    finally:
        assert 'BAD COMMAND' not in stop_process(process)


def test_restart_drops_the_chunks_and_starts_over_from_the_measured_pose(request, driver):
    harness = make_harness(request, driver)
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0)
    stream = ChunkStream(harness, sine_plan(), rate_hz=10.0, latency_s=0.0, horizon_s=1.0)
    try:
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
    finally:
        stream.stop()
    restart = harness.probe.create_client(Trigger, '/chunk_executor/restart')
    response = harness.call(restart)
    assert response.success and 'ramping to the start pose' in response.message
    assert harness.node.status_snapshot()['scheduled_chunks'] == 0
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=10.0,
                       reason='waiting for the first chunk')
    since = time.monotonic()
    time.sleep(0.3)
    _, commands = harness.command_log(ROBOTS[0], since_s=since)
    np.testing.assert_allclose(commands, np.tile(DRIVER_POSE[:6], (len(commands), 1)),
                               atol=1e-3)
    # Refused while the e-stop is latched.
    assert harness.call(harness.estop_client).success
    refused = harness.call(restart)
    assert not refused.success and 'e-stop latched' in refused.message
    assert harness.call(harness.reset_client).success


def test_joint_states_without_the_gripper_never_start_the_arms(request):
    robots = ['partial_left', 'partial_right']
    process = start_python_process(FAKE_DRIVER, *driver_arguments(robots), '--omit-joint',
                                   'gripper')
    try:
        harness = make_harness(request, process, robot_names=robots)
        reason = harness.wait_state(PolicyStatus.STATE_IDLE, timeout_s=20.0,
                                    reason="joints ['gripper'] not found")
        assert 'waiting for joint_states of' in reason
        time.sleep(0.5)
        assert all(not harness.groups[robot] for robot in robots)  # nothing commanded
    finally:
        assert 'BAD COMMAND' not in stop_process(process)


def test_diagnostics_report_state_rates_and_tick_error(request, driver):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    harness = make_harness(request, driver, status_rate_hz=5.0)
    received = []
    harness.probe.create_subscription(DiagnosticArray, '/diagnostics', received.append, 10)
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0)
    def holding() -> list:
        return [status for array in received for status in array.status
                if status.name.startswith('chunk_executor') and status.level == DiagnosticStatus.OK
                and any(item.value == 'HOLDING' for item in status.values)]
    harness.wait_for(lambda: holding(), 10.0, 'an OK diagnostics status while holding')
    status = holding()[-1]
    values = {item.key: item.value for item in status.values}
    assert status.hardware_id == 'vla_adapter_ros', status
    assert values['state'] == 'HOLDING' and status.message == 'waiting for the first chunk'
    assert 30.0 <= float(values['command_rate_hz']) <= 70.0
    assert {'tick_error_p50_ms', 'tick_error_p99_ms', 'missed_ticks', 'rejected_chunks'} <= set(
        values)
    assert 0.0 <= float(values['tick_error_p50_ms']) < 20.0


def test_chunks_are_decoded_and_checked_off_the_ticking_thread(request, driver, monkeypatch):
    harness = make_harness(request, driver)
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=20.0)
    checked_on, ticked_on = set(), set()
    check, tick = harness.node.chunk_from_decoded, harness.node._on_tick

    def recording_check(message, now_s):
        checked_on.add(threading.current_thread().name)
        return check(message, now_s)

    def recording_tick():
        ticked_on.add(threading.current_thread().name)
        tick()

    monkeypatch.setattr(harness.node, 'chunk_from_decoded', recording_check)
    monkeypatch.setattr(harness.node._tick_timer, 'callback', recording_tick)
    stream = ChunkStream(harness, sine_plan(), rate_hz=10.0, latency_s=0.05, horizon_s=1.0)
    try:
        harness.wait_state(PolicyStatus.STATE_RUNNING, timeout_s=5.0)
        time.sleep(0.5)
    finally:
        stream.stop()
    assert checked_on == {'chunk_intake'}
    assert ticked_on and 'chunk_intake' not in ticked_on
    assert harness.node.status_snapshot()['accepted_chunks'] > 0
