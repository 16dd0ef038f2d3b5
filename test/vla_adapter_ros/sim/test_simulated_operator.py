"""The simulated operator on the real MuJoCo scene: a still policy, the expert's takeover.

A policy that holds still diverges from the expert's plan; the expert takes over, and its
leader joint_states, mapped to the followers as the executor maps them, pick the cube up.
"""

import os

import numpy as np

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.pipeline.takeover import leader_to_follower
from vla_adapter_ros.sim.takeover_rule import HAND_BACK, TAKE_OVER, TakeoverRuleConfig


def test_simulated_operator_takes_over_a_still_policy_and_its_leaders_lift_the_cube():
    # MuJoCo (and its EGL libraries) loads when the test runs, not at collection: loaded before
    # torch's triton import in the same process, it crashes the process.
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha
    from vla_adapter_ros.sim.simulated_operator import SimulatedOperator

    robot = load_robot_description('aloha_sim')
    config = TakeoverRuleConfig(rule='divergence', threshold_rad=0.05, divergence_steps=5,
                                first_step=0, operator_steps=300)
    operator, scene = SimulatedOperator(robot, 'transfer_cube', config, 25), MujocoAloha(robot)
    try:
        scene.reset(3)
        hold = scene.policy_state()
        requests, best, in_control = {}, 0, False
        for step in range(340):
            planned = operator.step(scene, step)
            if planned.request is not None:
                requests[step] = planned.request
                in_control = planned.request == TAKE_OVER
            if in_control:  # the executor's mapping of the leaders to the followers
                follower = np.concatenate([leader_to_follower(robot, arm, positions[:7])
                                           for arm, positions in enumerate(planned.leaders)])
                scene.command_policy_action(robot.joint_angles_to_policy(follower))
            else:
                scene.command_policy_action(hold)
            best = max(best, scene.step())
        take = min(requests)
        assert requests == {take: TAKE_OVER, take + 300: HAND_BACK}
        assert 5 <= take < 40  # the plan leaves the still arms within a few dozen steps
        assert best >= 2  # lifted by the right gripper during the operator's segment
    finally:
        operator.close()
        scene.close()
