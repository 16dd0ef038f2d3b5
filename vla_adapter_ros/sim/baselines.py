"""The open-loop baselines of sim-eval on the joint-space scene: hold still, mean demonstration.

A policy that does not beat the mean scripted demonstration replayed blind is not using its
cameras. Pure MuJoCo (no nodes): the same seeds and scene as the policy's episodes.
"""

from __future__ import annotations

import numpy as np

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.sim.scripted_expert import scripted_joint_trajectory

SIM_ROBOT = 'aloha_sim'  # the MuJoCo ALOHA's description
BASELINES = ('hold_still', 'mean_demonstration')


def baseline_rewards(kind: str, seeds: list[int], targets: np.ndarray | None, steps: int,
                     task: str = 'transfer_cube') -> list[list[int]]:
    """Per-seed reward sequences of an open-loop baseline on the joint-space scene.

    ``kind`` 'hold_still' keeps the start pose; 'mean_demonstration' commands ``targets``
    (steps, 14) in policy units.
    """
    from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha
    scene = MujocoAloha(load_robot_description(SIM_ROBOT), task)
    rewards = []
    for seed in seeds:
        scene.reset(seed)
        sequence = []
        for step in range(steps):
            if kind == 'mean_demonstration':
                scene.command_policy_action(targets[min(step, len(targets) - 1)])
            sequence.append(scene.step())
        rewards.append(sequence)
    return rewards


def mean_demonstration(demo_seeds: list[int], steps: int) -> np.ndarray:
    """(steps, 14) mean joint targets of the scripted demonstrations of ``demo_seeds``."""
    robot = load_robot_description(SIM_ROBOT)
    return np.mean([scripted_joint_trajectory(robot, seed, steps)[0] for seed in demo_seeds],
                   axis=0)
