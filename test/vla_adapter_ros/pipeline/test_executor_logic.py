"""The executor's command state machine on its own: phases, faults, ramp, hold (no ROS).

Time is driven by the test: ``clock.tick()`` advances ROS time and the monotonic clock by one
executor period together, as a healthy executor sees them.
"""

import numpy as np
import pytest

from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.params.executor_config import ExecutorConfig
from vla_adapter_ros.pipeline import status
from vla_adapter_ros.pipeline.chunk_schedule import TimedChunk
from vla_adapter_ros.pipeline.executor_logic import ExecutorStateMachine

CONFIG = ExecutorConfig.from_dict({'robot_description': 'aloha'})
START = CONFIG.start_pose()  # (14,)
TICK = CONFIG.tick_s
IDLE, STARTING, RUNNING = (PolicyStatus.STATE_IDLE, PolicyStatus.STATE_STARTING,
                           PolicyStatus.STATE_RUNNING)
HOLDING, FAULT = PolicyStatus.STATE_HOLDING, PolicyStatus.STATE_FAULT


class Clock:
    """ROS time and the monotonic clock, advanced together by whole ticks."""

    def __init__(self) -> None:
        self.ros_s, self.monotonic_s = 100.0, 5.0

    def tick(self, machine: ExecutorStateMachine, ticks: int = 1):
        for _ in range(ticks):
            self.ros_s += TICK
            self.monotonic_s += TICK
            result = machine.tick(self.ros_s, self.monotonic_s)
        return result


class GripperModes:
    """The start-up step: pending for ``pending`` calls, then ``outcome``."""

    def __init__(self, pending: int, outcome: str) -> None:
        self.pending, self.outcome, self.calls = pending, outcome, 0

    def step(self, elapsed_s: float, timeout_s: float) -> str | None:
        self.calls += 1
        return None if self.calls <= self.pending else self.outcome


def machine_for(gripper_modes=None, log=None) -> ExecutorStateMachine:
    return ExecutorStateMachine(
        CONFIG.arm_robot_names, START, CONFIG.safety_config(), CONFIG.schedule_config(),
        CONFIG.state_machine_timings(), gripper_modes, log or (lambda text: None))


def measure(machine, clock, pose) -> None:
    for arm, part in enumerate(CONFIG.robot.arm_slices()):
        machine.measure(arm, np.asarray(pose)[part], clock.monotonic_s)


def running_machine(clock: Clock) -> ExecutorStateMachine:
    """A machine that has measured the start pose and finished its ramp."""
    machine = machine_for()
    measure(machine, clock, START)
    clock.tick(machine)
    assert machine.phase == 'running'
    return machine


def chunk_at(clock: Clock, positions: np.ndarray, steps: int = 25) -> TimedChunk:
    offsets = np.arange(steps) * TICK
    return TimedChunk(stamp_s=clock.ros_s, offsets_s=offsets,
                      positions=np.tile(positions, (steps, 1)))


def test_idle_until_every_arm_was_measured():
    machine, clock = machine_for(), Clock()
    assert (machine.state, machine.reason) == (IDLE, status.WAITING_FOR_JOINT_STATES)
    machine.measure(0, START[:7], clock.monotonic_s)
    command, state, reason = clock.tick(machine)
    assert command is None and state == IDLE
    assert reason == status.waiting_for_joint_states(['follower_right'])


def test_ramp_to_the_start_pose_at_the_startup_speed_then_hold_for_a_chunk():
    machine, clock = machine_for(), Clock()
    away = START.copy()
    away[0] += 0.1  # the left waist 0.1 rad off
    measure(machine, clock, away)
    command, state, reason = clock.tick(machine)
    step = CONFIG.startup_speed * TICK
    assert (state, reason, machine.phase) == (STARTING, status.MOVING_TO_START_POSE, 'ramp')
    assert command[0] == pytest.approx(away[0] - step)
    ticks = int(np.ceil(0.1 / step))
    command, state, _ = clock.tick(machine, ticks)
    np.testing.assert_allclose(command, START, atol=1e-9)
    assert machine.phase == 'running'
    _, state, reason = clock.tick(machine)
    assert (state, reason) == (HOLDING, status.WAITING_FOR_FIRST_CHUNK)


