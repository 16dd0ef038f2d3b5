"""The kinematic stand-in: arms of any description follow commands within limits, cameras."""

import numpy as np
import pytest

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.params.sim_robot_config import SIM_ROBOT_PARAMETERS, SimRobotConfig
from vla_adapter_ros.sim.kinematic_robot import SceneRenderer, SimArm, build_sim_arms

ALOHA = load_robot_description('aloha')
WX250 = load_robot_description('wx250')


def test_arm_starts_at_the_start_pose_converges_and_respects_speed_limits():
    arm = SimArm(ALOHA.arms[0], time_constant_s=0.05)
    start = ALOHA.arms[0].joint_angles_from_action(ALOHA.arms[0].start_pose)
    np.testing.assert_allclose(arm.position, start)
    target = np.array([0.3, -0.5, 0.8, 0.1, 0.2, -0.4])
    arm.command_arm(target)
    previous = arm.position.copy()
    max_step = ALOHA.arms[0].max_joint_speed() * 0.01
    for _ in range(300):
        arm.step(0.01)
        assert np.all(np.abs(arm.position - previous) <= max_step + 1e-12)
        previous = arm.position.copy()
    np.testing.assert_allclose(arm.position[:6], target, atol=1e-6)
    assert arm.position[6] == pytest.approx(start[6])


def test_a_five_joint_arm_has_the_driver_names_and_five_joint_commands():
    arms = build_sim_arms(WX250)
    assert list(arms) == list(WX250.namespaces)
    arm = arms[WX250.namespaces[0]]
    assert arm.joint_state_names == WX250.arms[0].driver_joint_names
    assert 'forearm_roll' not in arm.joint_state_names
    positions, velocities = arm.joint_state()
    assert len(positions) == len(velocities) == len(arm.joint_state_names) == 8
    arm.command_arm(np.array([0.1, 0.2, -0.3, 0.4, 0.5]))
    with pytest.raises(ValueError, match='5 finite values'):
        arm.command_arm(np.zeros(6))


def test_commands_outside_limits_are_clipped_and_nan_rejected():
    arm = SimArm(ALOHA.arms[0])
    arm.command_arm(np.array([10.0, -10.0, 0.0, 0.0, 0.0, 0.0]))
    lower, upper = ALOHA.arms[0].joint_angle_bounds()
    assert arm.target[0] == upper[0] and arm.target[1] == lower[1]
    arm.command_gripper(100.0)
    assert arm.target[-1] == upper[-1]
    with pytest.raises(ValueError, match='finite'):
        arm.command_arm(np.array([np.nan, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match='finite'):
        arm.command_gripper(float('inf'))
    with pytest.raises(ValueError, match='time_constant_s'):
        SimArm(ALOHA.arms[0], time_constant_s=0.0)


def test_fingers_follow_the_gripper_angle_through_the_calibration():
    description = ALOHA.arms[1]
    gripper = description.gripper
    closed = np.array([*description.start_pose[:-1], 0.0])  # policy units: gripper closed
    arm = SimArm(description, start=closed)
    names = arm.joint_state_names
    left, right = description.model.finger_joints
    positions, _ = arm.joint_state()
    assert positions[names.index(left)] == pytest.approx(gripper.finger_closed)
    assert positions[names.index(right)] == pytest.approx(-gripper.finger_closed)
    arm.command_gripper(gripper.joint_open)
    for _ in range(200):
        arm.step(0.01)
    positions, _ = arm.joint_state()
    assert positions[names.index(left)] == pytest.approx(gripper.finger_open, abs=1e-6)


def test_config_takes_the_description_and_its_overrides():
    config = SimRobotConfig.from_dict({'robot_description': 'wx250'})
    assert config.robot.name == 'wx250' and config.cameras == WX250.cameras
    assert config.camera_topics() == WX250.camera_topics()
    config = SimRobotConfig.from_dict({'robot_names': ['a', 'b'], 'camera_names': ['top'],
                                       'image_height': 64})
    assert config.robot.namespaces == ('a', 'b') and config.cameras == ('top',)
    assert config.camera_topics() == (ALOHA.camera_topic.format(camera='top'),)
    assert set(SIM_ROBOT_PARAMETERS.names) == set(SimRobotConfig.__dataclass_fields__)


@pytest.mark.parametrize(('values', 'message'), [
    ({'robot_description': 'nope'}, r"robot 'nope'.*built-in: \["),
    ({'robot_names': ['only_one']}, 'namespaces'),
    ({'camera_names': ['a/b']}, 'camera_names'),
    ({'image_width': 8}, r'image_width=8: must be within'),
    ({'tracking_time_constant_s': 0.0}, 'tracking_time_constant_s'),
    ({'camera_rate': 30.0}, 'unknown parameters'),
])
def test_bad_parameters_are_refused_naming_the_parameter(values, message):
    with pytest.raises(ValueError, match=message):
        SimRobotConfig.from_dict(values)


def test_rendered_frames_depend_on_pose_and_camera():
    renderer = SceneRenderer(48, 64)
    pose_a = [np.zeros(7), np.zeros(7)]
    pose_b = [np.full(7, 0.8), np.zeros(7)]
    frame = renderer.render(0, pose_a)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert not np.array_equal(frame, renderer.render(0, pose_b))
    assert not np.array_equal(frame, renderer.render(1, pose_a))
    assert renderer.render(0, [np.zeros(6)]).shape == (48, 64, 3)
    with pytest.raises(ValueError, match='16x16'):
        SceneRenderer(8, 8)
