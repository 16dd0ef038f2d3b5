"""The simulated operator of an HG-DAgger episode: the corrective expert plus its takeover rule.

No rclpy: the MuJoCo node calls :meth:`SimulatedOperator.step` once per control step of a
running episode (under its scene lock, before it publishes the step's clock) and publishes what
comes back -- the leader arms' joint_states positions (the expert's plan, through the leaders'
calibration: sim/corrective_expert.leader_positions) and, when the rule says so, a request to
the executor's real takeover service. The executor then maps the leaders to the followers
exactly as on the robot.

While the policy drives, the expert plans again from the true state every ``replan_steps``
steps; the divergence the rule sees is the largest arm-joint difference (rad) between the
followers and that plan's next pose. At a takeover request the expert plans from the state it
finds; during the operator's segment it acts (re-planning where a stage check fails); at the
hand-back it forgets its plan. Everything is a function of the scene and the step count, so the
same seed gives the same leader stream and the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.sim.takeover_rule import (
    HAND_BACK,
    TAKE_OVER,
    TakeoverRule,
    TakeoverRuleConfig,
)


@dataclass(frozen=True)
class OperatorStep:
    """What the node publishes for one step."""

    leaders: list[np.ndarray]  # per leader arm: its joint_states positions, driver order
    request: str | None  # TAKE_OVER, HAND_BACK or None
    divergence: float  # rad: followers vs the expert's plan (arm joints)


class SimulatedOperator:
    """The corrective expert driven by a :class:`TakeoverRule`, one episode at a time."""

    def __init__(self, robot: RobotDescription, task: str, rule: TakeoverRuleConfig,
                 replan_steps: int) -> None:
        """Build the expert's shadow scene (MuJoCo) and the rule."""
        from vla_adapter_ros.sim.corrective_expert import CorrectiveExpert
        if replan_steps < 1:
            raise ValueError(f'replan_steps={replan_steps!r}: must be >= 1')
        self.robot = robot
        self.expert = CorrectiveExpert(robot, task)
        self.rule = TakeoverRule(rule)
        self.replan_steps = replan_steps
        # Arm-joint columns of a (14,) policy-unit action: every dimension but the grippers.
        grippers = {part.stop - 1 for part in robot.arm_slices()}
        self._arm_joints = np.array([i for i in range(robot.action_dim) if i not in grippers])
        self.reset()

    def reset(self) -> None:
        """A new episode: no plan, the policy in control."""
        self.expert.reset()
        self.rule.reset()
        self._since_plan = 0

    def step(self, scene, step: int) -> OperatorStep:
        """Step ``step`` of the episode on ``scene`` (a MujocoAloha, before its physics)."""
        if self.rule.engaged:
            action = self.expert.act(scene)
        else:
            if self._since_plan % self.replan_steps == 0:
                self.expert.take_over(scene)
            action = self.expert.next_action()
            self._since_plan += 1
        follower = scene.policy_state()
        divergence = float(np.max(np.abs(follower[self._arm_joints]
                                         - action[self._arm_joints])))
        request = self.rule.update(step, divergence)
        if request == TAKE_OVER:  # from the state found now, not the policy-time plan
            self.expert.take_over(scene)
            action = self.expert.next_action()
        elif request == HAND_BACK:
            self.expert.reset()
            self._since_plan = 0
        return OperatorStep(self._leaders(action), request, divergence)

    def _leaders(self, action: np.ndarray) -> list[np.ndarray]:
        from vla_adapter_ros.sim.corrective_expert import leader_positions
        return leader_positions(self.robot, action)

    def close(self) -> None:
        """Free the expert's shadow scene."""
        self.expert.close()
