"""Frame-accurate seeking against lerobot's own decoder on videos harder than LeRobot writes.

LeRobot encodes a key frame every 2 frames, which makes any seek easy. These videos are written
here with PyAV directly: long GOPs with B-frames (H.264 and AV1) and full-range yuvj420p H.264
(as some ALOHA datasets on the Hub carry). Times are visited in a shuffled order (backwards,
forwards, repeated); every frame must equal lerobot 0.4.4's decode_video_frames (torchcodec).
"""

from __future__ import annotations

from fractions import Fraction
import json

import av
from lerobot_oracle import run_oracle
import numpy as np
import pytest

from training.lerobot_video import VideoFrameError, VideoFrames

FPS = 30
STEPS = 45


def write_long_gop(path, encoder: str, pix_fmt: str, options: dict) -> None:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:48, 0:64]
    with av.open(str(path), 'w', format='mp4') as container:
        stream = container.add_stream(encoder, rate=FPS, options=options)
        stream.pix_fmt, stream.height, stream.width = pix_fmt, 48, 64
        base = rng.integers(0, 120, size=3)
        for step in range(STEPS):
            rgb = np.stack([base[0] + x * 2, base[1] + y * 2, base[2] + (x + y)], -1)
            rgb[8:24, step: step + 16] = (240, 240, 30)  # a square moving a pixel a frame
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format='rgb24')
            frame.pts, frame.time_base = step, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.mark.parametrize('encoder, pix_fmt, options', [
    ('libx264', 'yuv420p', {'g': '30', 'bf': '3'}),
    ('libx264', 'yuvj420p', {'g': '12'}),
    ('libsvtav1', 'yuv420p', {'g': '40', 'preset': '12'}),
], ids=['h264_gop30_bframes', 'h264_full_range', 'av1_gop40'])
def test_frames_equal_lerobots_in_any_order(tmp_path, encoder, pix_fmt, options):
    video = tmp_path / 'camera.mp4'
    write_long_gop(video, encoder, pix_fmt, options)
    order = np.random.default_rng(0).permutation(STEPS).tolist()
    order += [3, 3, 4, 40, 2, 44, 0]  # repeats, a jump back, the last and first frames
    times = [step / FPS for step in order]
    run_oracle(tmp_path, 'decode', '--root', str(video), '--times', json.dumps(times),
               '--out', str(tmp_path / 'frames.npz'))
    expected = np.load(tmp_path / 'frames.npz')['frames']  # (N, H, W, 3) uint8
    frames = VideoFrames(tolerance_s=1e-4)
    for index, time_s in enumerate(times):
        np.testing.assert_array_equal(frames.frame_at(video, time_s), expected[index],
                                      err_msg=f'frame at {time_s:.4f} s')
    sequential = [frames.frame_at(video, step / FPS) for step in range(STEPS)]  # no seeks
    for index, step in enumerate(order[:STEPS]):  # the permutation visits every step once
        np.testing.assert_array_equal(sequential[step], expected[index])
    with pytest.raises(VideoFrameError, match=r'no frame within 0\.0001 s of 0\.0500 s'):
        frames.frame_at(video, 0.05)  # between frames 1 and 2
