"""The live view's logging, read back from the .rrd with Rerun's own reader."""

import numpy as np
import pytest
import rerun as rr
from rrd_contents import rrd_entities

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.view.rerun_view import TIMELINE, RobotView

ALOHA = load_robot_description('aloha')
T0 = 1_700_000_000_000_000_000
JOINTS = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate', 'gripper')


@pytest.fixture()
def recorded(tmp_path):
    """A view fed two frames, joints of three streams, three chunks and a fault; its file."""
    path = tmp_path / 'view.rrd'
    recording = rr.RecordingStream('vla_adapter_view_test')
    recording.save(str(path))
    view = RobotView(ALOHA, recording, plan_slots=2)
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    for k in range(2):
        view.camera('cam_high', T0 + k * 33_000_000, rgb)
    for k in range(5):
        stamp = T0 + k * 20_000_000
        view.joints('measured', 0, stamp, np.arange(7) * 0.1 + k)
        view.joints('leader', 1, stamp, np.full(7, 0.5))
    commanded = np.full(7, np.nan)
    commanded[:6] = 0.25  # the arm group only: the gripper is not part of this command
    view.joints('commanded', 0, T0, commanded)
    offsets = np.arange(4) * 0.02
    for sequence in range(3):
        values = np.tile(np.arange(14, dtype=float), (4, 1)) + sequence  # (4, 14)
        view.chunk(sequence, T0 + sequence * 100_000_000, offsets, values, 40.0 + sequence)
    for state, reason in [('RUNNING', ''), ('RUNNING', ''), ('FAULT', 'stale joint_states')]:
        view.status('executor', T0, state, reason)
    view.flush()
    recording.flush()
    recording.disconnect()
    return rrd_entities(path)


def test_entities_and_timeline(recorded):
    expected = {'/cameras/cam_high', '/policy/inference_ms', '/status/executor'}
    for side in ('left', 'right'):
        for joint in JOINTS:
            expected |= {f'/joints/{side}/{joint}/plan/0', f'/joints/{side}/{joint}/plan/1'}
    expected |= {f'/joints/left/{joint}/measured' for joint in JOINTS}
    expected |= {f'/joints/right/{joint}/leader' for joint in JOINTS}
    expected |= {f'/joints/left/{joint}/commanded' for joint in JOINTS[:6]}
    assert expected <= set(recorded)
    assert set(recorded) - expected <= {'/__properties'}
    assert all(TIMELINE in timelines for entity, columns in recorded.items()
               if entity != '/__properties' for timelines in columns['timelines'])


def test_each_line_is_named_and_coloured_by_its_stream(recorded):
    measured = recorded['/joints/left/elbow/measured']['static']
    plan = recorded['/joints/right/gripper/plan/1']['static']
    assert measured['SeriesLines:names'] == [['measured']]
    assert plan['SeriesLines:names'] == [['plan 1']]
    assert measured['SeriesLines:colors'] != plan['SeriesLines:colors']


def test_counts_values_and_times(recorded):
    assert len(recorded['/cameras/cam_high']['Image:buffer']) == 2
    measured = recorded['/joints/left/elbow/measured']
    assert measured['ros_time'] == [T0 + k * 20_000_000 for k in range(5)]
    assert [row[0] for row in measured['Scalars:scalars']] == pytest.approx(
        [0.2 + k for k in range(5)])
    assert len(recorded['/joints/right/gripper/leader']['Scalars:scalars']) == 5
    assert len(recorded['/joints/left/wrist_rotate/commanded']['ros_time']) == 1


def test_each_chunk_is_drawn_at_the_future_times_it_plans(recorded):
    # Chunks 0 and 2 share slot 0; chunk 1 is slot 1. Right gripper = action dimension 13.
    slot0 = recorded['/joints/right/gripper/plan/0']
    assert slot0['ros_time'] == [T0 + k * 20_000_000 for k in range(4)] + [
        T0 + 200_000_000 + k * 20_000_000 for k in range(4)]
    assert [row[0] for row in slot0['Scalars:scalars']] == [13.0] * 4 + [15.0] * 4
    slot1 = recorded['/joints/left/waist/plan/1']
    assert slot1['ros_time'][0] == T0 + 100_000_000
    assert [row[0] for row in slot1['Scalars:scalars']] == [1.0] * 4
    assert [row[0] for row in recorded['/policy/inference_ms']['Scalars:scalars']] == [
        40.0, 41.0, 42.0]


def test_status_changes_only_and_faults_as_errors(recorded):
    status = recorded['/status/executor']
    assert [row[0] for row in status['TextLog:text']] == ['RUNNING',
                                                          'FAULT: stale joint_states']
    assert [row[0] for row in status['TextLog:level']] == ['INFO', 'ERROR']


def test_bad_plan_slots():
    with pytest.raises(ValueError, match='plan_slots=0'):
        RobotView(ALOHA, rr.RecordingStream('unused'), plan_slots=0)
