"""Scripted TransferCube demonstrations on the MuJoCo ALOHA, recorded as a user's episodes are.

The expert itself is sim/scripted_expert.py (REFERENCE.md §5). Here each replay step becomes the
messages the real robot would have sent (camera images, follower joint_states, the executor's
commands), serialised by rclpy and written by the recorder's own EpisodeRecorder into one
rosbag2 bag per episode, with the success flag in the sidecar; training and export read those
bags exactly like teleoperated ones.

Entry point `vla-adapter-sim-demos` (see :func:`main`).
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import multiprocessing
import os
from pathlib import Path
import sys
import time

from training.config_cli import build_config_parser, option, require_option, run_config_main
from vla_adapter_core.robot_description import RobotDescription, load_robot_description
from vla_adapter_ros.sim.scripted_expert import DemoEpisodeConfig, ReplayFrame, run_demo
from vla_adapter_ros.sim.task_facts import DEFAULT_INSTRUCTION, SUCCESS_REWARD


class DemoBagWriter:
    """Turns replay frames into the robot's messages and hands them to an EpisodeRecorder."""

    def __init__(self, robot: RobotDescription, output_dir: Path, jpeg_quality: int = 90,
                 storage: str = 'mcap', static_metadata: dict | None = None) -> None:
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import JointState

        from vla_adapter_ros.recording.bag_format import build_topic_plan
        from vla_adapter_ros.recording.episode_recorder import EpisodeRecorder

        self.robot = robot
        self.plan = build_topic_plan(robot, action_source='executor_commands',
                                     camera_transport='raw', jpeg_quality=jpeg_quality,
                                     joint_states_topic='joint_states',
                                     instruction_topic='/instruction')
        self.slots = {(entry.role, entry.arm_index, entry.topic): slot
                      for slot, entry in enumerate(self.plan)}
        self.recorder = EpisodeRecorder(self.plan, robot, output_dir=output_dir,
                                        storage=storage, jpeg_quality=jpeg_quality,
                                        static_metadata=static_metadata,
                                        decode_joint_state=functools.partial(
                                            deserialize_message, message_type=JointState))

    def _slot(self, role: str, topic: str, arm_index: int = -1) -> int:
        return self.slots[(role, arm_index, topic)]

    def write_episode(self, frames: list[ReplayFrame], instruction: str, success: bool) -> Path:
        """One bag for ``frames``; its path once written."""
        from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from vla_adapter_ros.pipeline.conversions import nanoseconds_to_stamp, rgb_to_image
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


@dataclass(frozen=True)
class ScriptedDemosConfig:
    """What `vla-adapter-sim-demos` records (the fields are its command line)."""

    output: str = option(metavar='DIR', help='folder for the bags (new or empty)')
    episodes: int = option(50, help='seeds to try')
    first_seed: int = option(0, aliases=('--first-seed',),
                             help='seeds first_seed .. first_seed+episodes-1')
    disturbance_std: float = option(
        0.0, aliases=('--disturbance-std',),
        help="rad: smooth random pushes of the arm joints during the replay (the recorded "
             "commands stay the demonstration's)")
    # 96x128 is what the demo policy reads; the real cameras' 480x640 works too, slowly.
    image_height: int = option(96, aliases=('--image-height',), help='camera image height')
    image_width: int = option(128, aliases=('--image-width',), help='camera image width')
    keep_failed: bool = option(False, help='also write episodes that did not transfer the '
                                           'cube (marked failed in the sidecar)')
    # Two simulation processes fill both cores of the CI-class machine.
    workers: int = option(max(1, min(2, os.cpu_count() or 1)),
                          help='simulation processes (default: 2 or the CPU count)')
    instruction: str = option(DEFAULT_INSTRUCTION, help='the instruction recorded with each '
                                                        'episode')
    # The recorder's JPEG on the fly (the demo checkpoint's training bags); 0 keeps the
    # cameras' raw sensor_msgs/Image, e.g. to measure compression afterwards.
    jpeg_quality: int = option(90, help="the recorder's JPEG quality for the cameras (1-100; "
                                        '0: raw sensor_msgs/Image)')

    def __post_init__(self) -> None:
        require_option(self.episodes >= 1, 'episodes', self.episodes, 'must be >= 1')
        require_option(self.first_seed >= 0, 'first_seed', self.first_seed, 'must be >= 0')
        require_option(self.workers >= 1, 'workers', self.workers, 'must be >= 1')
        require_option(0.0 <= self.disturbance_std <= 0.5, 'disturbance_std', self.disturbance_std,
                 'must be in [0, 0.5] rad')
        for name in ('image_height', 'image_width'):
            require_option(16 <= getattr(self, name) <= 2048, name, getattr(self, name),
                     'must be in [16, 2048]')
        require_option(bool(self.instruction.strip()), 'instruction', repr(self.instruction),
                 'must not be empty')
        require_option(0 <= self.jpeg_quality <= 100, 'jpeg_quality', self.jpeg_quality,
                       'must be in [0, 100] (0: raw images)')

    @property
    def output_path(self) -> Path:
        """The bag folder, ~ expanded."""
        return Path(self.output).expanduser()


