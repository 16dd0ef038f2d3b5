"""A fully populated vla_adapter_msgs/ActionChunk, identical in every process that builds it."""

from builtin_interfaces.msg import Duration, Time
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_msgs.msg import ActionChunk

ARM_JOINTS = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate',
              'gripper']
CHUNK_STEPS = 25
STEP_NS = 20_000_000  # 50 Hz


def _trajectory(prefix: str, offset: float) -> JointTrajectory:
    trajectory = JointTrajectory()
    trajectory.header.stamp = Time(sec=1_700_000_000, nanosec=123_456_789)
    trajectory.header.frame_id = f'{prefix}base_link'
    trajectory.joint_names = [f'{prefix}{name}' for name in ARM_JOINTS]
    for step in range(CHUNK_STEPS):
        point = JointTrajectoryPoint()
        point.positions = [offset + 0.01 * step + 0.1 * joint for joint in range(len(ARM_JOINTS))]
        elapsed_ns = step * STEP_NS
        point.time_from_start = Duration(sec=elapsed_ns // 1_000_000_000,
                                         nanosec=elapsed_ns % 1_000_000_000)
        trajectory.points.append(point)
    return trajectory


def make_sample_action_chunk() -> ActionChunk:
    """Return the reference ActionChunk (dual-arm, 25 steps, every field set)."""
    chunk = ActionChunk()
    chunk.header.stamp = Time(sec=1_700_000_000, nanosec=123_456_789)
    chunk.header.frame_id = 'vla_adapter_policy'
    chunk.left = _trajectory('left_', 0.5)
    chunk.right = _trajectory('right_', -0.5)
    chunk.instruction = 'transfer the red cube to the other arm — ünïcode ok'
    chunk.inference_ms = 36.25
    chunk.sequence = 2**40 + 7
    return chunk
