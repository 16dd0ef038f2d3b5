"""`vla-adapter-record-session` driven like a person: keys through tmux, the screen read back.

Real processes over DDS: fake_sensors.py (cameras and followers of the test description),
scripted_leader.py (the leader arms, a gripper the test closes), the episode recorder node, and
the session itself in a tmux pane of a private tmux server (send-keys, capture-pane). The bags
it leaves are checked on disk.
"""

import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from ros_test_utils import SUPPORT_DIR, spin_until, start_python_process, stop_process
from sensor_msgs.msg import Joy

from vla_adapter_ros.recording.bag_format import read_episode_metadata

REPO = SUPPORT_DIR.parents[1]
ROBOT = str(SUPPORT_DIR.parent / 'fixtures' / 'robots' / 'aloha_fake_sensors.yaml')
pytestmark = pytest.mark.skipif(shutil.which('tmux') is None, reason='tmux is not installed')


class TmuxPane:
    """One pane of a tmux server of its own (its socket is private to the test)."""

    def __init__(self, socket: str, command: str) -> None:
        self.base = ['tmux', '-L', socket, '-f', '/dev/null']
        subprocess.run([*self.base, 'new-session', '-d', '-s', 'rec', '-x', '150', '-y', '45',
                        '-c', str(REPO), command], check=True)

    def press(self, key: str) -> None:
        subprocess.run([*self.base, 'send-keys', '-t', 'rec', '-l', key], check=True)

    def text(self) -> str:
        return subprocess.run([*self.base, 'capture-pane', '-p', '-t', 'rec'], check=True,
                              capture_output=True, text=True).stdout

    def wait_for(self, pattern: str, timeout_s: float = 30.0) -> str:
        """The screen once ``pattern`` is on it (long lines wrap: searched with them joined)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            screen = self.text()
            if re.search(pattern, screen) or re.search(pattern, screen.replace('\n', '')):
                return screen
            time.sleep(0.2)
        raise AssertionError(f'{pattern!r} not on the screen within {timeout_s} s:\n{screen}')

    def close(self) -> None:
        subprocess.run([*self.base, 'kill-server'], check=False)


def start_like_an_operator(pane: TmuxPane, tries: int = 3) -> str:
    """Press start until an episode records (at most ``tries`` times); the screen then.

    The recorder may not yet have discovered a publisher the session already hears (DDS
    discovery on a loaded machine): it refuses, naming the topic, and the operator presses
    start again.
    """
    # Only the state decides: an earlier refusal's message may still be on the screen, and a
    # second press while recording would stop the episode.
    for _ in range(tries):
        pane.press('s')
        try:
            return pane.wait_for(r'state: RECORDING', 15)
        except AssertionError:
            pane.wait_for(r'state: IDLE')
            time.sleep(1.0)
    raise AssertionError(f'no episode started in {tries} tries:\n{pane.text()}')


def close_leader_gripper(pane: TmuxPane, close_file, tries: int = 3) -> None:
    """Close the scripted leader's gripper (and open it again) until an episode records."""
    for _ in range(tries):
        close_file.touch()
        try:
            pane.wait_for(r'state: RECORDING', 15)  # the state decides, as for the key
            return
        except AssertionError:
            pane.wait_for(r'state: IDLE')
        finally:
            close_file.unlink()
        time.sleep(1.0)  # open long enough to re-arm the trigger
    raise AssertionError(f'the gripper started no episode in {tries} tries:\n{pane.text()}')


def press_pedal(node, executor, button: int) -> None:
    """A foot pedal's sensor_msgs/Joy: ``button`` down, then up, once the session listens."""
    publisher = node.create_publisher(Joy, '/test_joy', 10)
    assert spin_until(executor, lambda: publisher.get_subscription_count() > 0, 20.0)
    spin_until(executor, lambda: False, 0.5)  # the session's side of the match settles too
    for down in (1, 0):
        publisher.publish(Joy(buttons=[int(down and k == button) for k in range(3)]))
        spin_until(executor, lambda: False, 0.2)


@pytest.fixture()
def robot_side(tmp_path):
    """Cameras + followers and the recorder; the leaders are the test's to start."""
    processes = [start_python_process(SUPPORT_DIR / 'fake_sensors.py', '--robot-description',
                                      ROBOT, '--duration', '180')]
    assert any('sensors ready' in line for line in processes[0].stdout)  # stops at the line
    processes.append(
        start_python_process(SUPPORT_DIR / 'run_node.py', 'vla-adapter-record', '--ros-args',
                             '-p', f'robot_description:={ROBOT}', '-p',
                             f'output_dir:={tmp_path / "bags"}', '-p',
                             'instruction:=put the cube in the bowl'))
    yield processes
    for process in processes:
        stop_process(process)


