"""The scripted TransferCube expert on the MuJoCo ALOHA (no rclpy): script, replay, demos.

An ACT-style waypoint script moves the two grippers in the end-effector (mocap) scene
(:class:`TransferCubeScript`: the right gripper picks the cube, meets the left one above the
table centre, the left closes, the right lets go); the joint positions that produced are
replayed in the joint-space scene with the same cube pose (:func:`replay_in_joint_space`).
Used by `vla-adapter-sim-demos` and by sim-eval's mean-demonstration baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
import time

import numpy as np

from vla_adapter_core.robot_description import RobotDescription, load_robot_description

EPISODE_STEPS = 400  # 8 s at 50 Hz, as the gym-aloha tasks
MEET_POINT = np.array([0.0, 0.5, 0.25])  # where the cube changes hands, m


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (w, x, y, z) quaternions."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw])


def axis_angle_quaternion(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """(w, x, y, z) rotation of ``degrees`` about the unit ``axis``."""
    half = np.radians(degrees) / 2.0
    return np.concatenate([[np.cos(half)], np.sin(half) * np.asarray(axis, dtype=np.float64)])


@dataclass(frozen=True)
class Waypoint:
    """Gripper pose and opening (0 closed .. 1 open) to reach at control step ``step``."""

    step: int
    position: np.ndarray  # (3,) m
    quaternion: np.ndarray  # (4,) w, x, y, z
    gripper: float


CUBE_GRASPED_STEP = 170  # the right gripper has closed on the cube; it moves after this step


class TransferCubeScript:
    """Waypoints of both grippers for one cube pose; :meth:`at` interpolates them linearly."""

    def __init__(self, start_positions: np.ndarray, start_quaternions: np.ndarray,
                 cube: np.ndarray) -> None:
        """``start_*``: (2, 3) / (2, 4) gripper poses (left, right); ``cube``: (3,) m."""
        left_start, right_start = start_positions
        left_quat = quaternion_multiply(start_quaternions[0],
                                        axis_angle_quaternion((1, 0, 0), 90))
        pick_quat = quaternion_multiply(start_quaternions[1],
                                        axis_angle_quaternion((0, 1, 0), -60))
        meet = MEET_POINT
        self.left = [
            Waypoint(0, left_start, start_quaternions[0], 1.0),
            Waypoint(100, meet + [-0.1, 0, -0.02], left_quat, 1.0),
            Waypoint(260, meet + [0.02, 0, -0.02], left_quat, 1.0),
            Waypoint(310, meet + [0.02, 0, -0.02], left_quat, 0.0),  # grasp
            Waypoint(360, meet + [-0.1, 0, -0.02], left_quat, 0.0),
            Waypoint(EPISODE_STEPS, meet + [-0.1, 0, -0.02], left_quat, 0.0),
        ]
        self.right = [
            Waypoint(0, right_start, start_quaternions[1], 1.0),
            Waypoint(90, cube + [0, 0, 0.08], pick_quat, 1.0),  # above the cube
            Waypoint(130, cube + [0, 0, -0.015], pick_quat, 1.0),
            Waypoint(CUBE_GRASPED_STEP, cube + [0, 0, -0.015], pick_quat, 0.0),  # grasp
            Waypoint(200, meet + [0.05, 0, 0], pick_quat, 0.0),
            Waypoint(220, meet, pick_quat, 0.0),
            Waypoint(310, meet, pick_quat, 1.0),  # release
            Waypoint(360, meet + [0.1, 0, 0], pick_quat, 1.0),
            Waypoint(EPISODE_STEPS, meet + [0.1, 0, 0], pick_quat, 1.0),
        ]

    @staticmethod
    def _interpolate(waypoints: list[Waypoint], step: int) -> tuple[np.ndarray, np.ndarray, float]:
        for before, after in zip(waypoints, waypoints[1:]):
            if before.step <= step <= after.step:
                fraction = (step - before.step) / max(1, after.step - before.step)
                position = before.position + fraction * (after.position - before.position)
                quaternion = before.quaternion + fraction * (after.quaternion - before.quaternion)
                gripper = before.gripper + fraction * (after.gripper - before.gripper)
                return position, quaternion / np.linalg.norm(quaternion), gripper
        last = waypoints[-1]
        return last.position, last.quaternion, last.gripper

    def at(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(2, 3) positions, (2, 4) quaternions and (2,) grippers for control step ``step``."""
        left = self._interpolate(self.left, step)
        right = self._interpolate(self.right, step)
        return (np.stack([left[0], right[0]]), np.stack([left[1], right[1]]),
                np.array([left[2], right[2]]))


