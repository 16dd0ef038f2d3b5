"""vla_adapter_msgs travels between two processes over real DDS (loopback only)."""

import pathlib

from ros_test_utils import SUPPORT_DIR, spin_until, start_python_process, stop_process

from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_msgs.srv import SetInstruction

HERE = pathlib.Path(__file__).resolve().parent
from sample_messages import make_sample_action_chunk  # noqa: E402


def test_action_chunk_received_field_for_field_from_another_process(ros_probe):
    node, executor = ros_probe
    received: list[ActionChunk] = []
    node.create_subscription(ActionChunk, 'test_action_chunk', received.append, 10)
    publisher = start_python_process(SUPPORT_DIR / 'publish_action_chunk.py', 'test_action_chunk')
    try:
        assert spin_until(executor, lambda: len(received) > 0, timeout_s=20.0), (
            'no ActionChunk arrived from the publisher process')
    finally:
        output = stop_process(publisher)
    assert 'publisher ready' in output, output
    expected = make_sample_action_chunk()
    message = received[0]
    # Generated messages compare every field, nested ones included (alignment padding in the
    # serialised bytes is unspecified, so bytes are not compared).
    assert message == expected
    assert message.right.joint_names[0] == 'right_waist'
    assert message.left.points[24].time_from_start.nanosec == 480_000_000
    assert message.sequence == 2**40 + 7


def test_policy_status_constants_and_service_types():
    status = PolicyStatus(state=PolicyStatus.STATE_FAULT, fault_reason='stale observation')
    assert [PolicyStatus.STATE_IDLE, PolicyStatus.STATE_RUNNING, PolicyStatus.STATE_FAULT] == [
        0, 2, 5]
    assert status.fault_reason == 'stale observation'
    request = SetInstruction.Request(instruction='fold the towel')
    response = SetInstruction.Response(success=False, message='empty instruction')
    assert request.instruction == 'fold the towel' and not response.success
