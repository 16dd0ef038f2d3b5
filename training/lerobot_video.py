"""Frame-accurate decoding of LeRobot camera videos (MP4: AV1, H.264, HEVC) with PyAV.

A frame is asked for by its presentation time (s) in the file; the frame whose time is within
``tolerance_s`` of it is returned as uint8 (H, W, 3) RGB, the same frame LeRobot's own decoder
returns for that time. Decoding seeks to the key frame at or before the time and decodes forward;
a request just after the previous one (the next steps of an episode) continues decoding without
seeking. Containers stay open per process (DataLoader workers each open their own; a forked
worker never closes the ones it inherited).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
import os
from pathlib import Path
import weakref

import av
import numpy as np

# Continue decoding forward instead of seeking when the next request is at most this far ahead.
FORWARD_WINDOW_S = 0.5
MAX_OPEN_FILES = 16
# Containers a forked child inherited: closing one there would wait forever for the parent's
# FFmpeg decoder threads, which a fork does not copy, so the child keeps them unclosed.
_INHERITED: list = []
_INSTANCES: weakref.WeakSet = weakref.WeakSet()


def _abandon_inherited_videos() -> None:
    """After a fork (DataLoader workers): every VideoFrames starts over without closing."""
    for frames in list(_INSTANCES):
        _INHERITED.append(frames._open)
        frames._open = OrderedDict()


os.register_at_fork(after_in_child=_abandon_inherited_videos)


class VideoFrameError(ValueError):
    """A frame that cannot be had; the caller adds the episode and camera."""


@dataclass
class _OpenVideo:
    container: av.container.InputContainer  # the open file
    stream: av.video.stream.VideoStream  # its first video stream
    frames: Iterator | None = None  # decoding position, None after a seek is needed
    last_time: float = -1.0  # time of the last frame taken from ``frames``
    last_frame: np.ndarray | None = None  # that frame, RGB, if it was returned


def decoder_available(codec: str) -> bool:
    """True when PyAV's FFmpeg can decode ``codec`` (e.g. 'av1', 'h264', 'hevc')."""
    try:
        av.codec.Codec(codec, 'r')
    except (av.FFmpegError, ValueError):
        return False
    return True


class VideoFrames:
    """Open videos of this process and the frame at a time in each."""

    def __init__(self, tolerance_s: float, threads: int = 1) -> None:
        self.tolerance_s = tolerance_s
        self.threads = threads  # decoder threads per video (0: FFmpeg's choice)
        self._open: OrderedDict[str, _OpenVideo] = OrderedDict()
        _INSTANCES.add(self)

    def _video(self, path: str) -> _OpenVideo:
        video = self._open.get(path)
        if video is None:
            try:
                container = av.open(path)
            except av.FFmpegError as error:
                raise VideoFrameError(f'not a readable video ({error})') from None
            if not container.streams.video or container.streams.video[0].codec_context is None:
                container.close()
                raise VideoFrameError('no video stream of a codec PyAV knows')
            video = _OpenVideo(container, container.streams.video[0])
            video.stream.codec_context.thread_count = self.threads  # before the first decode
            self._open[path] = video
            if len(self._open) > MAX_OPEN_FILES:
                _, oldest = self._open.popitem(last=False)
                oldest.container.close()
        self._open.move_to_end(path)
        return video

    def _restart(self, video: _OpenVideo, time_s: float) -> None:
        """Seek to the key frame at or before ``time_s`` and restart decoding there."""
        target = max(0.0, time_s - self.tolerance_s)
        offset = int(target / video.stream.time_base)
        video.container.seek(offset, stream=video.stream, backward=True, any_frame=False)
        video.frames = video.container.decode(video.stream)
        video.last_time, video.last_frame = -1.0, None

    def frame_at(self, path: str | Path, time_s: float) -> np.ndarray:
        """uint8 (H, W, 3) RGB frame shown at ``time_s``; VideoFrameError if none is close."""
        video = self._video(str(path))
        ahead = time_s - video.last_time
        if video.last_frame is not None and abs(ahead) <= self.tolerance_s:
            return video.last_frame
        if video.frames is None or not -self.tolerance_s < ahead <= FORWARD_WINDOW_S:
            self._restart(video, time_s)
        try:
            for frame in video.frames:
                if frame.pts is None:
                    continue
                frame_time = float(frame.pts * video.stream.time_base)
                video.last_time, video.last_frame = frame_time, None
                if frame_time >= time_s - self.tolerance_s:
                    if frame_time > time_s + self.tolerance_s:
                        break
                    video.last_frame = frame.to_ndarray(format='rgb24')  # (H, W, 3)
                    return video.last_frame
        except av.FFmpegError as error:
            video.frames = None
            raise VideoFrameError(f'decoding failed near {time_s:.4f} s ({error})') from None
        video.frames = None
        shown = f'{video.last_time:.4f} s' if video.last_time >= 0 else 'the end of the video'
        raise VideoFrameError(f'no frame within {self.tolerance_s} s of {time_s:.4f} s (next '
                              f'frame at {shown})')

    def close(self) -> None:
        """Close every open container."""
        for video in self._open.values():
            video.container.close()
        self._open.clear()

    def __getstate__(self) -> dict:
        # Open containers never cross processes.
        return {'tolerance_s': self.tolerance_s, 'threads': self.threads}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state['tolerance_s'], state['threads'])


