"""The executor's chunk inbox: bounded FIFO, never blocks, supersedes the oldest, closes."""

import threading
import time

import pytest

from vla_adapter_ros.pipeline.chunk_intake import ChunkInbox


def test_fifo_order_and_the_oldest_is_superseded_when_full():
    inbox = ChunkInbox(depth=3)
    for index in range(5):
        inbox.put(bytes([index]))
    assert inbox.dropped == 2
    assert [inbox.take(0.0) for _ in range(4)] == [b'\x02', b'\x03', b'\x04', None]


def test_take_waits_for_a_chunk_and_close_wakes_it():
    inbox = ChunkInbox(depth=2)
    taken = []
    consumer = threading.Thread(target=lambda: taken.append(inbox.take(5.0)))
    consumer.start()
    time.sleep(0.05)
    inbox.put(b'chunk')
    consumer.join(timeout=2.0)
    assert taken == [b'chunk']
    waiting = threading.Thread(target=lambda: taken.append(inbox.take(30.0)))
    started = time.monotonic()
    waiting.start()
    inbox.close()
    waiting.join(timeout=2.0)
    assert not waiting.is_alive() and time.monotonic() - started < 2.0
    assert taken == [b'chunk', None] and inbox.closed
    inbox.put(b'late')
    assert inbox.take(0.0) is None  # nothing is filed after close


def test_clear_forgets_what_waits_and_depth_is_checked():
    inbox = ChunkInbox(depth=2)
    inbox.put(b'a')
    inbox.clear()
    assert inbox.take(0.0) is None
    with pytest.raises(ValueError, match='depth=0'):
        ChunkInbox(depth=0)
