"""launch_description.build_node_specs (robot, node list, parameters, remappings, validation)."""

import pathlib

import pytest

from vla_adapter_core.robot_description import available_robots, load_robot_description
from vla_adapter_ros.bringup.launch_arguments import (
    DEFAULT_ROBOTS,
    ROBOT_ARGUMENTS,
    load_parameter_file,
    resolve_arguments,
)
from vla_adapter_ros.bringup.launch_description import build_node_specs
from vla_adapter_ros.params.executor_config import EXECUTOR_PARAMETERS, ExecutorConfig
from vla_adapter_ros.params.image_compressor_config import (
    IMAGE_COMPRESSOR_PARAMETERS,
    ImageCompressorConfig,
)
from vla_adapter_ros.params.inference_config import INFERENCE_PARAMETERS, InferenceConfig
from vla_adapter_ros.params.sim_robot_config import SIM_ROBOT_PARAMETERS, SimRobotConfig

REPO = pathlib.Path(__file__).resolve().parents[3]
ROBOTS = REPO / 'config' / 'robots'
TABLES = {'vla_inference': INFERENCE_PARAMETERS, 'chunk_executor': EXECUTOR_PARAMETERS,
          'simulated_robot': SIM_ROBOT_PARAMETERS,
          'image_compressor': IMAGE_COMPRESSOR_PARAMETERS}


@pytest.fixture()
def checkpoint(tmp_path):
    directory = tmp_path / 'checkpoint'
    directory.mkdir()
    return str(directory)


def _by_name(specs) -> dict:
    return {spec.name: spec for spec in specs}


def test_dual_arm_defaults_pass_the_aloha_description_to_every_node(checkpoint):
    specs = build_node_specs('dual', {'checkpoint': checkpoint, 'instruction': 'fold it'}, REPO)
    assert [s.name for s in specs] == ['vla_inference', 'chunk_executor']
    nodes = _by_name(specs)
    inference, executor = nodes['vla_inference'], nodes['chunk_executor']
    assert (inference.package, inference.executable) == ('vla_adapter_ros',
                                                         'vla-adapter-inference')
    assert executor.executable == 'vla-adapter-executor'
    config = str(REPO / 'config' / 'aloha.yaml')
    assert inference.parameters[0] == config and executor.parameters[0] == config
    aloha = load_robot_description('aloha')
    shared = {'robot_description': str(ROBOTS / 'aloha.yaml'),
              'robot_names': list(aloha.namespaces)}
    overrides = inference.parameters[1]
    assert overrides == {**shared, 'checkpoint': checkpoint, 'instruction': 'fold it',
                         'device': 'cuda', 'dtype': 'auto',
                         'camera_topics': list(aloha.camera_topics()),
                         'camera_names': list(aloha.cameras)}
    # The start-up pre-flight check listens to the policy's cameras.
    assert executor.parameters[1] == {**shared, 'chunk_topic': 'action_chunk',
                                      'preflight_camera_topics': list(aloha.camera_topics())}
    for spec in specs:
        assert spec.arguments == ['--ros-args', '--log-level', 'info']
        assert spec.remappings == [] and spec.output == 'screen'


def test_single_arm_defaults_to_the_vx300s_description(checkpoint):
    nodes = _by_name(build_node_specs('single', {'checkpoint': checkpoint}, REPO))
    inference = nodes['vla_inference']
    assert inference.parameters[0] == str(REPO / 'config' / 'single_arm.yaml')
    assert inference.parameters[1]['robot_description'] == str(ROBOTS / 'vx300s.yaml')
    vx300s = load_robot_description('vx300s')
    assert inference.parameters[1]['robot_names'] == list(vx300s.namespaces)
    assert inference.parameters[1]['camera_names'] == list(vx300s.cameras)


