"""The executor's start-up pre-flight check over real DDS, against fake sensors.

test/support/fake_sensors.py runs as a child process and publishes the cameras and follower
joint_states of test/fixtures/robots/aloha_fake_sensors.yaml (48x64 frames at 20 Hz,
joint_states at 50 Hz), with one fault injected or none. The executor (executor_harness.py)
checks them for ``preflight_window_s`` before its first ramp: with a silent camera or wrong
joint names it holds and its PolicyStatus names the failure; with good inputs it starts.
"""

from executor_harness import ExecutorHarness
from ros_test_utils import SUPPORT_DIR, start_python_process, stop_process

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.pipeline import status

FAKE_SENSORS = SUPPORT_DIR / 'fake_sensors.py'
ROBOT_FILE = SUPPORT_DIR.parent / 'fixtures' / 'robots' / 'aloha_fake_sensors.yaml'
ROBOT = load_robot_description(ROBOT_FILE)
PARAMETERS = {
    'robot_description': str(ROBOT_FILE),
    'preflight_window_s': 1.0,
    'preflight_camera_topics': list(ROBOT.camera_topics()),
    'set_gripper_mode': False,  # fake sensors: no driver services
    'startup_speed': 3.0,
    'stale_observation_s': 2.0,  # a loaded machine delays the 50 Hz joint_states now and then
}
FAULT, STARTING = PolicyStatus.STATE_FAULT, PolicyStatus.STATE_STARTING


def start(request, *fault: str) -> ExecutorHarness:
    """Fake sensors with ``fault`` (fake_sensors.py's options), then the executor."""
    sensors = start_python_process(FAKE_SENSORS, '--robot-description', str(ROBOT_FILE),
                                   '--duration', '120', *fault)
    request.addfinalizer(lambda: stop_process(sensors))
    harness = ExecutorHarness(PARAMETERS, robots=ROBOT.namespaces)
    request.addfinalizer(harness.close)
    return harness


def reasons_on_the_wire(harness: ExecutorHarness, state: int) -> list[str]:
    with harness.lock:
        return [message.fault_reason for message in harness.statuses if message.state == state]


def test_a_silent_camera_holds_the_arms_and_is_named(request):
    harness = start(request, '--fault', 'missing', '--fault-camera', 'cam_left_wrist')
    camera = '/cam_left_wrist/camera/color/image_rect_raw'
    reason = harness.wait_state(FAULT, timeout_s=30.0, reason=status.preflight_failed(''))
    assert f'{camera}: silent: no message in 1.0 s' in reason
    assert 'cam_high' not in reason  # the other cameras and the arms are fine
    held = harness.node.status_snapshot()['command']
    harness.wait_for(lambda: len(reasons_on_the_wire(harness, FAULT)) >= 3, 10.0,
                     'three FAULT statuses')
    assert any(camera in text for text in reasons_on_the_wire(harness, FAULT))
    snapshot = harness.node.status_snapshot()
    assert snapshot['phase'] == 'preflight' and snapshot['state'] == FAULT
    assert (snapshot['command'] == held).all()  # the measured pose, held: no ramp
    for arm, robot in enumerate(harness.robots):
        _, commands = harness.command_log(robot)
        assert len(commands) > 0
        assert (abs(commands - held[arm * 7:arm * 7 + 6]) <= 1e-5).all()


def test_wrong_joint_names_never_start_the_arms_and_are_named(request):
    harness = start(request, '--fault', 'unknown', '--fault-robot', 'follower_right')
    reason = harness.wait_state(PolicyStatus.STATE_IDLE, timeout_s=30.0,
                                reason=status.preflight_failed(''))
    assert ("follower_right/joint_states: joint_names: missing ['wrist_rotate'], unknown "
            "['wrist_yaw']") in reason
    assert 'follower_left/joint_states' not in reason.split('pre-flight failed: ')[1]
    assert harness.node.status_snapshot()['phase'] == 'waiting'
    assert all(not harness.groups[robot] for robot in harness.robots)  # nothing commanded


def test_good_inputs_pass_and_the_executor_starts(request):
    harness = start(request)
    harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=30.0,
                       reason=status.WAITING_FOR_FIRST_CHUNK)
    assert status.PREFLIGHT_LISTENING in reasons_on_the_wire(harness, STARTING)
    assert status.MOVING_TO_START_POSE in reasons_on_the_wire(harness, STARTING)
    assert harness.node.status_snapshot()['phase'] == 'running'
    # Passed once: the executor no longer receives camera frames (they would cost tick time).
    camera = ROBOT.camera_topics()[0]
    harness.wait_for(lambda: not harness.probe.get_subscriptions_info_by_topic(camera), 10.0,
                     'the pre-flight subscriptions to go')
