"""Arm and gripper facts for ALOHA / Interbotix ViperX 300 S arms (pure numpy, no rclpy).

This module is the single source of truth for joint order, joint limits and the gripper
conversions. It imports no ROS, so training code (rosbag datasets) uses the very same conversions
as the nodes on the robot.

Conventions (ALOHA):
- Per arm, 7 values in the order waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate,
  gripper. Dual-arm vectors are 14 values: [left 7, right 7].
- The policy sees the gripper normalised to 0 (closed) .. 1 (open). The observed gripper is
  normalised in finger space (the driver's `left_finger` position, metres); the commanded gripper
  is de-normalised into the driver's `gripper` joint angle (radians).
"""

from dataclasses import dataclass, field

import numpy as np

ARM_JOINT_NAMES: tuple[str, ...] = (
    'waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate')
GRIPPER_JOINT_NAME = 'gripper'
FINGER_JOINT_NAME = 'left_finger'
JOINTS_PER_ARM = len(ARM_JOINT_NAMES) + 1
DUAL_ARM_DIM = 2 * JOINTS_PER_ARM

# ViperX 300 S joint position limits (radians), in ARM_JOINT_NAMES order.
VX300S_LOWER_LIMITS: tuple[float, ...] = (-3.14158, -1.85005, -1.76278, -3.14158, -1.8675,
                                          -3.14158)
VX300S_UPPER_LIMITS: tuple[float, ...] = (3.14158, 1.25664, 1.6057, 3.14158, 2.23402, 3.14158)


@dataclass(frozen=True)
class GripperCalibration:
    """Gripper end points of one arm (ALOHA follower defaults).

    finger_open / finger_closed: the driver's `left_finger` joint position (metres) when fully
    open / closed. joint_open / joint_closed: the `gripper` joint angle (radians) to command for
    fully open / closed.
    """

    finger_open: float = 0.0579
    finger_closed: float = 0.0440
    joint_open: float = 1.6214
    joint_closed: float = 0.6197

    def __post_init__(self) -> None:
        if self.finger_open == self.finger_closed:
            raise ValueError(
                f'finger_open ({self.finger_open}) must differ from finger_closed '
                f'({self.finger_closed})')
        if self.joint_open == self.joint_closed:
            raise ValueError(
                f'joint_open ({self.joint_open}) must differ from joint_closed '
                f'({self.joint_closed})')

    def normalize_finger(self, finger_position: float | np.ndarray) -> np.ndarray:
        """Finger position (m) -> 0 (closed) .. 1 (open); not clipped (sensor truth)."""
        span = self.finger_open - self.finger_closed
        return (np.asarray(finger_position, dtype=np.float64) - self.finger_closed) / span

    def normalize_joint(self, joint_angle: float | np.ndarray) -> np.ndarray:
        """Gripper joint angle (rad) -> 0 (closed) .. 1 (open); not clipped."""
        span = self.joint_open - self.joint_closed
        return (np.asarray(joint_angle, dtype=np.float64) - self.joint_closed) / span

    def joint_from_normalized(self, normalized: float | np.ndarray) -> np.ndarray:
        """0 (closed) .. 1 (open) -> gripper joint angle (rad), clipped to the calibrated span."""
        value = np.clip(np.asarray(normalized, dtype=np.float64), 0.0, 1.0)
        return self.joint_closed + value * (self.joint_open - self.joint_closed)

    @property
    def joint_limits(self) -> tuple[float, float]:
        """(lower, upper) gripper joint angle, radians."""
        return (min(self.joint_open, self.joint_closed), max(self.joint_open, self.joint_closed))


@dataclass(frozen=True)
class ArmLimits:
    """Position limits of one arm: 6 arm joints plus the gripper joint angle (radians)."""

    lower: tuple[float, ...] = VX300S_LOWER_LIMITS
    upper: tuple[float, ...] = VX300S_UPPER_LIMITS
    gripper: GripperCalibration = field(default_factory=GripperCalibration)

    def __post_init__(self) -> None:
        for name in ('lower', 'upper'):
            values = getattr(self, name)
            if len(values) != len(ARM_JOINT_NAMES):
                raise ValueError(
                    f'{name} must have {len(ARM_JOINT_NAMES)} values (one per arm joint), '
                    f'got {len(values)}: {values}')
            if not np.all(np.isfinite(values)):
                raise ValueError(f'{name} must be finite, got {values}')
        bad = [name for name, lo, hi in zip(ARM_JOINT_NAMES, self.lower, self.upper) if lo >= hi]
        if bad:
            raise ValueError(f'lower limit must be below upper limit for joints {bad}')

    def joint_angle_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (7,): arm joints then the gripper joint angle."""
        g_lo, g_hi = self.gripper.joint_limits
        return (np.array([*self.lower, g_lo], dtype=np.float64),
                np.array([*self.upper, g_hi], dtype=np.float64))


def arm_slices(num_arms: int) -> list[slice]:
    """Slices of each arm's 7 values inside a (7 * num_arms,) vector: [left, right] order."""
    if num_arms not in (1, 2):
        raise ValueError(f'num_arms must be 1 or 2, got {num_arms}')
    return [slice(i * JOINTS_PER_ARM, (i + 1) * JOINTS_PER_ARM) for i in range(num_arms)]


def policy_to_joint_angles(action: np.ndarray, grippers: list[GripperCalibration]) -> np.ndarray:
    """Policy action with normalised grippers -> joint angles incl. the gripper angle (rad).

    action: (..., 7 * len(grippers)); returns a float64 array of the same shape.
    """
    action = np.asarray(action, dtype=np.float64)
    expected = JOINTS_PER_ARM * len(grippers)
    if action.shape[-1] != expected:
        raise ValueError(f'action has {action.shape[-1]} values per step, expected {expected}')
    out = action.copy()
    for arm, calibration in zip(arm_slices(len(grippers)), grippers):
        gripper_index = arm.stop - 1
        out[..., gripper_index] = calibration.joint_from_normalized(action[..., gripper_index])
    return out


def joint_angles_to_policy(angles: np.ndarray, grippers: list[GripperCalibration]) -> np.ndarray:
    """Inverse of policy_to_joint_angles (gripper joint angle -> normalised); not clipped."""
    angles = np.asarray(angles, dtype=np.float64)
    expected = JOINTS_PER_ARM * len(grippers)
    if angles.shape[-1] != expected:
        raise ValueError(f'joint vector has {angles.shape[-1]} values, expected {expected}')
    out = angles.copy()
    for arm, calibration in zip(arm_slices(len(grippers)), grippers):
        gripper_index = arm.stop - 1
        out[..., gripper_index] = calibration.normalize_joint(angles[..., gripper_index])
    return out
