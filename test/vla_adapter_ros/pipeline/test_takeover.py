"""The takeover on its own and inside the executor's state machine (no ROS).

The leader arms take over from the policy and hand back: no jump either way, the speed limits
hold for both sources, the e-stop and the follower watchdogs win over both, and unusable
leaders (none, stale, NaN) end in hold position with the reason.
"""

import math

import numpy as np
import pytest

from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.params.executor_config import ExecutorConfig
from vla_adapter_ros.pipeline import status
from vla_adapter_ros.pipeline.chunk_schedule import TimedChunk
from vla_adapter_ros.pipeline.executor_logic import ExecutorStateMachine
from vla_adapter_ros.pipeline.takeover import Takeover, TakeoverConfig, leader_to_follower

CONFIG = ExecutorConfig.from_dict({'robot_description': 'aloha', 'takeover_speed': 1.0,
                                   'handback_crossfade_s': 0.4})
ROBOT = CONFIG.robot
START = CONFIG.start_pose()  # (14,) follower joint angles
TICK = CONFIG.tick_s
SAFETY = CONFIG.safety_config()
STARTING, RUNNING, FAULT = (PolicyStatus.STATE_STARTING, PolicyStatus.STATE_RUNNING,
                            PolicyStatus.STATE_FAULT)


class Clock:
    """ROS time and the monotonic clock, advanced together by whole ticks."""

    def __init__(self) -> None:
        self.ros_s, self.monotonic_s = 100.0, 5.0

    def advance(self) -> None:
        self.ros_s += TICK
        self.monotonic_s += TICK


def leader_angles_for(follower_pose: np.ndarray) -> list[np.ndarray]:
    """Leader command-joint angles (per arm) whose mapping is ``follower_pose``."""
    angles = []
    for arm, part in enumerate(ROBOT.arm_slices()):
        normalized = ROBOT.arms[arm].action_from_joint_angles(follower_pose[part])
        angles.append(ROBOT.leaders[arm].joint_angles_from_action(normalized))
    return angles


