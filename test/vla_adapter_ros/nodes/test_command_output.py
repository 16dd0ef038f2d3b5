"""Gripper operating modes at start-up over real DDS: a lost reply is asked for again."""

import threading
import time

from interbotix_xs_msgs.srv import OperatingModes
import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.nodes.command_output import GRIPPER_MODE_RESEND_S, GripperModeRequests

ARM = load_robot_description('wx250').arms[0]


@pytest.fixture()
def driver_service():
    """A set_operating_modes server whose first ``silent`` requests never get a reply."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('fake_driver_modes', context=context)
    release = threading.Event()
    seen = []
    state = {'silent': 0}

    def serve(request, response):
        seen.append(request.mode)
        if len(seen) <= state['silent']:
            release.wait()  # this reply is "lost": it comes only at teardown
        return response

    node.create_service(OperatingModes, f'/{ARM.namespace}/set_operating_modes', serve,
                        callback_group=ReentrantCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield state, seen
    release.set()
    executor.shutdown()
    thread.join(timeout=5.0)
    node.destroy_node()
    rclpy.shutdown(context=context)


def _run(requests, executor, timeout_s):
    start = time.monotonic()
    while True:
        executor.spin_once(timeout_sec=0.02)
        waited = time.monotonic() - start
        outcome = requests.step(waited, timeout_s)
        if outcome is not None:
            return outcome, waited


def test_a_lost_reply_is_asked_again_and_start_up_goes_on(driver_service, ros_probe):
    state, seen = driver_service
    state['silent'] = 1
    node, executor = ros_probe
    requests = GripperModeRequests(node, (ARM,), 'current_based_position')
    outcome, waited = _run(requests, executor, timeout_s=10.0)
    assert outcome == ''
    assert len(seen) == 2 and seen[0] == seen[1] == 'current_based_position'
    assert GRIPPER_MODE_RESEND_S <= waited < 10.0


def test_no_reply_at_all_is_a_named_fault_after_the_timeout(driver_service, ros_probe):
    state, seen = driver_service
    state['silent'] = 100
    node, executor = ros_probe
    requests = GripperModeRequests(node, (ARM,), 'current_based_position')
    outcome, waited = _run(requests, executor, timeout_s=2.5)
    assert outcome == 'start-up: set_operating_modes gave no answer within 2.5 s'
    assert waited > 2.5
    assert 2 <= len(seen) <= 4  # sent once, then again every second until the timeout
