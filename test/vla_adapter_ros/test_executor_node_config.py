"""Executor configuration: validation, parameter descriptors and the console entry point."""

import pathlib
import signal
import sys
import time

import numpy as np
import pytest
import rclpy
from rclpy.exceptions import InvalidParameterValueException
from rclpy.parameter import Parameter
from ros_test_utils import start_python_process, stop_process

from vla_adapter_ros.conversions import trajectory_offsets_s
from vla_adapter_ros.executor_config import (
    DEFAULT_START_POSE,
    PARAMETER_DOCS,
    PARAMETER_RANGES,
    ExecutorConfig,
)
from vla_adapter_ros.executor_node import ChunkExecutorNode
from vla_adapter_ros.robot_model import VX300S_LOWER_LIMITS, VX300S_UPPER_LIMITS, ArmLimits

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from executor_harness import FAKE_DRIVER, JOINT_NAMES, make_trajectory  # noqa: E402


def test_defaults_are_the_vx300s_limits_and_round_trip():
    config = ExecutorConfig()
    assert config.lower_limits[:6] == VX300S_LOWER_LIMITS
    assert config.upper_limits[:6] == VX300S_UPPER_LIMITS
    assert (config.lower_limits[6], config.upper_limits[6]) == ArmLimits().gripper.joint_limits
    assert config.num_arms == 2 and config.tick_s == pytest.approx(0.02)
    assert ExecutorConfig.from_dict(config.to_dict()) == config
    assert set(PARAMETER_DOCS) == set(config.to_dict())
    assert set(PARAMETER_RANGES) <= set(config.to_dict())
    assert config.start_pose == DEFAULT_START_POSE


@pytest.mark.parametrize('overrides, match', [
    ({'rate_hz': 0.0}, 'rate_hz'),
    ({'rate_hz': float('nan')}, 'rate_hz'),
    ({'startup_speed': 10.0}, 'startup_speed'),
    ({'arm_mode': 'triple'}, 'arm_mode'),
    ({'output_mode': 'torque'}, 'output_mode'),
    ({'blend_mode': 'average'}, 'blend_mode'),
    ({'robot_names': ('follower_left',)}, 'robot_names'),
    ({'robot_names': ('arm', 'arm')}, 'distinct'),
    ({'robot_names': ('arm', '')}, 'robot_names'),
    ({'max_joint_speed': (1.0,) * 6}, 'max_joint_speed'),
    ({'max_joint_speed': (1.0,) * 6 + (-1.0,)}, 'max_joint_speed'),
    ({'start_pose': (0.0,) * 5}, 'start_pose'),
    ({'start_pose': (0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0)}, 'start_pose must lie within'),
    ({'lower_limits': (1.0,) * 7, 'upper_limits': (0.0,) * 7}, 'lower must be below upper'),
    ({'chunk_topic': ''}, 'chunk_topic'),
    ({'gripper_operating_mode': ''}, 'gripper_operating_mode'),
])
def test_invalid_settings_name_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        ExecutorConfig(**overrides)


def test_from_dict_coerces_ints_and_rejects_other_types():
    config = ExecutorConfig.from_dict({'rate_hz': 100, 'max_joint_speed': [1, 1, 1, 1, 1, 1, 2]})
    assert config.rate_hz == 100.0 and isinstance(config.rate_hz, float)
    assert config.max_joint_speed == (1.0,) * 6 + (2.0,)
    for values, match in (({'rate_hz': 'fast'}, 'rate_hz must be of type float'),
                          ({'set_gripper_mode': 1}, 'set_gripper_mode must be of type bool'),
                          ({'robot_names': 'follower_left'}, 'robot_names must be a list'),
                          ({'unknown_option': 1}, "unknown executor parameters: \\['unknown")):
        with pytest.raises(ValueError, match=match):
            ExecutorConfig.from_dict(values)


