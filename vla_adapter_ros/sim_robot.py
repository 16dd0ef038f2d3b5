"""A kinematic stand-in for an ALOHA (pure numpy, no rclpy): arms that follow commands, cameras.

Used by the simulated-robot node (`sim_robot_node.py`), the demo and the tests. It is not a
physics simulation: each arm's joints move towards the last commanded position with a first-order
lag and a speed limit, the fingers follow the gripper joint, and the cameras render a coloured
scene whose content depends on the arms' pose (so a policy's input changes as the robot moves).
"""

from dataclasses import dataclass, field

import numpy as np

from vla_adapter_ros.robot_model import (
    ARM_JOINT_NAMES,
    FINGER_JOINT_NAME,
    GRIPPER_JOINT_NAME,
    JOINTS_PER_ARM,
    ArmLimits,
    GripperCalibration,
)

# The ALOHA "sleep-to-work" start pose of one arm (radians; gripper open), inside ViperX limits.
DEFAULT_START_POSE: tuple[float, ...] = (0.0, -0.96, 1.16, 0.0, -0.3, 0.0, 1.6214)
JOINT_STATE_NAMES: tuple[str, ...] = (*ARM_JOINT_NAMES, GRIPPER_JOINT_NAME, FINGER_JOINT_NAME,
                                      'right_finger')


@dataclass
class SimArmConfig:
    """Kinematics of one simulated arm."""

    time_constant_s: float = 0.05
    max_joint_speed: float = 3.0
    start_pose: tuple[float, ...] = DEFAULT_START_POSE
    limits: ArmLimits = field(default_factory=ArmLimits)

    def __post_init__(self) -> None:
        if not self.time_constant_s > 0.0:
            raise ValueError(f'time_constant_s must be > 0, got {self.time_constant_s}')
        if not self.max_joint_speed > 0.0:
            raise ValueError(f'max_joint_speed must be > 0, got {self.max_joint_speed}')
        if len(self.start_pose) != JOINTS_PER_ARM:
            raise ValueError(
                f'start_pose must have {JOINTS_PER_ARM} values, got {len(self.start_pose)}')


class SimArm:
    """One arm: 6 joints + gripper joint angle, following the last command."""

    def __init__(self, config: SimArmConfig) -> None:
        self.config = config
        self.position = np.array(config.start_pose, dtype=np.float64)  # (7,)
        self.target = self.position.copy()
        self.velocity = np.zeros(JOINTS_PER_ARM)
        self.commands_received = 0

    def command_arm(self, positions: np.ndarray) -> None:
        """Set the 6 arm-joint targets (radians); out-of-range values are clipped."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (len(ARM_JOINT_NAMES),) or not np.all(np.isfinite(positions)):
            raise ValueError(f'arm command must be 6 finite values, got {positions.tolist()}')
        lower, upper = self.config.limits.joint_angle_bounds()
        self.target[:-1] = np.clip(positions, lower[:-1], upper[:-1])
        self.commands_received += 1

    def command_gripper(self, angle: float) -> None:
        """Set the gripper joint-angle target (radians)."""
        if not np.isfinite(angle):
            raise ValueError(f'gripper command must be finite, got {angle}')
        lower, upper = self.config.limits.gripper.joint_limits
        self.target[-1] = float(np.clip(angle, lower, upper))
        self.commands_received += 1

    def step(self, dt: float) -> None:
        """Advance by dt seconds: first-order lag towards the target, speed-limited."""
        alpha = 1.0 - np.exp(-dt / self.config.time_constant_s)
        delta = alpha * (self.target - self.position)
        max_step = self.config.max_joint_speed * dt
        delta = np.clip(delta, -max_step, max_step)
        self.velocity = delta / dt
        self.position = self.position + delta

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) in JOINT_STATE_NAMES order; fingers in metres."""
        calibration: GripperCalibration = self.config.limits.gripper
        opening = calibration.normalize_joint(self.position[-1])
        finger = calibration.finger_closed + opening * (
            calibration.finger_open - calibration.finger_closed)
        positions = np.concatenate([self.position, [finger, -finger]])
        velocities = np.concatenate([self.velocity, [0.0, 0.0]])
        return positions, velocities


class SceneRenderer:
    """Renders an HxW RGB frame per camera: a table, a block, and a marker per arm.

    The marker positions follow the arms' waist and shoulder angles, so frames change as the
    arms move. Rendering one 480x640 frame costs about a millisecond.
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
        """Frame (H, W, 3) uint8 for one camera given each arm's 7 joint values."""
        frame = self._background.copy()
        h, w = self.height, self.width
        block = (h // 2 + 10 * camera_index, w // 2 - 20 * camera_index)
        self._fill_square(frame, block, max(4, h // 16), (220, 30, 30))
        for arm_index, position in enumerate(arm_positions):
            row = int(h * (0.5 + 0.3 * np.tanh(position[1])))
            col = int(w * (0.25 + 0.5 * arm_index + 0.2 * np.tanh(position[0])))
            colour = (30, 200, 30) if arm_index == 0 else (30, 30, 220)
            self._fill_square(frame, (row, col), max(3, h // 24), colour)
        return frame

    def _fill_square(self, frame: np.ndarray, centre: tuple[int, int], half: int,
                     colour: tuple[int, int, int]) -> None:
        row, col = centre
        top, bottom = max(0, row - half), min(self.height, row + half)
        left, right = max(0, col - half), min(self.width, col + half)
        frame[top:bottom, left:right] = colour
