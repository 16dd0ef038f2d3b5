"""Everything the launch files decide, as plain tested Python (no launch / launch_ros imports).

``launch/aloha.launch.py`` and ``launch/single_arm.launch.py`` only declare the arguments of
:data:`ROBOT_ARGUMENTS` and, in an ``OpaqueFunction``, turn :func:`build_node_specs` into
``launch_ros.actions.Node`` actions one-to-one. The two differ only in their defaults: the robot
(``aloha`` / ``vx300s``) and the node YAML (``config/aloha.yaml`` / ``config/single_arm.yaml``).

Nodes started (package ``vla_adapter_ros``):
- ``vla_inference`` (``vla-adapter-inference``): the policy, see inference_node.py;
- ``chunk_executor`` (``vla-adapter-executor``): chunks -> Interbotix commands;
- with ``use_sim:=true`` also ``simulated_robot`` (``vla-adapter-sim-robot``), a kinematic
  stand-in for the Interbotix drivers and cameras of the same robot description;
- with ``record:=true`` also ``episode_recorder`` (``vla-adapter-record``), recording the
  executor's commands as the actions (``record_dir`` = where the bags go);
- with ``replay_bag:=PATH`` instead ``bag_player`` (``vla-adapter-play``) playing a recorded
  episode with ``/clock`` (every node then runs with ``use_sim_time``), and the executor in the
  ``replay`` namespace: its joint-state inputs are remapped to the bag's topics, its commands
  go to ``/replay/<arm>/commands/...``, which no driver listens to, and it requests no gripper
  mode. A replay can therefore never command a robot; the player never plays command topics.

The robot: ``robot`` (a built-in description name) or ``robot_description`` (a description YAML
path, which wins), optionally with other driver namespaces (``robot_names``). The launch loads
it once, passes its absolute file path, the namespaces and the cameras to every node, so all
three see one robot. Parameters: the YAML ``config_file`` (node settings only) first, then the
launch arguments on top. Every value is validated here before anything starts, with the
description loader and the nodes' own parameter tables and configs (ValueError, one line,
naming the argument). The instruction is not checked here: the inference node checks it against
the loaded policy's prompt limit (the one instruction rule).
"""

from dataclasses import dataclass, field
import math
import pathlib

from vla_adapter_core.config import COMPILE_MODES
from vla_adapter_core.robot_description import (
    RobotDescription,
    RobotDescriptionError,
    available_robots,
    load_robot_description,
)
from vla_adapter_ros.executor_config import ExecutorConfig
from vla_adapter_ros.inference_settings import InferenceSettings
from vla_adapter_ros.mujoco_sim_config import CLOCK_MODES, MujocoSimConfig
from vla_adapter_ros.recorder_config import RecorderConfig
from vla_adapter_ros.sim_robot import SimRobotConfig

PACKAGE = 'vla_adapter_ros'
INFERENCE_NODE, EXECUTOR_NODE, SIM_NODE = 'vla_inference', 'chunk_executor', 'simulated_robot'
RECORDER_NODE, PLAYER_NODE = 'episode_recorder', 'bag_player'
MUJOCO_NODE = 'mujoco_aloha'
EXECUTABLES = {INFERENCE_NODE: 'vla-adapter-inference', EXECUTOR_NODE: 'vla-adapter-executor',
               SIM_NODE: 'vla-adapter-sim-robot', RECORDER_NODE: 'vla-adapter-record',
               PLAYER_NODE: 'vla-adapter-play', MUJOCO_NODE: 'vla-adapter-mujoco-sim'}
# setup.py console_scripts behind the executables (installed into lib/vla_adapter_ros).
ENTRY_POINTS = {'vla-adapter-inference': 'vla_adapter_ros.inference_node:main',
                'vla-adapter-executor': 'vla_adapter_ros.executor_node:main',
                'vla-adapter-sim-robot': 'vla_adapter_ros.sim_robot_node:main',
                'vla-adapter-record': 'vla_adapter_ros.recorder_node:main',
                'vla-adapter-play': 'vla_adapter_ros.bag_player:main',
                'vla-adapter-mujoco-sim': 'vla_adapter_ros.mujoco_sim_node:main'}
