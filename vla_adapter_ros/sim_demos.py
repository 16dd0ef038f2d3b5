"""Scripted TransferCube demonstrations on the MuJoCo ALOHA, recorded as a user's episodes are.

The path of a demonstration (REFERENCE.md §5):
1. an ACT-style waypoint script moves the two grippers in the end-effector (mocap) scene
   (:class:`TransferCubeScript`: the right gripper picks the cube, meets the left one above the
   table centre, the left closes, the right lets go);
2. the joint positions that produced are replayed in the joint-space scene with the same cube
   pose (:func:`replay_in_joint_space`), as joint-group and gripper commands to the two arms;
3. each replay step becomes the messages the real robot would have sent (camera images,
   follower joint_states, the executor's commands), serialised by rclpy and written by the
   recorder's own :class:`~vla_adapter_ros.recording.EpisodeRecorder` into one rosbag2 bag per
   episode, with the success flag in the sidecar. Training and export read those bags exactly
   like teleoperated ones.

Entry point `vla-adapter-sim-demos` (see :func:`main`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import multiprocessing
import os
from pathlib import Path
import sys
import time

import numpy as np

from vla_adapter_core.cli_errors import add_debug_flag, run_reporting_errors
from vla_adapter_core.robot_description import RobotDescription, load_robot_description

EPISODE_STEPS = 400  # 8 s at 50 Hz, as the gym-aloha tasks
MEET_POINT = np.array([0.0, 0.5, 0.25])  # where the cube changes hands, m
DEFAULT_INSTRUCTION = 'transfer the red cube to the other arm'


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (w, x, y, z) quaternions."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw])


def axis_angle_quaternion(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """(w, x, y, z) rotation of ``degrees`` about the unit ``axis``."""
    half = np.radians(degrees) / 2.0
    return np.concatenate([[np.cos(half)], np.sin(half) * np.asarray(axis, dtype=np.float64)])


@dataclass(frozen=True)
class Waypoint:
    """Gripper pose and opening (0 closed .. 1 open) to reach at control step ``step``."""

    step: int
    position: np.ndarray  # (3,) m
    quaternion: np.ndarray  # (4,) w, x, y, z
    gripper: float


class TransferCubeScript:
    """Waypoints of both grippers for one cube pose; :meth:`at` interpolates them linearly."""

    def __init__(self, start_positions: np.ndarray, start_quaternions: np.ndarray,
                 cube: np.ndarray) -> None:
        """``start_*``: (2, 3) / (2, 4) gripper poses (left, right); ``cube``: (3,) m."""
        left_start, right_start = start_positions
        left_quat = quaternion_multiply(start_quaternions[0],
                                        axis_angle_quaternion((1, 0, 0), 90))
        pick_quat = quaternion_multiply(start_quaternions[1],
                                        axis_angle_quaternion((0, 1, 0), -60))
        meet = MEET_POINT
        self.left = [
            Waypoint(0, left_start, start_quaternions[0], 1.0),
            Waypoint(100, meet + [-0.1, 0, -0.02], left_quat, 1.0),
            Waypoint(260, meet + [0.02, 0, -0.02], left_quat, 1.0),
            Waypoint(310, meet + [0.02, 0, -0.02], left_quat, 0.0),  # grasp
            Waypoint(360, meet + [-0.1, 0, -0.02], left_quat, 0.0),
            Waypoint(EPISODE_STEPS, meet + [-0.1, 0, -0.02], left_quat, 0.0),
        ]
        self.right = [
            Waypoint(0, right_start, start_quaternions[1], 1.0),
            Waypoint(90, cube + [0, 0, 0.08], pick_quat, 1.0),  # above the cube
            Waypoint(130, cube + [0, 0, -0.015], pick_quat, 1.0),
            Waypoint(170, cube + [0, 0, -0.015], pick_quat, 0.0),  # grasp
            Waypoint(200, meet + [0.05, 0, 0], pick_quat, 0.0),
            Waypoint(220, meet, pick_quat, 0.0),
            Waypoint(310, meet, pick_quat, 1.0),  # release
            Waypoint(360, meet + [0.1, 0, 0], pick_quat, 1.0),
            Waypoint(EPISODE_STEPS, meet + [0.1, 0, 0], pick_quat, 1.0),
        ]

    @staticmethod
    def _interpolate(waypoints: list[Waypoint], step: int) -> tuple[np.ndarray, np.ndarray, float]:
        for before, after in zip(waypoints, waypoints[1:]):
            if before.step <= step <= after.step:
                fraction = (step - before.step) / max(1, after.step - before.step)
                position = before.position + fraction * (after.position - before.position)
                quaternion = before.quaternion + fraction * (after.quaternion - before.quaternion)
                gripper = before.gripper + fraction * (after.gripper - before.gripper)
                return position, quaternion / np.linalg.norm(quaternion), gripper
        last = waypoints[-1]
        return last.position, last.quaternion, last.gripper

    def at(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(2, 3) positions, (2, 4) quaternions and (2,) grippers for control step ``step``."""
        left = self._interpolate(self.left, step)
        right = self._interpolate(self.right, step)
        return (np.stack([left[0], right[0]]), np.stack([left[1], right[1]]),
                np.array([left[2], right[2]]))


