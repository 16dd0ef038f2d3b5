"""The pre-flight check over a window of live messages, and as a start-up step (no rclpy).

:class:`PreflightCollector` feeds arriving Image and JointState messages into preflight.py's
observations (the header stamp against the checker's clock at arrival, the image size, the joint
names and gripper reading) and, once a window has passed, holds them to the description with
:func:`~vla_adapter_ros.recording.preflight.check_streams`. It does not import rclpy: the
caller hands :meth:`PreflightCollector.subscribe` its node's ``create_subscription`` (the
recording session's probe, `vla-adapter-preflight` and the chunk executor all do).

:class:`StartupPreflight` is the check as the executor's start-up step: window after window
until one passes; each failed window's failures are its answer, and a new window starts at once.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
import threading

from vla_adapter_ros.pipeline.conversions import stamp_to_nanoseconds
from vla_adapter_ros.recording.preflight import (
    PreflightConfig,
    PreflightFailure,
    StreamExpectation,
    StreamObservation,
    check_streams,
)


class PreflightCollector:
    """What arrived on each expected topic since :meth:`begin` (message callbacks are cheap)."""

    def __init__(self, streams: list[StreamExpectation], config: PreflightConfig,
                 now_ns: Callable[[], int]) -> None:
        """``now_ns``: the checker's clock (its node's ROS time, sim time included)."""
        self.streams, self.config = streams, config
        self._now_ns = now_ns
        self._lock = threading.Lock()
        self._seen: dict[str, StreamObservation] = {}
        self._begin_ns = now_ns()

    def subscribe(self, create_subscription: Callable, image_type: type,
                  joint_state_type: type, qos, **options) -> list:
        """One subscription per expected topic through ``create_subscription`` (a node's).

        ``options`` go to every call (e.g. ``callback_group=``); returns the subscriptions.
        """
        subscriptions = []
        for stream in self.streams:
            camera = stream.kind == 'camera'
            callback = self.on_image if camera else self.on_joint_state
            subscriptions.append(create_subscription(
                image_type if camera else joint_state_type, stream.topic,
                functools.partial(callback, stream), qos, **options))
        return subscriptions

    def _observation(self, topic: str) -> StreamObservation:
        return self._seen.setdefault(topic, StreamObservation())

    def on_image(self, stream: StreamExpectation, message) -> None:
        """A sensor_msgs/Image of camera ``stream``."""
        with self._lock:
            self._observation(stream.topic).add_image(
                self._now_ns(), stamp_to_nanoseconds(message.header.stamp), message.height,
                message.width)

    def on_joint_state(self, stream: StreamExpectation, message) -> None:
        """A sensor_msgs/JointState of the arm of ``stream``."""
        with self._lock:
            self._observation(stream.topic).add_joint_state(
                self._now_ns(), stamp_to_nanoseconds(message.header.stamp), message.name,
                message.position, stream.arm)

    def begin(self) -> None:
        """Forget everything seen so far: a new window starts now."""
        with self._lock:
            self._seen, self._begin_ns = {}, self._now_ns()

    def elapsed_s(self) -> float:
        """Seconds since :meth:`begin` (on the checker's clock)."""
        return max(1e-9, (self._now_ns() - self._begin_ns) / 1e9)

    def failures(self) -> list[PreflightFailure]:
        """The checks over the window since :meth:`begin` (call once it has lasted window_s)."""
        with self._lock:
            seen = dict(self._seen)
            return check_streams(self.streams, seen, self.elapsed_s(), self.config)

    def rates_hz(self) -> dict[str, float]:
        """Messages per second of every topic since :meth:`begin`."""
        elapsed = self.elapsed_s()
        with self._lock:
            return {stream.topic: self._seen.get(stream.topic, StreamObservation()).count
                    / elapsed for stream in self.streams}


class StartupPreflight:
    """The pre-flight check as a start-up step: ``step()`` each tick until it returns ''.

    Windows are measured on the collector's clock. The first opens once every topic has a
    publisher (``discovered()``) or ``discovery_s`` after the first step, whichever comes
    first: a window spent on DDS discovery would report a healthy sensor as silent. A clock at
    zero (a node on sim time before the first /clock) opens no window, and a clock that went
    back (a simulator's restart) opens a new one: such messages say nothing about the rates.
    """

    def __init__(self, collector: PreflightCollector, now_ns: Callable[[], int],
                 discovered: Callable[[], bool] = lambda: True,
                 discovery_s: float = 5.0) -> None:
        self.collector = collector
        self._now_ns, self._discovered = now_ns, discovered
        self._discovery_ns = int(discovery_s * 1e9)
        self._first_step_ns: int | None = None
        self._window_start_ns: int | None = None

    def step(self) -> str | None:
        """None while a window is open, '' once one passed, else the last window's failures."""
        now_ns = self._now_ns()
        if now_ns <= 0:
            return None
        if self._window_start_ns is None:
            if self._first_step_ns is None or now_ns < self._first_step_ns:
                self._first_step_ns = now_ns
            if now_ns - self._first_step_ns < self._discovery_ns and not self._discovered():
                return None
        if self._window_start_ns is None or now_ns < self._window_start_ns:
            self._start(now_ns)
            return None
        if (now_ns - self._window_start_ns) / 1e9 < self.collector.config.window_s:
            return None
        failures = self.collector.failures()
        if not failures:
            return ''
        self._start(now_ns)
        return '; '.join(str(failure) for failure in failures)

    def _start(self, now_ns: int) -> None:
        self.collector.begin()
        self._window_start_ns = now_ns