def test_a_chunk_drives_the_arms_within_the_speed_limit():
    clock = Clock()
    machine = running_machine(clock)
    target = START.copy()
    target[0] += 0.5
    machine.accept_chunk(chunk_at(clock, target), clock.monotonic_s)
    command, state, reason = clock.tick(machine)
    assert (state, reason) == (RUNNING, '')
    limit = CONFIG.safety_config().max_joint_speed[0] * TICK
    assert command[0] - START[0] == pytest.approx(limit)
    assert machine.accepted_chunks == 1


def test_a_rejected_chunk_faults_at_once_and_the_next_accepted_one_clears_it():
    clock = Clock()
    machine = running_machine(clock)
    machine.accept_chunk(chunk_at(clock, START), clock.monotonic_s)
    assert machine.reject_chunk('chunk 7 rejected: NaN')
    assert (machine.state, machine.reason) == (FAULT, 'chunk 7 rejected: NaN')
    assert not machine.scheduler.chunks and machine.rejected_chunks == 1
    command, state, reason = clock.tick(machine)
    assert (state, reason) == (FAULT, 'chunk 7 rejected: NaN')
    np.testing.assert_allclose(command, START)  # holds
    assert not machine.reject_chunk('again')  # already faulted: no new state change
    machine.accept_chunk(chunk_at(clock, START), clock.monotonic_s)
    assert clock.tick(machine)[1] == RUNNING


def test_the_estop_latches_until_reset_and_blocks_a_restart():
    clock = Clock()
    machine = running_machine(clock)
    machine.accept_chunk(chunk_at(clock, START), clock.monotonic_s)
    assert machine.engage_estop('estop topic')
    assert not machine.engage_estop('estop topic')  # already engaged
    assert machine.state == FAULT and not machine.scheduler.chunks
    assert clock.tick(machine, 10)[1] == FAULT
    assert machine.restart() == (False, f'refused: e-stop latched ({machine.estop.reason})')
    assert machine.reset_estop() and not machine.reset_estop()
    assert clock.tick(machine)[1:] == (HOLDING, status.NO_CHUNK_COVERS_NOW)


def test_stale_joint_states_fault_and_clear_when_they_resume():
    clock = Clock()
    machine = running_machine(clock)
    _, state, reason = clock.tick(machine, int(CONFIG.stale_observation_s / TICK) + 2)
    assert state == FAULT and reason.startswith('stale observation: no valid joint_states from')
    measure(machine, clock, START)
    assert clock.tick(machine)[1] == HOLDING


def test_a_stale_chunk_stream_holds_and_drops_what_is_scheduled():
    clock = Clock()
    machine = running_machine(clock)
    machine.accept_chunk(chunk_at(clock, START, steps=200), clock.monotonic_s)
    for _ in range(int(CONFIG.stale_chunk_s / TICK) + 2):
        measure(machine, clock, START)
        _, state, reason = clock.tick(machine)
    assert state == HOLDING and reason.startswith('stale chunk: none for')
    assert not machine.scheduler.chunks


def test_a_clock_jump_drops_the_chunks_and_faults_until_the_next_chunk():
    clock = Clock()
    machine = running_machine(clock)
    machine.accept_chunk(chunk_at(clock, START), clock.monotonic_s)
    clock.ros_s -= 1.0  # ROS time goes backwards
    _, state, reason = clock.tick(machine)
    assert state == FAULT and reason.startswith('clock jump: ROS time went backwards')
    assert not machine.scheduler.chunks