def test_robot_wx250_with_the_simulator_builds_five_joint_nodes(checkpoint):
    values = {'checkpoint': checkpoint, 'robot': 'wx250', 'use_sim': 'True',
              'command_rate_hz': '100', 'chunk_dt': '0.04', 'log_level': 'DEBUG',
              'device': 'cpu'}
    specs = build_node_specs('single', values, REPO)
    nodes = _by_name(specs)
    assert list(nodes) == ['vla_inference', 'chunk_executor', 'simulated_robot']
    wx250 = load_robot_description('wx250')
    assert len(wx250.arms[0].joint_names) == 5
    for spec in specs:
        assert spec.parameters[1]['robot_description'] == str(ROBOTS / 'wx250.yaml')
        assert spec.parameters[1]['robot_names'] == list(wx250.namespaces)
        assert spec.arguments[-1] == 'debug'
    assert nodes['vla_inference'].parameters[1]['dt'] == 0.04
    assert nodes['chunk_executor'].parameters[1]['rate_hz'] == 100.0
    sim = nodes['simulated_robot']
    assert sim.executable == 'vla-adapter-sim-robot'
    assert sim.parameters[1]['camera_names'] == list(wx250.cameras)
    executor = ExecutorConfig.from_dict(nodes['chunk_executor'].parameters[1])
    assert executor.robot.action_dim == 6


def test_a_user_description_overrides_robot_and_robot_names_rename_the_arms(checkpoint,
                                                                            tmp_path):
    mine = tmp_path / 'x.yaml'
    mine.write_text('extends: wx250s\nname: my_arm\ncameras: [top, wrist]\n')
    values = {'checkpoint': checkpoint, 'robot': 'aloha', 'robot_description': str(mine),
              'robot_names': 'arm_a', 'use_sim': 'true',
              'camera_topics': '/top/camera/color/image_rect_raw, /wrist/camera/color/'
                               'image_rect_raw', 'camera_names': 'cam_high,cam_wrist'}
    nodes = _by_name(build_node_specs('dual', values, REPO))
    for spec in nodes.values():
        assert spec.parameters[1]['robot_description'] == str(mine.resolve())
        assert spec.parameters[1]['robot_names'] == ['arm_a']
    inference = nodes['vla_inference'].parameters[1]
    assert inference['camera_names'] == ['cam_high', 'cam_wrist']
    assert nodes['simulated_robot'].parameters[1]['camera_names'] == ['top', 'wrist']
    settings = InferenceConfig.from_dict(inference)
    assert settings.robot.name == 'my_arm' and settings.robot.namespaces == ('arm_a',)


def test_a_custom_chunk_topic_remaps_the_inference_outputs(checkpoint):
    specs = _by_name(build_node_specs('dual', {'checkpoint': checkpoint,
                                               'chunk_topic': '/vla/chunks'}, REPO))
    assert specs['vla_inference'].remappings == [
        ('action_chunk', '/vla/chunks'), ('action_chunk/left', '/vla/chunks/left'),
        ('action_chunk/right', '/vla/chunks/right')]
    assert specs['chunk_executor'].parameters[1]['chunk_topic'] == '/vla/chunks'


def test_a_hub_repo_id_is_passed_to_the_node(tmp_path):
    specs = build_node_specs('dual', {'checkpoint': 'VLA-Adapter/LIBERO-Spatial-Pro'}, REPO)
    assert specs[0].parameters[1]['checkpoint'] == 'VLA-Adapter/LIBERO-Spatial-Pro'


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
    with pytest.raises(ValueError, match=r'chunk_executor: parameter ensemble_k=50.0: must be '
                                         r'within \[-10.0, 10.0\]'):
        build_node_specs('dual', {'checkpoint': checkpoint, 'config_file': str(broken)}, REPO)
    unknown = tmp_path / 'unknown.yaml'
    unknown.write_text('vla_inference:\n  ros__parameters:\n    slop: 1.0\n')
    with pytest.raises(ValueError, match=r"vla_inference: unknown parameters \['slop'\]"):
        build_node_specs('dual', {'checkpoint': checkpoint, 'config_file': str(unknown)}, REPO)
    section = tmp_path / 'section.yaml'
    section.write_text('simulated_aloha:\n  ros__parameters:\n    image_height: 48\n')
    with pytest.raises(ValueError, match=r"unknown node sections \['simulated_aloha'\]"):
        build_node_specs('dual', {'checkpoint': checkpoint, 'config_file': str(section)}, REPO)
    flat = tmp_path / 'flat.yaml'
    flat.write_text('vla_inference:\n  device: cpu\n')
    with pytest.raises(ValueError, match='must hold only ros__parameters'):
        load_parameter_file(flat)


