"""launch_description.build_node_specs (node list, parameters, remappings, validation)."""

import pathlib

import pytest

from vla_adapter_ros.executor_config import ExecutorConfig
from vla_adapter_ros.inference_settings import INFERENCE_PARAMETERS
from vla_adapter_ros.launch_description import (
    ROBOT_ARGUMENTS,
    build_node_specs,
    load_parameter_file,
    resolve_arguments,
)

REPO = pathlib.Path(__file__).resolve().parents[2]
CAMERA_TOPIC = '/{}/camera/color/image_rect_raw'


@pytest.fixture()
def checkpoint(tmp_path):
    directory = tmp_path / 'checkpoint'
    directory.mkdir()
    return str(directory)


def _by_name(specs) -> dict:
    return {spec.name: spec for spec in specs}


def test_dual_arm_defaults(checkpoint):
    specs = build_node_specs('dual', {'checkpoint': checkpoint, 'instruction': 'fold it'}, REPO)
    assert [s.name for s in specs] == ['vla_inference', 'chunk_executor']
    nodes = _by_name(specs)
    inference, executor = nodes['vla_inference'], nodes['chunk_executor']
    assert (inference.package, inference.executable) == ('vla_adapter_ros',
                                                         'vla-adapter-inference')
    assert executor.executable == 'vla-adapter-executor'
    config = str(REPO / 'config' / 'aloha.yaml')
    assert inference.parameters[0] == config and executor.parameters[0] == config
    overrides = inference.parameters[1]
    assert overrides['checkpoint'] == checkpoint and overrides['instruction'] == 'fold it'
    assert overrides['num_arms'] == 2
    assert overrides['robot_names'] == ['follower_left', 'follower_right']
    assert overrides['camera_names'] == ['cam_high', 'cam_left_wrist', 'cam_right_wrist']
    assert overrides['camera_topics'] == [CAMERA_TOPIC.format(c) for c in
                                          overrides['camera_names']]
    assert overrides['dt'] == 0.02 and overrides['device'] == 'cuda'
    assert executor.parameters[1] == {'robot_names': ['follower_left', 'follower_right'],
                                      'arm_mode': 'dual', 'chunk_topic': 'action_chunk',
                                      'rate_hz': 50.0}
    for spec in specs:
        assert spec.arguments == ['--ros-args', '--log-level', 'info']
        assert spec.remappings == [] and spec.output == 'screen'


def test_single_arm_with_simulator_and_overrides(checkpoint):
    values = {'checkpoint': checkpoint, 'robot_name': 'vx300s', 'use_sim': 'True',
              'camera_topics': f'{CAMERA_TOPIC.format("top")}, {CAMERA_TOPIC.format("wrist")}',
              'camera_names': 'cam_high,cam_wrist', 'command_rate_hz': '100',
              'chunk_dt': '0.04', 'log_level': 'DEBUG', 'device': 'cpu'}
    specs = build_node_specs('single', values, REPO)
    nodes = _by_name(specs)
    assert list(nodes) == ['vla_inference', 'chunk_executor', 'simulated_aloha']
    inference = nodes['vla_inference'].parameters[1]
    assert nodes['vla_inference'].parameters[0] == str(REPO / 'config' / 'single_arm.yaml')
    assert inference['num_arms'] == 1 and inference['robot_names'] == ['vx300s']
    assert inference['camera_names'] == ['cam_high', 'cam_wrist'] and inference['dt'] == 0.04
    assert nodes['chunk_executor'].parameters[1]['arm_mode'] == 'single'
    assert nodes['chunk_executor'].parameters[1]['rate_hz'] == 100.0
    sim = nodes['simulated_aloha']
    assert sim.executable == 'vla-adapter-sim-robot'
    assert sim.parameters[1] == {'robot_names': ['vx300s'], 'camera_names': ['top', 'wrist']}
    assert all(s.arguments[-1] == 'debug' for s in specs)


def test_a_custom_chunk_topic_remaps_the_inference_outputs(checkpoint):
    specs = _by_name(build_node_specs('dual', {'checkpoint': checkpoint,
                                               'chunk_topic': '/vla/chunks'}, REPO))
    assert specs['vla_inference'].remappings == [
        ('action_chunk', '/vla/chunks'), ('action_chunk/left', '/vla/chunks/left'),
        ('action_chunk/right', '/vla/chunks/right')]
    assert specs['chunk_executor'].parameters[1]['chunk_topic'] == '/vla/chunks'