def scripted_joint_trajectory(robot: RobotDescription, seed: int,
                              steps: int = EPISODE_STEPS) -> tuple[np.ndarray, int]:
    """Run the script in the mocap scene: ((steps, 14) policy-unit targets, max reward).

    Target ``t`` is where the arm joints were after mocap step ``t``, with the scripted
    (commanded, not measured) gripper openings.
    """
    from vla_adapter_ros.mujoco_aloha import MocapAloha
    scene = MocapAloha(robot)
    positions, quaternions = scene.reset(seed)
    script = TransferCubeScript(positions, quaternions, scene.object_position('box'))
    targets = np.empty((steps, robot.action_dim))
    best = 0
    for step in range(steps):
        pose, quat, grippers = script.at(step + 1)
        best = max(best, scene.step(pose, quat, grippers))
        state = scene.policy_state()  # (14,)
        state[6], state[13] = grippers
        targets[step] = state
    return targets, best


@dataclass
class ReplayFrame:
    """What the robot showed before one control step, and what it was commanded."""

    time_ns: int
    images: dict[str, np.ndarray]  # camera -> (H, W, 3) uint8
    joint_states: list[tuple[np.ndarray, np.ndarray]]  # per arm: positions, velocities
    command: np.ndarray  # (14,) joint angles, driver units
    reward: int = 0


def joint_disturbance(robot: RobotDescription, steps: int, std_rad: float,
                      seed: int) -> np.ndarray:
    """(steps, 14) smooth random offsets of the arm joints (grippers untouched), rad.

    White noise low-passed over about half a second (25 steps), scaled to ``std_rad``; zero for
    the first and last 50 steps (the push starts at step 50 and ends at step -50), so an episode
    starts and ends on the demonstration.
    """
    if std_rad <= 0.0:
        return np.zeros((steps, robot.action_dim))
    rng = np.random.default_rng(seed + 7919)
    noise = rng.standard_normal((steps, robot.action_dim))
    kernel = np.hanning(25)
    smooth = np.stack([np.convolve(noise[:, dim], kernel, mode='same')
                       for dim in range(robot.action_dim)], axis=1)
    smooth *= std_rad / max(1e-9, smooth.std())
    for arm_slice in robot.arm_slices():
        smooth[:, arm_slice.stop - 1] = 0.0  # grippers
    smooth[:50] = 0.0
    smooth[-50:] = 0.0
    return smooth


def replay_in_joint_space(robot: RobotDescription, seed: int, targets: np.ndarray,
                          cameras: tuple[str, ...], image_hw: tuple[int, int],
                          disturbance: np.ndarray | None = None,
                          start_ns: int = 1_000_000_000) -> tuple[list[ReplayFrame], int]:
    """Command ``targets`` (steps, 14) in the joint-space scene; frames and max reward.

    ``disturbance`` (steps, 14), when given, is added to what the simulated arms track (a push
    the robot did not ask for) while the recorded command stays the demonstration's: the data
    then shows the way back to the demonstration from nearby states.
    """
    from vla_adapter_ros.mujoco_aloha import CONTROL_PERIOD_S, MujocoAloha
    scene = MujocoAloha(robot)
    scene.reset(seed)
    frames, best = [], 0
    period_ns = int(round(CONTROL_PERIOD_S * 1e9))
    for step, target in enumerate(targets):
        images = {camera: scene.render(camera, *image_hw) for camera in cameras}
        states = [scene.arm_state(index) for index in range(robot.num_arms)]
        scene.command_policy_action(target)
        command = scene.targets.copy()  # (14,) driver units
        if disturbance is not None:
            scene.command_policy_action(target + disturbance[step])
        reward = scene.step()
        best = max(best, reward)
        frames.append(ReplayFrame(start_ns + step * period_ns, images, states, command, reward))
    return frames, best


