"""A kinematic stand-in for any described robot (numpy only, no rclpy): arms and cameras.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/sim/kinematic_robot.py.
"""

import numpy as np

from vla_adapter_core.robot_description import Arm, RobotDescription


class SimArm:
    """One arm: its arm joints + the gripper joint angle, following the last command.

    ``position``, ``target`` and ``velocity`` are (arm.dim,) in ``arm.command_joint_names``
    order (rad). The arm starts at ``start`` (policy units; default the description's start
    pose).
    """

    def __init__(self, arm: Arm, time_constant_s: float = 0.05,
                 start: np.ndarray | None = None) -> None:
        if not time_constant_s > 0.0:
            raise ValueError(f'time_constant_s={time_constant_s!r}: must be > 0')
        self.arm = arm
        self.time_constant_s = float(time_constant_s)
        self.lower, self.upper = arm.joint_angle_bounds()  # (dim,) each
        self.max_speed = arm.max_joint_speed()  # (dim,) rad/s
        pose = arm.start_pose if start is None else start
        self.position = np.clip(arm.joint_angles_from_action(pose), self.lower, self.upper)
        self.target = self.position.copy()
        self.velocity = np.zeros(arm.dim)
        self.commands_received = 0

    @property
    def joint_state_names(self) -> tuple[str, ...]:
        """Names of :meth:`joint_state` entries: the driver's joint_states order."""
        return self.arm.driver_joint_names

    def command_arm(self, positions: np.ndarray) -> None:
        """Set the arm-joint targets (rad, driver order); out-of-range values are clipped."""
        positions = np.asarray(positions, dtype=np.float64)
        joints = len(self.arm.joint_names)
        if positions.shape != (joints,) or not np.all(np.isfinite(positions)):
            raise ValueError(f'arm command must be {joints} finite values for '
                             f'{list(self.arm.joint_names)}, got {positions.tolist()}')
        self.target[:-1] = np.clip(positions, self.lower[:-1], self.upper[:-1])
        self.commands_received += 1

    def command_gripper(self, angle: float) -> None:
        """Set the gripper joint-angle target (rad), clipped to the calibrated span."""
        if not np.isfinite(angle):
            raise ValueError(f'gripper command must be finite, got {angle}')
        self.target[-1] = float(np.clip(angle, self.lower[-1], self.upper[-1]))
        self.commands_received += 1

    def step(self, dt: float) -> None:
        """Advance by dt seconds: first-order lag towards the target, speed-limited per joint."""
        alpha = 1.0 - np.exp(-dt / self.time_constant_s)
        delta = alpha * (self.target - self.position)  # (dim,)
        max_step = self.max_speed * dt  # (dim,)
        delta = np.clip(delta, -max_step, max_step)
        self.velocity = delta / dt
        self.position = self.position + delta

    def finger_position(self) -> float:
        """The first finger joint (m) for the current gripper angle, through the calibration."""
        gripper = self.arm.gripper
        return float(gripper.finger_from_normalized(gripper.normalize_joint(self.position[-1])))

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) in :attr:`joint_state_names` order; fingers in metres.

        Like the Interbotix driver, the first finger joint reports +finger and the others
        -finger (the mirrored finger).
        """
        finger = self.finger_position()
        fingers = [finger] + [-finger] * (len(self.arm.model.finger_joints) - 1)
        positions = np.concatenate([self.position, fingers])
        velocities = np.concatenate([self.velocity, np.zeros(len(fingers))])
        return positions, velocities


def build_sim_arms(robot: RobotDescription,
                   time_constant_s: float = 0.05) -> dict[str, SimArm]:
    """{driver namespace: SimArm} for every follower arm of ``robot``, at its start pose."""
    return {arm.namespace: SimArm(arm, time_constant_s) for arm in robot.arms}


class SceneRenderer:
    """Renders an HxW RGB frame per camera: a table, a block, and a marker per arm.

    The marker positions follow the arms' first two joints (waist and shoulder on Interbotix
    arms), so frames change as the arms move. Rendering one 480x640 frame costs about a
    millisecond.
    """

    def __init__(self, height: int, width: int) -> None:
        if height < 16 or width < 16:
            raise ValueError(f'image size must be at least 16x16, got {height}x{width}')
        self.height = height
        self.width = width
        self._background = np.empty((height, width, 3), dtype=np.uint8)
        self._background[:] = (96, 72, 48)  # table
        self._background[: height // 3] = (200, 200, 210)  # wall

    def render(self, camera_index: int, arm_positions: list[np.ndarray]) -> np.ndarray:
        """Frame (H, W, 3) uint8 for one camera given each arm's joint values."""
        frame = self._background.copy()
        h, w = self.height, self.width
        block = (h // 2 + 10 * camera_index, w // 2 - 20 * camera_index)
        self._fill_square(frame, block, max(4, h // 16), (220, 30, 30))
        columns = max(1, len(arm_positions))
        for arm_index, position in enumerate(arm_positions):
            waist, shoulder = position[0], position[min(1, len(position) - 1)]
            row = int(h * (0.5 + 0.3 * np.tanh(shoulder)))
            col = int(w * ((arm_index + 0.5) / columns + 0.2 * np.tanh(waist)))
            colour = (30, 200, 30) if arm_index == 0 else (30, 30, 220)
            self._fill_square(frame, (row, col), max(3, h // 24), colour)
        return frame

    def _fill_square(self, frame: np.ndarray, centre: tuple[int, int], half: int,
                     colour: tuple[int, int, int]) -> None:
        row, col = centre
        top, bottom = max(0, row - half), min(self.height, row + half)
        left, right = max(0, col - half), min(self.width, col + half)
        frame[top:bottom, left:right] = colour
