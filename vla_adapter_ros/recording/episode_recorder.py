"""The episode recorder: episodes start and stop from any thread, one writer thread writes.

:meth:`EpisodeRecorder.offer` never waits: a bounded queue feeds the writer thread, and a
message that finds the queue full is dropped and counted. Each episode's sidecar
(``episode_metadata.yaml``) takes the success flag after the episode.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
import dataclasses
import os
from pathlib import Path
import threading
import time
from typing import Any

from training.bag_types import bag_typestore
from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.recording.bag_format import (
    EPISODE_METADATA_NAME,
    FLOAT64_ARRAY,
    EpisodeBagWriter,
    RecordingError,
    TopicPlan,
    write_yaml_atomically,
)


@dataclasses.dataclass
class Episode:
    """One episode's bookkeeping, shared by the recorder and its writer thread."""

    name: str
    path: Path
    instruction: str
    start_ns: int
    stop_ns: int | None = None
    stop_reason: str = ''
    success: bool | None = None
    dropped: int = 0
    write_errors: int = 0
    last_error: str = ''
    complete: bool = False
    ignored_commands: int = 0
    counts: dict = dataclasses.field(default_factory=dict)
    control: dict | None = None  # who commanded, when (control_log.py); None if not recorded


class _BoundedQueue:
    """FIFO whose messages are bounded (a full queue refuses them); control items always fit."""

    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self._items: collections.deque = collections.deque()
        self._messages = 0
        self._unfinished = 0
        self._condition = threading.Condition()

    def put_message(self, item) -> bool:
        with self._condition:
            if self._messages >= self.max_messages:
                return False
            self._items.append((True, item))
            self._messages += 1
            self._unfinished += 1
            self._condition.notify_all()
            return True

    def put_control(self, item) -> None:
        with self._condition:
            self._items.append((False, item))
            self._unfinished += 1
            self._condition.notify_all()

    def get(self):
        with self._condition:
            while not self._items:
                self._condition.wait()
            is_message, item = self._items.popleft()
            if is_message:
                self._messages -= 1
            return item

    def task_done(self) -> None:
        with self._condition:
            self._unfinished -= 1
            self._condition.notify_all()

    def join(self, timeout_s: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self._unfinished == 0, timeout_s)

    @property
    def depth(self) -> int:
        return self._messages