SIM_KINDS = ('kinematic', 'mujoco')
MUJOCO_DEFAULT_ROBOT = 'aloha_sim'
# With sim_clock:=sim the executor compares ROS time with the wall clock per tick while the
# simulator waits for inference: allow that much disagreement instead of the robot's 0.5 s.
SIM_CLOCK_JUMP_S = 60.0
MODES = ('dual', 'single')
DEFAULT_ROBOTS = {'dual': 'aloha', 'single': 'vx300s'}
CONFIG_FILES = {'dual': 'aloha.yaml', 'single': 'single_arm.yaml'}
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
DEFAULT_CHUNK_TOPIC = 'action_chunk'
ARM_SIDES = ('left', 'right')
REPLAY_NAMESPACE = 'replay'  # the executor's namespace in a replay: no driver listens there


@dataclass(frozen=True)
class LaunchArgument:
    """One launch argument: ``default`` None means required."""

    name: str
    default: str | None
    description: str


def _arguments(default_robot: str) -> tuple[LaunchArgument, ...]:
    return (
        LaunchArgument('checkpoint', None,
                       'Policy checkpoint: a directory (VLAPolicy.save_pretrained, an upstream '
                       'run) or a Hugging Face Hub repo id (owner/name). Required.'),
        LaunchArgument('robot', default_robot,
                       'Built-in robot description: one of '
                       f'{available_robots()} (config/robots/<name>.yaml).'),
        LaunchArgument('robot_description', '',
                       'Path of your own robot description YAML (see README "Add a robot"); '
                       'overrides robot.'),
        LaunchArgument('robot_names', '',
                       'Comma-separated driver namespaces of the arms (left first); empty = '
                       "the description's."),
        LaunchArgument('instruction', '',
                       'Language instruction; empty = wait for the set_instruction service or '
                       'the instruction topic.'),
        LaunchArgument('device', 'cuda', "Torch device of the policy, e.g. 'cuda' or 'cpu'."),
        LaunchArgument('dtype', 'auto',
                       "Policy dtype: 'auto' (bf16 where supported), 'float32', 'bfloat16' or "
                       "'float16'."),
        LaunchArgument('compile', '',
                       "torch.compile of the policy: 'none' (eager), 'default' (inductor; CUDA "
                       "graphs on CUDA) or 'max' (autotuned); empty = config_file (none). On a "
                       "GPU 'default' is the fast path; the first start compiles for minutes "
                       '(README, "Measured").'),
        LaunchArgument('use_sim', 'false',
                       'true: also start the simulated robot (kinematic arms + rendered cameras '
                       'of the same description) instead of real drivers.'),
        LaunchArgument('sim', 'kinematic',
                       "Simulator of use_sim: 'kinematic' (fast stand-in for any description) "
                       "or 'mujoco' (gym-aloha's MuJoCo ALOHA: physics, rendered cameras, "
                       "reward; the robot defaults to 'aloha_sim')."),
        LaunchArgument('sim_task', 'transfer_cube',
                       "MuJoCo task of sim:=mujoco: 'transfer_cube' or 'insertion'."),
        LaunchArgument('sim_clock', 'realtime',
                       "Clock of sim:=mujoco: 'realtime', or 'sim' (the simulator publishes "
                       '/clock and steps in lock-step with the executor and inference; every '
                       'node uses sim time; for evaluation).'),
        LaunchArgument('camera_topics', '',
                       'Comma-separated sensor_msgs/Image topics (CompressedImage if a topic '
                       "ends in /compressed); empty = the description's topic of each camera."),
        LaunchArgument('camera_names', '',
                       'Comma-separated checkpoint camera name of each camera_topics entry; '
                       "empty = the description's cameras."),
        LaunchArgument('command_rate_hz', '',
                       'Rate of the joint commands streamed to the drivers by the executor, '
                       'Hz; empty = config_file (rate_hz).'),
        LaunchArgument('chunk_dt', '',
                       'Time between action-chunk steps (time_from_start = k * chunk_dt), s; '
                       "must match the training data; empty = the description's control period."),
        LaunchArgument('chunk_topic', DEFAULT_CHUNK_TOPIC,
                       'Topic carrying vla_adapter_msgs/ActionChunk from the inference node to '
                       'the executor.'),
        LaunchArgument('log_level', 'info',
                       f'ROS log level of every node: one of {LOG_LEVELS}.'),
        LaunchArgument('replay_bag', '',
                       'A recorded rosbag2 episode to replay instead of the robot: the bag '
                       'player (with /clock; use_sim_time everywhere) replaces drivers and '
                       'cameras, and the executor commands /replay/<arm>/... only (recorded, '
                       'never a driver). Exclusive with use_sim.'),
        LaunchArgument('record', 'false',
                       'true: also start the episode recorder (vla-adapter-record), recording '
                       "the cameras, joint states, the executor's commands as the action and the "
                       'instruction; episodes start and stop through its ~/start_episode and '
                       '~/stop_episode services. Not with replay_bag.'),
        LaunchArgument('record_dir', '',
                       "Folder of the recorded bags; empty = the recorder's default "
                       '(~/vla_adapter_episodes).'),
        LaunchArgument('config_file', '',
                       'YAML node settings; empty = the package config (aloha.yaml or '
                       'single_arm.yaml). Launch arguments override its values.'),
    )


