"""Everything the launch files decide, as plain tested Python (no launch / launch_ros imports).

``launch/aloha.launch.py`` and ``launch/single_arm.launch.py`` only declare the arguments of
:data:`ROBOT_ARGUMENTS` and, in an ``OpaqueFunction``, turn :func:`build_node_specs` into
``launch_ros.actions.Node`` actions one-to-one.

Nodes started (package ``vla_adapter_ros``):
- ``vla_inference`` (``vla-adapter-inference``): the policy, see inference_node.py;
- ``chunk_executor`` (``vla-adapter-executor``): chunks -> 50 Hz Interbotix commands;
- with ``use_sim:=true`` also ``simulated_aloha`` (``vla-adapter-sim-robot``), a kinematic
  stand-in for the Interbotix drivers and cameras.
Parameters: the YAML ``config_file`` (default: the package's ``config/aloha.yaml`` or
``config/single_arm.yaml``) first, then the launch arguments on top. Every value is validated
here with the nodes' own validators before anything starts (ValueError naming the argument).
"""

from dataclasses import dataclass, field
import math
import pathlib

from vla_adapter_ros.executor_config import ExecutorConfig
from vla_adapter_ros.inference_settings import camera_topic, settings_from_values
from vla_adapter_ros.observation import validate_instruction

PACKAGE = 'vla_adapter_ros'
INFERENCE_NODE, EXECUTOR_NODE, SIM_NODE = 'vla_inference', 'chunk_executor', 'simulated_aloha'
EXECUTABLES = {INFERENCE_NODE: 'vla-adapter-inference', EXECUTOR_NODE: 'vla-adapter-executor',
               SIM_NODE: 'vla-adapter-sim-robot'}
# setup.py console_scripts behind the executables (installed into lib/vla_adapter_ros).
ENTRY_POINTS = {'vla-adapter-inference': 'vla_adapter_ros.inference_node:main',
                'vla-adapter-executor': 'vla_adapter_ros.executor_node:main',
                'vla-adapter-sim-robot': 'vla_adapter_ros.sim_robot_node:main'}
MODES = ('dual', 'single')
CONFIG_FILES = {'dual': 'aloha.yaml', 'single': 'single_arm.yaml'}
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
DEFAULT_CHUNK_TOPIC = 'action_chunk'


@dataclass(frozen=True)
class LaunchArgument:
    """One launch argument: ``default`` None means required."""

    name: str
    default: str | None
    description: str


def _camera_list(*names: str) -> str:
    return ','.join(camera_topic(name) for name in names)


_COMMON_ARGUMENTS = (
    LaunchArgument('checkpoint', None,
                   'Policy checkpoint directory (VLAPolicy.save_pretrained output). Required.'),
    LaunchArgument('instruction', '',
                   'Language instruction; empty = wait for the set_instruction service or the '
                   'instruction topic.'),
    LaunchArgument('device', 'cuda', "Torch device of the policy, e.g. 'cuda' or 'cpu'."),
    LaunchArgument('dtype', 'auto', "Policy dtype: 'auto', 'bfloat16' or 'float32'."),
    LaunchArgument('use_sim', 'false',
                   'true: also start the simulated ALOHA (kinematic arms + rendered cameras) '
                   'instead of real drivers.'),
    LaunchArgument('command_rate_hz', '50.0',
                   'Rate of the joint commands streamed to the drivers by the executor, Hz.'),
    LaunchArgument('chunk_dt', '0.02',
                   'Time between action-chunk steps (time_from_start = k * chunk_dt), s; must '
                   'match the training data (ALOHA: 0.02).'),
    LaunchArgument('chunk_topic', DEFAULT_CHUNK_TOPIC,
                   'Topic carrying vla_adapter_msgs/ActionChunk from the inference node to the '
                   'executor.'),
    LaunchArgument('log_level', 'info', f'ROS log level of every node: one of {LOG_LEVELS}.'),
    LaunchArgument('config_file', '',
                   'YAML parameter file; empty = the package config (aloha.yaml or '
                   'single_arm.yaml). Launch arguments override its values.'),
)