def test_per_arm_lists_take_seven_values_or_seven_per_arm():
    right_pose = np.array(DEFAULT_START_POSE) - 0.1
    config = ExecutorConfig(start_pose=DEFAULT_START_POSE + tuple(right_pose))
    left, right = config.per_arm('start_pose')
    np.testing.assert_allclose(right, right_pose)
    np.testing.assert_allclose(left, DEFAULT_START_POSE)
    single = ExecutorConfig(arm_mode='single', robot_names=('follower_right',))
    assert single.arm_robot_names == ('follower_right',)
    assert single.safety_config().num_joints == 7
    with pytest.raises(ValueError, match='7 values'):
        ExecutorConfig(arm_mode='single', start_pose=DEFAULT_START_POSE * 2)


@pytest.fixture()
def context():
    ros_context = rclpy.Context()
    rclpy.init(context=ros_context)
    yield ros_context
    rclpy.shutdown(context=ros_context)


def test_node_declares_documented_read_only_parameters_with_ranges(context):
    node = ChunkExecutorNode(context=context, parameter_overrides=[
        Parameter('rate_hz', value=100), Parameter('blend_mode', value='switch')])
    try:
        assert node.config.rate_hz == 100.0 and node.config.blend_mode == 'switch'
        for name, text in PARAMETER_DOCS.items():
            descriptor = node.describe_parameter(name)
            assert descriptor.description == text and descriptor.read_only
        ranges = node.describe_parameter('stale_observation_s').floating_point_range
        assert (ranges[0].from_value, ranges[0].to_value) == PARAMETER_RANGES[
            'stale_observation_s']
    finally:
        node.destroy_node()


def test_node_refuses_invalid_parameters(context):
    with pytest.raises(InvalidParameterValueException, match='rate_hz'):
        ChunkExecutorNode(context=context, parameter_overrides=[Parameter('rate_hz', value=0.0)])
    with pytest.raises(ValueError, match='output_mode'):
        ChunkExecutorNode(context=context,
                          parameter_overrides=[Parameter('output_mode', value='torque')])


def test_trajectory_offsets_are_read_from_time_from_start():
    trajectory = make_trajectory(np.zeros((3, 7)), offsets_s=[0.0, 0.5, 1.25])
    np.testing.assert_allclose(trajectory_offsets_s(trajectory), [0.0, 0.5, 1.25])
    assert trajectory.joint_names == JOINT_NAMES


def test_entry_point_streams_commands_and_exits_cleanly_without_torque_off():
    robots = ['entry_left', 'entry_right']
    driver = start_python_process(FAKE_DRIVER, '--robots', *robots)
    executor = start_python_process(
        pathlib.Path(sys.modules[ChunkExecutorNode.__module__].__file__), '--ros-args',
        '-p', f'robot_names:=[{robots[0]},{robots[1]}]', '-p', 'rate_hz:=50',
        '-p', 'start_pose:=[0.0,-0.96,1.16,0.0,-0.3,0.0,1.2]')
    try:
        time.sleep(6.0)  # start-up, then streaming (holding: no chunks)
        assert executor.poll() is None, 'the executor exited early'
        executor.send_signal(signal.SIGINT)
        executor.wait(timeout=10.0)
        assert executor.returncode == 0
    finally:
        executor_output = stop_process(executor)
        driver_output = stop_process(driver)
    assert 'phase: running' in executor_output, executor_output
    assert 'no torque-off is sent' in executor_output, executor_output
    for robot in robots:
        assert f'operating mode {robot}: single gripper current_based_position' in driver_output
        group_count = int(driver_output.split(f'received {robot}: ')[1].split(' group')[0])
        assert group_count > 50, driver_output  # about 5 s at 50 Hz, hold included
    assert 'BAD COMMAND' not in driver_output, driver_output


def test_realtime_priority_is_validated():
    assert ExecutorConfig().realtime_priority == 0
    assert ExecutorConfig(realtime_priority=50).realtime_priority == 50
    for bad in (-1, 100):
        with pytest.raises(ValueError, match=f'realtime_priority must be within .*{bad}'):
            ExecutorConfig(realtime_priority=bad)
