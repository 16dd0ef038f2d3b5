"""Cost of the camera transport across a network: JPEG encode / decode per frame, and size.

For each JPEG quality: the robot side's conversion (pipeline/conversions.image_to_compressed,
what vla-adapter-compress-images does per frame), the policy side's decode
(compressed_image_to_rgb, what the inference node does per frame), the frame size, the
bandwidth of N cameras at R Hz against raw rgb8, and the mean absolute pixel error. Frames:
the MuJoCo ALOHA's cameras (rendered scenes with texture, closest to a real camera) when
MuJoCo is installed, else the kinematic stand-in's flat frames (compress far better than a
real camera; say so when quoting). Single-threaded, as the nodes run.

With ``--checkpoint DIR`` (a policy for the MuJoCo ALOHA, e.g. checkpoints/aloha_sim_transfer_cube)
also the effect on the policy's output: for ``--scenes`` seeded transfer-cube scenes (cube
positions differ), the chunk predicted from the JPEG-decoded frames against the one from the raw
frames: mean |difference| in policy units, and in units of the training data's action std per
dimension (mean and largest). Prints tables; asserts
nothing.

    .venv/bin/python benchmarks/image_compression.py [--height 480 --width 640]
        [--qualities 50,70,80,90,95] [--cameras 3 --rate_hz 30] [--repeats 30]
        [--checkpoint checkpoints/aloha_sim_transfer_cube --scenes 8]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import time

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vla_adapter_ros.pipeline.conversions import (  # noqa: E402
    compressed_image_to_rgb,
    image_to_compressed,
    rgb_to_image,
)


def mujoco_scenes(height: int, width: int, scenes: int) -> list[dict]:
    """Observations of ``scenes`` seeded transfer-cube scenes: {'images', 'proprio'} each.

    One MuJoCo scene (and one EGL context) for all: a second context in the process crashes.
    """
    os.environ.setdefault('MUJOCO_GL', 'egl')  # headless rendering, as the simulator node
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha

    robot = load_robot_description('aloha_sim')
    scene = MujocoAloha(robot)
    observations = []
    try:
        for seed in range(scenes):
            scene.reset(seed=seed)
            observations.append({
                'images': {camera: scene.render(camera, height, width)
                           for camera in robot.cameras},
                'proprio': scene.policy_state()})
    finally:
        scene.close()
    return observations


def kinematic_frames(height: int, width: int) -> tuple[str, list[np.ndarray]]:
    """One frame per camera of the kinematic stand-in (flat colours)."""
    from vla_adapter_ros.sim.kinematic_robot import SceneRenderer

    renderer = SceneRenderer(height, width)
    pose = [np.zeros(7), np.zeros(7)]
    return 'kinematic stand-in (flat colours)', [renderer.render(i, pose) for i in range(4)]


def timed_ms(function, repeats: int) -> tuple[float, object]:
    """Median wall time of ``function()`` in ms over ``repeats`` calls, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), result


def measure(frames: list[np.ndarray], quality: int, repeats: int) -> dict:
    encode, decode, sizes, errors = [], [], [], []
    for rgb in frames:
        image = rgb_to_image(rgb)
        encode_ms, compressed = timed_ms(
            lambda image=image: image_to_compressed(image, quality), repeats)
        decode_ms, decoded = timed_ms(
            lambda compressed=compressed: compressed_image_to_rgb(compressed), repeats)
        encode.append(encode_ms)
        decode.append(decode_ms)
        sizes.append(len(compressed.data))
        errors.append(float(np.abs(decoded.astype(np.int16) - rgb.astype(np.int16)).mean()))
    return {'encode_ms': np.mean(encode), 'decode_ms': np.mean(decode),
            'kib': np.mean(sizes) / 1024, 'error': np.mean(errors)}


def load_policy(checkpoint: str):
    """The policy on the CPU, loaded before MuJoCo.

    torch's triton import after MuJoCo's EGL context crashes the process.
    """
    from vla_adapter_core.policy import VLAPolicy

    return VLAPolicy.from_pretrained(checkpoint, device='cpu', dtype='float32')


