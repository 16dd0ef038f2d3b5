"""The ActionChunk CDR reader against rclpy's own writer, and its errors on damaged bytes."""

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_msgs.msg import ActionChunk
from vla_adapter_ros.pipeline.chunk_cdr import (
    ChunkDecodeError,
    decode_action_chunk,
    decoded_from_message,
)
from vla_adapter_ros.pipeline.chunk_intake import chunk_from_decoded, chunk_from_message
from vla_adapter_ros.pipeline.conversions import seconds_to_duration
from vla_adapter_ros.pipeline.safety import ChunkRejected, SafetyConfig


def _trajectory(rng, names, steps, frame_id='', extras=False):
    trajectory = JointTrajectory(joint_names=list(names))
    trajectory.header.frame_id = frame_id
    for step in range(steps):
        point = JointTrajectoryPoint(positions=rng.uniform(-1, 1, len(names)).tolist(),
                                     time_from_start=seconds_to_duration(0.02 * step + 0.013))
        if extras:  # the executor ignores them, but the reader must step over them
            point.velocities = rng.normal(size=step % 3).tolist()
            point.effort = rng.normal(size=len(names)).tolist()
        trajectory.points.append(point)
    return trajectory


def _message(rng, left_steps, right_steps, extras=False, instruction='pick up the cube'):
    message = ActionChunk(instruction=instruction, inference_ms=float(rng.uniform(1, 90)),
                          sequence=int(rng.integers(0, 2**63)))
    message.header.stamp.sec, message.header.stamp.nanosec = 1_700_000_123, 987_654_321
    message.header.frame_id = 'policy-\u00e9'[: int(rng.integers(0, 9))]
    message.left = _trajectory(rng, [f'left_j{i}' for i in range(7)], left_steps, 'l', extras)
    message.right = _trajectory(rng, [f'r{i}' * (i + 1) for i in range(7)], right_steps, '',
                                extras)
    return message


@pytest.mark.parametrize('left_steps, right_steps, extras', [
    (25, 25, False), (200, 200, False), (3, 0, True), (0, 0, False), (1, 2, True)])
def test_reader_matches_rclpys_writer(left_steps, right_steps, extras):
    rng = np.random.default_rng(left_steps * 7 + right_steps)
    message = _message(rng, left_steps, right_steps, extras, instruction='x' * left_steps)
    decoded = decode_action_chunk(serialize_message(message))
    expected = decoded_from_message(message)
    assert decoded.stamp_ns == expected.stamp_ns == 1_700_000_123_987_654_321
    assert (decoded.sequence, decoded.instruction) == (expected.sequence, expected.instruction)
    assert decoded.inference_ms == pytest.approx(expected.inference_ms)
    for got, want in ((decoded.left, expected.left), (decoded.right, expected.right)):
        assert got.joint_names == want.joint_names
        assert got.num_points == want.num_points
        np.testing.assert_array_equal(got.offsets_s, want.offsets_s)
        np.testing.assert_array_equal(got.positions, want.positions)


def test_one_point_with_velocities_among_plain_ones_is_read_point_by_point():
    message = _message(np.random.default_rng(5), 200, 200)
    message.right.points[150].velocities = [0.5, -0.5]
    message.right.points[151].accelerations = [1.0]
    decoded = decode_action_chunk(serialize_message(message))
    np.testing.assert_array_equal(decoded.right.positions,
                                  decoded_from_message(message).right.positions)
    assert decoded.sequence == message.sequence


def test_bytes_and_message_give_the_same_checked_chunk():
    robot = load_robot_description('aloha')
    rng = np.random.default_rng(3)
    message = ActionChunk(sequence=7)
    message.header.stamp.sec = 100
    arms = []
    for arm in robot.arms:
        names = list(arm.command_joint_names)[::-1]  # any order: columns go by name
        lower, upper = arm.joint_angle_bounds()
        trajectory = _trajectory(rng, names, 25)
        for point in trajectory.points:
            point.positions = ((lower + upper) / 2)[::-1].tolist()
        arms.append(trajectory)
    message.left, message.right = arms
    lower, upper = robot.joint_angle_bounds()
    safety = SafetyConfig(lower=tuple(lower), upper=tuple(upper), max_joint_speed=(1.0,) * 14,
                          tick_s=0.02, limit_margin=0.05)
    from_bytes = chunk_from_decoded(decode_action_chunk(serialize_message(message)), robot,
                                    safety, 200, now_s=100.1)
    from_message = chunk_from_message(message, robot, safety, 200, now_s=100.1)
    np.testing.assert_array_equal(from_bytes.positions, from_message.positions)
    assert from_bytes.positions.shape == (25, 14) and from_bytes.sequence == 7
    message.left.points[3].positions = [0.0] * 3
    with pytest.raises(ChunkDecodeError, match=r'left.points\[3\].positions has 3 values, '):
        decode_action_chunk(serialize_message(message))
    for point in message.left.points:
        point.positions = [0.0] * 3
    with pytest.raises(ChunkRejected, match='left trajectory points have 3 positions each'):
        chunk_from_decoded(decode_action_chunk(serialize_message(message)), robot, safety,
                           200, now_s=100.1)


def test_damaged_bytes_name_the_field():
    message = _message(np.random.default_rng(0), 25, 25)
    data = serialize_message(message)
    with pytest.raises(ChunkDecodeError, match='ActionChunk.right.points: 25 items cannot fit'):
        decode_action_chunk(data[: len(data) // 2 + 200])
    with pytest.raises(ChunkDecodeError, match=r'ActionChunk.sequence: the message ends'):
        decode_action_chunk(data[: data.index(message.sequence.to_bytes(8, 'little')) + 4])
    with pytest.raises(ChunkDecodeError, match=r'ActionChunk.left.points\[24\]\.\w+: the message'):
        decode_action_chunk(data[: data.index(b'\x00r0') - 40])
    with pytest.raises(ChunkDecodeError, match='shorter than the CDR header'):
        decode_action_chunk(b'\x00')
    with pytest.raises(ChunkDecodeError, match='unsupported CDR encapsulation 0203'):
        decode_action_chunk(b'\x02\x03' + data[2:])
    huge_count = bytearray(data)
    left_names = data.index(b'left_j0') - 8  # uint32 count, then the first name's length
    huge_count[left_names: left_names + 4] = (2**31).to_bytes(4, 'little')
    with pytest.raises(ChunkDecodeError, match='left.joint_names: 2147483648 items cannot fit'):
        decode_action_chunk(bytes(huge_count))
