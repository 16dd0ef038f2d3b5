"""The pre-flight collector and the start-up step on a clock the test drives (no DDS)."""

import pathlib

from sensor_msgs.msg import Image, JointState

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.pipeline.conversions import nanoseconds_to_stamp
from vla_adapter_ros.recording.preflight import PreflightConfig, expected_streams
from vla_adapter_ros.recording.preflight_window import PreflightCollector, StartupPreflight

# 48x64 frames at 20 Hz, joint_states at 50 Hz (as test/support/fake_sensors.py sends them).
ROBOT = load_robot_description(pathlib.Path(__file__).resolve().parents[2] / 'fixtures'
                               / 'robots' / 'aloha_fake_sensors.yaml')
CAMERA = '/cam_high/camera/color/image_rect_raw'
STEP_NS = 10_000_000  # the test's clock advances 10 ms at a time


class FakeClock:
    """A ROS clock at zero (sim time before /clock) until the test sets it."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def joint_state(arm, stamp_ns: int, rename: dict | None = None) -> JointState:
    names = [(rename or {}).get(name, name) for name in arm.driver_joint_names]
    finger = float(arm.gripper.finger_from_normalized(0.5))
    positions = [finger if name in arm.model.finger_joints else 0.1 for name in names]
    message = JointState(name=names, position=positions)
    nanoseconds_to_stamp(stamp_ns, message.header.stamp)
    return message


def image(stamp_ns: int) -> Image:
    message = Image(height=48, width=64, encoding='rgb8', step=64 * 3)
    nanoseconds_to_stamp(stamp_ns, message.header.stamp)
    return message


def subscribed(clock: FakeClock, window_s: float = 0.5):
    """A collector subscribed through a recording stand-in for create_subscription."""
    streams = expected_streams(ROBOT, False, camera_topics=(CAMERA,), relative=True)
    collector = PreflightCollector(streams, PreflightConfig(window_s=window_s), clock)
    callbacks = {}

    def create_subscription(kind, topic, callback, qos, **options):
        assert options == {'callback_group': 'io'}
        callbacks[topic] = (kind, callback)

    collector.subscribe(create_subscription, Image, JointState, 'qos', callback_group='io')
    return collector, callbacks


def started_gate(*args, **kwargs):
    """A clock at 5 s, a subscribed collector and its start-up gate (extra args: the gate's)."""
    clock = FakeClock()
    clock.ns = 5_000_000_000
    collector, callbacks = subscribed(clock)
    return clock, collector, callbacks, StartupPreflight(collector, clock, *args, **kwargs)


def feed(clock: FakeClock, callbacks: dict, until_ns: int, rename: dict | None = None,
         camera: bool = True) -> None:
    """Advance the clock to ``until_ns``: the camera every 50 ms, joints every 20 ms."""
    arms = {f'{arm.namespace}/joint_states': arm for arm in ROBOT.arms}
    while clock.ns < until_ns:
        clock.ns += STEP_NS
        tick = clock.ns // STEP_NS
        for topic, (kind, callback) in callbacks.items():
            if kind is Image and camera and tick % 5 == 0:
                callback(image(clock.ns))
            elif kind is JointState and tick % 2 == 0:
                callback(joint_state(arms[topic], clock.ns, rename))


def test_the_collector_subscribes_the_cameras_and_the_followers_relative():
    _, callbacks = subscribed(FakeClock())
    assert {topic: kind for topic, (kind, _) in callbacks.items()} == {
        CAMERA: Image, 'follower_left/joint_states': JointState,
        'follower_right/joint_states': JointState}


def test_no_window_opens_before_the_clock_runs_and_good_inputs_pass():
    clock = FakeClock()
    collector, callbacks = subscribed(clock)
    gate = StartupPreflight(collector, clock)
    assert gate.step() is None  # sim time at zero: nothing measured yet
    clock.ns = 5_000_000_000
    assert gate.step() is None  # the first window opens now
    feed(clock, callbacks, clock.ns + 300_000_000)
    assert gate.step() is None  # 0.3 s of 0.5
    feed(clock, callbacks, clock.ns + 300_000_000)
    assert gate.step() == ''
    assert collector.rates_hz()[CAMERA] > 15


def test_a_failed_window_names_the_failures_and_the_next_window_starts_afresh():
    clock, _, callbacks, gate = started_gate()
    assert gate.step() is None
    feed(clock, callbacks, clock.ns + 600_000_000, rename={'wrist_rotate': 'wrist_yaw'},
         camera=False)
    failures = gate.step()
    assert failures.startswith(f'{CAMERA}: silent: no message in ')
    assert "follower_left/joint_states: joint_names: missing ['wrist_rotate'], unknown " \
           "['wrist_yaw']" in failures
    assert gate.step() is None  # a new window is open; the old failures are forgotten
    feed(clock, callbacks, clock.ns + 600_000_000)
    assert gate.step() == ''


def test_a_clock_that_went_back_opens_a_new_window():
    clock, _, callbacks, gate = started_gate()
    assert gate.step() is None
    feed(clock, callbacks, clock.ns + 400_000_000)
    clock.ns = 1_000_000_000  # a simulator restarted its clock
    assert gate.step() is None
    feed(clock, callbacks, clock.ns + 400_000_000)
    assert gate.step() is None  # 0.4 s since the restart: the window is still open
    feed(clock, callbacks, clock.ns + 200_000_000)
    assert gate.step() == ''


def test_the_first_window_waits_for_discovery_at_most_discovery_s():
    found = [False]
    clock, collector, callbacks, gate = started_gate(lambda: found[0], discovery_s=2.0)
    assert gate.step() is None
    clock.ns += 1_500_000_000  # no publisher yet: no window, so nothing is reported silent
    assert gate.step() is None
    found[0] = True
    assert gate.step() is None  # discovered: the first window opens now
    feed(clock, callbacks, clock.ns + 600_000_000)
    assert gate.step() == ''
    late = StartupPreflight(collector, clock, lambda: False, discovery_s=2.0)
    assert late.step() is None
    clock.ns += 2_000_000_000  # never discovered: the window opens after discovery_s
    assert late.step() is None
    clock.ns += 600_000_000
    assert late.step().startswith(f'{CAMERA}: silent')