def generate(config: ScriptedDemosConfig) -> dict:
    """Run every seed, write the bags; a summary (also written as demos_summary.yaml)."""
    from tqdm import tqdm

    from vla_adapter_ros.recording.bag_format import write_yaml_atomically
    output = config.output_path
    if output.exists() and any(output.iterdir()):
        raise ValueError(f'--output {output}: folder exists and is not empty')
    settings = DemoEpisodeConfig(image_height=config.image_height, image_width=config.image_width,
                            disturbance_std=config.disturbance_std)
    robot = load_robot_description(settings.robot)
    seeds = list(range(config.first_seed, config.first_seed + config.episodes))
    writer = DemoBagWriter(robot, output, jpeg_quality=config.jpeg_quality, static_metadata={
        'source': 'scripted TransferCube demonstration (vla-adapter-sim-demos)',
        'disturbance_std': settings.disturbance_std})
    results = []
    context = multiprocessing.get_context('spawn')
    with context.Pool(config.workers) as pool:
        jobs = pool.imap(_run_demo_job, [(settings, seed) for seed in seeds])
        for result in tqdm(jobs, total=len(seeds), desc='demos', unit='episode'):
            success = result['reward'] >= SUCCESS_REWARD
            bag = None
            if success or config.keep_failed:
                bag = writer.write_episode(result['frames'], config.instruction, success)
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
    write_yaml_atomically(output / 'demos_summary.yaml', summary)
    write_cube_targets(output, results)
    return summary


def write_cube_targets(output: Path, results: list[dict]) -> None:
    """``aux_targets.json``: each recorded episode's cube x, y (m) until the grasp.

    vla-adapter-train's ``--aux_targets`` reads it (training/aux_targets.py): the scene's own
    placement for the episode's seed, which the cameras show until the gripper lifts the cube.
    """
    from training.aux_targets import AUX_TARGETS_FILE, write_aux_targets
    from vla_adapter_ros.sim.mujoco_aloha import TASKS
    from vla_adapter_ros.sim.scripted_expert import CUBE_GRASPED_STEP

    task = TASKS['transfer_cube']
    episodes = {item['bag']: (task.object_pose(item['seed'])[:2], CUBE_GRASPED_STEP)
                for item in results if item['bag']}
    if episodes:
        write_aux_targets(output / AUX_TARGETS_FILE, ['cube_x', 'cube_y'], episodes)


def _run_demo_job(job: tuple[DemoEpisodeConfig, int]) -> dict:
    os.environ.setdefault('MUJOCO_GL', 'egl')
    return run_demo(*job)


def _report(config: ScriptedDemosConfig) -> int:
    summary = generate(config)
    print(f'{PROG}: {summary["successes"]}/{summary["episodes"]} scripted episodes '
          f'transferred the cube ({100 * summary["success_rate"]:.0f} %); bags in '
          f'{config.output_path}')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point `vla-adapter-sim-demos`."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    parser = build_config_parser(
        ScriptedDemosConfig, PROG, 'Scripted TransferCube demonstrations on the MuJoCo ALOHA, '
        'recorded as rosbag2 episodes by the recorder (one bag per successful episode).')
    return run_config_main(parser, ScriptedDemosConfig, argv, _report)


if __name__ == '__main__':
    sys.exit(main())