# Encoder settings of LeRobot's recorder (lerobot.datasets.video_utils.encode_video_frames): a
# key frame every 2 frames keeps random access cheap; yuv420p is what every decoder reads.
VIDEO_CODECS = {
    'libsvtav1': ('libsvtav1', 'av1', {'g': '2', 'crf': '30', 'preset': '12'}),
    'h264': ('libx264', 'h264', {'g': '2', 'crf': '23', 'preset': 'veryfast'}),
}


class VideoWriter:
    """An MP4 being written frame by frame: frame i is shown at i / fps s."""

    def __init__(self, path: str | Path, fps: float, codec: str) -> None:
        if codec not in VIDEO_CODECS:
            raise ValueError(f'video codec {codec!r}: expected one of {sorted(VIDEO_CODECS)}')
        self.encoder, self.codec, self.options = VIDEO_CODECS[codec]
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = Fraction(fps).limit_denominator(1000)
        self.fps = fps
        self.container = av.open(str(self.path), 'w', format='mp4')
        self.stream = None
        self.count = 0

    def add(self, rgb: np.ndarray) -> None:
        """Append one uint8 (H, W, 3) RGB frame (every frame must have the first's size)."""
        if self.stream is None:
            self.stream = self.container.add_stream(self.encoder, rate=self.rate,
                                                    options=self.options)
            self.stream.pix_fmt = 'yuv420p'
            self.stream.height, self.stream.width = rgb.shape[:2]
        elif rgb.shape[:2] != (self.stream.height, self.stream.width):
            raise ValueError(f'{self.path}: frame {self.count} is {rgb.shape[:2]}, the video '
                             f'{(self.stream.height, self.stream.width)}')
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        frame.pts, frame.time_base = self.count, 1 / self.rate
        self.container.mux(self.stream.encode(frame))
        self.count += 1

    def close(self) -> dict:
        """Flush and close; LeRobot's ``info`` block of the video feature."""
        if self.stream is None:
            self.container.close()
            raise ValueError(f'{self.path}: no frames to encode')
        self.container.mux(self.stream.encode())
        self.container.close()
        return {'video.height': int(self.stream.height), 'video.width': int(self.stream.width),
                'video.codec': self.codec, 'video.pix_fmt': 'yuv420p',
                'video.is_depth_map': False, 'video.fps': self.fps, 'video.channels': 3,
                'has_audio': False}


def write_video(path: str | Path, frames, fps: float, codec: str) -> dict:
    """Encode uint8 (H, W, 3) RGB ``frames`` to an MP4; the video feature's ``info`` block."""
    writer = VideoWriter(path, fps, codec)
    for rgb in frames:
        writer.add(rgb)
    return writer.close()