@pytest.mark.parametrize(('mode', 'values', 'message'), [
    ('dual', {}, r"launch arguments \['checkpoint'\] are required"),
    ('dual', {'checkpoint': '  '}, r"\['checkpoint'\] are required"),
    ('dual', {'checkpoint': '/no/such/dir'}, "checkpoint='/no/such/dir': is neither a directory"),
    ('dual', {'left_robot_name': 'x'}, r"unknown launch arguments \['left_robot_name'\]"),
    ('triple', {}, "mode='triple'"),
    ('single', {'robot': 'ur5'}, r"^launch argument robot='ur5': .*built-in: \['aloha', "),
    ('dual', {'robot_description': '/tmp/none.yaml'},
     r"^launch argument robot_description='/tmp/none.yaml': .*no such file"),
    ('dual', {'robot_description': str(pathlib.Path(__file__))},
     r"^launch argument robot_description='.*test_launch_description.py': .*"),
    ('dual', {'robot_names': 'arm,arm'}, r"^launch argument robot_names='arm,arm': .*distinct"),
    ('single', {'robot_names': 'a,b'}, r"^launch argument robot_names='a,b': .*needs 1"),
    ('dual', {'use_sim': 'yes'}, "use_sim='yes': must be 'true' or 'false'"),
    ('dual', {'command_rate_hz': 'fast'}, "command_rate_hz='fast': must be a number"),
    ('dual', {'command_rate_hz': '-50'}, "command_rate_hz='-50': must be a positive"),
    ('dual', {'chunk_dt': '0'}, "chunk_dt='0': must be a positive number"),
    ('dual', {'compile': 'fast'}, r"compile='fast': must be one of \['none', 'default', 'max'\]"),
    ('dual', {'log_level': 'loud'}, "log_level='loud'"),
    ('dual', {'camera_names': 'a,b', 'camera_topics': '/a/image'},
     "camera_topics='/a/image': needs one topic per camera"),
    ('dual', {'camera_topics': ' , '}, "camera_topics=' , ': needs at least one"),
    ('dual', {'use_sim': 'true', 'camera_topics': '/a/image,/b/image,/c/image'},
     '/{camera}/camera/color/image_rect_raw'),
    ('dual', {'config_file': '/no/such.yaml'}, "config_file='/no/such.yaml': no such file"),
    ('dual', {'chunk_topic': 'vla/'}, "chunk_topic='vla/'"),
    ('dual', {'use_sim': 'true', 'sim': 'gazebo'}, "sim='gazebo': must be one of"),
    ('dual', {'role': 'both'}, r"role='both': must be one of \('all', 'robot', 'policy'\)"),
    ('dual', {'role': 'policy', 'use_sim': 'true'}, "use_sim='true': starts a node beside"),
    ('dual', {'role': 'policy', 'record': 'true'}, "record='true': .*role:=robot"),
    ('dual', {'role': 'robot', 'replay_bag': '/x'}, "replay_bag='/x': .*role:=all"),
    ('dual', {'compress_images': 'yes'}, "compress_images='yes': must be 'true' or 'false'"),
    ('dual', {'jpeg_quality': '70'}, "jpeg_quality='70': sets the quality of compress_images"),
    ('dual', {'compress_images': 'true', 'jpeg_quality': 'high'},
     "jpeg_quality='high': must be an integer"),
    ('dual', {'compress_images': 'true', 'jpeg_quality': '0'},
     r'image_compressor: parameter jpeg_quality=0: must be within \[1, 100\]'),
    ('dual', {'compress_images': 'true', 'camera_names': 'cam_high',
              'camera_topics': '/cam/compressed'}, 'must be raw Image topics'),
    ('dual', {'use_sim': 'true', 'sim': 'mujoco', 'sim_clock': 'fast'},
     "sim_clock='fast': must be one of"),
    ('dual', {'use_sim': 'true', 'sim': 'mujoco', 'sim_task': 'stack'},
     "mujoco_aloha: .*task='stack'"),
    ('single', {'use_sim': 'true', 'sim': 'mujoco', 'robot': 'vx300s'},
     'mujoco_aloha: .*two 6-joint arms'),
])
def test_bad_arguments_are_refused_in_one_line_naming_the_argument(checkpoint, mode, values,
                                                                   message):
    if 'checkpoint' not in values and values != {}:
        values = {'checkpoint': checkpoint, **values}
    with pytest.raises(ValueError, match=message) as error:
        build_node_specs(mode, values, REPO)
    assert '\n' not in str(error.value)


