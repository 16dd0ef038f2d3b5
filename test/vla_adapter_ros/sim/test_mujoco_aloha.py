"""The MuJoCo ALOHA without ROS: driver units, limits, cameras, reward, scripted demonstrations."""

import os

import numpy as np
import pytest

os.environ.setdefault('MUJOCO_GL', 'egl')

from vla_adapter_core.robot_description import load_robot_description  # noqa: E402
from vla_adapter_ros.sim.mujoco_aloha import (  # noqa: E402
    MocapAloha,
    MujocoAloha,
    model_camera,
    sim_task,
)
from vla_adapter_ros.sim.scripted_expert import (  # noqa: E402
    TransferCubeScript,
    axis_angle_quaternion,
    joint_disturbance,
    quaternion_multiply,
    replay_in_joint_space,
    scripted_joint_trajectory,
)

ROBOT = load_robot_description('aloha_sim')


@pytest.fixture(scope='module')
def scene():
    return MujocoAloha(ROBOT)


def test_reset_places_the_arms_at_the_start_pose_in_driver_units(scene):
    scene.reset(3)
    for index, arm in enumerate(ROBOT.arms):
        positions, velocities = scene.arm_state(index)
        assert positions.shape == velocities.shape == (len(arm.driver_joint_names),)
        np.testing.assert_allclose(positions[:7], arm.joint_angles_from_action(arm.start_pose),
                                   atol=1e-9)
        # Fingers in metres, the second mirrored, matching the gripper joint's calibration.
        finger = arm.gripper.finger_from_normalized(arm.gripper.normalize_joint(positions[6]))
        np.testing.assert_allclose(positions[7:], [finger, -finger], atol=1e-9)
    np.testing.assert_allclose(scene.policy_state(), np.concatenate(
        [arm.start_pose for arm in ROBOT.arms]), atol=1e-9)
    assert scene.reward() == 0


def test_seed_places_the_cube_as_gym_aloha_does(scene):
    from gym_aloha.utils import sample_box_pose
    scene.reset(11)
    np.testing.assert_allclose(scene.physics.named.data.qpos['red_box_joint'],
                               sample_box_pose(11), atol=1e-12)


def test_commands_are_clipped_to_the_description_limits(scene):
    scene.reset(0)
    lower, upper = ROBOT.joint_angle_bounds()
    scene.command_arm(0, np.full(6, 100.0))
    scene.command_gripper(1, -100.0)
    np.testing.assert_allclose(scene.targets[:6], upper[:6])
    assert scene.targets[13] == lower[13]
    with pytest.raises(ValueError, match='6 finite values'):
        scene.command_arm(0, np.array([0.0, np.nan, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match='finite'):
        scene.command_gripper(0, float('inf'))


def test_arms_track_joint_commands(scene):
    scene.reset(0)
    target = np.array([0.2, -0.5, 0.8, 0.1, -0.2, 0.3])
    scene.command_arm(1, target)
    for _ in range(100):  # 2 s
        scene.step()
    positions, _ = scene.arm_state(1)
    np.testing.assert_allclose(positions[:6], target, atol=0.03)
    assert scene.time_s == pytest.approx(2.0)


def test_cameras_render_the_requested_size_only(scene):
    scene.reset(0)
    for camera in ROBOT.cameras:
        frame = scene.render(camera, 48, 64)
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert frame.flags['C_CONTIGUOUS'] and frame.std() > 1.0
    assert scene.physics.model.vis.quality.shadowsize == 0
    with pytest.raises(ValueError, match='cam_nowhere'):
        model_camera('cam_nowhere')
    with pytest.raises(ValueError, match="task='stack'"):
        sim_task('stack')


def test_quaternion_helpers():
    quarter = axis_angle_quaternion((0, 0, 1), 90)
    np.testing.assert_allclose(quaternion_multiply(quarter, quarter),
                               axis_angle_quaternion((0, 0, 1), 180), atol=1e-12)
    np.testing.assert_allclose(quaternion_multiply([1, 0, 0, 0], quarter), quarter)


def test_script_interpolates_between_waypoints():
    start = np.array([[-0.3, 0.5, 0.3], [0.3, 0.5, 0.3]])
    quats = np.tile([1.0, 0, 0, 0], (2, 1))
    script = TransferCubeScript(start, quats, np.array([0.1, 0.5, 0.05]))
    positions, quaternions, grippers = script.at(0)
    np.testing.assert_allclose(positions, start)
    np.testing.assert_allclose(np.linalg.norm(quaternions, axis=1), 1.0)
    _, _, grippers = script.at(170)  # the right gripper has closed on the cube
    assert grippers[1] == 0.0 and grippers[0] == 1.0


def test_disturbance_is_smooth_and_spares_grippers_and_ends():
    noise = joint_disturbance(ROBOT, 400, 0.04, seed=1)
    assert noise.shape == (400, 14)
    assert not noise[:50].any() and not noise[-50:].any() and not noise[:, [6, 13]].any()
    # A push that starts at step 50 and ends at step 350, smooth in between.
    assert np.abs(np.diff(noise[50:350], axis=0)).max() < 0.2 * np.abs(noise[50:350]).max()
    assert 0.02 < noise[50:350].std() < 0.06
    assert not joint_disturbance(ROBOT, 400, 0.0, seed=1).any()


def test_scripted_demonstration_transfers_the_cube():
    targets, mocap_reward = scripted_joint_trajectory(ROBOT, seed=0)
    assert targets.shape == (400, 14) and mocap_reward == 4
    frames, reward = replay_in_joint_space(ROBOT, 0, targets, ('cam_high',), (16, 16))
    assert reward == 4 and len(frames) == 400
    assert frames[0].images['cam_high'].shape == (16, 16, 3)
    # The recorded command is the demonstration's target in driver units.
    np.testing.assert_allclose(frames[200].command, ROBOT.policy_to_joint_angles(targets[200]),
                               atol=1e-9)


def test_mocap_scene_damps_the_arm_joints():
    mocap = MocapAloha(ROBOT, arm_damping=1.0)
    model = mocap.physics.model
    joint = model.name2id('vx300s_left/wrist_rotate', 'joint')
    assert model.dof_damping[model.jnt_dofadr[joint]] == 1.0
    assert model.dof_frictionloss[model.jnt_dofadr[joint]] == 0.0


def test_insertion_places_peg_and_socket():
    from gym_aloha.utils import sample_insertion_pose
    scene = MujocoAloha(ROBOT, 'insertion')
    scene.reset(5)
    peg, socket = sample_insertion_pose(5)
    np.testing.assert_allclose(scene.physics.data.qpos[16:30], np.concatenate([peg, socket]))
    assert scene.step() == 0
