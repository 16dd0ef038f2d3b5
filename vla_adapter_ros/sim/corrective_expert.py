"""A corrective TransferCube expert that acts from any state of the MuJoCo ALOHA (no rclpy).

The operator of a simulated takeover (HG-DAgger): at a takeover it reads the true state of the
joint-space scene (arm joints, finger slides, the cube and what touches it), decides which
stage of the task is left (pick the cube with the right arm; hand it to the left; let go),
plans the remaining gripper waypoints as the scripted demonstration does, and solves the arm
joints with MuJoCo's own kinematics: a shadow end-effector scene (:class:`MocapAloha`), synced to
the true state, whose mocap welds pull the grippers along the plan. Its joint positions, with
the planned gripper openings, are the leader arms' pose at every step (:meth:`next_action`,
policy units) -- published as the leaders' joint_states, the executor's takeover path is the
robot's.

Stages, read from gym-aloha's own contact reward (sim/scripted_expert.py has the waypoints of
a whole episode): below 2 the cube is not lifted by the right gripper -> pick it and hand it
over; 2 (lifted by the right) -> hand over; 3 or more (the left touches it) -> close the left,
open the right, move apart.
"""

from __future__ import annotations

import numpy as np

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.sim.scripted_expert import (
    MEET_POINT,
    Waypoint,
    axis_angle_quaternion,
    quaternion_multiply,
)

LEFT_QUAT = axis_angle_quaternion((1, 0, 0), 90)  # the script's left orientation (mocap frame)
PICK_QUAT = axis_angle_quaternion((0, 1, 0), -60)  # the script's right orientation
LEFT_PRE, LEFT_GRASP = MEET_POINT + [-0.1, 0, -0.02], MEET_POINT + [0.02, 0, -0.02]
LIFTED, LEFT_TOUCHES, SUCCESS = 2, 3, 4  # gym-aloha TransferCube reward stages
REACH_M_PER_STEP = 0.0025  # the approach to the cube: about the script's pace (0.3 m in 90)


def quaternion_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit (w, x, y, z) quaternion."""
    return np.array([q[0], -q[1], -q[2], -q[3]])


def leader_positions(robot: RobotDescription, action: np.ndarray) -> list[np.ndarray]:
    """An action (policy units, (14,)) as each leader arm's joint_states positions.

    Per leader, in its driver's joint order: the arm joints, the gripper joint angle (the
    action's normalised gripper through the LEADER's calibration, as a human's leader would
    read) and the fingers from the leader's finger calibration. The executor's takeover maps
    them back (pipeline/takeover.py) to the follower command the action means.
    """
    positions = []
    for leader, part in zip(robot.leaders, robot.split(np.asarray(action, dtype=np.float64))):
        angles = leader.joint_angles_from_action(part)  # (7,) rad
        finger = float(leader.gripper.finger_from_normalized(np.clip(part[-1], 0.0, 1.0)))
        positions.append(np.concatenate([angles, [finger, -finger]]))
    return positions


def rotate(q: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``vector`` (3,) rotated by the unit quaternion ``q``."""
    return quaternion_multiply(quaternion_multiply(q, np.concatenate([[0.0], vector])),
                              quaternion_conjugate(q))[1:]


def _interpolate(waypoints: list[Waypoint], step: int) -> tuple[np.ndarray, np.ndarray, float]:
    for before, after in zip(waypoints, waypoints[1:]):
        if before.step <= step <= after.step:
            fraction = (step - before.step) / max(1, after.step - before.step)
            quaternion = before.quaternion + fraction * (after.quaternion - before.quaternion)
            return (before.position + fraction * (after.position - before.position),
                    quaternion / np.linalg.norm(quaternion),
                    before.gripper + fraction * (after.gripper - before.gripper))
    last = waypoints[-1]
    return last.position, last.quaternion, last.gripper


