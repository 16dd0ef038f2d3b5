"""Cost of the camera transport across a network: JPEG encode / decode per frame, and size.

For each JPEG quality: the robot side's conversion (pipeline/conversions.image_to_compressed,
what vla-adapter-compress-images does per frame), the policy side's decode
(compressed_image_to_rgb, what the inference node does per frame), the frame size, the
bandwidth of N cameras at R Hz against raw rgb8, and the mean absolute pixel error. Frames:
the MuJoCo ALOHA's cameras (rendered scenes with texture, closest to a real camera) when
MuJoCo is installed, else the kinematic stand-in's flat frames (compress far better than a
real camera; say so when quoting). Single-threaded, as the nodes run. Prints a table; asserts
nothing.

    .venv/bin/python benchmarks/image_compression.py [--height 480 --width 640]
        [--qualities 50,70,80,90,95] [--cameras 3 --rate_hz 30] [--repeats 30]
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


def mujoco_frames(height: int, width: int) -> tuple[str, list[np.ndarray]]:
    """One frame per camera of the MuJoCo ALOHA's transfer-cube scene (seed 0)."""
    os.environ.setdefault('MUJOCO_GL', 'egl')  # headless rendering, as the simulator node
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha

    robot = load_robot_description('aloha_sim')
    scene = MujocoAloha(robot)
    try:
        scene.reset(seed=0)
        return 'MuJoCo ALOHA', [scene.render(camera, height, width) for camera in robot.cameras]
    finally:
        scene.close()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--qualities', default='50,70,80,90,95')
    parser.add_argument('--cameras', type=int, default=3, help='cameras for the bandwidth column')
    parser.add_argument('--rate_hz', type=float, default=30.0)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--source', choices=('auto', 'mujoco', 'kinematic'), default='auto')
    args = parser.parse_args()
    source, frames = None, None
    if args.source in ('auto', 'mujoco'):
        try:
            source, frames = mujoco_frames(args.height, args.width)
        except ImportError as error:
            if args.source == 'mujoco':
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


if __name__ == '__main__':
    main()
