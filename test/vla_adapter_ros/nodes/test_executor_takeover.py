"""Human takeover of the chunk executor over real DDS: every transition, no jump, faults hold.

One fake Interbotix driver process (the followers), one executor and a probe node that
publishes the policy's chunks and the leader arms' joint_states (support/fake_leaders.py).
Every test starts with the policy driving the arms and ends with the policy back in control;
the fake driver reports any out-of-limit or non-finite command (asserted at teardown), and the
command stream never steps beyond the speed limit.
"""

import math
import time

from executor_harness import (  # noqa: E402
    DRIVER_POSE,
    FAKE_DRIVER,
    FLOAT32_TOLERANCE,
    ROBOTS,
    TEST_ROBOT,
    TEST_ROBOT_FILE,
    ChunkStream,
    ExecutorHarness,
    driver_arguments,
    speed_scale_for,
)
from fake_leaders import FakeLeaders  # noqa: E402
import numpy as np
import pytest
from ros_test_utils import start_python_process, stop_process
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool

from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.nodes.takeover_interface import CONTROL_SOURCE_QOS
from vla_adapter_ros.pipeline import status

MAX_SPEED = 2.0
PARAMETERS = {
    'rate_hz': 50.0,
    'robot_description': str(TEST_ROBOT_FILE),
    'startup_speed': 2.0,
    'speed_scale': speed_scale_for(MAX_SPEED),
    'stale_chunk_s': 1.0,
    'stale_observation_s': 0.5,
    'leader_stale_s': 0.5,  # generous: the probe publishes the leaders from a loaded machine
    'takeover_speed': 1.0,
    'handback_crossfade_s': 0.3,
}
HOME = np.tile(DRIVER_POSE, 2)  # (14,) the follower start pose
LEADER_POSE = HOME + np.tile([0.25, 0.15, -0.15, 0.0, 0.1, 0.0, -0.3], 2)
RUNNING, STARTING, FAULT = (PolicyStatus.STATE_RUNNING, PolicyStatus.STATE_STARTING,
                            PolicyStatus.STATE_FAULT)


class Rig:
    """The harness plus leaders, the takeover client and the control-source log."""

    def __init__(self) -> None:
        self.harness = ExecutorHarness(PARAMETERS)
        probe = self.harness.probe
        self.leaders = FakeLeaders(probe, TEST_ROBOT, LEADER_POSE, paused=True)
        self.takeover_publisher = probe.create_publisher(Bool, 'takeover', 10)
        self.client = probe.create_client(SetBool, '/chunk_executor/takeover')
        self.sources: list[str] = []
        probe.create_subscription(String, 'control_source',
                                  lambda message: self.sources.append(message.data),
                                  CONTROL_SOURCE_QOS)

    def request(self, engage: bool) -> SetBool.Response:
        assert self.client.wait_for_service(timeout_sec=5.0)
        future = self.client.call_async(SetBool.Request(data=engage))
        self.harness.wait_for(future.done, 5.0, 'the ~/takeover answer')
        return future.result()

    def start_leaders(self) -> None:
        """The leaders publish; wait until the executor has heard every one of them."""
        self.leaders.paused = False
        self.harness.wait_for(lambda: self.harness.node.status_snapshot()['leader_problem']
                              == '', 5.0, 'the leaders heard by the executor')

    def wait_source(self, source: str, timeout_s: float = 10.0) -> None:
        self.harness.wait_for(
            lambda: self.harness.node.status_snapshot()['control_source'] == source,
            timeout_s, f'control source {source!r}')

    def assert_no_jump(self, since_s: float) -> None:
        """Every follower command since ``since_s`` stepped within the speed limit."""
        for robot in ROBOTS:
            _, commands = self.harness.command_log(robot, since_s)
            assert len(commands) > 10
            step = np.abs(np.diff(commands, axis=0)).max()
            assert step <= MAX_SPEED / 50.0 + FLOAT32_TOLERANCE, (robot, step)


@pytest.fixture(scope='module')
def rig():
    process = start_python_process(FAKE_DRIVER, *driver_arguments(ROBOTS))
    built = None
    try:
        built = Rig()
        built.harness.wait_state(PolicyStatus.STATE_HOLDING, timeout_s=30.0)
        yield built
    finally:
        if built is not None:
            built.leaders.stop()
            built.harness.close()
        output = stop_process(process)
    assert 'fake driver ready' in output, output
    assert 'BAD COMMAND' not in output, output


def policy_plan(time_s: float) -> np.ndarray:
    """A slow motion around the start pose."""
    return HOME + 0.1 * math.sin(2.0 * math.pi * 0.3 * (time_s % 100.0)) * np.array(
        [1, 1, 1, 0, 1, 1, 0] * 2)


