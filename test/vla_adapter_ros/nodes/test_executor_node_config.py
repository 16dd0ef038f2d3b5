"""Executor configuration: validation, parameter descriptors and the console entry point."""

import pathlib
import signal
import sys
import time

from executor_harness import (  # noqa: E402
    FAKE_DRIVER,
    JOINT_NAMES,
    TEST_ROBOT_FILE,
    driver_arguments,
    make_trajectory,
)
import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.exceptions import InvalidParameterValueException
from rclpy.parameter import Parameter
from ros_test_utils import start_python_process, stop_process

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.nodes.executor_node import ChunkExecutorNode
from vla_adapter_ros.params.executor_config import EXECUTOR_PARAMETERS, ExecutorConfig
from vla_adapter_ros.pipeline.conversions import trajectory_offsets_s


def test_defaults_come_from_the_aloha_description_and_round_trip():
    config = ExecutorConfig()
    aloha = load_robot_description('aloha')
    lower, upper = aloha.joint_angle_bounds()
    safety = config.safety_config()
    np.testing.assert_allclose(safety.lower, lower)
    np.testing.assert_allclose(safety.upper, upper)
    np.testing.assert_allclose(safety.max_joint_speed, aloha.max_joint_speed() * 0.9)
    np.testing.assert_allclose(config.start_pose(), aloha.start_joint_angles())
    assert config.arm_robot_names == aloha.namespaces
    assert config.num_arms == 2 and config.tick_s == pytest.approx(0.02)
    assert ExecutorConfig.from_dict(config.to_dict()) == config
    assert set(EXECUTOR_PARAMETERS.names) == set(config.to_dict())


def test_a_five_joint_arm_and_renamed_namespaces():
    config = ExecutorConfig(robot_description='wx250', robot_names=('arm_a',))
    assert config.arm_robot_names == ('arm_a',)
    assert config.safety_config().num_joints == 6  # 5 joints + gripper
    assert config.robot.arms[0].command_joint_names == (
        'waist', 'shoulder', 'elbow', 'wrist_angle', 'wrist_rotate', 'gripper')


@pytest.mark.parametrize('overrides, match', [
    ({'rate_hz': 0.0}, 'rate_hz'),
    ({'rate_hz': float('nan')}, 'rate_hz'),
    ({'startup_speed': 10.0}, 'startup_speed'),
    ({'output_mode': 'torque'}, 'output_mode'),
    ({'blend_mode': 'average'}, 'blend_mode'),
    ({'speed_scale': 1.5}, 'speed_scale'),
    ({'robot_names': ('follower_left',)}, 'namespaces'),
    ({'robot_names': ('arm', 'arm')}, 'distinct'),
    ({'robot_names': ('arm', '')}, 'namespaces'),
    ({'robot_description': 'no_such_robot'}, "robot 'no_such_robot'.*built-in"),
    ({'chunk_topic': ''}, 'chunk_topic'),
    ({'gripper_operating_mode': ''}, 'gripper_operating_mode'),
])
def test_invalid_settings_name_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        ExecutorConfig(**overrides)


def test_from_dict_coerces_ints_and_rejects_other_types():
    config = ExecutorConfig.from_dict({'rate_hz': 100, 'speed_scale': 1})
    assert config.rate_hz == 100.0 and isinstance(config.rate_hz, float)
    assert config.speed_scale == 1.0
    for values, match in (({'rate_hz': 'fast'}, 'rate_hz.*must be of type float'),
                          ({'set_gripper_mode': 1}, 'set_gripper_mode.*must be of type bool'),
                          ({'robot_names': 'follower_left'}, 'robot_names.*must be a list'),
                          ({'unknown_option': 1}, "unknown parameters \\['unknown")):
        with pytest.raises(ValueError, match=match):
            ExecutorConfig.from_dict(values)


@pytest.fixture()
def context():
    ros_context = rclpy.Context()
    rclpy.init(context=ros_context)
    yield ros_context
    rclpy.shutdown(context=ros_context)


def test_node_declares_documented_parameters_read_only_or_dynamic(context):
    node = ChunkExecutorNode(context=context, parameter_overrides=[
        Parameter('rate_hz', value=100), Parameter('blend_mode', value='switch'),
        Parameter('set_gripper_mode', value=False)])
    try:
        assert node.config.rate_hz == 100.0 and node.config.blend_mode == 'switch'
        for spec in EXECUTOR_PARAMETERS.specs:
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.description.startswith(spec.description)
            assert descriptor.read_only == (not spec.dynamic)
        assert set(EXECUTOR_PARAMETERS.dynamic_names) == {
            'blend_mode', 'ensemble_k', 'crossfade_s', 'speed_scale'}
        ranges = node.describe_parameter('stale_observation_s').floating_point_range
        assert (ranges[0].from_value, ranges[0].to_value) == EXECUTOR_PARAMETERS[
            'stale_observation_s'].value_range
    finally:
        node.destroy_node()


def test_node_refuses_invalid_parameters(context):
    with pytest.raises(InvalidParameterValueException, match='rate_hz'):
        ChunkExecutorNode(context=context, parameter_overrides=[Parameter('rate_hz', value=0.0)])
    with pytest.raises(ValueError, match='output_mode'):
        ChunkExecutorNode(context=context,
                          parameter_overrides=[Parameter('output_mode', value='torque')])


