"""The chunk executor's command state machine, free of rclpy: phases, faults, ramp and hold.

The node feeds it joint states, accepted or rejected chunks, e-stops and restarts, and asks it
once per tick for the command to publish with the state and reason to report. It is single
threaded: the node serialises every call with its own lock. The life cycle is described in
docs/ARCHITECTURE.md ("The chunk executor").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.pipeline import status
from vla_adapter_ros.pipeline.chunk_schedule import ChunkScheduler, ScheduleConfig, TimedChunk
from vla_adapter_ros.pipeline.safety import (
    ClockMonitor,
    EStopLatch,
    SafetyConfig,
    Watchdog,
    shape_command,
)
from vla_adapter_ros.pipeline.takeover import Takeover

# In the order an episode passes them ('preflight' only at start-up, with a check).
PHASES = ('waiting', 'preflight', 'gripper_mode', 'ramp', 'running')


class GripperModeStep(Protocol):
    """The start-up step that sets the grippers' operating mode (the node's service calls)."""

    def step(self, elapsed_s: float, timeout_s: float) -> str | None:
        """None while pending, '' when done, else the fault text."""


class PreflightStep(Protocol):
    """The start-up pre-flight check of the inputs (recording/preflight_window.py)."""

    def step(self) -> str | None:
        """None while a window is open, '' once one passed, else the failures (it retries)."""


@dataclass(frozen=True)
class ExecutorTimings:
    """The timing settings of the state machine (from ExecutorConfig)."""

    tick_s: float  # executor period: the ramp's step is startup_speed * tick_s
    startup_speed: float  # rad/s of the ramp to the start pose
    service_timeout_s: float  # the gripper-mode start-up step faults after this
    stale_chunk_s: float  # hold when no chunk arrived for this long
    stale_observation_s: float  # fault when an arm's joint_states are this old
    clock_jump_s: float  # fault when ROS time and the monotonic clock disagree by this


class ExecutorStateMachine:
    """What the executor commands at each tick, and why.

    ``tick`` returns ``(command or None, state, reason)``: None before any arm was measured,
    otherwise the joint targets (J,) over all arms, clipped to the limits and rate-limited.
    """

    def __init__(self, robot_names: tuple[str, ...], start_pose: np.ndarray,
                 safety: SafetyConfig, schedule: ScheduleConfig, timings: ExecutorTimings,
                 gripper_modes: GripperModeStep | None = None,
                 log: Callable[[str], None] = lambda text: None,
                 takeover: Takeover | None = None,
                 preflight: PreflightStep | None = None) -> None:
        """Start in phase 'waiting' (IDLE) with no chunk and no measured arm.

        ``takeover``: the leader arms as a second command source (takeover.py); without it
        every takeover request is refused. ``preflight``: the inputs' check that must pass
        once before the first ramp (the arms hold their measured pose until then).
        """
        self.robot_names = robot_names
        self.start_pose = start_pose  # (J,)
        self.safety = safety
        self.timings = timings
        self.scheduler = ChunkScheduler(schedule, len(start_pose))
        self.estop = EStopLatch()
        self.chunk_watchdog = Watchdog(timings.stale_chunk_s)
        self.observation_watchdogs = [Watchdog(timings.stale_observation_s) for _ in robot_names]
        self.clock_monitor = ClockMonitor(timings.clock_jump_s)
        self.gripper_modes = gripper_modes
        self.log = log
        self.measured: list[np.ndarray | None] = [None] * len(robot_names)
        self.joint_state_errors = [''] * len(robot_names)
        self.command: np.ndarray | None = None
        self.phase = 'waiting'
        self.phase_start_s = 0.0
        self.startup_fault = ''
        self.chunk_fault = ''
        self.state = PolicyStatus.STATE_IDLE
        self.reason = status.WAITING_FOR_JOINT_STATES
        self.accepted_chunks = 0
        self.rejected_chunks = 0
        self.takeover = takeover
        self.preflight = preflight
        self.preflight_failure = ''  # the last failed window's failures

    # ----------------------------------------------------------------- inputs
    def set_limits(self, safety: SafetyConfig, schedule: ScheduleConfig) -> None:
        """New speed limits and blending (a dynamic parameter change), from the next tick."""
        self.safety = safety
        self.scheduler.config = schedule

    def measure(self, arm: int, positions: np.ndarray, monotonic_s: float) -> None:
        """A valid joint_states of arm ``arm``: (arm.dim,) rad."""
        self.measured[arm] = positions
        self.joint_state_errors[arm] = ''
        self.observation_watchdogs[arm].kick(monotonic_s)

    def measurement_failed(self, arm: int, error: str) -> None:
        """A joint_states of arm ``arm`` that could not be read (kept for the fault text)."""
        self.joint_state_errors[arm] = error

    @property
    def accepts_chunks(self) -> bool:
        """Whether start-up is over (chunks before that are dropped, not rejected)."""
        return self.phase == 'running'

    def accept_chunk(self, chunk: TimedChunk, monotonic_s: float) -> None:
        """Schedule a validated chunk; it clears a chunk fault."""
        self.scheduler.add_chunk(chunk)
        self.chunk_watchdog.kick(monotonic_s)
        self.chunk_fault = ''
        self.accepted_chunks += 1

    def reject_chunk(self, reason: str) -> bool:
        """Drop every scheduled chunk and fault with ``reason``; True when the state changed."""
        self.scheduler.clear()
        self.chunk_fault = reason
        self.rejected_chunks += 1
        if self.state == PolicyStatus.STATE_FAULT or self.operator_commands:
            return False  # during a takeover the fault waits for the hand-back
        self.state, self.reason = PolicyStatus.STATE_FAULT, reason
        return True

    def engage_estop(self, source: str) -> bool:
        """Latch the e-stop and drop every chunk; True when it was not engaged before."""
        first = not self.estop.engaged
        self.estop.engage(source)
        self.scheduler.clear()
        if self.takeover is not None and self.takeover.operator_commands:
            self.takeover.release(self.command)  # after the reset the policy cross-fades in
        self.state, self.reason = PolicyStatus.STATE_FAULT, self.estop.reason
        return first

    def reset_estop(self) -> bool:
        """Release the e-stop; True when it was engaged."""
        return self.estop.reset()

    def restart(self) -> tuple[bool, str]:
        """Start over between episodes: no chunk survives, the arms are re-read, ramp again.

        Refused while the e-stop is latched.
        """
        if self.estop.engaged:
            return False, f'refused: e-stop latched ({self.estop.reason})'
        self.scheduler.clear()
        self.chunk_watchdog.reset()
        self.chunk_fault = ''
        self.command = None
        if self.takeover is not None:
            self.takeover.cancel()
        self.measured = [None] * len(self.robot_names)
        if self.phase in ('ramp', 'running'):
            self.gripper_modes = None  # the operating modes are already set
        self.phase = 'waiting'
        self.state, self.reason = PolicyStatus.STATE_IDLE, status.RESTARTING
        return True, 'restarted: ramping to the start pose'

    @property
    def control_source(self) -> str:
        """Who commands the followers (status.CONTROL_*)."""
        return status.CONTROL_POLICY if self.takeover is None else self.takeover.mode

    @property
    def operator_commands(self) -> bool:
        """Whether a takeover is on (chunks are filed but not executed)."""
        return self.takeover is not None and self.takeover.operator_commands

    def request_takeover(self, engage: bool, monotonic_s: float) -> tuple[bool, str]:
        """Hand the arms to the leader arms (``engage``) or back to the policy.

        Refused (nothing changes) while the e-stop is latched or before start-up finished; a
        takeover with unusable leaders holds the arms with the reason (takeover.py).
        """
        if self.takeover is None:
            return (not engage), (status.takeover_refused(status.TAKEOVER_NOT_CONFIGURED)
                                  if engage else 'the policy is already in control')
        refusal = ''
        if self.estop.engaged:
            refusal = self.estop.reason
        elif self.phase != 'running' or self.command is None:
            refusal = 'start-up not finished'
        return self.takeover.request(engage, self.command, monotonic_s, refusal)

    # ----------------------------------------------------------------- tick
    def tick(self, now_s: float, monotonic_s: float):
        """(command or None, state, reason) for this tick; the state and reason are kept."""
        command, state, reason = self._next_command(now_s, monotonic_s)
        if command is not None:
            self.command = command
        self.state, self.reason = state, reason
        return command, state, reason

    def _next_command(self, now_s: float, monotonic_s: float):
        jump = self.clock_monitor.update(now_s, monotonic_s)
        if jump:
            self.scheduler.clear()
            self.chunk_fault = jump
        self._preflight_step()
        if self.command is None:
            missing = [robot for robot, seen in zip(self.robot_names, self.measured)
                       if seen is None]
            if missing:
                errors = [error for error in self.joint_state_errors if error]
                waiting = status.waiting_for_joint_states(missing, errors[-1] if errors else '')
                if self.preflight_failure:
                    waiting = f'{waiting}; {status.preflight_failed(self.preflight_failure)}'
                if self.estop.engaged:
                    return None, PolicyStatus.STATE_FAULT, f'{self.estop.reason}; {waiting}'
                return None, PolicyStatus.STATE_IDLE, waiting
            measured = np.concatenate(self.measured)  # (J,)
            self.command = np.clip(measured, self.safety.lower_array, self.safety.upper_array)
            self._enter_phase('preflight' if self.preflight is not None
                              else self._first_startup_phase, monotonic_s)
        hold = self.command.copy()
        fault = self.hard_fault(monotonic_s)
        if fault:
            self.scheduler.clear()
            if self.takeover is not None:
                self.takeover.interrupted()
            return hold, PolicyStatus.STATE_FAULT, fault
        if self.phase == 'preflight':
            if self.preflight is not None:
                return hold, *self._preflight_hold()
            self._enter_phase(self._first_startup_phase, monotonic_s)
        if self.phase == 'gripper_mode':
            return hold, *self._gripper_mode_step(monotonic_s)
        if self.phase == 'ramp':
            return self._ramp_step(monotonic_s)
        return self._running_step(now_s, monotonic_s, hold)

    def hard_fault(self, monotonic_s: float) -> str:
        """The latched e-stop, a failed start-up or stale joint_states; '' when none."""
        if self.estop.engaged:
            return self.estop.reason
        if self.startup_fault:
            return self.startup_fault
        stale = [f'{robot} ({watchdog.age(monotonic_s):.2f} s'
                 + (f'; last error: {error}' if error else '') + ')'
                 for robot, watchdog, error in zip(self.robot_names, self.observation_watchdogs,
                                                   self.joint_state_errors)
                 if watchdog.expired(monotonic_s)]
        return status.stale_observation(stale) if stale else ''

    def _enter_phase(self, phase: str, monotonic_s: float) -> None:
        self.phase, self.phase_start_s = phase, monotonic_s
        self.log(f'phase: {phase}')

    @property
    def _first_startup_phase(self) -> str:
        return 'gripper_mode' if self.gripper_modes is not None else 'ramp'

    def _preflight_step(self) -> None:
        """Advance the pre-flight check until it passed once (then it is dropped)."""
        if self.preflight is None:
            return
        outcome = self.preflight.step()
        if outcome == '':
            self.preflight, self.preflight_failure = None, ''
            self.log('pre-flight check passed')
        elif outcome:
            if outcome != self.preflight_failure:
                self.log(status.preflight_failed(outcome))
            self.preflight_failure = outcome

    def _preflight_hold(self) -> tuple[int, str]:
        """While the pre-flight check has not passed: STARTING, or FAULT naming the failures."""
        if self.preflight_failure:
            return PolicyStatus.STATE_FAULT, status.preflight_failed(self.preflight_failure)
        return PolicyStatus.STATE_STARTING, status.PREFLIGHT_LISTENING

    def _gripper_mode_step(self, monotonic_s: float) -> tuple[int, str]:
        outcome = self.gripper_modes.step(monotonic_s - self.phase_start_s,
                                          self.timings.service_timeout_s)
        if outcome:
            self.startup_fault = outcome
        elif outcome == '':
            self._enter_phase('ramp', monotonic_s)
        return PolicyStatus.STATE_STARTING, status.SETTING_GRIPPER_MODE

    def _ramp_step(self, monotonic_s: float):
        max_step = np.full(len(self.command), self.timings.startup_speed * self.timings.tick_s)
        command = shape_command(self.command, self.start_pose, self.safety, max_step)  # (J,)
        if np.allclose(command, self.start_pose, rtol=0.0, atol=1e-9):
            self._enter_phase('running', monotonic_s)
        return command, PolicyStatus.STATE_STARTING, status.MOVING_TO_START_POSE

    def _running_step(self, now_s: float, monotonic_s: float, hold: np.ndarray):
        if self.operator_commands:
            if self.chunk_watchdog.ever_kicked and self.chunk_watchdog.expired(monotonic_s):
                self.scheduler.clear()  # no stale chunk waits for the hand-back
            return self.takeover.step(hold, monotonic_s, self.safety, self.timings.tick_s)
        if self.chunk_fault:  # the scheduler was cleared with it
            return hold, PolicyStatus.STATE_FAULT, self.chunk_fault
        if self.chunk_watchdog.ever_kicked and self.chunk_watchdog.expired(monotonic_s):
            if self.scheduler.chunks:
                self.scheduler.clear()
            return (hold, PolicyStatus.STATE_HOLDING,
                    status.stale_chunk(self.chunk_watchdog.age(monotonic_s)))
        target = self.scheduler.target(now_s)  # (J,) or None
        if target is None:
            reason = (status.NO_CHUNK_COVERS_NOW if self.chunk_watchdog.ever_kicked
                      else status.WAITING_FOR_FIRST_CHUNK)
            return hold, PolicyStatus.STATE_HOLDING, reason
        if self.takeover is not None:
            target = self.takeover.blend_handback(target, now_s)
        return shape_command(self.command, target, self.safety), PolicyStatus.STATE_RUNNING, ''
