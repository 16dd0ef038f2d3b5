"""Observations per second of the offline replay evaluation (vla-adapter-replay-eval).

Writes a temporary ALOHA bag (3 cameras 640x480 at 30 Hz as the recorder stores them: JPEG
CompressedImage, or raw rgb8 with --raw; 2 follower + 2 leader joint states at 50 Hz), then
times ``replay_eval.evaluate`` with the tiny random policy of the tests: reading, decoding, the
inference node's assembler (conversion + synchroniser), one prediction per observation, the
baselines, the executed view. Also times the same pass with a policy that returns at once (the
replay machinery alone), and the tiny policy again with each of --batch_sizes observations per
call. Prints the numbers; asserts nothing.

    .venv/bin/python benchmarks/replay_eval_throughput.py [--seconds 10] [--raw] [--stride 1]
        [--batch_sizes 4,16] [--threads 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import tempfile
import time

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'test' / 'support'))

from inference_harness import statistics_around_the_start_pose, tiny_policy_for  # noqa: E402
from replay_bags import write_episode  # noqa: E402

from vla_adapter_core.robot_description import load_robot_description  # noqa: E402
from vla_adapter_ros.replay.replay_config import ReplayEvalConfig  # noqa: E402
from vla_adapter_ros.replay.replay_eval import evaluate  # noqa: E402

ALOHA = load_robot_description('aloha')


class InstantPolicy:
    """The tiny policy's config, and a constant chunk at once (the replay machinery alone)."""

    def __init__(self, config) -> None:
        self.config = config
        self._chunk = np.zeros((config.chunk_size, config.action_dim))

    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        return self._chunk


def timed(bag: Path, policy, stride: int, batch_size: int = 1) -> tuple[float, dict]:
    settings = ReplayEvalConfig(bag=str(bag), progress=False, stride=stride, batch_size=batch_size)
    start = time.perf_counter()
    report = evaluate([bag], policy, ALOHA, settings)
    return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=10.0, help='bag length (s)')
    parser.add_argument('--raw', action='store_true', help='raw rgb8 images instead of JPEG')
    parser.add_argument('--stride', type=int, default=1, help='infer every N-th observation')
    parser.add_argument('--batch_sizes', default='4,16',
                        help='comma-separated batch sizes timed after the single calls')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch_sizes = [int(size) for size in args.batch_sizes.split(',') if size]
    policy = tiny_policy_for(ALOHA, chunk_size=50, seed=0,
                             statistics=statistics_around_the_start_pose(ALOHA))
    with tempfile.TemporaryDirectory() as folder:
        bag = write_episode(Path(folder) / 'bag', ALOHA, seconds=args.seconds,
                            leader_actions=True, compressed=not args.raw, image_hw=(480, 640),
                            image_format='jpeg')
        images = 'raw rgb8' if args.raw else 'JPEG'
        print(f'bag: {args.seconds:.0f} s, 3 cameras 640x480 {images} at 30 Hz, 4 joint-state '
              f'streams at 50 Hz; torch threads {args.threads}; stride {args.stride}')
        runs = [('tiny policy', policy, 1), ('no model', InstantPolicy(policy.config), 1)]
        runs += [(f'batch of {size}', policy, size) for size in batch_sizes]
        for name, runner, batch_size in runs:
            seconds, report = timed(bag, runner, args.stride, batch_size)
            row = report['episodes'][0]
            batching = report['aggregate']['batching']
            extra = (f'; batched vs single max |d| {batching["max_abs_batched_vs_single"]:.1e}'
                     if batching else '')
            print(f'{name:12s}: {row["observations"]} observations, {row["inference_points"]} '
                  f'predictions in {seconds:.2f} s = {row["observations"] / seconds:.1f} '
                  f'observations/s ({row["observations"] / args.seconds:.1f} per bag second); '
                  f'latency p50 {row["latency"]["p50_ms"]:.1f} ms{extra}')


if __name__ == '__main__':
    main()