@dataclass(frozen=True)
class DemoSettings:
    """What one scripted demonstration records."""

    robot: str = 'aloha_sim'
    image_height: int = 96
    image_width: int = 128
    disturbance_std: float = 0.0
    steps: int = EPISODE_STEPS


def run_demo(settings: DemoSettings, seed: int) -> dict:
    """Script + replay for ``seed`` (in a worker process): frames and rewards."""
    robot = load_robot_description(settings.robot)
    started = time.perf_counter()
    targets, mocap_reward = scripted_joint_trajectory(robot, seed, settings.steps)
    disturbance = joint_disturbance(robot, settings.steps, settings.disturbance_std, seed)
    frames, reward = replay_in_joint_space(
        robot, seed, targets, robot.cameras, (settings.image_height, settings.image_width),
        disturbance if settings.disturbance_std > 0 else None)
    return {'seed': seed, 'frames': frames, 'mocap_reward': mocap_reward, 'reward': reward,
            'seconds': time.perf_counter() - started}


class DemoBagWriter:
    """Turns replay frames into the robot's messages and hands them to an EpisodeRecorder."""

    def __init__(self, robot: RobotDescription, output_dir: Path, jpeg_quality: int = 90,
                 storage: str = 'mcap', static_metadata: dict | None = None) -> None:
        from vla_adapter_ros.recording import EpisodeRecorder, build_topic_plan
        self.robot = robot
        self.plan = build_topic_plan(robot, action_source='executor_commands',
                                     camera_transport='raw', jpeg_quality=jpeg_quality,
                                     joint_states_topic='joint_states',
                                     instruction_topic='/instruction')
        self.slots = {(entry.role, entry.arm_index, entry.topic): slot
                      for slot, entry in enumerate(self.plan)}
        self.recorder = EpisodeRecorder(self.plan, robot, output_dir=output_dir,
                                        storage=storage, jpeg_quality=jpeg_quality,
                                        static_metadata=static_metadata)

    def _slot(self, role: str, topic: str, arm_index: int = -1) -> int:
        return self.slots[(role, arm_index, topic)]

    def write_episode(self, frames: list[ReplayFrame], instruction: str, success: bool) -> Path:
        """One bag for ``frames``; its path once written."""
        from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from vla_adapter_ros.conversions import nanoseconds_to_stamp, rgb_to_image
        robot = self.robot
        episode = self.recorder.start(instruction, frames[0].time_ns)
        text = String()
        text.data = instruction
        self.recorder.offer(self._slot('instruction', '/instruction'), frames[0].time_ns,
                            serialize_message(text))
        for index, frame in enumerate(frames):
            for camera, topic in zip(robot.cameras, robot.camera_topics()):
                message = rgb_to_image(frame.images[camera],
                                       frame_id=f'{camera}_color_optical_frame')
                nanoseconds_to_stamp(frame.time_ns, message.header.stamp)
                self.recorder.offer(self._slot('camera', topic), frame.time_ns,
                                    serialize_message(message))
            for arm_index, (arm, (positions, velocities)) in enumerate(
                    zip(robot.arms, frame.joint_states)):
                state = JointState()
                nanoseconds_to_stamp(frame.time_ns, state.header.stamp)
                state.name = list(arm.driver_joint_names)
                state.position = positions.tolist()
                state.velocity = velocities.tolist()
                state.effort = [0.0] * len(positions)
                topic = f'/{arm.namespace}/joint_states'
                self.recorder.offer(self._slot('follower_state', topic, arm_index),
                                    frame.time_ns, serialize_message(state))
            for arm_index, (arm, block) in enumerate(zip(robot.arms, robot.arm_slices())):
                values = frame.command[block]
                group = JointGroupCommand(name=arm.model.arm_group,
                                          cmd=[float(v) for v in values[:-1]])
                single = JointSingleCommand(name=arm.model.gripper_joint, cmd=float(values[-1]))
                base = f'/{arm.namespace}/commands'
                self.recorder.offer(self._slot('group_command', f'{base}/joint_group',
                                               arm_index), frame.time_ns + 1000,
                                    serialize_message(group))
                self.recorder.offer(self._slot('single_command', f'{base}/joint_single',
                                               arm_index), frame.time_ns + 1000,
                                    serialize_message(single))
            if index % 50 == 49:
                self.recorder.wait_until_written(60.0)
        self.recorder.stop('scripted demonstration finished', frames[-1].time_ns + 20_000_000)
        self.recorder.set_success(success)
        self.recorder.wait_until_written(60.0)
        if episode.dropped:
            raise RuntimeError(f'{episode.path}: {episode.dropped} messages dropped')
        return episode.path

    def close(self) -> None:
        """Finish the writer thread."""
        self.recorder.close(time.time_ns())