def _set_parameters(probe, executor, node_name: str, parameters: list[Parameter]):
    """Call /<node>/set_parameters over DDS; return the per-parameter results."""
    client = probe.create_client(SetParameters, f'/{node_name}/set_parameters')
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(SetParameters.Request(
        parameters=[parameter.to_parameter_msg() for parameter in parameters]))
    executor.spin_until_future_complete(future, timeout_sec=10.0)
    assert future.done()
    probe.destroy_client(client)
    return future.result().results


def test_ros2_param_set_over_dds_applies_dynamic_and_refuses_read_only(context):
    from rclpy.executors import SingleThreadedExecutor

    node = ChunkExecutorNode(context=context, parameter_overrides=[
        Parameter('robot_description', value=str(TEST_ROBOT_FILE)),
        Parameter('set_gripper_mode', value=False)])
    probe = rclpy.create_node('param_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)
    try:
        results = _set_parameters(probe, executor, node.get_name(), [
            Parameter('ensemble_k', value=0), Parameter('speed_scale', value=0.5)])
        assert all(result.successful for result in results), results
        assert node.config.ensemble_k == 0.0 and node._machine.scheduler.config.ensemble_k == 0.0
        speeds = load_robot_description(TEST_ROBOT_FILE).max_joint_speed()
        np.testing.assert_allclose(node.safety.max_joint_speed, speeds * 0.5)
        for parameter, reason in (
                (Parameter('rate_hz', value=10.0), 'read-only'),
                (Parameter('robot_description', value='wx250'), 'read-only'),
                (Parameter('blend_mode', value='average'), "blend_mode='average'"),
                (Parameter('speed_scale', value=3.0), 'speed_scale')):
            result, = _set_parameters(probe, executor, node.get_name(), [parameter])
            assert not result.successful and reason in result.reason, result
        assert node.config.rate_hz == 50.0 and node.config.blend_mode == 'ensemble'
        np.testing.assert_allclose(node.safety.max_joint_speed, speeds * 0.5)
    finally:
        executor.shutdown()
        probe.destroy_node()
        node.destroy_node()


def test_trajectory_offsets_are_read_from_time_from_start():
    trajectory = make_trajectory(np.zeros((3, 7)), offsets_s=[0.0, 0.5, 1.25])
    np.testing.assert_allclose(trajectory_offsets_s(trajectory), [0.0, 0.5, 1.25])
    assert trajectory.joint_names == JOINT_NAMES


def test_entry_point_streams_commands_and_exits_cleanly_without_torque_off():
    robots = ['entry_left', 'entry_right']
    driver = start_python_process(FAKE_DRIVER, *driver_arguments(robots))
    executor = start_python_process(
        pathlib.Path(sys.modules[ChunkExecutorNode.__module__].__file__), '--ros-args',
        '-p', f'robot_names:=[{robots[0]},{robots[1]}]', '-p', 'rate_hz:=50',
        '-p', f'robot_description:={TEST_ROBOT_FILE}')
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
        with pytest.raises(ValueError, match=f'realtime_priority={bad}: must be within'):
            ExecutorConfig(realtime_priority=bad)


@pytest.mark.parametrize('signals', [1, 2], ids=['one_sigint', 'sigint_twice'])
def test_realtime_executor_exits_cleanly_on_sigint(signals):
    """Under SCHED_FIFO (where the OS grants it) one or two SIGINTs end with status 0."""
    robots = [f'rt{signals}_left', f'rt{signals}_right']
    driver = start_python_process(FAKE_DRIVER, *driver_arguments(robots))
    script = pathlib.Path(sys.modules[ChunkExecutorNode.__module__].__file__)
    try:
        for run in range(3):
            executor = start_python_process(
                script, '--ros-args', '-p', f'robot_names:=[{robots[0]},{robots[1]}]',
                '-p', 'realtime_priority:=50', '-p', f'robot_description:={TEST_ROBOT_FILE}')
            time.sleep(3.0)
            assert executor.poll() is None, 'the executor exited early'
            for _ in range(signals):
                executor.send_signal(signal.SIGINT)
                time.sleep(0.01)
            executor.wait(timeout=10.0)
            output = stop_process(executor)
            assert executor.returncode == 0, (run, executor.returncode, output)
            assert 'no torque-off is sent' in output, output
    finally:
        driver_output = stop_process(driver)
    assert 'BAD COMMAND' not in driver_output, driver_output


@pytest.mark.parametrize('argument, named', [('rate_hz:=0.0', 'rate_hz'),
                                             ('robot_description:=ur5', 'ur5')])
def test_entry_point_refuses_bad_parameters_in_one_line(argument, named):
    script = pathlib.Path(sys.modules[ChunkExecutorNode.__module__].__file__)
    executor = start_python_process(script, '--ros-args', '-p', argument)
    executor.wait(timeout=30.0)
    output = stop_process(executor)
    assert executor.returncode == 1, output
    assert 'cannot start' in output and named in output, output
    assert 'Traceback' not in output, output