def test_a_session_driven_by_keys_pedal_and_leader_gripper(tmp_path, robot_side, ros_probe):
    close_file = tmp_path / 'close_gripper'
    command = (f'{sys.executable} -m vla_adapter_ros.tools.record_session --robot {ROBOT} '
               f'--episodes 2 --episode_s 3 --reset_s 2 --no_auto_start '
               f'--joy_topic /test_joy --window_s 1.5 '
               # This 2-core machine is shared: rates sag and messages arrive late under load;
               # the rate and clock checks have their own tests (test_preflight.py).
               '--min_rate_fraction 0.2 --max_clock_offset_s 2; echo SESSION-EXIT=$?; '
               'sleep 120')
    pane = TmuxPane(f'vla_rec_{tmp_path.name}', command)
    leaders = None
    try:
        pane.wait_for(r'state: IDLE', 60)
        pane.wait_for(r'[1-9]\d*\.\d Hz  /cam_high/camera/color/image_rect_raw')
        pane.wait_for(r'free disk: \d+\.\d GB')  # where the recorder writes (its parameter)
        # No leader publishes yet: the pre-flight names the silent topics, nothing records.
        pane.press('s')
        pane.wait_for(r'> pre-flight failed: .*/leader_left/joint_states: silent: no message')
        leaders = start_python_process(SUPPORT_DIR / 'scripted_leader.py', '--robot-description',
                                       ROBOT, '--close-when', str(close_file))
        pane.wait_for(r'[1-9]\d*\.\d Hz  /leader_right/joint_states')
        start_like_an_operator(pane)
        # The episode's name comes with the recorder's answer, a frame after the state.
        pane.wait_for(r'episode .*episode_0000:\s+\d+\.\d s of 3 s', 10)
        pane.wait_for(r'reset: next episode in')
        screen = pane.wait_for(r'state: IDLE')  # 3 s episode, 2 s reset, no auto start
        assert 'episodes: 1 / 2   outcomes: ?' in screen
        pane.press('y')
        pane.wait_for(r'outcomes: \+ ')
        close_leader_gripper(pane, close_file)  # the next episode starts
        pane.wait_for(r'episode .*episode_0001:')
        pane.press('r')  # re-record: episode_0001 is deleted, episode_0002 records
        pane.wait_for(r'episode .*episode_0002:')
        press_pedal(*ros_probe, button=1)  # the default map: button 1 marks a success
        pane.wait_for(r'> marked success')
        pane.press('q')
        screen = pane.wait_for(r'SESSION-EXIT=\d+')
    finally:
        pane.close()
        if leaders is not None:
            assert 'leaders ready' in stop_process(leaders)
    assert 'SESSION-EXIT=0' in screen and '2 episodes kept' in screen
    assert re.search(r'episode_0000  success', screen)
    assert re.search(r'episode_0002  success', screen)
    assert 'Traceback' not in screen
    bags = tmp_path / 'bags'
    assert sorted(path.name for path in bags.iterdir()) == ['episode_0000', 'episode_0002']
    assert read_episode_metadata(bags / 'episode_0000')['success'] is True


@pytest.mark.parametrize('args, message', [
    (['--joy_buttons', 'jump=0'], "--joy_buttons 'jump=0': expected KEY=BUTTON"),
    (['--episodes', '0'], '--episodes 0: must be >= 1'),
    (['--recorder', 'episode_recorder'], '--recorder episode_recorder: must be an absolute'),
])
def test_bad_settings_are_one_line_and_exit_2(args, message):
    result = subprocess.run([sys.executable, '-m', 'vla_adapter_ros.tools.record_session',
                             *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().count('\n') == 0
    assert result.stderr.startswith(f'vla-adapter-record-session: error: {message}')


def test_sigterm_ends_the_session_cleanly():
    """Without a terminal (a pipe) and without a recorder: SIGTERM is a quit, exit 0."""
    session = subprocess.Popen(
        [sys.executable, '-m', 'vla_adapter_ros.tools.record_session', '--robot', ROBOT],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(session.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any('state: IDLE' in line for line in list(seen)) and time.monotonic() < deadline:
        time.sleep(0.2)
    session.send_signal(signal.SIGTERM)
    assert session.wait(timeout=30) == 0
    reader.join(timeout=10)
    stderr = session.stderr.read()
    assert 'vla-adapter-record-session: 0 episodes kept' in ''.join(seen)
    assert 'Traceback' not in stderr, stderr
