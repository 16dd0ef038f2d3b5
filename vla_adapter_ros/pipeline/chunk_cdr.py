"""ActionChunk bytes -> arrays, read straight from the CDR encoding the middleware delivers.

rclpy's ``deserialize_message`` builds one Python object per trajectory point inside a single C
call that holds the GIL: 8.7 ms for a 200-step two-arm chunk, long enough to delay the
executor's 50 Hz tick (issue 20). This reader walks the same bytes in Python and numpy, so the
interpreter can switch threads between points, and it builds no per-point objects. The layout
is plain CDR (XCDR1) as Fast DDS and Cyclone DDS write it for ROS 2, with one Fast-CDR detail:
a ``float64[]``'s elements are aligned to 8 only when the sequence is not empty. rclpy's own
writer is the oracle of the tests (test/vla_adapter_ros/pipeline/test_chunk_cdr.py).

Every malformed input raises :class:`ChunkDecodeError` (a ValueError) naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
import struct

import numpy as np

from vla_adapter_ros.pipeline.conversions import stamp_to_nanoseconds, trajectory_offsets_s

# The encapsulation header's second byte: 0 = big-endian CDR, 1 = little-endian CDR.
ENDIAN_PREFIX = {0: '>', 1: '<'}
MAX_STRING_BYTES = 1 << 20  # an instruction or a joint name longer than 1 MiB is corrupt
SEQUENCE_FIELDS = ('positions', 'velocities', 'accelerations', 'effort')


class ChunkDecodeError(ValueError):
    """The bytes are not a well-formed ActionChunk; the message names the field."""


@dataclass(frozen=True)
class ArmPlan:
    """One arm's trajectory of a chunk, as arrays."""

    joint_names: tuple[str, ...]
    positions: np.ndarray  # (T, P) float64, P = values per point (checked against the names later)
    offsets_s: np.ndarray  # (T,) time_from_start of each point, seconds

    @property
    def num_points(self) -> int:
        """Number of trajectory points."""
        return len(self.offsets_s)


@dataclass(frozen=True)
class DecodedChunk:
    """The fields of an ActionChunk the executor reads."""

    stamp_ns: int  # header.stamp: the observation's time
    left: ArmPlan
    right: ArmPlan
    instruction: str
    inference_ms: float
    sequence: int


