"""Every node executable answers --help / -h with its purpose and parameters, starting nothing."""

import os
import pathlib
import subprocess
import sys

import pytest

from vla_adapter_ros.bringup.launch_description import ENTRY_POINTS
from vla_adapter_ros.params.executor_config import EXECUTOR_PARAMETERS
from vla_adapter_ros.params.image_compressor_config import IMAGE_COMPRESSOR_PARAMETERS
from vla_adapter_ros.params.inference_config import INFERENCE_PARAMETERS
from vla_adapter_ros.params.mujoco_sim_config import MUJOCO_SIM_PARAMETERS
from vla_adapter_ros.params.player_config import PLAYER_PARAMETERS
from vla_adapter_ros.params.recorder_config import RECORDER_PARAMETERS
from vla_adapter_ros.params.sim_robot_config import SIM_ROBOT_PARAMETERS

TABLES = {'vla-adapter-inference': INFERENCE_PARAMETERS,
          'vla-adapter-executor': EXECUTOR_PARAMETERS,
          'vla-adapter-record': RECORDER_PARAMETERS, 'vla-adapter-play': PLAYER_PARAMETERS,
          'vla-adapter-mujoco-sim': MUJOCO_SIM_PARAMETERS,
          'vla-adapter-sim-robot': SIM_ROBOT_PARAMETERS,
          'vla-adapter-compress-images': IMAGE_COMPRESSOR_PARAMETERS}


def run_executable(executable: str, *arguments: str, tmp_path: pathlib.Path):
    """The entry point as the console script runs it, in a folder of its own."""
    module, function = ENTRY_POINTS[executable].split(':')
    code = f'import sys; from {module} import {function}; sys.exit({function}())'
    env = {**os.environ, 'HOME': str(tmp_path)}  # a recorder would write below ~
    return subprocess.run([sys.executable, '-c', code, *arguments], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)


def test_every_node_executable_has_a_parameter_table():
    assert set(TABLES) == set(ENTRY_POINTS)


@pytest.mark.parametrize('flag', ['--help', '-h'])
@pytest.mark.parametrize('executable', sorted(TABLES))
def test_help_prints_purpose_and_every_parameter_and_starts_no_node(executable, flag,
                                                                    tmp_path):
    result = run_executable(executable, flag, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f'usage: {executable} ')
    assert lines[2] and not lines[2].startswith(' ')  # the purpose line
    for spec in TABLES[executable].specs:
        entry = next(line for line in lines if line.startswith(f'  {spec.name} ('))
        assert f'default {spec.ros_default()!r}' in entry
    assert result.stderr == ''  # no ROS logging: no node was created
    assert list(tmp_path.iterdir()) == []  # nothing written (no recorder output folder)


def test_help_after_ros_args_is_a_parameter_not_a_request(tmp_path):
    from vla_adapter_ros.nodes.node_main import asks_for_help

    assert asks_for_help(['vla-adapter-record', '--help'])
    assert asks_for_help(['vla-adapter-record', '-h', '--ros-args', '-p', 'a:=1'])
    assert not asks_for_help(['vla-adapter-record', '--ros-args', '-r', '-h:=x'])
    assert not asks_for_help(['vla-adapter-record'])
