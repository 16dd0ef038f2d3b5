"""Pre-flight check: are the sensors what the robot description says, right now (no rclpy).

Before every episode of a recording session (and before a policy starts) a collector listens to
the robot's camera and joint-state topics for a short window and feeds what it saw, message by
message, into one :class:`StreamObservation` per topic; :func:`check_streams` then holds each to
the robot description (vla_adapter_core.robot_description, the one home of these facts):

- ``silent``: a topic sent nothing during the window;
- ``rate``: fewer than ``min_rate_fraction`` x the description's rate (``camera_rate_hz``,
  ``joint_states_rate_hz``; not checked where the description gives none), measured on the
  header stamps where they run forward (the source's own clock), else by arrivals per window;
- ``image_size``: a frame of another (height, width) than the description's ``camera_size``;
- ``joint_names``: joint_states without one of the driver's joints, or with one it does not
  have;
- ``joint_values``: a NaN or infinite position;
- ``gripper``: the observed finger outside its calibrated span (0 closed .. 1 open) by more than
  ``gripper_margin`` (a wrong calibration, a wrong description, or a gripper the driver lost);
- ``clock``: a zero stamp, stamps going back, or stamps further than ``max_clock_offset_s`` from
  the checker's clock when the message arrived (another machine's clock, a bag's time).

A failure names the topic, the check and the values; the session refuses to start an episode
while any failure stands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

from training.config_cli import option, require_option
from vla_adapter_core.robot_description import Arm, RobotDescription

CHECKS = ('silent', 'rate', 'image_size', 'joint_names', 'joint_values', 'gripper', 'clock')


@dataclass(frozen=True)
class PreflightConfig:
    """How strictly the pre-flight check holds the sensors to the description."""

    # One second holds 30 frames of a 30 Hz camera: enough for a rate, short between episodes.
    window_s: float = option(1.0, help='how long the check listens to every topic (s)')
    # Scheduling jitter and the first message's arrival cost a few percent of a short window.
    min_rate_fraction: float = option(0.8, help="a topic's rate must reach this fraction of "
                                                "the description's rate")
    # Calibrations drift by a few percent; a gripper further out is misdescribed or lost.
    gripper_margin: float = option(0.1, help='allowed excursion of a gripper reading beyond its '
                                             'calibrated span (fraction of the span)')
    # Two machines without time sync, or a bag's old stamps, are off by seconds or more.
    max_clock_offset_s: float = option(0.5, help='largest allowed distance between a header '
                                                 "stamp and the checker's clock at arrival (s)")
    # The leaders' joint_states are the recorded actions of a teleoperated episode.
    check_leaders: bool = option(True, help="also check the description's leader arms")

    def __post_init__(self) -> None:
        require_option(0.1 <= self.window_s <= 30.0, 'window_s', self.window_s,
                       'must be in [0.1, 30]')
        require_option(0.0 < self.min_rate_fraction <= 1.0, 'min_rate_fraction',
                       self.min_rate_fraction, 'must be in (0, 1]')
        require_option(0.0 <= self.gripper_margin <= 1.0, 'gripper_margin',
                       self.gripper_margin, 'must be in [0, 1]')
        require_option(self.max_clock_offset_s > 0.0, 'max_clock_offset_s',
                       self.max_clock_offset_s, 'must be > 0')


@dataclass(frozen=True)
class StreamExpectation:
    """One topic the check listens to and what its description promises."""

    topic: str
    kind: str  # 'camera' or 'joint_states'
    rate_hz: float | None
    image_size: tuple[int, int] | None = None  # cameras: (height, width)
    arm: Arm | None = None  # joint_states: the arm whose driver publishes it


@dataclass(frozen=True)
class PreflightFailure:
    """One failed check on one topic."""

    topic: str
    check: str  # one of CHECKS
    detail: str

    def __str__(self) -> str:
        return f'{self.topic}: {self.check}: {self.detail}'


@dataclass
class StreamObservation:
    """What arrived on one topic during the window (fed one message at a time)."""

    count: int = 0
    sizes: set = field(default_factory=set)  # (height, width) of the frames
    names: tuple[str, ...] = ()  # the last joint_states' names
    nonfinite: set = field(default_factory=set)  # joints that reported NaN / inf
    fingers: list = field(default_factory=list)  # observed finger positions (m)
    zero_stamps: int = 0
    backward_stamps: int = 0
    max_offset_ns: int = 0  # arrival clock - header stamp, the largest in magnitude
    last_stamp_ns: int | None = None
    first_stamp_ns: int | None = None
    stamped: int = 0  # messages with a non-zero header stamp

    def add_stamp(self, receive_ns: int, stamp_ns: int) -> None:
        """Count a message and check its header stamp against the arrival clock."""
        self.count += 1
        if stamp_ns == 0:
            self.zero_stamps += 1
            return
        if self.last_stamp_ns is not None and stamp_ns < self.last_stamp_ns:
            self.backward_stamps += 1
        if self.first_stamp_ns is None:
            self.first_stamp_ns = stamp_ns
        self.stamped += 1
        self.last_stamp_ns = stamp_ns
        offset = receive_ns - stamp_ns
        if abs(offset) > abs(self.max_offset_ns):
            self.max_offset_ns = offset

    def add_image(self, receive_ns: int, stamp_ns: int, height: int, width: int) -> None:
        """A camera frame's header and size."""
        self.add_stamp(receive_ns, stamp_ns)
        self.sizes.add((int(height), int(width)))

    def add_joint_state(self, receive_ns: int, stamp_ns: int, names, positions,
                        arm: Arm) -> None:
        """A joint_states message: its names, non-finite values and the observed finger."""
        self.add_stamp(receive_ns, stamp_ns)
        self.names = tuple(names)
        values = dict(zip(self.names, (float(value) for value in positions)))
        self.nonfinite.update(name for name, value in values.items() if not math.isfinite(value))
        finger = values.get(arm.model.finger_joints[0])
        if finger is not None and math.isfinite(finger):
            self.fingers.append(finger)

    def rate_hz(self, window_s: float) -> float:
        """Messages per second: by their header stamps where they run forward, else per window.

        The stamps give the rate the source publishes at, on its own clock: a simulator on the
        sim clock (50 Hz of sim time however fast the machine steps it) or a driver whose
        messages arrive in bursts.
        """
        if self.stamped >= 2 and not self.backward_stamps and (
                self.last_stamp_ns > self.first_stamp_ns):
            return (self.stamped - 1) / ((self.last_stamp_ns - self.first_stamp_ns) * 1e-9)
        return self.count / window_s


