"""Launch files (parsed with ast) and YAML files (loaded into the real nodes by rclpy).

launch / launch_ros cannot be installed here, so the launch files are checked structurally; the
YAML files go through rclpy's own --params-file parser into the real nodes.
"""

import ast
import pathlib

from interbotix_xs_msgs.msg import JointGroupCommand
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from ros_test_utils import SUPPORT_DIR, spin_until, start_python_process, stop_process

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_ros.bringup.launch_arguments import load_parameter_file
from vla_adapter_ros.bringup.launch_description import (
    ENTRY_POINTS,
    EXECUTABLES,
    NodeSpec,
    build_node_specs,
    exit_reason,
    ros_command_line,
)
from vla_adapter_ros.nodes.executor_node import ChunkExecutorNode
from vla_adapter_ros.nodes.image_compressor_node import ImageCompressorNode
from vla_adapter_ros.nodes.inference_node import InferenceNode
from vla_adapter_ros.nodes.sim_robot_node import SimulatedRobotNode
from vla_adapter_ros.params.executor_config import EXECUTOR_PARAMETERS
from vla_adapter_ros.params.image_compressor_config import IMAGE_COMPRESSOR_PARAMETERS
from vla_adapter_ros.params.inference_config import INFERENCE_PARAMETERS
from vla_adapter_ros.params.sim_robot_config import SIM_ROBOT_PARAMETERS

REPO = pathlib.Path(__file__).resolve().parents[3]
HERE = pathlib.Path(__file__).resolve().parent
from inference_harness import statistics_around_the_start_pose, tiny_policy_for  # noqa: E402

LAUNCH_FILES = {'aloha.launch.py': 'dual', 'single_arm.launch.py': 'single'}
# Each node section of the YAML files, its parameter table and its node class.
NODES = {'vla_inference': INFERENCE_PARAMETERS, 'chunk_executor': EXECUTOR_PARAMETERS,
         'simulated_robot': SIM_ROBOT_PARAMETERS, 'image_compressor': IMAGE_COMPRESSOR_PARAMETERS}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        getattr(node.func, 'id', None) == name or getattr(node.func, 'attr', None) == name)]


def _imported_names(tree: ast.AST) -> dict[str, str]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names[alias.name] = node.module
    return names


@pytest.mark.parametrize(('file_name', 'mode'), LAUNCH_FILES.items())
def test_launch_file_is_a_thin_wrapper_of_the_tested_function(file_name, mode):
    tree = ast.parse((REPO / 'launch' / file_name).read_text())
    compile(tree, file_name, 'exec')
    assert ast.get_docstring(tree) and 'ros2 launch vla_adapter_ros' in ast.get_docstring(tree)
    assert _imported_names(tree) == {
        'launch_description': 'vla_adapter_ros.bringup.launch_actions'}
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert [function.name for function in functions] == ['generate_launch_description']
    call, = _calls(tree, 'launch_description')
    assert ast.literal_eval(call.args[0]) == mode


def test_launch_actions_declare_every_argument_and_make_every_node_critical():
    """Launch / launch_ros are not installable here: the module is checked structurally."""
    source = (REPO / 'vla_adapter_ros' / 'bringup' / 'launch_actions.py').read_text()
    tree = ast.parse(source)
    compile(tree, 'launch_actions.py', 'exec')
    imports = _imported_names(tree)
    assert imports['LaunchDescription'] == 'launch'
    for name in ('DeclareLaunchArgument', 'OpaqueFunction', 'RegisterEventHandler', 'EmitEvent'):
        assert imports[name] == 'launch.actions'
    assert imports['OnProcessExit'] == 'launch.event_handlers'
    assert imports['Shutdown'] == 'launch.events'
    assert imports['LaunchConfiguration'] == 'launch.substitutions'
    assert imports['Node'] == 'launch_ros.actions'
    for name in ('build_node_specs', 'exit_reason'):
        assert imports[name] == 'vla_adapter_ros.bringup.launch_description'
    assert imports['ROBOT_ARGUMENTS'] == 'vla_adapter_ros.bringup.launch_arguments'
    declarations = _calls(tree, 'DeclareLaunchArgument')
    assert declarations and all(
        {k.arg for k in call.keywords} >= {'description'} for call in declarations)
    assert any('default_value' in {k.arg for k in call.keywords} for call in declarations)
    assert len(_calls(tree, 'build_node_specs')) == 1 and len(_calls(tree, 'perform')) == 1
    node_call, = _calls(tree, 'Node')
    # Every NodeSpec field reaches launch_ros.actions.Node under the same keyword.
    assert {k.arg for k in node_call.keywords} == set(NodeSpec.__dataclass_fields__)
    # Each node gets an OnProcessExit handler emitting Shutdown with exit_reason.
    handler, = _calls(tree, 'OnProcessExit')
    assert {k.arg for k in handler.keywords} == {'target_action', 'on_exit'}
    shutdown, = _calls(tree, 'Shutdown')
    assert shutdown.keywords[0].arg == 'reason'
    assert 'exit_reason' in ast.unparse(shutdown)


def test_exit_reason_is_one_line_naming_the_node_and_status():
    reason = exit_reason('vla_inference', 1)
    assert reason.startswith('vla_inference exited with status 1') and '\n' not in reason
    assert 'status 0' in exit_reason('chunk_executor', 0)