def test_compile_reaches_the_inference_node_only_when_given(checkpoint):
    given = build_node_specs('dual', {'checkpoint': checkpoint, 'compile': 'default'}, REPO)
    assert given[0].parameters[1]['compile'] == 'default'
    unset = build_node_specs('dual', {'checkpoint': checkpoint}, REPO)
    assert 'compile' not in unset[0].parameters[1]  # the config file's value stands


def test_the_instruction_is_left_to_the_node_that_knows_the_token_limit(checkpoint):
    specs = build_node_specs('dual', {'checkpoint': checkpoint, 'instruction': 'y' * 600}, REPO)
    assert specs[0].parameters[1]['instruction'] == 'y' * 600


def test_every_argument_is_documented():
    required = {'checkpoint', 'robot', 'robot_description', 'robot_names', 'instruction',
                'use_sim', 'camera_topics', 'camera_names', 'command_rate_hz', 'chunk_dt',
                'log_level', 'config_file'}
    for mode, arguments in ROBOT_ARGUMENTS.items():
        names = [a.name for a in arguments]
        assert len(names) == len(set(names))
        assert required <= set(names), mode
        assert all(len(a.description) > 20 for a in arguments)
        assert [a.name for a in arguments if a.default is None] == []  # role:=robot needs none
        robot = next(a for a in arguments if a.name == 'robot')
        assert robot.default == DEFAULT_ROBOTS[mode]
        assert all(name in robot.description for name in available_robots())
    assert DEFAULT_ROBOTS == {'dual': 'aloha', 'single': 'vx300s'}
    resolved = resolve_arguments('single', {'checkpoint': 'x'})
    assert resolved['robot'] == 'vx300s' and resolved['use_sim'] == 'false'
    assert resolved['camera_topics'] == resolved['robot_names'] == ''


@pytest.mark.parametrize('config', ['aloha.yaml', 'single_arm.yaml'])
def test_yaml_files_hold_only_declared_node_settings(config):
    sections = load_parameter_file(REPO / 'config' / config)
    assert set(sections) == set(TABLES)
    for node, table in TABLES.items():
        assert set(sections[node]) <= set(table.names), node
        table.resolve(sections[node])
        assert not {'robot_names', 'camera_names', 'camera_topics'} & set(sections[node])
    robot = sections['chunk_executor']['robot_description']
    assert {section['robot_description'] for section in sections.values()} == {robot}
    ExecutorConfig.from_dict(sections['chunk_executor'])
    InferenceConfig.from_dict(sections['vla_inference'])
    SimRobotConfig.from_dict(sections['simulated_robot'])
    ImageCompressorConfig.from_dict(sections['image_compressor'])
    text = (REPO / 'config' / config).read_text()
    assert text.count('#') >= 10, 'parameters must be documented with comments'


def test_record_adds_the_episode_recorder_with_the_executor_commands_as_actions(checkpoint,
                                                                                 tmp_path):
    specs = build_node_specs('single', {'checkpoint': checkpoint, 'robot': 'wx250',
                                        'record': 'true', 'record_dir': str(tmp_path),
                                        'instruction': 'pick it up'}, REPO)
    recorder = _by_name(specs)['episode_recorder']
    assert recorder.executable == 'vla-adapter-record'
    wx250 = load_robot_description('wx250')
    assert recorder.parameters == [{
        'robot_description': str(ROBOTS / 'wx250.yaml'), 'robot_names': list(wx250.namespaces),
        'action_source': 'executor_commands', 'control_source_topic': '/control_source',
        'chunk_topic': '/action_chunk', 'instruction': 'pick it up',
        'output_dir': str(tmp_path)}]
    with pytest.raises(ValueError, match="launch argument record='maybe'"):
        build_node_specs('single', {'checkpoint': checkpoint, 'record': 'maybe'}, REPO)


def test_sim_mujoco_runs_the_mujoco_aloha_on_its_description(checkpoint):
    specs = _by_name(build_node_specs(
        'dual', {'checkpoint': checkpoint, 'use_sim': 'true', 'sim': 'mujoco'}, REPO))
    assert list(specs) == ['vla_inference', 'chunk_executor', 'mujoco_aloha']
    mujoco = specs['mujoco_aloha']
    assert mujoco.executable == 'vla-adapter-mujoco-sim'
    robot = load_robot_description('aloha_sim')
    assert mujoco.parameters == [{'robot_description': str(ROBOTS / 'aloha_sim.yaml'),
                                  'robot_names': list(robot.namespaces),
                                  'task': 'transfer_cube', 'clock': 'realtime'}]
    inference = specs['vla_inference'].parameters[1]
    assert inference['robot_description'] == str(ROBOTS / 'aloha_sim.yaml')
    assert (inference['image_height'], inference['image_width']) == (96, 128)
    for spec in specs.values():  # the real clock: nobody uses sim time
        assert all('use_sim_time' not in p for p in spec.parameters if isinstance(p, dict))


