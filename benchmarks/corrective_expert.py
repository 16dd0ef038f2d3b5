"""Success of the corrective TransferCube expert alone (issue 21's first check), in MuJoCo.

Two figures, each with a 95 % Wilson interval:
- from the start pose: the expert plans at step 0 and has the 400-step episode;
- mid-episode: the scripted demonstration runs under smooth random pushes of the arm joints
  (``--push_std`` rad) for a random 60..259 steps, then the expert takes over from that state
  and has ``--takeover_steps`` steps.
Prints the numbers; asserts nothing.

    .venv/bin/python benchmarks/corrective_expert.py [--seeds 50] [--first_seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')

from vla_adapter_core.robot_description import load_robot_description  # noqa: E402
from vla_adapter_ros.sim.corrective_expert import SUCCESS, CorrectiveExpert  # noqa: E402
from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha  # noqa: E402
from vla_adapter_ros.sim.scripted_expert import (  # noqa: E402
    EPISODE_STEPS,
    joint_disturbance,
    scripted_joint_trajectory,
)


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (
        1 + z * z / trials)
    return centre - half, centre + half


def episode(robot, expert, seed: int, takeover_step: int, push_std: float, limit: int) -> bool:
    """Whether the expert reaches success within ``limit`` steps after taking over."""
    scene = MujocoAloha(robot)
    try:
        scene.reset(seed)
        if takeover_step:
            targets, _ = scripted_joint_trajectory(robot, seed)
            push = joint_disturbance(robot, len(targets), push_std, seed)
            for step in range(takeover_step):
                scene.command_policy_action(targets[step] + push[step])
                scene.step()
        expert.reset()
        for _ in range(limit):
            scene.command_policy_action(expert.act(scene))
            if scene.step() >= SUCCESS:
                return True
        return False
    finally:
        scene.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=50)
    parser.add_argument('--first_seed', type=int, default=0)
    parser.add_argument('--push_std', type=float, default=0.15)
    parser.add_argument('--takeover_steps', type=int, default=500)
    args = parser.parse_args()
    robot = load_robot_description('aloha_sim')
    expert = CorrectiveExpert(robot)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for name, limit in (('start pose', EPISODE_STEPS), ('mid-episode', args.takeover_steps)):
        started, wins = time.perf_counter(), 0
        for seed in seeds:
            step = 0 if name == 'start pose' else int(
                np.random.default_rng(seed + 100).integers(60, 260))
            wins += episode(robot, expert, seed, step, args.push_std, limit)
        low, high = wilson(wins, len(seeds))
        print(f'{name}: {wins}/{len(seeds)} = {100 * wins / len(seeds):.0f} % '
              f'[{100 * low:.0f}, {100 * high:.0f}] within {limit} steps '
              f'({time.perf_counter() - started:.0f} s)', flush=True)
    expert.close()


if __name__ == '__main__':
    main()
