"""The corrective TransferCube expert: plans per stage, the leader mapping, a few seeds.

The expert's success is measured on a few seeds only (each episode costs about a second of
MuJoCo here): from the start pose within the 400-step episode, and taking over from a state
the scripted demonstration reached under smooth random pushes of the arm joints.
"""

import os

import numpy as np
import pytest

os.environ.setdefault('MUJOCO_GL', 'egl')

from vla_adapter_core.robot_description import load_robot_description  # noqa: E402
from vla_adapter_ros.pipeline.takeover import leader_to_follower  # noqa: E402
from vla_adapter_ros.sim.corrective_expert import (  # noqa: E402
    LEFT_GRASP,
    LIFTED,
    SUCCESS,
    CorrectiveExpert,
    leader_positions,
    plan_from,
)
from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha  # noqa: E402
from vla_adapter_ros.sim.scripted_expert import (  # noqa: E402
    EPISODE_STEPS,
    joint_disturbance,
    scripted_joint_trajectory,
)

ROBOT = load_robot_description('aloha_sim')
POSITIONS = np.array([[-0.3, 0.5, 0.3], [0.3, 0.5, 0.3]])
QUATERNIONS = np.tile([1.0, 0.0, 0.0, 0.0], (2, 1))
CUBE = np.array([0.1, 0.55, 0.02])


@pytest.fixture(scope='module')
def expert():
    made = CorrectiveExpert(ROBOT)
    yield made
    made.close()


def test_a_cube_on_the_table_is_picked_then_handed_over():
    left, right, checks = plan_from(0, POSITIONS, QUATERNIONS, np.ones(2), CUBE)
    assert right[0].step == 0 and np.allclose(right[0].position, POSITIONS[1])  # from now
    grasp = next(point for point in right if point.gripper == 0.0)
    np.testing.assert_allclose(grasp.position, CUBE + [0, 0, -0.015])
    left_grasp = next(point for point in left if point.gripper == 0.0)
    np.testing.assert_allclose(left_grasp.position, LEFT_GRASP)
    release = next(point for point in right if point.step > grasp.step and point.gripper == 1.0)
    assert release.step > left_grasp.step  # the right lets go only once the left holds it
    assert checks == [(grasp.step + 30, LIFTED), (max(p.step for p in right), SUCCESS)]


def test_a_lifted_cube_is_handed_over_without_picking_again():
    _, right, _ = plan_from(LIFTED, POSITIONS, QUATERNIONS, np.zeros(2), CUBE)
    assert all(point.gripper == 0.0 for point in right[1:4])
    assert not any(np.allclose(point.position, CUBE + [0, 0, -0.015]) for point in right)


def test_leader_joint_states_map_back_to_the_action():
    action = ROBOT.start_joint_angles()
    action = ROBOT.joint_angles_to_policy(action)
    action[6], action[13] = 0.25, 0.8
    positions = leader_positions(ROBOT, action)
    for arm, values in enumerate(positions):
        assert len(values) == len(ROBOT.leaders[arm].driver_joint_names)
        follower = leader_to_follower(ROBOT, arm, values[:7])  # the executor's mapping
        np.testing.assert_allclose(follower, ROBOT.policy_to_joint_angles(action)[7 * arm:
                                                                               7 * arm + 7])


def run_expert(expert, scene, limit: int) -> int:
    """Command the expert's actions for up to ``limit`` steps; the best reward."""
    expert.reset()
    best = 0
    for _ in range(limit):
        scene.command_policy_action(expert.act(scene))
        best = max(best, scene.step())
        if best >= SUCCESS:
            break
    return best


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_from_the_start_pose_within_an_episode(expert, seed):
    scene = MujocoAloha(ROBOT)
    scene.reset(seed)
    assert run_expert(expert, scene, EPISODE_STEPS) == SUCCESS
    scene.close()


@pytest.mark.parametrize('seed, steps', [(0, 213), (1, 122), (5, 115)])
def test_takes_over_from_a_pushed_state_mid_episode(expert, seed, steps):
    targets, _ = scripted_joint_trajectory(ROBOT, seed)
    push = joint_disturbance(ROBOT, len(targets), 0.15, seed)
    scene = MujocoAloha(ROBOT)
    scene.reset(seed)
    for step in range(steps):
        scene.command_policy_action(targets[step] + push[step])
        scene.step()
    assert run_expert(expert, scene, 500) == SUCCESS
    assert expert.plans >= 1
    scene.close()