def expected_streams(robot: RobotDescription, check_leaders: bool = True,
                     joint_states_topic: str = 'joint_states',
                     camera_topics: tuple[str, ...] | None = None,
                     relative: bool = False) -> list[StreamExpectation]:
    """The topics of ``robot`` the check listens to: every camera, then every arm's joints.

    ``camera_topics``: the cameras to check (None: the description's); ``relative``: the
    joint-state topics as ``<namespace>/<topic>`` (resolved in the checking node's namespace,
    as the executor's own subscriptions are) instead of absolute.
    """
    topics = robot.camera_topics() if camera_topics is None else camera_topics
    streams = [StreamExpectation(topic, 'camera', robot.camera_rate_hz, robot.camera_size)
               for topic in topics]
    arms = robot.arms + (robot.leaders if check_leaders else ())
    root = '' if relative else '/'
    streams += [StreamExpectation(f'{root}{arm.namespace}/{joint_states_topic}', 'joint_states',
                                  robot.joint_states_rate_hz, arm=arm) for arm in arms]
    return streams


def check_streams(streams: list[StreamExpectation], seen: dict[str, StreamObservation],
                  window_s: float, config: PreflightConfig) -> list[PreflightFailure]:
    """Every failed check, topic by topic in ``streams`` order (empty: ready to record)."""
    failures = []
    for stream in streams:
        observation = seen.get(stream.topic, StreamObservation())
        if observation.count == 0:
            failures.append(PreflightFailure(stream.topic, 'silent',
                                             f'no message in {window_s:.1f} s'))
            continue
        failures += [PreflightFailure(stream.topic, check, detail)
                     for check, detail in _stream_problems(stream, observation, window_s, config)]
    return failures


def _stream_problems(stream: StreamExpectation, seen: StreamObservation, window_s: float,
                     config: PreflightConfig) -> list[tuple[str, str]]:
    problems = []
    rate = seen.rate_hz(window_s)
    if stream.rate_hz is not None and rate < config.min_rate_fraction * stream.rate_hz:
        problems.append(('rate', f'{rate:.1f} Hz, expected {stream.rate_hz:g} Hz (at least '
                                 f'{config.min_rate_fraction * stream.rate_hz:.1f})'))
    if stream.image_size is not None and seen.sizes - {stream.image_size}:
        got = ', '.join(f'{h}x{w}' for h, w in sorted(seen.sizes))
        problems.append(('image_size', f'frames of {got} (height x width), expected '
                                       f'{stream.image_size[0]}x{stream.image_size[1]}'))
    if stream.arm is not None:
        problems += _joint_problems(stream.arm, seen, config)
    problems += _clock_problems(seen, config)
    return problems


def _joint_problems(arm: Arm, seen: StreamObservation,
                    config: PreflightConfig) -> list[tuple[str, str]]:
    problems = []
    expected = arm.driver_joint_names
    missing = [name for name in expected if name not in seen.names]
    unknown = [name for name in seen.names if name not in expected]
    if missing or unknown:
        problems.append(('joint_names', f'missing {missing}, unknown {unknown}; the '
                                        f'{arm.model.model} driver publishes {list(expected)}'))
    if seen.nonfinite:
        problems.append(('joint_values', f'non-finite positions of {sorted(seen.nonfinite)}'))
    if seen.fingers:
        opening = arm.gripper.normalize_finger([min(seen.fingers), max(seen.fingers)])
        low, high = float(opening.min()), float(opening.max())
        margin = config.gripper_margin
        if low < -margin or high > 1.0 + margin:
            finger = arm.model.finger_joints[0]
            problems.append(('gripper', f'{finger} at {low:.2f}..{high:.2f} of its calibrated '
                                        f'opening (0 closed .. 1 open, margin {margin:g}): '
                                        f'{min(seen.fingers):.4f}..{max(seen.fingers):.4f} m, '
                                        f'calibrated {arm.gripper.finger_closed:g} (closed) .. '
                                        f'{arm.gripper.finger_open:g} m (open)'))
    return problems


def _clock_problems(seen: StreamObservation, config: PreflightConfig) -> list[tuple[str, str]]:
    problems = []
    if seen.zero_stamps:
        problems.append(('clock', f'{seen.zero_stamps} of {seen.count} header stamps are zero'))
    if seen.backward_stamps:
        problems.append(('clock', f'header stamps went back {seen.backward_stamps} times'))
    offset_s = seen.max_offset_ns / 1e9
    if abs(offset_s) > config.max_clock_offset_s:
        side = 'behind' if offset_s > 0 else 'ahead of'
        problems.append(('clock', f'header stamps {abs(offset_s):.3f} s {side} this clock '
                                  f'(at most {config.max_clock_offset_s:g} s)'))
    return problems