def scripted_joint_trajectory(robot: RobotDescription, seed: int,
                              steps: int = EPISODE_STEPS) -> tuple[np.ndarray, int]:
    """Run the script in the mocap scene: ((steps, 14) policy-unit targets, max reward).

    Target ``t`` is where the arm joints were after mocap step ``t``, with the scripted
    (commanded, not measured) gripper openings.
    """
    from vla_adapter_ros.sim.mujoco_aloha import MocapAloha
    scene = MocapAloha(robot)
    positions, quaternions = scene.reset(seed)
    script = TransferCubeScript(positions, quaternions, scene.object_position('box'))
    targets = np.empty((steps, robot.action_dim))
    best = 0
    for step in range(steps):
        pose, quat, grippers = script.at(step + 1)
        best = max(best, scene.step(pose, quat, grippers))
        state = scene.policy_state()  # (14,)
        state[6], state[13] = grippers
        targets[step] = state
    return targets, best


@dataclass
class ReplayFrame:
    """What the robot showed before one control step, and what it was commanded."""

    time_ns: int
    images: dict[str, np.ndarray]  # camera -> (H, W, 3) uint8
    joint_states: list[tuple[np.ndarray, np.ndarray]]  # per arm: positions, velocities
    command: np.ndarray  # (14,) joint angles, driver units
    reward: int = 0


def joint_disturbance(robot: RobotDescription, steps: int, std_rad: float,
                      seed: int) -> np.ndarray:
    """(steps, 14) smooth random offsets of the arm joints (grippers untouched), rad.

    White noise low-passed over about half a second (25 steps), scaled to ``std_rad``; zero for
    the first and last 50 steps (the push starts at step 50 and ends at step -50), so an episode
    starts and ends on the demonstration.
    """
    if std_rad <= 0.0:
        return np.zeros((steps, robot.action_dim))
    rng = np.random.default_rng(seed + 7919)
    noise = rng.standard_normal((steps, robot.action_dim))
    kernel = np.hanning(25)
    smooth = np.stack([np.convolve(noise[:, dim], kernel, mode='same')
                       for dim in range(robot.action_dim)], axis=1)
    smooth *= std_rad / max(1e-9, smooth.std())
    for arm_slice in robot.arm_slices():
        smooth[:, arm_slice.stop - 1] = 0.0  # grippers
    smooth[:50] = 0.0
    smooth[-50:] = 0.0
    return smooth


def replay_in_joint_space(robot: RobotDescription, seed: int, targets: np.ndarray,
                          cameras: tuple[str, ...], image_hw: tuple[int, int],
                          disturbance: np.ndarray | None = None,
                          start_ns: int = 1_000_000_000) -> tuple[list[ReplayFrame], int]:
    """Command ``targets`` (steps, 14) in the joint-space scene; frames and max reward.

    ``disturbance`` (steps, 14), when given, is added to what the simulated arms track (a push
    the robot did not ask for) while the recorded command stays the demonstration's: the data
    then shows the way back to the demonstration from nearby states.
    """
    from vla_adapter_ros.sim.mujoco_aloha import CONTROL_PERIOD_S, MujocoAloha
    scene = MujocoAloha(robot)
    scene.reset(seed)
    frames, best = [], 0
    period_ns = int(round(CONTROL_PERIOD_S * 1e9))
    for step, target in enumerate(targets):
        images = {camera: scene.render(camera, *image_hw) for camera in cameras}
        states = [scene.arm_state(index) for index in range(robot.num_arms)]
        scene.command_policy_action(target)
        command = scene.targets.copy()  # (14,) driver units
        if disturbance is not None:
            scene.command_policy_action(target + disturbance[step])
        reward = scene.step()
        best = max(best, reward)
        frames.append(ReplayFrame(start_ns + step * period_ns, images, states, command, reward))
    return frames, best


@dataclass(frozen=True)
class DemoEpisodeConfig:
    """What one scripted demonstration records."""

    robot: str = 'aloha_sim'
    image_height: int = 96
    image_width: int = 128
    disturbance_std: float = 0.0
    steps: int = EPISODE_STEPS


def run_demo(settings: DemoEpisodeConfig, seed: int) -> dict:
    """Script + replay for ``seed`` (in a worker process): frames and rewards."""
    robot = load_robot_description(settings.robot)
    started = time.perf_counter()
    targets, mocap_reward = scripted_joint_trajectory(robot, seed, settings.steps)
    disturbance = joint_disturbance(robot, settings.steps, settings.disturbance_std, seed)
    frames, reward = replay_in_joint_space(
        robot, seed, targets, robot.cameras, (settings.image_height, settings.image_width),
        disturbance if settings.disturbance_std > 0 else None)
    return {'seed': seed, 'frames': frames, 'mocap_reward': mocap_reward, 'reward': reward,
            'seconds': time.perf_counter() - started}