@pytest.fixture()
def policy(rig):
    """The policy drives the arms (chunks at 10 Hz); afterwards the leaders stop, hand back."""
    rig.harness.call(rig.harness.reset_client)
    stream = ChunkStream(rig.harness, policy_plan, rate_hz=10.0, latency_s=0.1, horizon_s=0.6)
    try:
        rig.harness.wait_state(RUNNING, timeout_s=10.0)
        yield stream
    finally:
        rig.leaders.paused, rig.leaders.nan_joint = True, ''
        rig.request(False)
        stream.stop()


def test_takeover_with_no_leaders_publishing_is_refused_and_holds(rig, policy):
    # First in the module: the leaders have never published.
    response = rig.request(True)
    assert not response.success
    assert response.message == ('takeover refused: leader_left: no joint_states; '
                                'leader_right: no joint_states'), response.message
    rig.harness.wait_state(FAULT, timeout_s=5.0, reason='takeover refused')
    assert rig.harness.node.status_snapshot()['control_source'] == status.CONTROL_HOLD
    rig.harness.assert_holds(time.monotonic(), MAX_SPEED / 50.0)
    rig.harness.wait_for(lambda: any(message.control_source == status.CONTROL_HOLD
                                     and 'takeover refused' in message.fault_reason
                                     for message in rig.harness.statuses), 3.0, 'the status')
    rig.takeover_publisher.publish(Bool(data=False))  # released: the policy again
    rig.harness.wait_state(RUNNING, timeout_s=5.0)


def test_policy_to_operator_to_policy_without_a_jump(rig, policy):
    harness = rig.harness
    since = time.monotonic()
    rig.start_leaders()
    rig.takeover_publisher.publish(Bool(data=True))  # the pedal
    harness.wait_state(STARTING, timeout_s=5.0, reason=status.MOVING_TO_LEADERS)
    rig.wait_source(status.CONTROL_OPERATOR)
    moved = LEADER_POSE + 0.05 * np.array([1, 0, 0, 0, 0, 0, 0] * 2)
    rig.leaders.pose = moved
    harness.wait_for(lambda: np.allclose(harness.node.status_snapshot()['command'], moved,
                                         atol=1e-6), 5.0, 'the followers at the leaders')
    assert harness.node.status_snapshot()['state'] == RUNNING
    harness.wait_for(lambda: any(message.control_source == status.CONTROL_OPERATOR
                                 for message in harness.statuses), 3.0, 'PolicyStatus operator')
    response = rig.request(False)
    assert response.success and response.message == 'handed back to the policy'
    rig.wait_source(status.CONTROL_POLICY)
    harness.wait_for(lambda: np.allclose(harness.node.status_snapshot()['command'],
                                         policy_plan(harness.now_ns() * 1e-9), atol=0.05),
                     5.0, 'the followers back on the policy plan')
    rig.assert_no_jump(since)
    harness.wait_for(lambda: rig.sources[-1:] == [status.CONTROL_POLICY], 3.0, 'topic')
    seen = [source for index, source in enumerate(rig.sources)
            if index == 0 or rig.sources[index - 1] != source]
    assert seen[-4:] == [status.CONTROL_POLICY, status.CONTROL_HANDOVER,
                         status.CONTROL_OPERATOR, status.CONTROL_POLICY], seen


def test_estop_during_takeover_wins_and_the_policy_resumes_after_reset(rig, policy):
    since = time.monotonic()
    rig.start_leaders()
    assert rig.request(True).success
    rig.wait_source(status.CONTROL_OPERATOR)
    rig.harness.estop_publisher.publish(Bool(data=True))
    rig.harness.wait_state(FAULT, timeout_s=5.0, reason='e-stop engaged (estop topic)')
    rig.harness.assert_holds(time.monotonic(), MAX_SPEED / 50.0)
    response = rig.request(True)
    assert not response.success and 'e-stop engaged' in response.message
    assert rig.harness.node.status_snapshot()['control_source'] == status.CONTROL_POLICY
    assert rig.harness.call(rig.harness.reset_client).message == 'e-stop released'
    rig.harness.wait_state(RUNNING, timeout_s=5.0)
    time.sleep(0.5)
    rig.assert_no_jump(since)


@pytest.mark.parametrize('failure', ['stale', 'nan'])
def test_leaders_failing_during_takeover_abort_it_into_a_hold(rig, policy, failure):
    rig.start_leaders()
    assert rig.request(True).success
    rig.wait_source(status.CONTROL_OPERATOR)
    if failure == 'stale':
        rig.leaders.paused = True
        expected = 'joint_states stale'
    else:
        rig.leaders.nan_joint = 'elbow'
        expected = "non-finite joint positions [('elbow', nan)]"
    reason = rig.harness.wait_state(FAULT, timeout_s=5.0, reason='takeover aborted')
    assert expected in reason, reason
    assert rig.harness.node.status_snapshot()['control_source'] == status.CONTROL_HOLD
    rig.harness.assert_holds(time.monotonic(), MAX_SPEED / 50.0)
    assert rig.request(False).success
    rig.harness.wait_state(RUNNING, timeout_s=5.0)
