"""Takeover episodes written by the recorder's own EpisodeRecorder from rclpy-serialised bytes.

What a policy run with the recorder sees (`aloha.launch.py record:=true`): the cameras, each
follower's joint_states, the executor's commands (combined into /commanded_action), the
executor's control source and the policy's ActionChunks (their points carry empty velocity
arrays, as the inference node sends them). ``sources`` gives the control source of every
50 Hz step; the commanded action of step k is ``commanded(k)``.
"""

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from recorder_bags import ALOHA, INSTRUCTION, STEP_NS, T0, image, joint_state
from ros_test_utils import decode_joint_state
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_msgs.msg import ActionChunk
from vla_adapter_ros.recording.bag_format import build_topic_plan
from vla_adapter_ros.recording.episode_recorder import EpisodeRecorder

CHUNK_TOPIC = '/action_chunk'
CHUNK_EVERY = 5  # steps between the policy's chunks


def commanded(step: int) -> np.ndarray:
    """The combined command of step ``step`` in joint angles, (14,): grippers mid-span."""
    angles = np.tile(np.array([0.0, -0.5, 0.5, 0.0, 0.3, 0.0, 0.0]), 2) + 0.001 * step
    for index, arm in enumerate(ALOHA.arms):
        angles[7 * index + 6] = arm.gripper.joint_from_normalized(0.5)
    return angles


def chunk_bytes(step: int, stamp_ns: int) -> bytes:
    """A serialised :func:`chunk_message`."""
    return serialize_message(chunk_message(step, stamp_ns))


def chunk_message(step: int, stamp_ns: int) -> ActionChunk:
    """A 10-step ActionChunk planned at ``step`` (positions only, as the inference node)."""
    chunk = ActionChunk(instruction=INSTRUCTION, inference_ms=40.0, sequence=step)
    chunk.header.stamp.sec, chunk.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    for side, arm in zip(('left', 'right'), ALOHA.arms):
        trajectory = JointTrajectory(joint_names=list(arm.command_joint_names))
        for k in range(10):
            point = JointTrajectoryPoint(positions=commanded(step + k)[:7].tolist())
            point.time_from_start.nanosec = k * STEP_NS
            trajectory.points.append(point)
        setattr(chunk, side, trajectory)
    return chunk


def _offer_step(recorder, plan, step: int, stamp: int, source: str) -> None:
    angles = commanded(step)
    for slot, entry in enumerate(plan):
        if entry.role == 'camera':
            recorder.offer(slot, stamp, image(step, stamp))
        elif entry.role == 'follower_state':
            recorder.offer(slot, stamp, joint_state(ALOHA.arms[entry.arm_index], step, stamp))
        elif entry.role == 'group_command':
            values = angles[7 * entry.arm_index:7 * entry.arm_index + 6]
            recorder.offer(slot, stamp + 1000, serialize_message(JointGroupCommand(
                name='arm', cmd=[float(v) for v in values])))
        elif entry.role == 'single_command':
            recorder.offer(slot, stamp + 1000, serialize_message(JointSingleCommand(
                name='gripper', cmd=float(angles[7 * entry.arm_index + 6]))))
        elif entry.role == 'control_source':
            recorder.offer(slot, stamp, serialize_message(String(data=source)))
        elif entry.role == 'policy_chunk' and step % CHUNK_EVERY == 0:
            recorder.offer(slot, stamp, chunk_bytes(step, stamp))


def record_takeover_bag(tmp_path, sources: list[str], storage: str = 'mcap', name: str = 'bags',
                        takeover_topics: bool = True):
    """One episode of len(sources) steps; returns the Episode (its path, sidecar fields).

    ``takeover_topics=False``: an ordinary recording of the commands (a scripted demo's).
    """
    plan = build_topic_plan(ALOHA, action_source='executor_commands', camera_transport='raw',
                            jpeg_quality=0, joint_states_topic='joint_states',
                            instruction_topic='/instruction',
                            control_source_topic='/control_source' if takeover_topics else '',
                            chunk_topic=CHUNK_TOPIC if takeover_topics else '')
    recorder = EpisodeRecorder(plan, ALOHA, output_dir=tmp_path / name, storage=storage,
                               decode_joint_state=decode_joint_state,
                               decode_chunk=lambda data: deserialize_message(data, ActionChunk))
    recorder.start(INSTRUCTION, T0)
    for step, source in enumerate(sources):
        _offer_step(recorder, plan, step, T0 + step * STEP_NS, source)
    episode = recorder.stop('service', T0 + len(sources) * STEP_NS)
    recorder.set_success(True)
    assert recorder.wait_until_written(30.0)
    recorder.close(T0)
    return episode