def test_restart_forgets_the_arms_and_the_chunks():
    clock = Clock()
    machine = running_machine(clock)
    machine.accept_chunk(chunk_at(clock, START), clock.monotonic_s)
    assert machine.restart() == (True, 'restarted: ramping to the start pose')
    assert (machine.state, machine.reason, machine.phase) == (IDLE, status.RESTARTING, 'waiting')
    assert machine.command is None and not machine.scheduler.chunks
    assert clock.tick(machine)[0] is None  # waits for fresh joint_states


def test_gripper_mode_step_before_the_ramp_and_its_fault_latches():
    logged = []
    clock = Clock()
    machine = machine_for(GripperModes(pending=2, outcome=''), logged.append)
    measure(machine, clock, START)
    for _ in range(3):
        assert clock.tick(machine)[1:] == (STARTING, status.SETTING_GRIPPER_MODE)
    assert logged == ['phase: gripper_mode', 'phase: ramp']
    failing = machine_for(GripperModes(pending=0, outcome='set_operating_modes timed out'))
    measure(failing, clock, START)
    clock.tick(failing)
    for _ in range(5):
        measure(failing, clock, START)
        assert clock.tick(failing)[1:] == (FAULT, 'set_operating_modes timed out')


class ScriptedPreflight:
    """The start-up pre-flight step: answers ``outcomes`` one per tick, then '' (passed)."""

    def __init__(self, *outcomes) -> None:
        self.outcomes, self.calls = list(outcomes), 0

    def step(self) -> str | None:
        self.calls += 1
        return self.outcomes.pop(0) if self.outcomes else ''


def test_the_preflight_check_holds_the_measured_pose_until_a_window_passes():
    failure = '/cam_high/camera/color/image_rect_raw: silent: no message in 1.0 s'
    preflight = ScriptedPreflight(None, failure, None, None, '')
    machine = ExecutorStateMachine(
        CONFIG.arm_robot_names, START, CONFIG.safety_config(), CONFIG.schedule_config(),
        CONFIG.state_machine_timings(), preflight=preflight)
    clock = Clock()
    away = START + 0.3
    measure(machine, clock, away)
    command, state, reason = clock.tick(machine)
    assert (state, reason, machine.phase) == (STARTING, status.PREFLIGHT_LISTENING, 'preflight')
    held = command.copy()
    np.testing.assert_allclose(held, np.clip(away, CONFIG.safety_config().lower_array,
                                             CONFIG.safety_config().upper_array))
    for _ in range(3):  # the failed window is reported until the next one passes
        command, state, reason = clock.tick(machine)
        assert (state, reason) == (FAULT, status.preflight_failed(failure))
        assert 'cam_high' in reason and 'silent' in reason
        np.testing.assert_array_equal(command, held)  # no ramp, no chunk: the pose is held
        assert not machine.accepts_chunks
    command, state, reason = clock.tick(machine)
    assert machine.phase == 'ramp' and (state, reason) == (STARTING, status.MOVING_TO_START_POSE)
    assert np.abs(command - held).max() > 0  # the ramp began
    for _ in range(100):  # the ramp, with fresh joint_states
        measure(machine, clock, away)
        clock.tick(machine)
    assert machine.phase == 'running' and preflight.calls == 5
    machine.restart()  # between episodes the check does not run again
    measure(machine, clock, START)
    clock.tick(machine, 2)
    assert machine.phase == 'running' and preflight.calls == 5


def test_a_failed_preflight_is_named_while_the_arms_are_not_measured_yet():
    failure = 'follower_left/joint_states: joint_names: missing [...]'
    machine = ExecutorStateMachine(
        CONFIG.arm_robot_names, START, CONFIG.safety_config(), CONFIG.schedule_config(),
        CONFIG.state_machine_timings(), preflight=ScriptedPreflight(failure, *[None] * 10))
    command, state, reason = Clock().tick(machine)
    assert command is None and state == IDLE
    assert reason == (f'{status.waiting_for_joint_states(list(CONFIG.arm_robot_names))}; '
                      f'{status.preflight_failed(failure)}')