class EpisodeRecorder:
    """Episodes on demand: one bag each, written by one thread fed through a bounded queue.

    ``static_metadata`` (robot, provenance, settings) goes into every episode's sidecar.
    Thread-safe: :meth:`offer` is called from subscription callbacks, the rest from services,
    topics and timers.
    """

    def __init__(self, plan: tuple[TopicPlan, ...], robot: RobotDescription, *,
                 output_dir: Path, episode_prefix: str = 'episode', storage: str = 'mcap',
                 jpeg_quality: int = 0, commanded_action_topic: str = '/commanded_action',
                 queue_size: int = 2000, static_metadata: dict | None = None,
                 decode_joint_state: Callable[[bytes], Any],
                 decode_chunk: Callable[[bytes], Any] | None = None) -> None:
        """Start the writer thread; nothing is recorded until :meth:`start`.

        ``decode_joint_state``, ``decode_chunk``: see :class:`EpisodeBagWriter`.
        """
        self.plan = plan
        self.decode_joint_state = decode_joint_state
        self.decode_chunk = decode_chunk
        self.robot = robot
        self.output_dir = Path(output_dir)
        self.episode_prefix = episode_prefix
        self.storage = storage
        self.jpeg_quality = jpeg_quality
        self.commanded_action_topic = commanded_action_topic
        self.static_metadata = dict(static_metadata or {})
        self.typestore = bag_typestore()
        self._queue = _BoundedQueue(queue_size)
        self._lock = threading.Lock()
        self._current: Episode | None = None
        self._last: Episode | None = None
        self._claimed: set[str] = set()
        self.dropped_total = 0
        self.written_total = 0
        self.episodes_finished = 0
        self._thread = threading.Thread(target=self._run, name='episode_writer', daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- control (any thread)
    @property
    def recording(self) -> Episode | None:
        """The episode being recorded, or None."""
        return self._current

    def _next_path(self) -> Path:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        taken = {path.name for path in self.output_dir.iterdir()} | self._claimed
        index = 0
        while f'{self.episode_prefix}_{index:04d}' in taken:
            index += 1
        self._claimed.add(f'{self.episode_prefix}_{index:04d}')  # before the thread creates it
        return self.output_dir / f'{self.episode_prefix}_{index:04d}'

    def start(self, instruction: str, now_ns: int) -> Episode:
        """Open the next bag and record into it; RecordingError when that cannot be done."""
        with self._lock:
            if self._current is not None:
                raise RecordingError(f'already recording {self._current.path}')
            try:
                path = self._next_path()
            except OSError as error:
                raise RecordingError(f'cannot create bags in {self.output_dir}: {error}') from None
            if not os.access(self.output_dir, os.W_OK):
                raise RecordingError(f'cannot write into {self.output_dir}')
            episode = Episode(name=path.name, path=path, instruction=instruction,
                              start_ns=now_ns)
            self._current = episode
            # The writer thread opens the bag: sqlite3 connections live in the thread that
            # made them.
            self._queue.put_control(('begin', episode))
        return episode

    def offer(self, slot: int, time_ns: int, data: bytes) -> None:
        """Queue one received message for the current episode; never waits (full = dropped)."""
        with self._lock:
            episode = self._current
            if episode is None:
                return
            if not self._queue.put_message(('message', episode, slot, time_ns, data)):
                episode.dropped += 1
                self.dropped_total += 1

    def stop(self, reason: str, now_ns: int) -> Episode:
        """End the current episode (its queued messages are still written)."""
        with self._lock:
            episode = self._current
            if episode is None:
                raise RecordingError('not recording')
            episode.stop_ns, episode.stop_reason = now_ns, reason
            self._current, self._last = None, episode
            self._queue.put_control(('finish', episode))
        return episode

    def set_success(self, success: bool) -> Episode:
        """Mark the current episode, else the last one, as a success or a failure."""
        with self._lock:
            episode = self._current or self._last
            if episode is None:
                raise RecordingError('no episode recorded yet')
            episode.success = bool(success)
            self._queue.put_control(('mark', episode))
        return episode

    def set_instruction(self, instruction: str) -> None:
        """A new instruction during an episode becomes that episode's."""
        with self._lock:
            if self._current is not None:
                self._current.instruction = instruction

    def wait_until_written(self, timeout_s: float = 10.0) -> bool:
        """Block until everything queued so far is written (tests, shutdown)."""
        return self._queue.join(timeout_s)

    def close(self, now_ns: int, timeout_s: float = 30.0) -> None:
        """Stop a running episode ('shutdown'), write everything and end the thread."""
        if self._current is not None:
            self.stop('shutdown', now_ns)
        self._queue.put_control(('quit',))
        self._thread.join(timeout_s)

    def status(self, now_ns: int) -> dict:
        """Counters for the node's status (queue depth, drops, the episode in progress)."""
        with self._lock:
            episode, last = self._current, self._last
            status = {'recording': episode is not None,
                      'episode': episode.name if episode else '',
                      'elapsed_s': (now_ns - episode.start_ns) / 1e9 if episode else 0.0,
                      'queue_depth': self._queue.depth,
                      'dropped_messages': self.dropped_total,
                      'episode_dropped_messages': episode.dropped if episode else 0,
                      'written_messages': self.written_total,
                      'episodes_finished': self.episodes_finished,
                      'last_episode': str(last.path) if last else '',
                      'last_success': '' if last is None or last.success is None
                      else str(last.success).lower()}
            current = episode or last
            status['write_errors'] = current.write_errors if current else 0
            status['last_error'] = current.last_error if current else ''
        return status

    # ----------------------------------------------------------------- writer thread
    def _run(self) -> None:
        writers: dict[int, EpisodeBagWriter] = {}
        while True:
            item = self._queue.get()
            try:
                if item[0] == 'quit':
                    return
                self._handle(item, writers)
            finally:
                self._queue.task_done()

    def _handle(self, item: tuple, writers: dict) -> None:
        kind, episode = item[0], item[1]
        if kind == 'message':
            writer = writers.get(id(episode))
            if writer is not None:
                self._write_message(episode, writer, *item[2:])
            else:  # the bag did not open
                episode.write_errors += 1
        elif kind == 'begin':
            try:
                writers[id(episode)] = EpisodeBagWriter(
                    episode.path, self.storage, self.plan, self.typestore, self.robot,
                    self.decode_joint_state, self.jpeg_quality, self.commanded_action_topic,
                    self.decode_chunk)
            except Exception as error:  # noqa: BLE001 - rosbags and the OS raise many types
                episode.last_error = f'cannot open bag {episode.path}: {error}'
                return
            self._write_sidecar(episode, writers[id(episode)])
        elif kind == 'finish':
            writer = writers.pop(id(episode), None)
            try:
                if writer is not None:
                    writer.close(episode.instruction)
            except Exception as error:  # noqa: BLE001 - reported in the sidecar and status
                episode.last_error = f'closing the bag failed: {error}'
            episode.complete = writer is not None
            self._write_sidecar(episode, writer)
            self.episodes_finished += 1
        elif kind == 'mark':
            self._write_sidecar(episode, writers.get(id(episode)))

    def _write_message(self, episode: Episode, writer: EpisodeBagWriter, slot: int,
                       time_ns: int, data: bytes) -> None:
        try:
            writer.write(slot, time_ns, data)
            self.written_total += 1
        except Exception as error:  # noqa: BLE001 - one bad message must not end the bag
            episode.write_errors += 1
            episode.last_error = f'{self.plan[slot].topic}: {error}'

    def _write_sidecar(self, episode: Episode, writer: EpisodeBagWriter | None) -> None:
        """Write (or rewrite) the episode's episode_metadata.yaml."""
        if writer is not None:
            episode.counts = dict(writer.counts)
            episode.ignored_commands = writer.ignored_commands
            if any(entry.role == 'control_source' for entry in self.plan):
                episode.control = writer.control.summary(episode.start_ns, episode.stop_ns)
        duration_s = None if episode.stop_ns is None else (
            (episode.stop_ns - episode.start_ns) / 1e9)
        topics = {}
        for entry in self.plan:
            count = episode.counts.get(entry.bag_topic, 0)
            topics[entry.bag_topic] = {
                'source_topic': entry.topic, 'type': entry.bag_msgtype, 'role': entry.role,
                'messages': count,
                'rate_hz': round(count / duration_s, 3) if duration_s else None}
        if self.commanded_action_topic in episode.counts:
            count = episode.counts[self.commanded_action_topic]
            topics[self.commanded_action_topic] = {
                'source_topic': None, 'type': FLOAT64_ARRAY, 'role': 'commanded_action',
                'messages': count, 'rate_hz': round(count / duration_s, 3) if duration_s
                else None}
        data = {
            'episode': episode.name, 'complete': episode.complete,
            'instruction': episode.instruction, 'success': episode.success,
            'start_time_ns': episode.start_ns, 'stop_time_ns': episode.stop_ns,
            'start_time': time.strftime('%Y-%m-%dT%H:%M:%S%z',
                                        time.localtime(episode.start_ns / 1e9)),
            'duration_s': duration_s, 'stop_reason': episode.stop_reason or None,
            'storage': self.storage, 'jpeg_quality': self.jpeg_quality,
            'dropped_messages': episode.dropped, 'write_errors': episode.write_errors,
            'last_error': episode.last_error or None,
            'ignored_commands': episode.ignored_commands,
            'missing_topics': [name for name, info in topics.items() if info['messages'] == 0
                               and info['role'] != 'instruction'] if episode.complete else None,
            'topics': topics, **self.static_metadata}
        if episode.control is not None:
            data['control'] = episode.control
        try:
            write_yaml_atomically(episode.path / EPISODE_METADATA_NAME, data)
        except OSError as error:
            episode.last_error = f'cannot write {EPISODE_METADATA_NAME}: {error}'