ROBOT_ARGUMENTS: dict[str, tuple[LaunchArgument, ...]] = {
    mode: _arguments(DEFAULT_ROBOTS[mode]) for mode in MODES}


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
    namespace: str = ''  # the node's namespace ('' = the root)


def exit_reason(name: str, returncode: int | None) -> str:
    """The one-line reason a launch gives when node ``name`` exits (every node is critical)."""
    if returncode == 0:
        return f'{name} exited (status 0); stopping the other nodes'
    return (f'{name} exited with status {returncode} (its last log line says why); stopping the '
            'other nodes')


def ros_command_line(spec: NodeSpec) -> list[str]:
    """The arguments ``ros2 launch`` gives the executable of ``spec`` (after its own name).

    Parameter files and dicts become ``--params-file`` / ``-p name:=value`` (values as YAML flow,
    i.e. JSON), the node name and remappings ``-r`` rules, in launch_ros' order.
    """
    import json

    line = [*spec.arguments, '--ros-args', '-r', f'__node:={spec.name}']
    if spec.namespace:
        line += ['-r', f'__ns:=/{spec.namespace}']
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
    """Comma-separated entries; '' gives [] (= the default), only commas are refused."""
    items = [item.strip() for item in text.split(',') if item.strip()]
    if text.strip() and not items:
        _fail(name, text, 'needs at least one comma-separated entry')
    return items


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ('true', 'false'):
        _fail(name, text, "must be 'true' or 'false'")
    return lowered == 'true'


def _compile_mode(text: str) -> str:
    mode = text.strip()
    if mode not in COMPILE_MODES:
        _fail('compile', text, f'must be one of {list(COMPILE_MODES)}')
    return mode


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
        raise ValueError(f'unknown launch arguments {unknown} for mode {mode!r}; known: '
                         f'{sorted(declared)}')
    resolved = {name: values.get(name, argument.default) for name, argument in declared.items()}
    missing = [name for name, value in resolved.items() if value is None or (
        declared[name].default is None and not str(value).strip())]
    if missing:
        raise ValueError(f'launch arguments {missing} are required')
    return resolved


