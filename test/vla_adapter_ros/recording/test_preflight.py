"""The pre-flight check's logic: one failure case each, fed the way the collector feeds it."""

import math

import pytest

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.recording.preflight import (
    PreflightConfig,
    StreamObservation,
    check_streams,
    expected_streams,
)

ALOHA = load_robot_description('aloha')  # 480x640 cameras at 30 Hz, joint_states at 100 Hz
CONFIG = PreflightConfig()
WINDOW_S = 1.0
NOW_NS = 1_700_000_000_000_000_000
LATE_NS = NOW_NS + 1_000_000_000  # after the healthy window's messages
CAMERA = '/cam_high/camera/color/image_rect_raw'
FOLLOWER = '/follower_left/joint_states'


def driver_positions(arm, opening=0.5) -> dict:
    """Every driver joint of ``arm`` at 0.1 rad, fingers at ``opening`` of their span."""
    finger = float(arm.gripper.finger_from_normalized(opening))
    positions = dict.fromkeys(arm.command_joint_names, 0.1)
    positions.update({arm.model.finger_joints[0]: finger, arm.model.finger_joints[1]: -finger})
    return positions


def healthy(rate_scale: float = 1.0) -> dict:
    """Observations of every ALOHA topic as a healthy robot sends them over one window."""
    seen = {}
    for stream in expected_streams(ALOHA):
        observation = seen[stream.topic] = StreamObservation()
        count = round(stream.rate_hz * WINDOW_S * rate_scale)
        for k in range(count):
            stamp = NOW_NS + k * round(1e9 / (stream.rate_hz * rate_scale))
            receive = stamp + 3_000_000  # 3 ms on the way
            if stream.kind == 'camera':
                observation.add_image(receive, stamp, *stream.image_size)
            else:
                positions = driver_positions(stream.arm)
                observation.add_joint_state(receive, stamp, list(positions)[::-1],
                                            list(positions.values())[::-1], stream.arm)
    return seen


def add_joints(observation: StreamObservation, arm, positions: dict) -> None:
    observation.add_joint_state(LATE_NS, LATE_NS, list(positions), list(positions.values()), arm)


def failures_of(seen: dict) -> list[tuple[str, str]]:
    return [(failure.topic, failure.check) for failure in
            check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG)]


def test_the_expected_streams_are_the_descriptions_cameras_and_arms():
    topics = [stream.topic for stream in expected_streams(ALOHA)]
    assert topics == [*ALOHA.camera_topics(), '/follower_left/joint_states',
                      '/follower_right/joint_states', '/leader_left/joint_states',
                      '/leader_right/joint_states']
    assert len(expected_streams(ALOHA, check_leaders=False)) == 5


def test_a_healthy_robot_passes():
    assert failures_of(healthy()) == []


def test_silent_topic():
    seen = healthy()
    del seen['/leader_right/joint_states']
    failure, = check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG)
    assert str(failure) == '/leader_right/joint_states: silent: no message in 1.0 s'


def test_slow_topic():
    seen = healthy()
    seen[CAMERA] = healthy(rate_scale=0.5)[CAMERA]
    failure, = check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG)
    assert (failure.topic, failure.check) == (CAMERA, 'rate')
    assert failure.detail == '15.0 Hz, expected 30 Hz (at least 24.0)'


def test_a_simulator_slowed_down_keeps_its_stamped_rate():
    # On the sim clock a loaded machine steps the simulator slower than real time: fewer
    # messages reach the window, but their stamps still say 50 / 30 Hz of sim time.
    seen = {}
    for stream in expected_streams(ALOHA):
        observation = seen[stream.topic] = StreamObservation()
        for k in range(round(stream.rate_hz * WINDOW_S * 0.6)):
            stamp = NOW_NS + k * round(1e9 / stream.rate_hz)
            if stream.kind == 'camera':
                observation.add_image(stamp, stamp, *stream.image_size)
            else:
                positions = driver_positions(stream.arm)
                observation.add_joint_state(stamp, stamp, list(positions),
                                            list(positions.values()), stream.arm)
    assert check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG) == []


def test_wrong_image_size():
    seen = healthy()
    seen[CAMERA].add_image(LATE_NS, LATE_NS, 240, 320)
    failure, = check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG)
    assert (failure.check, failure.detail) == (
        'image_size', 'frames of 240x320, 480x640 (height x width), expected 480x640')


def test_wrong_joint_names():
    seen, arm = healthy(), ALOHA.arms[0]
    positions = driver_positions(arm)
    positions['wrist_yaw'] = positions.pop('wrist_rotate')
    add_joints(seen[FOLLOWER], arm, positions)
    failure, = check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG)
    assert (failure.topic, failure.check) == (FOLLOWER, 'joint_names')
    assert failure.detail.startswith("missing ['wrist_rotate'], unknown ['wrist_yaw']; the vx300s")


def test_non_finite_joint_value():
    seen, arm = healthy(), ALOHA.arms[0]
    positions = driver_positions(arm)
    positions['elbow'] = math.nan
    add_joints(seen[FOLLOWER], arm, positions)
    assert failures_of(seen) == [(FOLLOWER, 'joint_values')]


@pytest.mark.parametrize('opening', [-0.3, 1.25])
def test_gripper_outside_its_calibration(opening):
    seen, arm = healthy(), ALOHA.leaders[1]
    topic = '/leader_right/joint_states'
    positions = driver_positions(arm, opening)
    add_joints(seen[topic], arm, positions)
    failure, = check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG)
    assert (failure.topic, failure.check) == (topic, 'gripper')
    assert 'calibrated 0.0185 (closed) .. 0.0323 m (open)' in failure.detail
    # Within the margin it passes: a calibration is never exact.
    seen = healthy()
    positions = driver_positions(arm, 1.05)
    add_joints(seen[topic], arm, positions)
    assert failures_of(seen) == []


@pytest.mark.parametrize('stamp_offset_ns, detail', [
    (-3_600_000_000_000, 'header stamps 3600.000 s ahead of this clock (at most 0.5 s)'),
    (2_000_000_000, 'header stamps 2.000 s behind this clock (at most 0.5 s)'),
])
def test_clock_offset(stamp_offset_ns, detail):
    seen = healthy()
    seen[CAMERA] = StreamObservation()
    for k in range(30):
        receive = NOW_NS + k * 33_000_000
        seen[CAMERA].add_image(receive, receive - stamp_offset_ns, 480, 640)
    failure, = check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG)
    assert (failure.topic, failure.check, failure.detail) == (CAMERA, 'clock', detail)


def test_zero_and_backward_stamps():
    seen = healthy()
    seen[CAMERA].add_image(LATE_NS, 0, 480, 640)
    seen[CAMERA].add_image(LATE_NS, LATE_NS - 100_000_000, 480, 640)  # before the last one
    details = [failure.detail for failure in
               check_streams(expected_streams(ALOHA), seen, WINDOW_S, CONFIG)]
    assert details == ['1 of 32 header stamps are zero', 'header stamps went back 1 times']


@pytest.mark.parametrize('field, value', [('window_s', 0.0), ('min_rate_fraction', 1.5),
                                          ('gripper_margin', -0.1),
                                          ('max_clock_offset_s', 0.0)])
def test_bad_config_names_the_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf'--{field} {value}: must be'):
        PreflightConfig(**{field: value})