def _aligned(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` or its equal negative, whichever is nearer ``current`` (short interpolation)."""
    return target if np.dot(current, target) >= 0 else -target


def plan_from(stage: int, positions: np.ndarray, quaternions: np.ndarray, openings: np.ndarray,
              cube: np.ndarray) -> tuple[list[Waypoint], list[Waypoint], list[tuple[int, int]]]:
    """(left, right) waypoints from now (step 0) for the stage the task is in, and the checks.

    A check (step, stage) says which reward stage the task must have reached by that step;
    short of it, the plan has failed (a cube that slipped) and the expert plans again.
    """
    left_q, pick_q = _aligned(quaternions[0], LEFT_QUAT), _aligned(quaternions[1], PICK_QUAT)
    left = [Waypoint(0, positions[0], quaternions[0], openings[0])]
    right = [Waypoint(0, positions[1], quaternions[1], openings[1])]
    if stage >= LEFT_TOUCHES:  # the left has it, or nearly: close, then let the right go
        left += [Waypoint(20, positions[0], left_q, openings[0]),
                 Waypoint(60, positions[0], left_q, 0.0),
                 Waypoint(110, LEFT_PRE, left_q, 0.0)]
        right += [Waypoint(60, positions[1], pick_q, openings[1]),
                  Waypoint(90, positions[1], pick_q, 1.0),
                  Waypoint(140, MEET_POINT + [0.1, 0, 0], pick_q, 1.0)]
        return left, right, [(140, SUCCESS)]
    start = 0
    if stage < LIFTED:  # pick the cube first: above it, down, grasp, up
        above = cube + [0, 0, 0.08]
        reach = int(np.clip(np.linalg.norm(positions[1] - above) / REACH_M_PER_STEP, 40, 120))
        right += [Waypoint(reach, above, pick_q, 1.0),
                  Waypoint(reach + 10, above, pick_q, 1.0),  # settle above it
                  Waypoint(reach + 50, cube + [0, 0, -0.015], pick_q, 1.0),
                  Waypoint(reach + 90, cube + [0, 0, -0.015], pick_q, 0.0)]
        start = reach + 90
    else:  # lifted already: keep it closed
        right += [Waypoint(10, positions[1], pick_q, 0.0)]
        start = 10
    # Unlike the script's overlapping blend, the right lets go only once the left has closed.
    right += [Waypoint(start + 30, MEET_POINT + [0.05, 0, 0], pick_q, 0.0),
              Waypoint(start + 50, MEET_POINT, pick_q, 0.0),
              Waypoint(start + 130, MEET_POINT, pick_q, 0.0),
              Waypoint(start + 160, MEET_POINT, pick_q, 1.0),  # release
              Waypoint(start + 200, MEET_POINT + [0.1, 0, 0], pick_q, 1.0)]
    left += [Waypoint(max(30, start - 40), LEFT_PRE, left_q, 1.0),
             Waypoint(start + 90, LEFT_GRASP, left_q, 1.0),
             Waypoint(start + 130, LEFT_GRASP, left_q, 0.0),  # grasp
             Waypoint(start + 170, LEFT_GRASP, left_q, 0.0),
             Waypoint(start + 200, LEFT_PRE, left_q, 0.0)]
    return left, right, [(start + 30, LIFTED), (start + 200, SUCCESS)]


class CorrectiveExpert:
    """Plans from the true state at :meth:`take_over`; :meth:`next_action` walks the plan."""

    def __init__(self, robot: RobotDescription, task: str = 'transfer_cube') -> None:
        """The shadow end-effector scene and each gripper's weld to its mocap body."""
        from vla_adapter_ros.sim.mujoco_aloha import ARM_PREFIXES, MocapAloha
        if task != 'transfer_cube':
            raise ValueError(f'task={task!r}: the corrective expert knows transfer_cube only')
        self.robot = robot
        self.shadow = MocapAloha(robot, task)
        self.bodies = [f'{prefix}/gripper_link' for prefix in ARM_PREFIXES]
        # Each weld holds its gripper at (position, quaternion) relative to its mocap body
        # (MuJoCo's eq_data: anchor, relative position, relative quaternion, torque scale).
        welds = self.shadow.physics.model.eq_data
        self.welds = [(welds[arm, 3:6].copy(), welds[arm, 6:10].copy()) for arm in range(2)]
        self.left: list[Waypoint] = []
        self.right: list[Waypoint] = []
        self.checks: list[tuple[int, int]] = []
        self.step = 0
        self.plan_steps = 0
        self.stage = 0
        self.plans = 0  # plans made since the last reset()

    def reset(self) -> None:
        """Forget the plan: the next :meth:`act` plans from the state it finds."""
        self.plan_steps = self.step = self.plans = 0

    def act(self, scene) -> np.ndarray:
        """The leaders' pose for the next step, planning again where the plan has failed.

        A plan is made at the first call, when the last one is walked to its end, and when a
        check finds the task short of the stage it should have reached (closed loop).
        """
        failed = any(step == self.step and scene.reward() < stage for step, stage in self.checks)
        if self.plan_steps == 0 or self.done or failed:
            self.take_over(scene)
        return self.next_action()

    def take_over(self, scene) -> int:
        """Sync the shadow to ``scene`` (a MujocoAloha) and plan the rest; the planned steps."""
        physics = self.shadow.physics
        physics.data.qpos[:] = scene.physics.data.qpos
        physics.data.qvel[:] = scene.physics.data.qvel
        physics.forward()
        quaternions = np.stack([  # the mocap poses that hold the grippers where they are
            quaternion_multiply(physics.named.data.xquat[body], quaternion_conjugate(relative))
            for body, (_, relative) in zip(self.bodies, self.welds)])
        positions = np.stack([
            physics.named.data.xpos[body] - rotate(quaternion, offset)
            for body, quaternion, (offset, _) in zip(self.bodies, quaternions, self.welds)])
        physics.data.mocap_pos[:] = positions
        physics.data.mocap_quat[:] = quaternions
        state = self.shadow.policy_state()  # (14,)
        openings = np.clip(state[[6, 13]], 0.0, 1.0)
        self.stage = scene.reward()
        cube = physics.named.data.xpos['box'].copy()
        self.left, self.right, self.checks = plan_from(self.stage, positions, quaternions,
                                                       openings, cube)
        self.step = 0
        self.plans += 1
        self.plan_steps = max(self.left[-1].step, self.right[-1].step)
        return self.plan_steps

    def next_action(self) -> np.ndarray:
        """The leaders' pose for the next control step, (14,) policy units."""
        self.step += 1
        left, right = _interpolate(self.left, self.step), _interpolate(self.right, self.step)
        grippers = np.array([left[2], right[2]])
        self.shadow.step(np.stack([left[0], right[0]]), np.stack([left[1], right[1]]), grippers)
        state = self.shadow.policy_state()
        state[6], state[13] = grippers
        return state

    @property
    def done(self) -> bool:
        """Whether the plan has been walked to its end."""
        return self.step >= self.plan_steps

    def close(self) -> None:
        """Free the shadow scene."""
        self.shadow.close()