ROBOT_ARGUMENTS: dict[str, tuple[LaunchArgument, ...]] = {
    'dual': _COMMON_ARGUMENTS + (
        LaunchArgument('left_robot_name', 'follower_left',
                       'Interbotix robot name (driver namespace) of the left arm.'),
        LaunchArgument('right_robot_name', 'follower_right',
                       'Interbotix robot name (driver namespace) of the right arm.'),
        LaunchArgument('camera_topics',
                       _camera_list('cam_high', 'cam_left_wrist', 'cam_right_wrist'),
                       'Comma-separated sensor_msgs/Image topics (CompressedImage if a topic '
                       'ends in /compressed).'),
        LaunchArgument('camera_names', 'cam_high,cam_left_wrist,cam_right_wrist',
                       'Comma-separated checkpoint camera name of each camera_topics entry.'),
    ),
    'single': _COMMON_ARGUMENTS + (
        LaunchArgument('robot_name', 'follower_right',
                       'Interbotix robot name (driver namespace) of the arm.'),
        LaunchArgument('camera_topics', _camera_list('cam_high', 'cam_right_wrist'),
                       'Comma-separated sensor_msgs/Image topics (CompressedImage if a topic '
                       'ends in /compressed).'),
        LaunchArgument('camera_names', 'cam_high,cam_right_wrist',
                       'Comma-separated checkpoint camera name of each camera_topics entry.'),
    ),
}


@dataclass(frozen=True)
class NodeSpec:
    """Everything ``launch_ros.actions.Node`` needs, field for field."""

    package: str
    executable: str
    name: str
    parameters: list = field(default_factory=list)  # YAML paths and dicts, applied in order
    remappings: list = field(default_factory=list)  # (from, to) pairs
    arguments: list = field(default_factory=list)
    output: str = 'screen'


def ros_command_line(spec: NodeSpec) -> list[str]:
    """The arguments ``ros2 launch`` gives the executable of ``spec`` (after its own name).

    Parameter files and dicts become ``--params-file`` / ``-p name:=value`` (values as YAML flow,
    i.e. JSON), the node name and remappings ``-r`` rules, in launch_ros' order.
    """
    import json

    line = [*spec.arguments, '--ros-args', '-r', f'__node:={spec.name}']
    for parameters in spec.parameters:
        if isinstance(parameters, dict):
            for name, value in parameters.items():
                line += ['-p', f'{name}:={json.dumps(value)}']
        else:
            line += ['--params-file', str(parameters)]
    for source, target in spec.remappings:
        line += ['-r', f'{source}:={target}']
    return line


def _fail(name: str, value, reason: str) -> None:
    raise ValueError(f'launch argument {name}={value!r}: {reason}')


def _split_list(name: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(',') if item.strip()]
    if not items:
        _fail(name, text, 'needs at least one comma-separated entry')
    return items


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ('true', 'false'):
        _fail(name, text, "must be 'true' or 'false'")
    return lowered == 'true'


def _parse_positive_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        _fail(name, text, 'must be a number')
    if not math.isfinite(value) or value <= 0:
        _fail(name, text, 'must be a positive number')
    return value


def load_parameter_file(path: str | pathlib.Path) -> dict:
    """A ROS 2 parameter YAML -> {node_name: {parameter: value}}; ValueError if malformed."""
    import yaml

    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f'launch argument config_file={str(path)!r}: no such file')
    data = yaml.safe_load(path.read_text()) or {}
    parameters = {}
    for node_name, section in data.items():
        if not isinstance(section, dict) or set(section) != {'ros__parameters'}:
            raise ValueError(f'{path}: section {node_name!r} must hold only ros__parameters')
        parameters[node_name] = dict(section['ros__parameters'] or {})
    return parameters


def resolve_arguments(mode: str, values: dict) -> dict:
    """Launch-argument strings (defaults filled in) after checking names and required ones."""
    if mode not in MODES:
        raise ValueError(f'mode={mode!r} must be one of {MODES}')
    declared = {argument.name: argument for argument in ROBOT_ARGUMENTS[mode]}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValueError(f'unknown launch arguments {unknown} for mode {mode!r}')
    resolved = {name: values.get(name, argument.default) for name, argument in declared.items()}
    missing = [name for name, value in resolved.items() if value is None or (
        declared[name].default is None and not str(value).strip())]
    if missing:
        raise ValueError(f'launch arguments {missing} are required')
    return resolved