def resolve_robot(arguments: dict) -> RobotDescription:
    """The robot of a launch: ``robot_description`` (a path) or ``robot``, then ``robot_names``.

    Errors are one line naming the argument (an unknown name lists the built-in robots).
    """
    path = arguments['robot_description'].strip()
    name, text = ('robot_description', path) if path else ('robot', arguments['robot'].strip())
    if not text:
        _fail(name, text, f'needs a robot: one of {available_robots()} or a description path')
    try:
        robot = load_robot_description(text)
    except RobotDescriptionError as error:  # one line, also for a YAML parser's message
        _fail(name, text, ' '.join(str(error).split()))
    names = _split_list('robot_names', arguments['robot_names'])
    if names:
        try:
            robot = robot.with_namespaces(names)
        except RobotDescriptionError as error:
            _fail('robot_names', arguments['robot_names'], str(error))
    return robot


def _check_checkpoint(text: str) -> str:
    """A directory, or something shaped like a Hub repo id (the node resolves and loads it)."""
    text = text.strip()
    path = pathlib.Path(text).expanduser()
    if path.is_dir():
        return text
    parts = text.split('/')
    if path.exists() or len(parts) != 2 or not all(parts) or text.startswith(('.', '~')):
        _fail('checkpoint', text, 'is neither a directory nor a Hugging Face Hub repo id '
                                  '(owner/name)')
    return text


def _cameras(arguments: dict, robot: RobotDescription) -> tuple[list[str], list[str]]:
    """(camera_topics, camera_names): the arguments, the description's where they are empty."""
    topics = _split_list('camera_topics', arguments['camera_topics'])
    names = _split_list('camera_names', arguments['camera_names']) or list(robot.cameras)
    if not names:
        _fail('camera_names', arguments['camera_names'],
              f'robot {robot.name!r} names no cameras: list them')
    topics = topics or [robot.camera_topic.format(camera=name) for name in names]
    if len(topics) != len(names):
        _fail('camera_topics', arguments['camera_topics'],
              f'needs one topic per camera_names entry {names}')
    return topics, names


def _sim_camera_names(topics: list[str], robot: RobotDescription) -> list[str]:
    """The camera name in each topic: the simulator publishes on the description's pattern."""
    prefix, suffix = robot.camera_topic.split('{camera}', 1)
    names = []
    for topic in topics:
        name = topic[len(prefix):len(topic) - len(suffix)] if (
            topic.startswith(prefix) and topic.endswith(suffix)) else ''
        if not name or '/' in name or robot.camera_topic.format(camera=name) != topic:
            _fail('camera_topics', topic,
                  f'use_sim publishes cameras only on {robot.camera_topic}')
        names.append(name)
    return names