PROG = 'vla-adapter-sim-demos'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Scripted TransferCube demonstrations on the MuJoCo ALOHA, '
        'recorded as rosbag2 episodes by the recorder (one bag per successful episode).')
    parser.add_argument('--output', type=Path, required=True, help='folder for the bags')
    parser.add_argument('--episodes', type=int, default=50, help='seeds to try (default 50)')
    parser.add_argument('--first_seed', '--first-seed', type=int, default=0,
                        help='seeds first_seed .. first_seed+episodes-1 (default 0)')
    parser.add_argument('--disturbance_std', '--disturbance-std', type=float, default=0.0,
                        help='rad: smooth random pushes of the arm joints during the replay '
                        "(the recorded commands stay the demonstration's; default 0)")
    parser.add_argument('--image_height', '--image-height', type=int, default=96)
    parser.add_argument('--image_width', '--image-width', type=int, default=128)
    parser.add_argument('--keep_failed', '--keep-failed', action='store_true',
                        help='also write episodes that did not transfer the cube (marked)')
    parser.add_argument('--workers', type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help='simulation processes (default: 2 or the CPU count)')
    parser.add_argument('--instruction', default=DEFAULT_INSTRUCTION)
    add_debug_flag(parser)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    if args.episodes < 1:
        raise ValueError(f'--episodes={args.episodes}: must be >= 1')
    if args.workers < 1:
        raise ValueError(f'--workers={args.workers}: must be >= 1')
    if not 0.0 <= args.disturbance_std <= 0.5:
        raise ValueError(f'--disturbance_std={args.disturbance_std}: must be in [0, 0.5] rad')
    for name in ('image_height', 'image_width'):
        if not 16 <= getattr(args, name) <= 2048:
            raise ValueError(f'--{name}={getattr(args, name)}: must be in [16, 2048]')
    if args.output.exists() and any(args.output.iterdir()):
        raise ValueError(f'--output={args.output}: folder exists and is not empty')


def generate(args: argparse.Namespace) -> dict:
    """Run every seed, write the bags; a summary (also written as demos_summary.yaml)."""
    from tqdm import tqdm

    from vla_adapter_ros.recording import write_yaml_atomically
    _check_arguments(args)
    settings = DemoSettings(image_height=args.image_height, image_width=args.image_width,
                            disturbance_std=args.disturbance_std)
    robot = load_robot_description(settings.robot)
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    writer = DemoBagWriter(robot, args.output, static_metadata={
        'source': 'scripted TransferCube demonstration (vla-adapter-sim-demos)',
        'disturbance_std': settings.disturbance_std})
    results = []
    context = multiprocessing.get_context('spawn')
    with context.Pool(args.workers) as pool:
        jobs = pool.imap(_run_demo_job, [(settings, seed) for seed in seeds])
        for result in tqdm(jobs, total=len(seeds), desc='demos', unit='episode'):
            success = result['reward'] >= 4
            bag = None
            if success or args.keep_failed:
                bag = writer.write_episode(result['frames'], args.instruction, success)
            results.append({'seed': result['seed'], 'success': success,
                            'max_reward': result['reward'],
                            'mocap_max_reward': result['mocap_reward'],
                            'seconds': round(result['seconds'], 2),
                            'bag': bag.name if bag else None})
    writer.close()
    successes = sum(item['success'] for item in results)
    summary = {'episodes': len(results), 'successes': successes,
               'success_rate': successes / len(results),
               'seeds': [seeds[0], seeds[-1]], 'settings': settings.__dict__,
               'per_episode': results}
    write_yaml_atomically(args.output / 'demos_summary.yaml', summary)
    return summary


def _run_demo_job(job: tuple[DemoSettings, int]) -> dict:
    os.environ.setdefault('MUJOCO_GL', 'egl')
    return run_demo(*job)


def main(argv: list[str] | None = None) -> int:
    """Entry point `vla-adapter-sim-demos`."""
    args = _parser().parse_args(argv)
    os.environ.setdefault('MUJOCO_GL', 'egl')

    def work() -> int:
        summary = generate(args)
        print(f'{PROG}: {summary["successes"]}/{summary["episodes"]} scripted episodes '
              f'transferred the cube ({100 * summary["success_rate"]:.0f} %); bags in '
              f'{args.output}')
        return 0
    return run_reporting_errors(PROG, work, debug=args.debug)


if __name__ == '__main__':
    sys.exit(main())