def _robot_names(mode: str, arguments: dict) -> list[str]:
    if mode == 'single':
        return [arguments['robot_name'].strip()]
    return [arguments['left_robot_name'].strip(), arguments['right_robot_name'].strip()]


def _sim_camera_names(topics: list[str]) -> list[str]:
    names = []
    for topic in topics:
        parts = topic.split('/')
        if len(parts) != 5 or parts[0] or camera_topic(parts[1]) != topic:
            _fail('camera_topics', topic,
                  'use_sim publishes cameras only on /<camera>/camera/color/image_rect_raw')
        names.append(parts[1])
    return names


def build_node_specs(mode: str, values: dict, share_directory: str | pathlib.Path) -> list:
    """The nodes of one launch: ``values`` are launch-argument strings (missing = default).

    ``share_directory`` is the package share directory holding ``config/``. Returns
    [inference, executor] plus the simulator when ``use_sim`` is true.
    """
    arguments = resolve_arguments(mode, values)
    config_file = arguments['config_file'].strip() or str(
        pathlib.Path(share_directory) / 'config' / CONFIG_FILES[mode])
    file_parameters = load_parameter_file(config_file)
    robots = _robot_names(mode, arguments)
    topics = _split_list('camera_topics', arguments['camera_topics'])
    cameras = _split_list('camera_names', arguments['camera_names'])
    log_level = arguments['log_level'].strip().lower()
    if log_level not in LOG_LEVELS:
        _fail('log_level', arguments['log_level'], f'must be one of {LOG_LEVELS}')
    if arguments['instruction'].strip():
        validate_instruction(arguments['instruction'])
    if not pathlib.Path(arguments['checkpoint'].strip()).is_dir():
        _fail('checkpoint', arguments['checkpoint'], 'is not a directory')
    chunk_topic = arguments['chunk_topic'].strip()
    if not chunk_topic or chunk_topic.endswith('/'):
        _fail('chunk_topic', arguments['chunk_topic'], 'must be a topic name')
    inference = {
        'checkpoint': arguments['checkpoint'].strip(), 'instruction': arguments['instruction'],
        'device': arguments['device'].strip(), 'dtype': arguments['dtype'].strip(),
        'num_arms': len(robots), 'robot_names': robots, 'camera_topics': topics,
        'camera_names': cameras, 'dt': _parse_positive_float('chunk_dt', arguments['chunk_dt']),
    }
    executor = {'robot_names': robots, 'arm_mode': mode, 'chunk_topic': chunk_topic,
                'rate_hz': _parse_positive_float('command_rate_hz',
                                                 arguments['command_rate_hz'])}
    _validate_effective(file_parameters, inference, executor)
    ros_arguments = ['--ros-args', '--log-level', log_level]
    remappings = []
    if chunk_topic != DEFAULT_CHUNK_TOPIC:
        remappings = [(DEFAULT_CHUNK_TOPIC, chunk_topic)] + [
            (f'{DEFAULT_CHUNK_TOPIC}/{side}', f'{chunk_topic}/{side}')
            for side in ('left', 'right')[:len(robots)]]
    specs = [
        NodeSpec(PACKAGE, EXECUTABLES[INFERENCE_NODE], INFERENCE_NODE,
                 [config_file, inference], remappings, list(ros_arguments)),
        NodeSpec(PACKAGE, EXECUTABLES[EXECUTOR_NODE], EXECUTOR_NODE,
                 [config_file, executor], [], list(ros_arguments)),
    ]
    if _parse_bool('use_sim', arguments['use_sim']):
        sim = {'robot_names': robots, 'camera_names': _sim_camera_names(topics)}
        specs.append(NodeSpec(PACKAGE, EXECUTABLES[SIM_NODE], SIM_NODE, [config_file, sim], [],
                              list(ros_arguments)))
    return specs


def _validate_effective(file_parameters: dict, inference: dict, executor: dict) -> None:
    """Check YAML + overrides with the nodes' own validators (their errors name the field)."""
    settings_from_values({**file_parameters.get(INFERENCE_NODE, {}), **inference})
    ExecutorConfig.from_dict({**file_parameters.get(EXECUTOR_NODE, {}), **executor})
