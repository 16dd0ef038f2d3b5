"""The kinematic ALOHA stand-in: arms follow commands within limits, cameras show the pose."""

import numpy as np
import pytest

from vla_adapter_ros.robot_model import ArmLimits, GripperCalibration
from vla_adapter_ros.sim_robot import (
    DEFAULT_START_POSE,
    JOINT_STATE_NAMES,
    SceneRenderer,
    SimArm,
    SimArmConfig,
)


def test_arm_converges_to_command_and_respects_speed_limit():
    arm = SimArm(SimArmConfig(time_constant_s=0.05, max_joint_speed=2.0))
    target = np.array([0.3, -0.5, 0.8, 0.1, 0.2, -0.4])
    arm.command_arm(target)
    previous = arm.position.copy()
    for _ in range(300):
        arm.step(0.01)
        assert np.all(np.abs(arm.position - previous) <= 2.0 * 0.01 + 1e-12)
        previous = arm.position.copy()
    np.testing.assert_allclose(arm.position[:6], target, atol=1e-6)
    assert arm.position[6] == pytest.approx(DEFAULT_START_POSE[6])


def test_commands_outside_limits_are_clipped_and_nan_rejected():
    arm = SimArm(SimArmConfig())
    arm.command_arm(np.array([10.0, -10.0, 0.0, 0.0, 0.0, 0.0]))
    lower, upper = ArmLimits().joint_angle_bounds()
    assert arm.target[0] == upper[0] and arm.target[1] == lower[1]
    with pytest.raises(ValueError, match='finite'):
        arm.command_arm(np.array([np.nan, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match='finite'):
        arm.command_gripper(float('inf'))


def test_joint_state_fingers_follow_gripper_angle():
    calibration = GripperCalibration()
    arm = SimArm(SimArmConfig(start_pose=(0, 0, 0, 0, 0, 0, calibration.joint_closed)))
    positions, velocities = arm.joint_state()
    assert len(positions) == len(JOINT_STATE_NAMES) == len(velocities)
    assert positions[JOINT_STATE_NAMES.index('left_finger')] == pytest.approx(
        calibration.finger_closed)
    arm.command_gripper(calibration.joint_open)
    for _ in range(200):
        arm.step(0.01)
    positions, _ = arm.joint_state()
    assert positions[JOINT_STATE_NAMES.index('left_finger')] == pytest.approx(
        calibration.finger_open, abs=1e-6)


def test_rendered_frames_depend_on_pose_and_camera():
    renderer = SceneRenderer(48, 64)
    pose_a = [np.zeros(7), np.zeros(7)]
    pose_b = [np.full(7, 0.8), np.zeros(7)]
    frame = renderer.render(0, pose_a)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert not np.array_equal(frame, renderer.render(0, pose_b))
    assert not np.array_equal(frame, renderer.render(1, pose_a))
    with pytest.raises(ValueError, match='16x16'):
        SceneRenderer(8, 8)
