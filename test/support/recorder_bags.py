"""Bags written by the recorder's own EpisodeRecorder from rclpy-serialised messages.

The bytes a raw subscription receives, for the export tests (HDF5, LeRobot): 30 steps at
50 Hz of the ALOHA cameras (a flat colour per step) and every arm's joint_states.
"""

import numpy as np
from rclpy.serialization import serialize_message
from ros_test_utils import decode_joint_state
from sensor_msgs.msg import Image, JointState

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.recording.bag_format import build_topic_plan
from vla_adapter_ros.recording.episode_recorder import EpisodeRecorder

ALOHA = load_robot_description('aloha')
T0 = 1_700_000_000 * 10**9
STEP_NS = 20_000_000  # 50 Hz
INSTRUCTION = 'fold the towel'


def frame(step: int) -> np.ndarray:
    """(24, 32, 3) RGB: a flat colour per step, red and blue distinct (catches swaps)."""
    return np.broadcast_to(np.array([200, (10 * step) % 250, 30], np.uint8), (24, 32, 3))


def joint_state(arm, step: int, stamp_ns: int) -> bytes:
    """The arm's driver joints at 0.01 * step + joint index, velocity 2x, effort 3x."""
    names = list(arm.driver_joint_names)
    positions = 0.01 * step + np.arange(len(names)) * 0.1
    positions[-2:] = arm.gripper.finger_from_normalized(0.5)
    message = JointState(name=names, position=positions.tolist(),
                         velocity=(2 * positions).tolist(), effort=(3 * positions).tolist())
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return serialize_message(message)


def image(step: int, stamp_ns: int) -> bytes:
    message = Image(height=24, width=32, encoding='rgb8', step=96)
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    message.data = frame(step).tobytes()
    return serialize_message(message)


def record_bag(tmp_path, storage: str, steps: int = 30):
    plan = build_topic_plan(ALOHA, action_source='leader_joint_states', camera_transport='raw',
                            jpeg_quality=0, joint_states_topic='joint_states',
                            instruction_topic='/instruction')
    recorder = EpisodeRecorder(plan, ALOHA, output_dir=tmp_path / 'bags', storage=storage,
                               decode_joint_state=decode_joint_state)
    recorder.start(INSTRUCTION, T0)
    arms = {f'/{arm.namespace}/joint_states': arm for arm in ALOHA.arms + ALOHA.leaders}
    for step in range(steps):
        stamp = T0 + step * STEP_NS
        for slot, entry in enumerate(plan):
            if entry.role == 'camera':
                recorder.offer(slot, stamp, image(step, stamp))
            elif entry.role != 'instruction':
                recorder.offer(slot, stamp, joint_state(arms[entry.topic], step, stamp))
    episode = recorder.stop('service', T0 + steps * STEP_NS)
    recorder.set_success(True)
    recorder.close(T0)
    return episode.path
