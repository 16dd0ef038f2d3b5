"""
Test-session settings shared by every test.

Before anything imports torch or rclpy: one compute thread per process (the CI machine has two
cores), and DDS confined to this host with a domain of its own even when pytest is run by hand
(`make test` sets the same through scripts/ros_env.sh).
"""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(REPO_ROOT / 'config' / 'fastdds_loopback.xml'))
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
os.environ.setdefault('ROS_LOG_DIR', str(REPO_ROOT / 'build' / 'ros_log'))
pathlib.Path(os.environ['ROS_LOG_DIR']).mkdir(parents=True, exist_ok=True)

# Shared helpers, fakes and fixture builders live in support/; with --import-mode=importlib no
# test directory is on sys.path by itself.
import sys  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / 'support'))


@pytest.fixture()
def ros_probe():
    """A node of its own rclpy context plus a single-threaded executor: (node, executor)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('test_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