class _CdrReader:
    """A cursor over CDR bytes; alignment counts from the end of the 4-byte encapsulation."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 4:
            raise ChunkDecodeError(f'ActionChunk: {len(data)} bytes, shorter than the CDR header')
        endian = ENDIAN_PREFIX.get(data[1]) if data[0] == 0 else None
        if endian is None:
            raise ChunkDecodeError(f'ActionChunk: unsupported CDR encapsulation {data[:2].hex()}')
        self.data = memoryview(data)
        self.endian = endian
        self.float64 = np.dtype(f'{endian}f8')
        self.offset = 4

    def _take(self, size: int, alignment: int, field: str) -> int:
        start = 4 + -(-(self.offset - 4) // alignment) * alignment
        if start + size > len(self.data):
            raise ChunkDecodeError(f'ActionChunk.{field}: the message ends at byte '
                                   f'{len(self.data)}, the field needs {start + size}')
        self.offset = start + size
        return start

    def scalar(self, code: str, field: str):
        """One primitive (struct format code)."""
        size = struct.calcsize(code)
        start = self._take(size, size, field)
        return struct.unpack_from(self.endian + code, self.data, start)[0]

    def string(self, field: str) -> str:
        """A CDR string: uint32 length including the terminating NUL, then the bytes."""
        length = self.scalar('I', field)
        if length == 0:
            return ''
        if length > MAX_STRING_BYTES:
            raise ChunkDecodeError(f'ActionChunk.{field}: string of {length} bytes')
        start = self._take(length, 1, field)
        raw = bytes(self.data[start: start + length - 1])
        try:
            return raw.decode('utf-8')
        except UnicodeDecodeError as error:
            raise ChunkDecodeError(f'ActionChunk.{field}: not UTF-8 ({error})') from None

    def count(self, field: str, item_bytes: int) -> int:
        """A sequence length, checked against the bytes left (each item >= item_bytes)."""
        count = self.scalar('I', field)
        if count * item_bytes > len(self.data) - self.offset:
            raise ChunkDecodeError(f'ActionChunk.{field}: {count} items cannot fit in the '
                                   f'{len(self.data) - self.offset} bytes left')
        return count

    def float64_array(self, field: str) -> np.ndarray:
        """A float64[]: uint32 count, then (only when count > 0) 8-aligned elements."""
        count = self.count(field, 8)
        if count == 0:
            return np.zeros(0)
        start = self._take(8 * count, 8, field)
        return np.frombuffer(self.data, self.float64, count, start).astype(np.float64)

    def skip_header(self, field: str) -> int:
        """std_msgs/Header -> its stamp in nanoseconds (frame_id is read and dropped)."""
        sec = self.scalar('i', f'{field}.stamp.sec')
        nanosec = self.scalar('I', f'{field}.stamp.nanosec')
        self.string(f'{field}.frame_id')
        return sec * 1_000_000_000 + nanosec


def _read_point(reader: _CdrReader, point: str) -> tuple[np.ndarray, float]:
    """One JointTrajectoryPoint -> (positions (P,), time_from_start s); the rest is skipped."""
    positions = reader.float64_array(f'{point}.positions')
    for name in SEQUENCE_FIELDS[1:]:
        reader.float64_array(f'{point}.{name}')
    sec = reader.scalar('i', f'{point}.time_from_start.sec')
    nanosec = reader.scalar('I', f'{point}.time_from_start.nanosec')
    return positions, sec + nanosec * 1e-9


def _read_uniform_points(reader: _CdrReader, count: int, width: int):
    """``count`` points of ``width`` positions and no other values, read as one record array.

    Such points (what the inference node publishes) all have the same size once the first one
    is read: positions count, 8-aligned values, three empty counts, time_from_start; 8 * width
    + 24 bytes. Returns (positions (count, width), offsets (count,)), or None when the points are
    not all of that form (the caller then reads them one by one).
    """
    if count == 0 or width == 0 or (reader.offset - 4) % 8 != 4:
        return None
    end = reader.offset + count * (8 * width + 24)
    if end > len(reader.data):
        return None
    e = reader.endian
    record = np.dtype([('count', f'{e}u4'), ('positions', f'{e}f8', (width,)),
                       ('empty', f'{e}u4', (3,)), ('sec', f'{e}i4'), ('nanosec', f'{e}u4')])
    points = np.frombuffer(reader.data, record, count, reader.offset)
    if np.any(points['count'] != width) or np.any(points['empty'] != 0):
        return None
    reader.offset = end
    offsets = points['sec'].astype(np.float64) + points['nanosec'] * 1e-9  # (count,)
    return points['positions'].astype(np.float64), offsets


def _read_trajectory(reader: _CdrReader, side: str) -> ArmPlan:
    reader.skip_header(f'{side}.header')
    names = tuple(reader.string(f'{side}.joint_names[{index}]')
                  for index in range(reader.count(f'{side}.joint_names', 4)))
    num_points = reader.count(f'{side}.points', 4 * len(SEQUENCE_FIELDS) + 8)
    rows, offsets = [], []
    while len(rows) < num_points:
        if len(rows) == 1:  # the rest in one go when they are all alike (the usual case)
            uniform = _read_uniform_points(reader, num_points - 1, len(rows[0]))
            if uniform is not None:
                return ArmPlan(names, _stack_rows(side, rows + [*uniform[0]]),
                               np.concatenate([offsets, uniform[1]]))
        row, offset = _read_point(reader, f'{side}.points[{len(rows)}]')
        rows.append(row)
        offsets.append(offset)
    return ArmPlan(names, _stack_rows(side, rows), np.asarray(offsets, dtype=np.float64))


def _stack_rows(side: str, rows: list[np.ndarray]) -> np.ndarray:
    """Per-point positions -> (T, P); a point with another count of values is an error."""
    if not rows:
        return np.zeros((0, 0))
    for index, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ChunkDecodeError(f'ActionChunk.{side}.points[{index}].positions has '
                                   f'{len(row)} values, points[0] has {len(rows[0])}')
    return np.stack(rows)  # (T, P)


def decode_action_chunk(data: bytes) -> DecodedChunk:
    """Serialised vla_adapter_msgs/ActionChunk (CDR) -> :class:`DecodedChunk`."""
    reader = _CdrReader(data)
    stamp_ns = reader.skip_header('header')
    left = _read_trajectory(reader, 'left')
    right = _read_trajectory(reader, 'right')
    instruction = reader.string('instruction')
    inference_ms = reader.scalar('f', 'inference_ms')
    sequence = reader.scalar('Q', 'sequence')
    return DecodedChunk(stamp_ns=stamp_ns, left=left, right=right, instruction=instruction,
                        inference_ms=float(inference_ms), sequence=int(sequence))


def _plan_of(side: str, trajectory) -> ArmPlan:
    rows = [np.asarray(point.positions, dtype=np.float64) for point in trajectory.points]
    return ArmPlan(joint_names=tuple(trajectory.joint_names),
                   positions=_stack_rows(side, rows),
                   offsets_s=trajectory_offsets_s(trajectory))  # (T,)


def decoded_from_message(message) -> DecodedChunk:
    """An ActionChunk message object -> :class:`DecodedChunk` (same fields, same checks)."""
    return DecodedChunk(stamp_ns=stamp_to_nanoseconds(message.header.stamp),
                        left=_plan_of('left', message.left),
                        right=_plan_of('right', message.right),
                        instruction=str(message.instruction),
                        inference_ms=float(message.inference_ms),
                        sequence=int(message.sequence))