def build_node_specs(mode: str, values: dict, share_directory: str | pathlib.Path) -> list:
    """The nodes of one launch: ``values`` are launch-argument strings (missing = default).

    ``share_directory`` is the package share directory holding ``config/``. Returns
    [inference, executor] plus the simulator when ``use_sim`` is true, or the bag player when
    ``replay_bag`` is set (see :func:`_replay_specs`).
    """
    arguments = resolve_arguments(mode, values)
    sim_kind = arguments['sim'].strip()
    if sim_kind not in SIM_KINDS:
        _fail('sim', arguments['sim'], f'must be one of {SIM_KINDS}')
    if sim_kind == 'mujoco' and 'robot' not in values:
        arguments['robot'] = MUJOCO_DEFAULT_ROBOT
    config_file = arguments['config_file'].strip() or str(
        pathlib.Path(share_directory) / 'config' / CONFIG_FILES[mode])
    file_parameters = load_parameter_file(config_file)
    robot = resolve_robot(arguments)
    topics, cameras = _cameras(arguments, robot)
    log_level = arguments['log_level'].strip().lower()
    if log_level not in LOG_LEVELS:
        _fail('log_level', arguments['log_level'], f'must be one of {LOG_LEVELS}')
    use_sim = _parse_bool('use_sim', arguments['use_sim'])
    chunk_topic = arguments['chunk_topic'].strip()
    if not chunk_topic or chunk_topic.endswith('/'):
        _fail('chunk_topic', arguments['chunk_topic'], 'must be a topic name')
    shared = {'robot_description': str(pathlib.Path(robot.source).resolve()),
              'robot_names': list(robot.namespaces)}
    inference = {**shared, 'checkpoint': _check_checkpoint(arguments['checkpoint']),
                 'instruction': arguments['instruction'], 'device': arguments['device'].strip(),
                 'dtype': arguments['dtype'].strip(), 'camera_topics': topics,
                 'camera_names': cameras}
    if arguments['compile'].strip():
        inference['compile'] = _compile_mode(arguments['compile'])
    if arguments['chunk_dt'].strip():
        inference['dt'] = _parse_positive_float('chunk_dt', arguments['chunk_dt'])
    executor = {**shared, 'chunk_topic': chunk_topic}
    if arguments['command_rate_hz'].strip():
        executor['rate_hz'] = _parse_positive_float('command_rate_hz',
                                                    arguments['command_rate_hz'])
    sim = {**shared, 'camera_names': _sim_camera_names(topics, robot)} if use_sim else None
    mujoco = None
    if use_sim and sim_kind == 'mujoco':
        sim, mujoco = None, _mujoco_parameters(arguments, shared, topics, robot)
        rendered = MujocoSimConfig.from_dict(mujoco)
        inference.update(image_height=rendered.image_height, image_width=rendered.image_width)
        if mujoco['clock'] == 'sim':
            executor['clock_jump_s'] = SIM_CLOCK_JUMP_S
    _validate_effective(file_parameters, {INFERENCE_NODE: inference, EXECUTOR_NODE: executor,
                                          SIM_NODE: sim or shared})
    ros_arguments = ['--ros-args', '--log-level', log_level]
    remappings = []
    if chunk_topic != DEFAULT_CHUNK_TOPIC:
        remappings = [(DEFAULT_CHUNK_TOPIC, chunk_topic)] + [
            (f'{DEFAULT_CHUNK_TOPIC}/{side}', f'{chunk_topic}/{side}') for side in ARM_SIDES]
    specs = [
        NodeSpec(PACKAGE, EXECUTABLES[INFERENCE_NODE], INFERENCE_NODE,
                 [config_file, inference], remappings, list(ros_arguments)),
        NodeSpec(PACKAGE, EXECUTABLES[EXECUTOR_NODE], EXECUTOR_NODE,
                 [config_file, executor], [], list(ros_arguments)),
    ]
    if sim is not None:
        specs.append(NodeSpec(PACKAGE, EXECUTABLES[SIM_NODE], SIM_NODE, [config_file, sim], [],
                              list(ros_arguments)))
    if mujoco is not None:
        if mujoco['clock'] == 'sim':  # the simulator owns /clock
            specs = [NodeSpec(spec.package, spec.executable, spec.name,
                              [*spec.parameters, {'use_sim_time': True}], spec.remappings,
                              spec.arguments) for spec in specs]
        specs.append(NodeSpec(PACKAGE, EXECUTABLES[MUJOCO_NODE], MUJOCO_NODE, [mujoco], [],
                              list(ros_arguments)))
    record = _parse_bool('record', arguments['record'])
    if record:
        specs.append(_recorder_spec(arguments, shared, ros_arguments))
    replay_bag = arguments['replay_bag'].strip()
    if replay_bag:
        if use_sim:
            _fail('replay_bag', replay_bag, 'replays instead of the simulated robot: drop use_sim')
        joint_states = {**file_parameters.get(EXECUTOR_NODE, {}), **executor}.get(
            'joint_states_topic', 'joint_states')
        if record:
            _fail('record', arguments['record'], 'records a live robot or simulation, not a '
                  'replay (record the /replay commands with vla-adapter-record, see README)')
        specs = _replay_specs(specs, replay_bag, robot, joint_states, chunk_topic)
    return specs