def policy_effect(policy, checkpoint: str, qualities: list[int],
                  observations: list[dict]) -> None:
    """Print the policy's chunk change from raw to JPEG frames (see the module docstring)."""
    import json

    from vla_adapter_ros.pipeline.conversions import encode_jpeg
    from vla_adapter_ros.sim.task_facts import DEFAULT_INSTRUCTION

    statistics = json.loads((Path(checkpoint) / 'dataset_statistics.json').read_text())
    std = np.asarray(next(iter(statistics.values()))['action']['std'])  # (A,)
    scale = np.where(std > 1e-6, std, np.inf)  # constant dimensions do not count
    inputs = [{'images': {camera: o['images'][camera] for camera in policy.config.camera_names},
               'proprio': o['proprio'], 'instruction': DEFAULT_INSTRUCTION}
              for o in observations]
    raw = np.stack([policy.predict_action_chunk(o) for o in inputs])  # (S, T, A)
    print(f'\npolicy {checkpoint}: {len(inputs)} scenes (seeds 0..), chunk {raw.shape[1]} x '
          f'{raw.shape[2]}; change of the predicted chunk from raw to JPEG frames, mean over '
          'steps and dimensions')
    print('| JPEG quality | mean abs change (policy units: rad, gripper 0-1) | in action std '
          '(training data) | largest, in action std |')
    print('| --- | --- | --- | --- |')
    for quality in qualities:
        changed = []
        for observation in inputs:
            decoded = {camera: compressed_image_to_rgb(_as_message(encode_jpeg(rgb, quality)))
                       for camera, rgb in observation['images'].items()}
            changed.append(policy.predict_action_chunk({**observation, 'images': decoded}))
        change = np.abs(np.stack(changed) - raw)  # (S, T, A)
        in_std = change / scale
        print(f'| {quality} | {change.mean():.5f} | {in_std.mean():.4f} | {in_std.max():.3f} |')


def _as_message(data: bytes):
    from sensor_msgs.msg import CompressedImage

    return CompressedImage(format='rgb8; jpeg compressed bgr8', data=data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--qualities', default='50,70,80,90,95')
    parser.add_argument('--cameras', type=int, default=3, help='cameras for the bandwidth column')
    parser.add_argument('--rate_hz', type=float, default=30.0)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--source', choices=('auto', 'mujoco', 'kinematic'), default='auto')
    parser.add_argument('--checkpoint', default='', help='also measure the policy output change')
    parser.add_argument('--scenes', type=int, default=8)
    args = parser.parse_args()
    policy = load_policy(args.checkpoint) if args.checkpoint else None
    source, frames, scenes = None, None, []
    if args.source in ('auto', 'mujoco') or args.checkpoint:
        try:
            scenes = mujoco_scenes(args.height, args.width,
                                   max(1, args.scenes if args.checkpoint else 1))
            source, frames = 'MuJoCo ALOHA', list(scenes[0]['images'].values())
        except ImportError as error:
            if args.source == 'mujoco' or args.checkpoint:
                raise
            print(f'MuJoCo unavailable ({error}); using the kinematic frames')
    if frames is None:
        source, frames = kinematic_frames(args.height, args.width)
    streams = args.cameras * args.rate_hz
    raw_mb_s = args.height * args.width * 3 * streams / 1e6
    print(f'frames: {source}, {len(frames)} cameras, {args.height}x{args.width} rgb8; '
          f'median of {args.repeats} runs per frame, one thread')
    print(f'raw rgb8: {args.height * args.width * 3 / 1024:.0f} KiB/frame, {raw_mb_s:.1f} MB/s '
          f'for {args.cameras} cameras at {args.rate_hz:g} Hz')
    print('| quality | encode ms/frame | decode ms/frame | KiB/frame | MB/s '
          f'({args.cameras} x {args.rate_hz:g} Hz) | mean abs error (0-255) |')
    print('| --- | --- | --- | --- | --- | --- |')
    for quality in (int(q) for q in args.qualities.split(',')):
        row = measure(frames, quality, args.repeats)
        mb_s = row['kib'] * 1024 * streams / 1e6
        print(f"| {quality} | {row['encode_ms']:.2f} | {row['decode_ms']:.2f} | "
              f"{row['kib']:.1f} | {mb_s:.2f} | {row['error']:.2f} |")
    if args.checkpoint:
        policy_effect(policy, args.checkpoint, [int(q) for q in args.qualities.split(',')], scenes)


if __name__ == '__main__':
    main()
