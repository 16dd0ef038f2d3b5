"""Launch files (parsed with ast) and YAML files (loaded into the real nodes by rclpy).

launch / launch_ros cannot be installed here, so the launch files are checked structurally; the
YAML files go through rclpy's own --params-file parser into the real nodes.
"""

import ast
import pathlib

import pytest
import rclpy

from vla_adapter_ros.executor_node import ChunkExecutorNode
from vla_adapter_ros.inference_node import InferenceNode
from vla_adapter_ros.launch_description import NodeSpec, load_parameter_file
from vla_adapter_ros.sim_robot_node import SimulatedAlohaNode

REPO = pathlib.Path(__file__).resolve().parents[2]
LAUNCH_FILES = {'aloha.launch.py': 'dual', 'single_arm.launch.py': 'single'}


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
    source = (REPO / 'launch' / file_name).read_text()
    tree = ast.parse(source)
    compile(tree, file_name, 'exec')
    assert ast.get_docstring(tree) and 'ros2 launch vla_adapter_ros' in ast.get_docstring(tree)
    imports = _imported_names(tree)
    assert imports['LaunchDescription'] == 'launch'
    assert imports['DeclareLaunchArgument'] == 'launch.actions'
    assert imports['OpaqueFunction'] == 'launch.actions'
    assert imports['LaunchConfiguration'] == 'launch.substitutions'
    assert imports['Node'] == 'launch_ros.actions'
    assert imports['build_node_specs'] == 'vla_adapter_ros.launch_description'
    assert imports['ROBOT_ARGUMENTS'] == 'vla_adapter_ros.launch_description'
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    assignments = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                   for target in node.targets}
    assert ast.literal_eval(assignments['MODE']) == mode
    declarations = _calls(tree, 'DeclareLaunchArgument')
    assert declarations and all(
        {k.arg for k in call.keywords} >= {'description'} for call in declarations)
    assert any('default_value' in {k.arg for k in call.keywords} for call in declarations)
    opaque = _calls(tree, 'OpaqueFunction')
    assert len(opaque) == 1 and opaque[0].keywords[0].arg == 'function'
    assert len(_calls(tree, 'build_node_specs')) == 1
    assert len(_calls(tree, 'perform')) == 1
    node_calls = _calls(tree, 'Node')
    assert len(node_calls) == 1
    # Every NodeSpec field reaches launch_ros.actions.Node under the same keyword.
    assert {k.arg for k in node_calls[0].keywords} == set(NodeSpec.__dataclass_fields__)


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
    from vla_adapter_core.testing import build_tiny_policy

    context, sections = params_file_context
    inference_values = sections['vla_inference']
    num_arms = inference_values['num_arms']
    policy = build_tiny_policy(action_dim=7 * num_arms, proprio_dim=7 * num_arms, chunk_size=4,
                               camera_names=inference_values['camera_names'])
    nodes = []
    try:
        nodes.append(InferenceNode(policy, context=context))
        nodes.append(ChunkExecutorNode(context=context))
        nodes.append(SimulatedAlohaNode(context=context))
        for node, section in zip(nodes, ('vla_inference', 'chunk_executor', 'simulated_aloha')):
            for name, value in sections[section].items():
                assert node.has_parameter(name), f'{section} does not declare {name}'
                assert node.get_parameter(name).value == value or list(
                    node.get_parameter(name).value) == value, (section, name)
        assert nodes[0].settings.num_arms == num_arms
        assert nodes[0].settings.camera_names == tuple(inference_values['camera_names'])
    finally:
        for node in nodes:
            node.destroy_node()
