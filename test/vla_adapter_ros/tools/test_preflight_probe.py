"""`vla-adapter-preflight` over real DDS against fake sensors: a pass, named failures, bad input.

fake_sensors.py child processes publish the cameras and arms of the test description
(test/fixtures/robots/aloha_fake_sensors.yaml: 48x64 frames at 20 Hz, joint_states at 50 Hz);
the check runs as its own process, as an operator runs it.
"""

import subprocess
import sys

from ros_test_utils import SUPPORT_DIR, start_python_process, stop_process

FAKE_SENSORS = SUPPORT_DIR / 'fake_sensors.py'
ROBOT = str(SUPPORT_DIR.parent / 'fixtures' / 'robots' / 'aloha_fake_sensors.yaml')
CAMERA = '/{}/camera/color/image_rect_raw'


def run_preflight(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'vla_adapter_ros.tools.preflight_probe', '--robot', ROBOT,
         '--discovery_s', '15', *args], capture_output=True, text=True, timeout=120)


def failed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith('FAILED ')]


def test_healthy_sensors_pass_and_their_rates_are_shown():
    sensors = start_python_process(FAKE_SENSORS, '--robot-description', ROBOT,
                                   '--duration', '60')
    try:
        result = run_preflight('--no_check_leaders', '--window_s', '2')
    finally:
        assert 'sensors ready' in stop_process(sensors)
    assert result.returncode == 0, result.stdout + result.stderr
    assert failed_lines(result.stdout) == []
    rates = dict(line.rsplit(': ', 1) for line in result.stdout.splitlines() if ' Hz' in line)
    assert set(rates) == {*(CAMERA.format(c) for c in ('cam_high', 'cam_left_wrist',
                                                         'cam_right_wrist')),
                          '/follower_left/joint_states', '/follower_right/joint_states'}
    assert all(float(rate.split()[0]) > 10 for rate in rates.values())
    assert 'pre-flight passed: 5 topics, 0 failures' in result.stdout


def test_failures_are_named_one_per_line():
    """A half-size camera, leaders reporting follower finger positions, a silent topic."""
    processes = [
        start_python_process(FAKE_SENSORS, '--robot-description', ROBOT, '--duration', '60',
                             '--fault', 'size', '--fault-camera', 'cam_left_wrist',
                             '--robots', 'follower_left,follower_elsewhere'),
        start_python_process(FAKE_SENSORS, '--robot-description', ROBOT, '--duration', '60',
                             '--cameras', '', '--robots', 'leader_left,leader_right')]
    try:
        result = run_preflight('--window_s', '2')
    finally:
        for process in processes:
            assert 'sensors ready' in stop_process(process)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = failed_lines(result.stdout)
    assert lines[0] == (f'FAILED {CAMERA.format("cam_left_wrist")}: image_size: frames of '
                        '24x32 (height x width), expected 48x64')
    assert lines[1] == 'FAILED /follower_right/joint_states: silent: no message in 2.0 s'
    assert [line.split(': ')[:2] for line in lines[2:]] == [
        ['FAILED /leader_left/joint_states', 'gripper'],
        ['FAILED /leader_right/joint_states', 'gripper']]
    assert 'calibrated 0.0185 (closed) .. 0.0323 m (open)' in lines[2]
    assert 'pre-flight failed: 7 topics, 4 failures' in result.stdout


def test_a_bad_robot_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, '-m', 'vla_adapter_ros.tools.preflight_probe', '--robot',
         str(tmp_path / 'none.yaml')], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count('\n') == 0
    assert result.stderr.startswith('vla-adapter-preflight: error: ') and 'none.yaml' in (
        result.stderr)
    result = subprocess.run(
        [sys.executable, '-m', 'vla_adapter_ros.tools.preflight_probe', '--window_s', '0'],
        capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr.strip()) == (
        2, 'vla-adapter-preflight: error: --window_s 0.0: must be in [0.1, 30]')