class Rig:
    """A running state machine with a takeover, leaders fed at every tick unless paused."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.takeover = Takeover(ROBOT, CONFIG.takeover_config())
        self.machine = ExecutorStateMachine(
            CONFIG.arm_robot_names, START, SAFETY, CONFIG.schedule_config(),
            CONFIG.state_machine_timings(), takeover=self.takeover)
        self.leader_pose = START.copy()
        self.leaders_on = True
        self.commands: list[np.ndarray] = []
        self.tick()
        assert self.machine.phase == 'running'

    def feed(self) -> None:
        for arm, part in enumerate(ROBOT.arm_slices()):
            self.machine.measure(arm, self.machine.command[part] if self.machine.command
                                 is not None else START[part], self.clock.monotonic_s)
        if self.leaders_on:
            for arm, angles in enumerate(leader_angles_for(self.leader_pose)):
                self.takeover.measure_leader(arm, angles, self.clock.monotonic_s)

    def tick(self, ticks: int = 1):
        for _ in range(ticks):
            self.feed()
            self.clock.advance()
            result = self.machine.tick(self.clock.ros_s, self.clock.monotonic_s)
            if result[0] is not None:
                self.commands.append(result[0])
        return result

    def chunk(self, pose: np.ndarray, steps: int = 50) -> None:
        self.machine.accept_chunk(TimedChunk(stamp_s=self.clock.ros_s,
                                             offsets_s=np.arange(steps) * TICK,
                                             positions=np.tile(pose, (steps, 1))),
                                  self.clock.monotonic_s)

    def request(self, engage: bool):
        return self.machine.request_takeover(engage, self.clock.monotonic_s)

    def max_step(self) -> float:
        """Largest per-tick change of any joint over every command so far, over its limit."""
        steps = np.abs(np.diff(np.stack(self.commands), axis=0))
        return float(np.max(steps / SAFETY.max_step))


def test_leader_gripper_maps_through_both_calibrations():
    leader = ROBOT.leaders[0]
    angles = np.array([0.1, -0.5, 0.6, 0.0, 0.2, 0.0, leader.gripper.joint_open])
    follower = leader_to_follower(ROBOT, 0, angles)
    np.testing.assert_allclose(follower[:6], angles[:6])
    assert follower[6] == pytest.approx(ROBOT.arms[0].gripper.joint_open)
    angles[6] = leader.gripper.joint_closed - 0.5  # beyond closed: clipped to the span
    assert leader_to_follower(ROBOT, 0, angles)[6] == pytest.approx(
        ROBOT.arms[0].gripper.joint_closed)


def test_takeover_config_names_a_bad_field():
    with pytest.raises(ValueError, match=r'TakeoverConfig.ramp_speed=0.0'):
        TakeoverConfig(leader_stale_s=0.2, ramp_speed=0.0, tolerance=0.01, handback_s=0.1)


def test_policy_to_operator_ramps_then_follows_then_hands_back_without_a_jump():
    rig = Rig()
    rig.chunk(START)
    assert rig.tick()[1] == RUNNING and rig.machine.control_source == status.CONTROL_POLICY
    rig.leader_pose = START + np.tile([0.3, 0.2, -0.2, 0, 0.1, 0, 0.3], 2)
    granted, message = rig.request(True)
    assert granted, message
    _, state, reason = rig.tick()
    assert (state, reason) == (STARTING, status.MOVING_TO_LEADERS)
    assert rig.machine.control_source == status.CONTROL_HANDOVER
    ramp = CONFIG.takeover_speed * TICK
    assert np.max(np.abs(rig.commands[-1] - rig.commands[-2])) == pytest.approx(ramp)
    rig.tick(int(math.ceil(0.3 / ramp)) + 2)
    assert rig.machine.control_source == status.CONTROL_OPERATOR
    rig.leader_pose = rig.leader_pose + 0.01  # the operator moves: the followers follow
    rig.chunk(START)  # the policy keeps predicting: filed, not executed
    command, state, reason = rig.tick(3)
    assert (state, reason) == (RUNNING, '')
    np.testing.assert_allclose(command, np.clip(rig.leader_pose, SAFETY.lower_array,
                                                SAFETY.upper_array), atol=1e-9)
    operator_pose = command.copy()
    assert rig.request(False) == (True, 'handed back to the policy')
    np.testing.assert_allclose(rig.tick()[0], operator_pose, atol=1e-9)  # the fade starts
    # One tick later the target is 1/20 of the way from the operator's pose (0.4 s fade).
    np.testing.assert_allclose(rig.tick()[0], operator_pose + (START - operator_pose) * TICK
                               / 0.4, atol=1e-9)
    rig.tick(60)
    np.testing.assert_allclose(rig.commands[-1], START, atol=1e-9)
    assert rig.machine.control_source == status.CONTROL_POLICY
    assert rig.max_step() <= 1.0 + 1e-9  # never beyond the speed limits


def test_takeover_with_no_leaders_is_refused_and_holds():
    rig = Rig()
    rig.leaders_on = False
    rig.takeover = Takeover(ROBOT, CONFIG.takeover_config())  # nothing heard from the leaders
    rig.machine.takeover = rig.takeover
    rig.chunk(START + 0.1)
    rig.tick(3)
    granted, message = rig.request(True)
    assert not granted
    assert message == ('takeover refused: leader_left: no joint_states; '
                       'leader_right: no joint_states')
    held = rig.commands[-1]
    command, state, reason = rig.tick(5)
    assert (state, reason) == (FAULT, message)
    np.testing.assert_array_equal(command, held)
    assert rig.machine.control_source == status.CONTROL_HOLD
    assert rig.request(False)[0]  # releasing hands back to the policy
    assert rig.tick()[1] == RUNNING


def test_leaders_going_stale_or_nan_abort_the_takeover_into_a_hold():
    rig = Rig()
    assert rig.request(True)[0]
    rig.tick(5)
    rig.leaders_on = False
    command, state, reason = rig.tick(int(CONFIG.leader_stale_s / TICK) + 2)
    assert state == FAULT and reason.startswith('takeover aborted: leader_left: joint_states '
                                                'stale'), reason
    np.testing.assert_array_equal(rig.tick(3)[0], command)
    rig.leaders_on = True
    rig.feed()
    assert rig.request(True)[0]  # fresh leaders again: a new takeover is granted
    rig.tick()
    rig.takeover.leader_failed(1, "leader_right/joint_states: non-finite joint positions "
                                  "[('elbow', nan)]")
    command, state, reason = rig.machine.tick(rig.clock.ros_s + TICK, rig.clock.monotonic_s + TICK)
    assert state == FAULT and 'takeover aborted: leader_right' in reason and 'nan' in reason


def test_estop_wins_over_the_operator_and_hands_back_to_the_policy_after_reset():
    rig = Rig()
    rig.leader_pose = START + 0.2
    assert rig.request(True)[0]
    rig.tick(5)
    rig.machine.engage_estop('estop topic')
    command, state, reason = rig.tick(5)
    assert (state, reason) == (FAULT, 'e-stop engaged (estop topic)')
    np.testing.assert_array_equal(rig.tick()[0], command)
    assert rig.request(True) == (False, 'takeover refused: e-stop engaged (estop topic)')
    assert rig.machine.control_source == status.CONTROL_POLICY
    rig.machine.reset_estop()
    rig.chunk(START)
    rig.tick()
    assert np.max(np.abs(rig.commands[-1] - command)) < np.max(np.abs(START - command)) * 0.1
    assert rig.max_step() <= 1.0 + 1e-9


def test_a_follower_fault_during_the_takeover_ramps_to_the_leaders_again():
    rig = Rig()
    assert rig.request(True)[0]
    rig.tick(3)
    assert rig.machine.control_source == status.CONTROL_OPERATOR
    # No follower joint_states for longer than stale_observation_s: FAULT, hold.
    for _ in range(int(CONFIG.stale_observation_s / TICK) + 3):
        rig.clock.advance()
        for arm, angles in enumerate(leader_angles_for(rig.leader_pose)):
            rig.takeover.measure_leader(arm, angles, rig.clock.monotonic_s)
        state = rig.machine.tick(rig.clock.ros_s, rig.clock.monotonic_s)[1]
    assert state == FAULT
    assert rig.machine.control_source == status.CONTROL_HANDOVER


def test_a_rejected_chunk_during_the_takeover_does_not_stop_the_operator():
    rig = Rig()
    assert rig.request(True)[0]
    rig.tick(3)
    assert not rig.machine.reject_chunk('chunk 3 rejected: NaN')
    assert rig.tick()[1] == RUNNING
    rig.request(False)
    assert rig.tick()[1:] == (FAULT, 'chunk 3 rejected: NaN')  # the policy's fault waits


def test_takeover_is_refused_before_start_up_and_without_a_takeover():
    machine = ExecutorStateMachine(CONFIG.arm_robot_names, START, SAFETY,
                                   CONFIG.schedule_config(), CONFIG.state_machine_timings(),
                                   takeover=Takeover(ROBOT, CONFIG.takeover_config()))
    assert machine.request_takeover(True, 1.0) == (
        False, 'takeover refused: start-up not finished')
    bare = ExecutorStateMachine(CONFIG.arm_robot_names, START, SAFETY, CONFIG.schedule_config(),
                                CONFIG.state_machine_timings())
    assert bare.request_takeover(True, 1.0) == (
        False, status.takeover_refused(status.TAKEOVER_NOT_CONFIGURED))
