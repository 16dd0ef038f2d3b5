"""Human takeover of the chunk executor, free of rclpy: who commands the followers, and how.

The command source is the policy's chunks or the leader arms. The executor's state machine
(executor_logic.py) owns one :class:`Takeover` and asks it, once per running tick, for the
operator's command; the hard faults (e-stop, stale follower joint_states, a clock jump) are
checked by the state machine before, so they win over both sources.

Modes (``status.CONTROL_*``):
- ``policy``: the chunks drive the arms (a takeover is off);
- ``handover``: a takeover was granted; the followers move towards the leaders' pose at no more
  than ``ramp_speed`` (and the speed limits) until every joint is within ``tolerance``;
- ``operator``: the followers follow the leaders, every command shaped by the speed limits;
- ``hold``: a takeover was refused or aborted (no, stale or unreadable leader joint_states, a
  robot without leaders): the last command is held until the operator asks again or releases.
Back to the policy, the first chunk target cross-fades from the pose the operator left over
``handback_s`` (:meth:`Takeover.blend_handback`), so neither direction jumps.

Leader -> follower mapping (ALOHA's teleoperation): arm joints one to one, the gripper joint
angle normalised with the leader's calibration and de-normalised with the follower's.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.pipeline import status
from vla_adapter_ros.pipeline.safety import SafetyConfig, Watchdog, shape_command


@dataclass(frozen=True)
class TakeoverConfig:
    """Settings of the takeover (from ExecutorConfig)."""

    leader_stale_s: float  # refuse or abort when a leader's joint_states are this old
    ramp_speed: float  # rad/s of the move to the leaders' pose before following them
    tolerance: float  # rad: the handover ends when every joint is this close to the leaders
    handback_s: float  # cross-fade from the operator's pose to the first chunk

    def __post_init__(self) -> None:
        for name in ('leader_stale_s', 'ramp_speed', 'tolerance'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'TakeoverConfig.{name}={value!r}: must be finite and > 0')
        if not (math.isfinite(self.handback_s) and self.handback_s >= 0.0):
            raise ValueError(f'TakeoverConfig.handback_s={self.handback_s!r}: must be >= 0')


def leader_to_follower(robot: RobotDescription, arm: int, leader_angles: np.ndarray) -> np.ndarray:
    """One leader arm's command-joint angles (rad) -> its follower's command (rad), (dim,).

    Arm joints are copied; the gripper goes through both calibrations (clipped to the
    follower's calibrated span).
    """
    normalized = robot.leaders[arm].action_from_joint_angles(leader_angles)  # gripper 0..1
    return robot.arms[arm].joint_angles_from_action(normalized)


class Takeover:
    """The command source of the executor and the operator's command while they hold it."""

    def __init__(self, robot: RobotDescription, config: TakeoverConfig) -> None:
        """Policy in control; no leader measured."""
        self.robot = robot
        self.config = config
        self.leader_names = tuple(arm.namespace for arm in robot.leaders)
        self._leaders: list[np.ndarray | None] = [None] * len(robot.leaders)
        self._errors = [''] * len(robot.leaders)
        self._watchdogs = [Watchdog(config.leader_stale_s) for _ in robot.leaders]
        self.mode = status.CONTROL_POLICY
        self.fault = ''  # why the takeover holds (mode 'hold')
        self._handback_from: np.ndarray | None = None
        self._handback_start_s: float | None = None
        self.takeovers = 0  # granted takeovers, for the diagnostics

    # ----------------------------------------------------------------- inputs
    def measure_leader(self, arm: int, leader_angles: np.ndarray, monotonic_s: float) -> None:
        """A valid joint_states of leader ``arm``: its command joints' angles (rad)."""
        self._leaders[arm] = leader_to_follower(self.robot, arm, leader_angles)
        self._errors[arm] = ''
        self._watchdogs[arm].kick(monotonic_s)

    def leader_failed(self, arm: int, error: str) -> None:
        """A leader joint_states that could not be read (NaN, missing joints): not usable."""
        self._leaders[arm] = None
        self._errors[arm] = error

    @property
    def operator_commands(self) -> bool:
        """Whether the policy's chunks are not executed now (any mode but policy)."""
        return self.mode != status.CONTROL_POLICY

    def leader_problem(self, monotonic_s: float) -> str:
        """Why the leaders cannot command now ('' when every leader is fresh and valid)."""
        if not self.leader_names:
            return status.NO_LEADER_ARMS
        problems = []
        for name, pose, error, watchdog in zip(self.leader_names, self._leaders, self._errors,
                                               self._watchdogs):
            if error:
                problems.append(f'{name}: {error}')
            elif not watchdog.ever_kicked or pose is None:
                problems.append(f'{name}: no joint_states')
            elif watchdog.expired(monotonic_s):
                problems.append(f'{name}: joint_states stale ({watchdog.age(monotonic_s):.2f} s)')
        return '; '.join(problems)

    def leader_pose(self) -> np.ndarray:
        """The leaders' pose in follower joint angles, (J,) (only valid when no problem)."""
        return np.concatenate(self._leaders)

    # ----------------------------------------------------------------- requests
    def request(self, engage: bool, command: np.ndarray | None, monotonic_s: float,
                refusal: str = '') -> tuple[bool, str]:
        """Take over (``engage``) or hand back; (granted, message).

        ``refusal``: the executor's reason to refuse a takeover ('' when it may), such as a
        latched e-stop or an unfinished start-up; a refused takeover changes nothing then. A
        takeover with unusable leaders holds the arms (mode 'hold') with the reason.
        """
        if not engage:
            return self.release(command)
        if refusal:
            return False, status.takeover_refused(refusal)
        problem = self.leader_problem(monotonic_s)
        if problem:
            self.mode, self.fault = status.CONTROL_HOLD, status.takeover_refused(problem)
            return False, self.fault
        if self.mode in (status.CONTROL_HANDOVER, status.CONTROL_OPERATOR):
            return True, f'already in control: {self.mode}'
        self.mode, self.fault = status.CONTROL_HANDOVER, ''
        self._handback_from = None
        self.takeovers += 1
        return True, "takeover granted: moving to the leaders' pose"

    def release(self, command: np.ndarray | None) -> tuple[bool, str]:
        """Hand back to the policy; its first target cross-fades from ``command``."""
        if self.mode == status.CONTROL_POLICY:
            return True, 'the policy is already in control'
        self.mode, self.fault = status.CONTROL_POLICY, ''
        self._handback_from = None if command is None else command.copy()
        self._handback_start_s = None
        return True, 'handed back to the policy'

    def cancel(self) -> None:
        """End any takeover at once with nothing to blend (a restart)."""
        self.mode, self.fault = status.CONTROL_POLICY, ''
        self._handback_from = None

    def interrupted(self) -> None:
        """A hard fault held the arms: ramp to the leaders again before following them."""
        if self.mode == status.CONTROL_OPERATOR:
            self.mode = status.CONTROL_HANDOVER

    # ----------------------------------------------------------------- ticks
    def step(self, command: np.ndarray, monotonic_s: float, safety: SafetyConfig,
             tick_s: float) -> tuple[np.ndarray, int, str]:
        """The operator's (command, state, reason) this tick; mode must not be policy."""
        if self.mode == status.CONTROL_HOLD:
            return command, PolicyStatus.STATE_FAULT, self.fault
        problem = self.leader_problem(monotonic_s)
        if problem:
            self.mode, self.fault = status.CONTROL_HOLD, status.takeover_aborted(problem)
            return command, PolicyStatus.STATE_FAULT, self.fault
        target = np.clip(self.leader_pose(), safety.lower_array, safety.upper_array)  # (J,)
        if self.mode == status.CONTROL_HANDOVER:
            max_step = np.minimum(self.config.ramp_speed * tick_s, safety.max_step)
            stepped = shape_command(command, target, safety, max_step)
            if np.max(np.abs(stepped - target)) <= self.config.tolerance:
                self.mode = status.CONTROL_OPERATOR
            return stepped, PolicyStatus.STATE_STARTING, status.MOVING_TO_LEADERS
        return shape_command(command, target, safety), PolicyStatus.STATE_RUNNING, ''

    def blend_handback(self, target: np.ndarray, now_s: float) -> np.ndarray:
        """A policy target, cross-faded from the operator's last pose after a hand-back."""
        if self._handback_from is None:
            return target
        if self._handback_start_s is None:
            self._handback_start_s = now_s
        if self.config.handback_s <= 0.0:
            self._handback_from = None
            return target
        weight = (now_s - self._handback_start_s) / self.config.handback_s
        if weight >= 1.0:
            self._handback_from = None
            return target
        return self._handback_from + max(weight, 0.0) * (target - self._handback_from)