def test_sim_clock_sim_puts_every_node_on_the_simulator_clock(checkpoint):
    specs = _by_name(build_node_specs(
        'dual', {'checkpoint': checkpoint, 'use_sim': 'true', 'sim': 'mujoco',
                 'sim_clock': 'sim', 'sim_task': 'insertion'}, REPO))
    assert specs['mujoco_aloha'].parameters[0]['clock'] == 'sim'
    assert specs['mujoco_aloha'].parameters[0]['task'] == 'insertion'
    for name in ('vla_inference', 'chunk_executor'):
        assert specs[name].parameters[-1] == {'use_sim_time': True}
    assert specs['chunk_executor'].parameters[1]['clock_jump_s'] == 60.0
    # Frames come only during an episode there: the start-up check holds the joints alone.
    assert 'preflight_camera_topics' not in specs['chunk_executor'].parameters[1]
    # Any simulator sizes and times its cameras itself, not as the description says.
    kinematic = _by_name(build_node_specs('dual', {'checkpoint': checkpoint, 'use_sim': 'true'},
                                          REPO))
    assert 'preflight_camera_topics' not in kinematic['chunk_executor'].parameters[1]
    recorded = _by_name(build_node_specs(
        'dual', {'checkpoint': checkpoint, 'use_sim': 'true', 'sim': 'mujoco',
                 'sim_clock': 'sim', 'record': 'true'}, REPO))
    # The bag's receive times on the episode's clock, as its header stamps.
    assert recorded['episode_recorder'].parameters[-1] == {'use_sim_time': True}


def test_an_explicit_robot_wins_over_the_mujoco_default(checkpoint):
    specs = _by_name(build_node_specs(
        'dual', {'checkpoint': checkpoint, 'use_sim': 'true', 'sim': 'mujoco',
                 'robot': 'aloha'}, REPO))
    assert specs['mujoco_aloha'].parameters[0]['robot_description'] == str(
        ROBOTS / 'aloha.yaml')


def test_split_roles_start_each_side_of_two_computers_from_one_description(checkpoint):
    """role:=robot: everything beside the arms; role:=policy: the inference node alone."""
    aloha = load_robot_description('aloha')
    robot = build_node_specs('dual', {'role': 'robot', 'use_sim': 'true', 'record': 'true',
                                      'compress_images': 'true', 'jpeg_quality': '60'}, REPO)
    assert [s.name for s in robot] == ['chunk_executor', 'simulated_robot', 'episode_recorder',
                                       'image_compressor']
    compressor = _by_name(robot)['image_compressor']
    assert compressor.executable == 'vla-adapter-compress-images'
    assert compressor.parameters[1] == {
        'robot_description': str(ROBOTS / 'aloha.yaml'), 'camera_names': list(aloha.cameras),
        'camera_topics': list(aloha.camera_topics()), 'jpeg_quality': 60}
    policy = build_node_specs('dual', {'role': 'policy', 'checkpoint': checkpoint,
                                       'compress_images': 'true'}, REPO)
    assert [s.name for s in policy] == ['vla_inference']
    assert policy[0].parameters[1]['camera_topics'] == [
        f'{topic}/compressed' for topic in aloha.camera_topics()]
    # Without compression the policy reads the raw topics; one computer gets every node.
    raw = build_node_specs('dual', {'role': 'policy', 'checkpoint': checkpoint}, REPO)
    assert raw[0].parameters[1]['camera_topics'] == list(aloha.camera_topics())
    both = build_node_specs('dual', {'checkpoint': checkpoint, 'compress_images': 'true'}, REPO)
    assert [s.name for s in both] == ['vla_inference', 'chunk_executor', 'image_compressor']
    # Only the policy needs the checkpoint.
    with pytest.raises(ValueError, match=r"launch arguments \['checkpoint'\] are required"):
        build_node_specs('dual', {'role': 'policy'}, REPO)