def test_a_custom_config_file_is_used_and_validated(checkpoint, tmp_path):
    custom = tmp_path / 'custom.yaml'
    custom.write_text((REPO / 'config' / 'aloha.yaml').read_text().replace(
        'sync_slop_s: 0.05', 'sync_slop_s: 0.03'))
    specs = build_node_specs('dual', {'checkpoint': checkpoint, 'config_file': str(custom)},
                             REPO)
    assert specs[0].parameters[0] == str(custom)
    broken = tmp_path / 'broken.yaml'
    broken.write_text((REPO / 'config' / 'aloha.yaml').read_text().replace(
        'ensemble_k: 0.01', 'ensemble_k: 50.0'))
    with pytest.raises(ValueError, match=r'ensemble_k must be within \[-10.0, 10.0\], got 50.0'):
        build_node_specs('dual', {'checkpoint': checkpoint, 'config_file': str(broken)}, REPO)
    unknown = tmp_path / 'unknown.yaml'
    unknown.write_text('vla_inference:\n  ros__parameters:\n    slop: 1.0\n')
    with pytest.raises(ValueError, match=r"unknown inference parameters \['slop'\]"):
        build_node_specs('dual', {'checkpoint': checkpoint, 'config_file': str(unknown)}, REPO)
    flat = tmp_path / 'flat.yaml'
    flat.write_text('vla_inference:\n  device: cpu\n')
    with pytest.raises(ValueError, match='must hold only ros__parameters'):
        load_parameter_file(flat)


@pytest.mark.parametrize(('mode', 'values', 'message'), [
    ('dual', {}, r"launch arguments \['checkpoint'\] are required"),
    ('dual', {'checkpoint': '  '}, r"\['checkpoint'\] are required"),
    ('dual', {'checkpoint': '/no/such/dir'}, "checkpoint='/no/such/dir': is not a directory"),
    ('dual', {'robot_name': 'x'}, r"unknown launch arguments \['robot_name'\]"),
    ('triple', {}, "mode='triple'"),
    ('dual', {'use_sim': 'yes'}, "use_sim='yes': must be 'true' or 'false'"),
    ('dual', {'command_rate_hz': 'fast'}, "command_rate_hz='fast': must be a number"),
    ('dual', {'command_rate_hz': '-50'}, "command_rate_hz='-50': must be a positive"),
    ('dual', {'chunk_dt': '0'}, "chunk_dt='0': must be a positive number"),
    ('dual', {'log_level': 'loud'}, "log_level='loud'"),
    ('dual', {'camera_names': 'a,b'}, 'parameter camera_topics='),
    ('dual', {'camera_topics': ' , '}, "camera_topics=' , ': needs at least one"),
    ('dual', {'left_robot_name': 'arm', 'right_robot_name': 'arm'}, 'robot_names'),
    ('dual', {'instruction': 'y' * 600}, '600 characters'),
    ('dual', {'use_sim': 'true', 'camera_topics': '/a/image,/b/image,/c/image'},
     '/<camera>/camera/color/image_rect_raw'),
    ('dual', {'config_file': '/no/such.yaml'}, "config_file='/no/such.yaml': no such file"),
    ('dual', {'chunk_topic': 'vla/'}, "chunk_topic='vla/'"),
])
def test_bad_arguments_are_refused_naming_the_argument(checkpoint, mode, values, message):
    if 'checkpoint' not in values and values != {}:
        values = {'checkpoint': checkpoint, **values}
    with pytest.raises(ValueError, match=message):
        build_node_specs(mode, values, REPO)


def test_every_argument_is_documented_and_the_issue_list_is_covered():
    required = {'checkpoint', 'instruction', 'use_sim', 'camera_topics', 'camera_names',
                'command_rate_hz', 'chunk_dt', 'log_level'}
    for mode, arguments in ROBOT_ARGUMENTS.items():
        names = [a.name for a in arguments]
        assert len(names) == len(set(names))
        assert required <= set(names), mode
        assert all(len(a.description) > 20 for a in arguments)
        assert [a.name for a in arguments if a.default is None] == ['checkpoint']
    assert {'left_robot_name', 'right_robot_name'} <= {a.name for a in ROBOT_ARGUMENTS['dual']}
    assert 'robot_name' in {a.name for a in ROBOT_ARGUMENTS['single']}
    resolved = resolve_arguments('single', {'checkpoint': 'x'})
    assert resolved['robot_name'] == 'follower_right' and resolved['use_sim'] == 'false'


@pytest.mark.parametrize('config', ['aloha.yaml', 'single_arm.yaml'])
def test_yaml_files_hold_every_inference_parameter_and_valid_executor_values(config):
    sections = load_parameter_file(REPO / 'config' / config)
    assert set(sections) == {'vla_inference', 'chunk_executor', 'simulated_aloha'}
    assert list(sections['vla_inference']) == [name for name, _, _ in INFERENCE_PARAMETERS]
    executor = ExecutorConfig.from_dict(sections['chunk_executor'])
    assert executor.num_arms == sections['vla_inference']['num_arms']
    assert list(executor.robot_names) == sections['vla_inference']['robot_names']
    text = (REPO / 'config' / config).read_text()
    assert text.count('#') >= 10, 'parameters must be documented with comments'
