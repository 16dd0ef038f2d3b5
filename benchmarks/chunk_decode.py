"""Decode time of one serialised ActionChunk: rclpy's deserialize_message against chunk_cdr.

The executor's intake thread used to call ``deserialize_message`` (one C call holding the GIL);
it now reads the bytes with ``vla_adapter_ros.pipeline.chunk_cdr`` (issue 20). Both decode the
same max-length two-arm chunks; printed: p50 / p99 milliseconds per chunk of each.

    source scripts/ros_env.sh
    python benchmarks/chunk_decode.py [--steps 200] [--repeats 200]
"""

import argparse
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def two_arm_chunk(steps: int):
    """A chunk of ``steps`` points per arm with 7 joints each, as the inference node sends."""
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_msgs.msg import ActionChunk
    from vla_adapter_ros.pipeline.conversions import arm_trajectory

    robot = load_robot_description('aloha')
    rng = np.random.default_rng(0)
    message = ActionChunk(instruction='transfer the red cube to the other arm', sequence=1)
    message.header.stamp.sec = 1_700_000_000
    left, right = (arm_trajectory(rng.uniform(-1, 1, (steps, arm.dim)), arm.command_joint_names,
                                  0.02) for arm in robot.arms)
    message.left, message.right = left, right
    return message


def timings_ms(decode, data: bytes, repeats: int) -> np.ndarray:
    """Wall time of ``repeats`` decodes, milliseconds each."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode(data)
        times.append(1e3 * (time.perf_counter() - start))
    return np.asarray(times)


def main() -> None:
    """Parse the options, time both decoders, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=200, help='points per arm')
    parser.add_argument('--repeats', type=int, default=200)
    args = parser.parse_args()
    from rclpy.serialization import deserialize_message, serialize_message

    from vla_adapter_msgs.msg import ActionChunk
    from vla_adapter_ros.pipeline.chunk_cdr import decode_action_chunk

    data = serialize_message(two_arm_chunk(args.steps))
    decoders = {'rclpy deserialize_message': lambda raw: deserialize_message(raw, ActionChunk),
                'chunk_cdr.decode_action_chunk': decode_action_chunk}
    for name, decode in decoders.items():
        times = timings_ms(decode, data, args.repeats)
        print(f'{name}: {args.steps} steps x 2 arms, p50 {np.percentile(times, 50):.3f} ms, '
              f'p99 {np.percentile(times, 99):.3f} ms')


if __name__ == '__main__':
    main()
