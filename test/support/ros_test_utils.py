"""Helpers for tests that talk real DDS: child processes and bounded spinning."""

from collections.abc import Callable
import os
import pathlib
import subprocess
import sys
import time

SUPPORT_DIR = pathlib.Path(__file__).resolve().parent  # the scripts tests start as processes


def start_python_process(script: pathlib.Path, *args: str) -> subprocess.Popen:
    """Start `python script args...` with this process's (loopback-only) ROS environment."""
    env = dict(os.environ)
    env['PYTHONUNBUFFERED'] = '1'
    return subprocess.Popen(
        [sys.executable, str(script), *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_process(process: subprocess.Popen, timeout_s: float = 5.0) -> str:
    """Terminate a child (SIGTERM, then SIGKILL) and return everything it printed."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)
    output = process.stdout.read() if process.stdout else ''
    return output


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Spin `executor` until `predicate()` holds or `timeout_s` passes; return the predicate."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def spin_child_until(executor, deadline_s: float) -> None:
    """Spin a child process's executor until SIGINT/SIGTERM or the monotonic deadline.

    A signal that shuts the context down while spin waits surfaces as an RCLError; that race is
    the normal way a child ends and is swallowed, any other error is raised.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException

    try:
        while executor.context.ok() and time.monotonic() < deadline_s:
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok(context=executor.context):
            raise


def run_child_node(node, deadline_s: float) -> None:
    """A child process's node: spin it until a signal or the deadline, then shut down cleanly."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_child_until(executor, deadline_s)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def decode_joint_state(data: bytes):
    """Rclpy's decoder of a serialised sensor_msgs/JointState (what the recorder node passes)."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import JointState

    return deserialize_message(data, JointState)