def _mujoco_parameters(arguments: dict, shared: dict, topics: list[str],
                       robot: RobotDescription) -> dict:
    """The MuJoCo ALOHA node's parameters (validated by its own config)."""
    if sorted(_sim_camera_names(topics, robot)) != sorted(robot.cameras):
        _fail('camera_topics', ','.join(topics), 'sim:=mujoco publishes exactly the '
              f"description's cameras {list(robot.cameras)}")
    clock = arguments['sim_clock'].strip()
    if clock not in CLOCK_MODES:
        _fail('sim_clock', arguments['sim_clock'], f'must be one of {CLOCK_MODES}')
    mujoco = {**shared, 'task': arguments['sim_task'].strip(), 'clock': clock}
    try:
        MujocoSimConfig.from_dict(mujoco)
    except ValueError as error:
        raise ValueError(f'{MUJOCO_NODE}: {error}') from error
    return mujoco


def _recorder_spec(arguments: dict, shared: dict, ros_arguments: list) -> NodeSpec:
    """The episode recorder of a policy run: the executor's commands are the actions."""
    recorder = {**shared, 'action_source': 'executor_commands'}
    if arguments['instruction'].strip():
        recorder['instruction'] = arguments['instruction']
    if arguments['record_dir'].strip():
        recorder['output_dir'] = arguments['record_dir'].strip()
    RecorderConfig.from_dict(recorder)
    return NodeSpec(PACKAGE, EXECUTABLES[RECORDER_NODE], RECORDER_NODE, [recorder], [],
                    list(ros_arguments))


def _replay_specs(specs: list, bag: str, robot: RobotDescription, joint_states: str,
                  chunk_topic: str) -> list:
    """The nodes of a replay: the bag player instead of the robot.

    Inference and executor run on the player's /clock; the executor in the replay namespace
    (commands to /replay/<arm>/..., its joint-state inputs remapped to the bag's topics).
    """
    from training.rosbag_episodes import is_rosbag
    from vla_adapter_ros.bag_player import PlayerConfig

    path = pathlib.Path(bag).expanduser()
    if not is_rosbag(path) or not path.exists():
        _fail('replay_bag', bag, 'is not a rosbag2 bag (a directory with metadata.yaml, a .mcap '
                                 'or .db3 file)')
    player = {'bag': str(path.resolve()), 'publish_clock': True}
    PlayerConfig.from_dict(player)
    inference, executor = specs
    sim_time = {'use_sim_time': True}
    absolute_chunks = chunk_topic if chunk_topic.startswith('/') else f'/{chunk_topic}'
    replayed_executor = {'chunk_topic': absolute_chunks, 'estop_topic': '/estop',
                         'set_gripper_mode': False, **sim_time}
    remappings = [(f'/{REPLAY_NAMESPACE}/{name}/{joint_states}', f'/{name}/{joint_states}')
                  for name in robot.namespaces]
    return [
        NodeSpec(inference.package, inference.executable, inference.name,
                 [*inference.parameters, sim_time], inference.remappings, inference.arguments),
        NodeSpec(executor.package, executor.executable, executor.name,
                 [*executor.parameters, replayed_executor], remappings, executor.arguments,
                 namespace=REPLAY_NAMESPACE),
        NodeSpec(PACKAGE, EXECUTABLES[PLAYER_NODE], PLAYER_NODE, [player], [],
                 list(executor.arguments))]


# Each node's validated config, built from its own parameter table (unknown names, types,
# ranges) and its own checks (the robot description, cameras, limits).
NODE_CONFIGS = {INFERENCE_NODE: InferenceSettings.from_dict,
                EXECUTOR_NODE: ExecutorConfig.from_dict,
                SIM_NODE: SimRobotConfig.from_dict}


def _validate_effective(file_parameters: dict, overrides: dict) -> None:
    """Check YAML + overrides with the nodes' own validators (their errors name the field)."""
    unknown = sorted(set(file_parameters) - set(NODE_CONFIGS))
    if unknown:
        raise ValueError(f'config_file: unknown node sections {unknown}; known: '
                         f'{sorted(NODE_CONFIGS)}')
    for node, build in NODE_CONFIGS.items():
        try:
            build({**file_parameters.get(node, {}), **overrides[node]})
        except ValueError as error:
            raise ValueError(f'{node}: {error}') from error
