"""Serialized messages received off the executor and without the GIL, size known before bytes.

rclpy takes a raw subscription's message on the spinning thread, inside one C call that holds
the GIL: the middleware's copy, the rcl buffer's and the Python ``bytes`` object's, 30 ms of
page faults and memcpy for a 19 MB message on the 2-core test machine (issue 20,
benchmarks/chunk_receive_cost.py). Fast DDS 3.2 has no per-reader limit on a sample's size that
an XML profile can set (a PREALLOCATED history caps it at the type's bound, 95 bytes for an
unbounded ActionChunk, so every chunk is refused). :class:`SerializedReceiver` instead keeps the
subscription out of every executor (:class:`NeverExecutedGroup`), waits for it in a wait set of
its own (rclpy releases the GIL while waiting) and takes with ``rcl_take_serialized_message``
through ctypes, which releases the GIL for the call: the copies run beside the ticking thread,
and a message above the size limit is dropped without ever becoming a Python object.
"""

from __future__ import annotations

from collections.abc import Iterator
import ctypes
from pathlib import Path

from rclpy.callback_groups import CallbackGroup
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node

RCL_RET_OK = 0
RCL_RET_SUBSCRIPTION_TAKE_FAILED = 401  # nothing to take
MESSAGE_INFO_BYTES = 512  # room for rmw_message_info_t (about 80 bytes today)


class NeverExecutedGroup(CallbackGroup):
    """A callback group no executor runs: its entities stay out of the executors' wait sets."""

    def can_execute(self, entity) -> bool:
        """Never: the executor leaves the entity alone (neither waits on it nor takes)."""
        return False

    def beginning_execution(self, entity) -> bool:
        """Never granted."""
        return False

    def ending_execution(self, entity) -> None:
        """Nothing to release."""


class _Allocator(ctypes.Structure):
    """rcutils_allocator_t (rcutils/allocator.h)."""

    _fields_ = [('allocate', ctypes.c_void_p), ('deallocate', ctypes.c_void_p),
                ('reallocate', ctypes.c_void_p), ('zero_allocate', ctypes.c_void_p),
                ('state', ctypes.c_void_p)]


class _Uint8Array(ctypes.Structure):
    """rcutils_uint8_array_t, which rcl_serialized_message_t is (rcutils/types/uint8_array.h)."""

    _fields_ = [('buffer', ctypes.POINTER(ctypes.c_uint8)), ('buffer_length', ctypes.c_size_t),
                ('buffer_capacity', ctypes.c_size_t), ('allocator', _Allocator)]


def loaded_library(stem: str) -> ctypes.CDLL:
    """The lib<stem>.so this process has mapped already (rclpy's own copy), else by name."""
    for line in Path('/proc/self/maps').read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and Path(fields[-1]).name.startswith(f'lib{stem}.so'):
            return ctypes.CDLL(fields[-1])
    return ctypes.CDLL(f'lib{stem}.so')


class UnlockedTake:
    """``rcl_take_serialized_message`` into a C buffer owned here, the GIL released meanwhile.

    ``capacity`` bytes are allocated up front; a larger message grows the buffer (the
    middleware resizes it) and :meth:`shrink` hands the excess back.
    """

    def __init__(self, capacity: int) -> None:
        """Load rcl/rcutils (OSError or AttributeError when they cannot be) and allocate."""
        self._rcutils = loaded_library('rcutils')
        rcl = loaded_library('rcl')
        self._rcutils.rcutils_get_default_allocator.restype = _Allocator
        self._rcutils.rcutils_uint8_array_init.argtypes = [
            ctypes.POINTER(_Uint8Array), ctypes.c_size_t, ctypes.POINTER(_Allocator)]
        self._rcutils.rcutils_uint8_array_resize.argtypes = [
            ctypes.POINTER(_Uint8Array), ctypes.c_size_t]
        self._rcutils.rcutils_uint8_array_fini.argtypes = [ctypes.POINTER(_Uint8Array)]
        self._take = rcl.rcl_take_serialized_message
        self._take.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Uint8Array), ctypes.c_void_p,
                               ctypes.c_void_p]
        self._take.restype = ctypes.c_int
        self._allocator = self._rcutils.rcutils_get_default_allocator()
        self._message = _Uint8Array()
        self._capacity = capacity
        if self._rcutils.rcutils_uint8_array_init(ctypes.byref(self._message), capacity,
                                                  ctypes.byref(self._allocator)) != RCL_RET_OK:
            raise MemoryError(f'cannot allocate a {capacity}-byte message buffer')
        self._info = ctypes.create_string_buffer(MESSAGE_INFO_BYTES)

    def take(self, subscription_pointer: int) -> int | None:
        """Take one message (GIL released); its size in bytes, or None when there was none."""
        ret = self._take(subscription_pointer, ctypes.byref(self._message), self._info, None)
        if ret == RCL_RET_SUBSCRIPTION_TAKE_FAILED:
            return None
        if ret != RCL_RET_OK:
            raise RuntimeError(f'rcl_take_serialized_message failed ({ret})')
        return int(self._message.buffer_length)

    def data(self) -> bytes:
        """The last message taken, copied into bytes."""
        return ctypes.string_at(self._message.buffer, self._message.buffer_length)

    def shrink(self) -> None:
        """Give back what a message above ``capacity`` made the buffer grow by."""
        if self._message.buffer_capacity > self._capacity:
            self._rcutils.rcutils_uint8_array_resize(ctypes.byref(self._message),
                                                     self._capacity)

    def close(self) -> None:
        """Free the buffer (idempotent)."""
        if self._message.buffer:
            self._rcutils.rcutils_uint8_array_fini(ctypes.byref(self._message))
            self._message.buffer = None


class SerializedReceiver:
    """A raw subscription that a thread of the caller's receives from (see the module notes).

    :meth:`receive` waits up to ``timeout_s`` and yields ``(size, data)`` for every message
    taken: ``data`` is the bytes when ``size <= max_bytes`` and None above (never copied into
    Python). Call it from one thread only; :meth:`close` after that thread ended.
    """

    def __init__(self, node: Node, msg_type, topic: str, qos, max_bytes: int) -> None:
        """Create the subscription on ``node``; OSError/AttributeError when rcl is not loadable."""
        self._taker = UnlockedTake(max_bytes)
        self.max_bytes = max_bytes
        self._node = node
        self.subscription = node.create_subscription(
            msg_type, topic, lambda _: None, qos, callback_group=NeverExecutedGroup(), raw=True)
        self._wait_set = _rclpy.WaitSet(1, 0, 0, 0, 0, 0, node.context.handle)

    def receive(self, timeout_s: float) -> Iterator[tuple[int, bytes | None]]:
        """Wait for messages (at most ``timeout_s``), then take every one there is."""
        with self.subscription.handle:
            self._wait_set.clear_entities()
            self._wait_set.add_subscription(self.subscription.handle)
            self._wait_set.wait(int(timeout_s * 1e9))
            pointer = self.subscription.handle.pointer
        while True:
            with self.subscription.handle:
                size = self._taker.take(pointer)
            if size is None:
                return
            if size <= self.max_bytes:
                yield size, self._taker.data()
            else:
                self._taker.shrink()
                yield size, None

    def close(self) -> None:
        """Destroy the subscription and free the buffer."""
        self._node.destroy_subscription(self.subscription)
        self._taker.close()