def test_launch_files_differ_only_in_mode_and_wording():
    dual = ast.parse((REPO / 'launch' / 'aloha.launch.py').read_text())
    single = ast.parse((REPO / 'launch' / 'single_arm.launch.py').read_text())
    dual.body, single.body = dual.body[1:], single.body[1:]  # docstrings differ
    assert ast.dump(dual).replace("'dual'", "'single'") == ast.dump(single)


@pytest.fixture()
def params_file_context(request):
    config = REPO / 'config' / request.param
    context = rclpy.Context()
    rclpy.init(context=context, args=['--ros-args', '--params-file', str(config)])
    yield context, load_parameter_file(config)
    rclpy.shutdown(context=context)


@pytest.mark.parametrize('params_file_context', ['aloha.yaml', 'single_arm.yaml'],
                         indirect=True)
def test_yaml_files_load_into_the_real_nodes(params_file_context):
    context, sections = params_file_context
    robot = load_robot_description(sections['vla_inference']['robot_description'])
    policy = tiny_policy_for(robot, chunk_size=4)
    nodes = []
    try:
        nodes.append(InferenceNode(policy, context=context))
        nodes.append(ChunkExecutorNode(context=context))
        nodes.append(SimulatedRobotNode(context=context))
        nodes.append(ImageCompressorNode(context=context))
        for node, (section, table) in zip(nodes, NODES.items()):
            assert set(sections[section]) <= set(table.names), section
            assert all(node.has_parameter(name) for name in table.names), section
            for name, value in sections[section].items():
                assert node.get_parameter(name).value == value or list(
                    node.get_parameter(name).value) == value, (section, name)
        assert nodes[0].settings.robot.name == robot.name
        assert nodes[1].robot.namespaces == nodes[2].robot.namespaces == robot.namespaces
    finally:
        for node in nodes:
            node.destroy_node()


def test_setup_py_installs_every_executable_the_launch_starts():
    setup_py = (REPO / 'setup.py').read_text()
    for executable, target in ENTRY_POINTS.items():
        assert f"'{executable} = {target}'" in setup_py
    assert set(EXECUTABLES.values()) == set(ENTRY_POINTS)


def test_ros_command_line_matches_launch_ros():
    spec = NodeSpec('vla_adapter_ros', 'vla-adapter-inference', 'vla_inference',
                    ['/cfg/aloha.yaml', {'robot_names': ['a', 'b'], 'dt': 0.02,
                                         'instruction': 'fold it'}],
                    [('action_chunk', '/vla/chunks')], ['--ros-args', '--log-level', 'info'])
    assert ros_command_line(spec) == [
        '--ros-args', '--log-level', 'info', '--ros-args', '-r', '__node:=vla_inference',
        '--params-file', '/cfg/aloha.yaml', '-p', 'robot_names:=["a", "b"]', '-p', 'dt:=0.02',
        '-p', 'instruction:="fold it"', '-r', 'action_chunk:=/vla/chunks']


# (launch mode, robot argument, policy head): ALOHA and a 5-joint arm through the same launch.
END_TO_END = {'aloha': ('dual', 'aloha', 'dual_arm'), 'wx250': ('single', 'wx250', 'l1')}


@pytest.mark.parametrize('case', list(END_TO_END))
def test_the_simulated_robot_launch_runs_end_to_end(tmp_path, case):
    """Every node of `<launch> robot:=<robot> use_sim:=true`, started as ros2 launch would."""
    mode, robot_name, head_kind = END_TO_END[case]
    robot = load_robot_description(robot_name)
    policy = tiny_policy_for(robot, chunk_size=50, head_kind=head_kind, seed=6,
                             statistics=statistics_around_the_start_pose(robot))
    policy.save_pretrained(tmp_path)
    specs = build_node_specs(mode, {
        'checkpoint': str(tmp_path), 'robot': robot_name, 'instruction': 'hand over the cube',
        'use_sim': 'true', 'device': 'cpu', 'dtype': 'float32',
        'chunk_topic': '/vla/chunks'}, REPO)
    arm = robot.arms[-1]
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node('launch_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    chunks, statuses, commands = [], [], []
    probe.create_subscription(ActionChunk, '/vla/chunks', chunks.append, 10)
    probe.create_subscription(PolicyStatus, 'executor_status', statuses.append, 10)
    probe.create_subscription(JointGroupCommand, f'/{arm.namespace}/commands/joint_group',
                              commands.append, 10)
    processes, outputs = [], []
    try:
        for spec in specs:
            processes.append(start_python_process(
                SUPPORT_DIR / 'run_node.py', spec.executable, *ros_command_line(spec)))
        assert spin_until(executor, lambda: len(chunks) >= 2 and len(commands) >= 20 and any(
            s.state == PolicyStatus.STATE_RUNNING for s in statuses), 90.0), (
            f'{len(chunks)} chunks, {len(commands)} commands, executor states '
            f'{sorted({(s.state, s.fault_reason) for s in statuses})}')
    finally:
        outputs = [stop_process(process) for process in processes]
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=context)
    # The inference node must stop cleanly on SIGTERM even with a chunk in flight. (The other
    # nodes' main() can still race rclpy's SIGTERM shutdown inside spin; not checked here.)
    inference_output = outputs[0]
    assert specs[0].name == 'vla_inference'
    assert 'Traceback' not in inference_output, inference_output[-3000:]
    assert chunks[-1].instruction == 'hand over the cube'
    assert len(chunks[-1].left.points) == 50
    assert list(chunks[-1].left.joint_names) == list(robot.arms[0].command_joint_names)
    assert all(list(command.cmd) and len(command.cmd) == len(arm.joint_names)
               and command.name == arm.model.arm_group for command in commands)
