"""Everything the launch files decide, as plain tested Python (no launch / launch_ros imports).

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/bringup/launch_description.py.
"""

from dataclasses import dataclass, field
import pathlib

from vla_adapter_core.robot_description import (
    RobotDescription,
)
from vla_adapter_ros.bringup.launch_arguments import (
    CONFIG_FILES,
    DEFAULT_CHUNK_TOPIC,
    LOG_LEVELS,
    ROLES,
    SIM_KINDS,
    compile_mode,
    fail_argument,
    load_parameter_file,
    parse_bool,
    parse_positive_float,
    resolve_arguments,
    resolve_robot,
    split_list,
)
from vla_adapter_ros.params.executor_config import EXECUTOR_PARAMETERS, ExecutorConfig
from vla_adapter_ros.params.image_compressor_config import ImageCompressorConfig, compressed_topic
from vla_adapter_ros.params.inference_config import InferenceConfig
from vla_adapter_ros.params.mujoco_sim_config import CLOCK_MODES, MujocoSimConfig
from vla_adapter_ros.params.recorder_config import RecorderConfig
from vla_adapter_ros.params.sim_robot_config import SimRobotConfig

PACKAGE = 'vla_adapter_ros'
INFERENCE_NODE, EXECUTOR_NODE, SIM_NODE = 'vla_inference', 'chunk_executor', 'simulated_robot'
RECORDER_NODE, PLAYER_NODE = 'episode_recorder', 'bag_player'
MUJOCO_NODE, COMPRESSOR_NODE = 'mujoco_aloha', 'image_compressor'
EXECUTABLES = {INFERENCE_NODE: 'vla-adapter-inference', EXECUTOR_NODE: 'vla-adapter-executor',
               SIM_NODE: 'vla-adapter-sim-robot', RECORDER_NODE: 'vla-adapter-record',
               PLAYER_NODE: 'vla-adapter-play', MUJOCO_NODE: 'vla-adapter-mujoco-sim',
               COMPRESSOR_NODE: 'vla-adapter-compress-images'}
# setup.py console_scripts behind the executables (installed into lib/vla_adapter_ros).
ENTRY_POINTS = {'vla-adapter-inference': 'vla_adapter_ros.nodes.inference_node:main',
                'vla-adapter-executor': 'vla_adapter_ros.nodes.executor_node:main',
                'vla-adapter-sim-robot': 'vla_adapter_ros.nodes.sim_robot_node:main',
                'vla-adapter-record': 'vla_adapter_ros.nodes.recorder_node:main',
                'vla-adapter-play': 'vla_adapter_ros.nodes.bag_player_node:main',
                'vla-adapter-mujoco-sim': 'vla_adapter_ros.nodes.mujoco_sim_node:main',
                'vla-adapter-compress-images': 'vla_adapter_ros.nodes.image_compressor_node:main'}
MUJOCO_DEFAULT_ROBOT = 'aloha_sim'
# With sim_clock:=sim the executor compares ROS time with the wall clock per tick while the
# simulator waits for inference: allow that much disagreement instead of the robot's 0.5 s.
SIM_CLOCK_JUMP_S = 60.0
ARM_SIDES = ('left', 'right')
REPLAY_NAMESPACE = 'replay'  # the executor's namespace in a replay: no driver listens there


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


def _check_checkpoint(text: str) -> str:
    """A directory, or something shaped like a Hub repo id (the node resolves and loads it)."""
    text = text.strip()
    path = pathlib.Path(text).expanduser()
    if path.is_dir():
        return text
    parts = text.split('/')
    if path.exists() or len(parts) != 2 or not all(parts) or text.startswith(('.', '~')):
        fail_argument('checkpoint', text, 'is neither a directory nor a Hugging Face Hub repo id '
                                  '(owner/name)')
    return text


def _cameras(arguments: dict, robot: RobotDescription) -> tuple[list[str], list[str]]:
    """(camera_topics, camera_names): the arguments, the description's where they are empty."""
    topics = split_list('camera_topics', arguments['camera_topics'])
    names = split_list('camera_names', arguments['camera_names']) or list(robot.cameras)
    if not names:
        fail_argument('camera_names', arguments['camera_names'],
              f'robot {robot.name!r} names no cameras: list them')
    topics = topics or [robot.camera_topic.format(camera=name) for name in names]
    if len(topics) != len(names):
        fail_argument('camera_topics', arguments['camera_topics'],
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
            fail_argument('camera_topics', topic,
                  f'use_sim publishes cameras only on {robot.camera_topic}')
        names.append(name)
    return names


def build_node_specs(mode: str, values: dict, share_directory: str | pathlib.Path) -> list:
    """The nodes of one launch: ``values`` are launch-argument strings (missing = default).

    ``share_directory`` is the package share directory holding ``config/``. Returns
    [inference, executor] plus the simulator when ``use_sim`` is true, or the bag player when
    ``replay_bag`` is set (see :func:`_replay_specs`); the image compressor with
    ``compress_images``. ``role`` keeps one side of a two-computer deployment
    (:func:`_role_specs`).
    """
    arguments = resolve_arguments(mode, values)
    role = _role(arguments)
    sim_kind = arguments['sim'].strip()
    if sim_kind not in SIM_KINDS:
        fail_argument('sim', arguments['sim'], f'must be one of {SIM_KINDS}')
    if sim_kind == 'mujoco' and 'robot' not in values:
        arguments['robot'] = MUJOCO_DEFAULT_ROBOT
    config_file = arguments['config_file'].strip() or str(
        pathlib.Path(share_directory) / 'config' / CONFIG_FILES[mode])
    file_parameters = load_parameter_file(config_file)
    robot = resolve_robot(arguments)
    log_level = arguments['log_level'].strip().lower()
    if log_level not in LOG_LEVELS:
        fail_argument('log_level', arguments['log_level'], f'must be one of {LOG_LEVELS}')
    chunk_topic = arguments['chunk_topic'].strip()
    if not chunk_topic or chunk_topic.endswith('/'):
        fail_argument('chunk_topic', arguments['chunk_topic'], 'must be a topic name')
    nodes = _node_parameters(arguments, robot, sim_kind, chunk_topic, role)
    checked = {INFERENCE_NODE: nodes['inference'], EXECUTOR_NODE: nodes['executor'],
               SIM_NODE: nodes['sim'] or nodes['shared']}
    if nodes['compressor'] is not None:
        checked[COMPRESSOR_NODE] = nodes['compressor']
    if role == 'robot':  # no policy here: its parameters belong to the other computer
        del checked[INFERENCE_NODE]
    _validate_effective(file_parameters, checked)
    ros_arguments = ['--ros-args', '--log-level', log_level]
    specs = _core_specs(nodes, config_file, chunk_topic, ros_arguments)
    record = parse_bool('record', arguments['record'])
    if record:
        recorder = _recorder_spec(arguments, nodes['shared'], ros_arguments, chunk_topic)
        if nodes['mujoco'] is not None and nodes['mujoco']['clock'] == 'sim':
            recorder.parameters.append({'use_sim_time': True})  # bag time = the episode's
        specs.append(recorder)
    replay_bag = arguments['replay_bag'].strip()
    if replay_bag:
        if nodes['use_sim']:
            fail_argument('replay_bag', replay_bag,
                          'replays instead of the simulated robot: drop use_sim')
        joint_states = {**file_parameters.get(EXECUTOR_NODE, {}), **nodes['executor']}.get(
            'joint_states_topic', 'joint_states')
        if record:
            fail_argument('record', arguments['record'],
                          'records a live robot or simulation, not a replay (record the /replay '
                          'commands with vla-adapter-record, see README)')
        specs = _replay_specs(specs, replay_bag, robot, joint_states, chunk_topic)
    if nodes['compressor'] is not None:
        specs.append(NodeSpec(PACKAGE, EXECUTABLES[COMPRESSOR_NODE], COMPRESSOR_NODE,
                              [config_file, nodes['compressor']], [], list(ros_arguments)))
    return _role_specs(specs, role)


def _role(arguments: dict) -> str:
    """The ``role`` argument, checked against the other arguments that fix a side."""
    role = arguments['role'].strip()
    if role not in ROLES:
        fail_argument('role', arguments['role'], f'must be one of {ROLES}')
    if role == 'all':
        return role
    if arguments['replay_bag'].strip():
        fail_argument('replay_bag', arguments['replay_bag'],
                      'replays on one computer: use role:=all')
    if role == 'policy':
        for name in ('use_sim', 'record'):
            if parse_bool(name, arguments[name]):
                fail_argument(name, arguments[name],
                              'starts a node beside the arms: give it to role:=robot')
    return role


def _role_specs(specs: list, role: str) -> list:
    """The nodes of ``role``: the inference node alone (policy), every other one (robot)."""
    if role == 'policy':
        return [spec for spec in specs if spec.name == INFERENCE_NODE]
    if role == 'robot':
        return [spec for spec in specs if spec.name != INFERENCE_NODE]
    return specs


def _node_parameters(arguments: dict, robot: RobotDescription, sim_kind: str,
                     chunk_topic: str, role: str) -> dict:
    """The launch-argument parameters of each node (None for the ones not started).

    Keys: shared, inference, executor, sim, mujoco, compressor, use_sim.
    """
    topics, cameras = _cameras(arguments, robot)
    use_sim = parse_bool('use_sim', arguments['use_sim'])
    shared = {'robot_description': str(pathlib.Path(robot.source).resolve()),
              'robot_names': list(robot.namespaces)}
    compressor = _compressor_parameters(arguments, shared, topics, cameras)
    checkpoint = arguments['checkpoint'].strip()
    inference = {**shared, 'checkpoint': checkpoint if role == 'robot' else _check_checkpoint(
                     checkpoint),
                 'instruction': arguments['instruction'], 'device': arguments['device'].strip(),
                 'dtype': arguments['dtype'].strip(), 'camera_names': cameras,
                 'camera_topics': topics if compressor is None else [
                     compressed_topic(topic) for topic in topics]}
    if arguments['compile'].strip():
        inference['compile'] = compile_mode(arguments['compile'])
    if arguments['chunk_dt'].strip():
        inference['dt'] = parse_positive_float('chunk_dt', arguments['chunk_dt'])
    executor = {**shared, 'chunk_topic': chunk_topic}
    if not use_sim:
        # The start-up pre-flight check listens to the policy's cameras (raw Images). A
        # simulator's cameras are sized and timed by its own parameters, not by the robot
        # description the check compares with (and on the sim clock it renders only during an
        # episode): there the check holds the joint_states alone (the parameter's default: an
        # empty list cannot travel as a typed ROS parameter).
        executor['preflight_camera_topics'] = list(topics)
    if arguments['command_rate_hz'].strip():
        executor['rate_hz'] = parse_positive_float('command_rate_hz',
                                                    arguments['command_rate_hz'])
    sim = {**shared, 'camera_names': _sim_camera_names(topics, robot)} if use_sim else None
    mujoco = None
    if use_sim and sim_kind == 'mujoco':
        sim, mujoco = None, _mujoco_parameters(arguments, shared, topics, robot)
        rendered = MujocoSimConfig.from_dict(mujoco)
        inference.update(image_height=rendered.image_height, image_width=rendered.image_width)
        if mujoco['clock'] == 'sim':
            executor['clock_jump_s'] = SIM_CLOCK_JUMP_S
    return {'shared': shared, 'inference': inference, 'executor': executor, 'sim': sim,
            'mujoco': mujoco, 'use_sim': use_sim, 'compressor': compressor}


def _compressor_parameters(arguments: dict, shared: dict, topics: list[str],
                           cameras: list[str]) -> dict | None:
    """The image compressor's parameters with ``compress_images``, else None."""
    if not parse_bool('compress_images', arguments['compress_images']):
        if arguments['jpeg_quality'].strip():
            fail_argument('jpeg_quality', arguments['jpeg_quality'],
                          'sets the quality of compress_images:=true')
        return None
    compressor = {'robot_description': shared['robot_description'],
                  'camera_names': cameras, 'camera_topics': topics}
    quality = arguments['jpeg_quality'].strip()
    if quality:
        try:
            compressor['jpeg_quality'] = int(quality)
        except ValueError:
            fail_argument('jpeg_quality', quality, 'must be an integer in [1, 100]')
    return compressor


def _core_specs(nodes: dict, config_file: str, chunk_topic: str, ros_arguments: list) -> list:
    """Inference and executor, plus the kinematic or MuJoCo simulator when there is one."""
    remappings = []
    if chunk_topic != DEFAULT_CHUNK_TOPIC:
        remappings = [(DEFAULT_CHUNK_TOPIC, chunk_topic)] + [
            (f'{DEFAULT_CHUNK_TOPIC}/{side}', f'{chunk_topic}/{side}') for side in ARM_SIDES]
    specs = [
        NodeSpec(PACKAGE, EXECUTABLES[INFERENCE_NODE], INFERENCE_NODE,
                 [config_file, nodes['inference']], remappings, list(ros_arguments)),
        NodeSpec(PACKAGE, EXECUTABLES[EXECUTOR_NODE], EXECUTOR_NODE,
                 [config_file, nodes['executor']], [], list(ros_arguments)),
    ]
    if nodes['sim'] is not None:
        specs.append(NodeSpec(PACKAGE, EXECUTABLES[SIM_NODE], SIM_NODE,
                              [config_file, nodes['sim']], [], list(ros_arguments)))
    mujoco = nodes['mujoco']
    if mujoco is not None:
        if mujoco['clock'] == 'sim':  # the simulator owns /clock
            specs = [NodeSpec(spec.package, spec.executable, spec.name,
                              [*spec.parameters, {'use_sim_time': True}], spec.remappings,
                              spec.arguments) for spec in specs]
        specs.append(NodeSpec(PACKAGE, EXECUTABLES[MUJOCO_NODE], MUJOCO_NODE, [mujoco], [],
                              list(ros_arguments)))
    return specs


def _mujoco_parameters(arguments: dict, shared: dict, topics: list[str],
                       robot: RobotDescription) -> dict:
    """The MuJoCo ALOHA node's parameters (validated by its own config)."""
    if sorted(_sim_camera_names(topics, robot)) != sorted(robot.cameras):
        fail_argument('camera_topics', ','.join(topics), 'sim:=mujoco publishes exactly the '
              f"description's cameras {list(robot.cameras)}")
    clock = arguments['sim_clock'].strip()
    if clock not in CLOCK_MODES:
        fail_argument('sim_clock', arguments['sim_clock'], f'must be one of {CLOCK_MODES}')
    mujoco = {**shared, 'task': arguments['sim_task'].strip(), 'clock': clock}
    try:
        MujocoSimConfig.from_dict(mujoco)
    except ValueError as error:
        raise ValueError(f'{MUJOCO_NODE}: {error}') from error
    return mujoco


def _recorder_spec(arguments: dict, shared: dict, ros_arguments: list,
                   chunk_topic: str) -> NodeSpec:
    """The episode recorder of a policy run: the executor's commands are the actions.

    It also records who was in control (the executor's control source: the operator may take
    over with the leader arms) and the policy's chunks, executed or not.
    """
    recorder = {**shared, 'action_source': 'executor_commands',
                'control_source_topic': '/' + EXECUTOR_PARAMETERS['control_source_topic'].default,
                'chunk_topic': chunk_topic if chunk_topic.startswith('/') else f'/{chunk_topic}'}
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
    from vla_adapter_ros.params.player_config import PlayerConfig

    path = pathlib.Path(bag).expanduser()
    if not is_rosbag(path) or not path.exists():
        fail_argument('replay_bag', bag, 'is not a rosbag2 bag (a directory with metadata.yaml, '
                      'a .mcap or .db3 file)')
    player = {'bag': str(path.resolve()), 'publish_clock': True}
    PlayerConfig.from_dict(player)
    inference, executor = specs
    sim_time = {'use_sim_time': True}
    absolute_chunks = chunk_topic if chunk_topic.startswith('/') else f'/{chunk_topic}'
    # No start-up pre-flight check: a replay commands no robot, and a bag holds what was
    # recorded then (compressed frames, another rate), not what the sensors send today.
    replayed_executor = {'chunk_topic': absolute_chunks, 'estop_topic': '/estop',
                         'set_gripper_mode': False, 'preflight_window_s': 0.0, **sim_time}
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
NODE_CONFIGS = {INFERENCE_NODE: InferenceConfig.from_dict,
                EXECUTOR_NODE: ExecutorConfig.from_dict,
                SIM_NODE: SimRobotConfig.from_dict,
                COMPRESSOR_NODE: ImageCompressorConfig.from_dict}


def _validate_effective(file_parameters: dict, overrides: dict) -> None:
    """Check YAML + overrides with the nodes' own validators (their errors name the field)."""
    unknown = sorted(set(file_parameters) - set(NODE_CONFIGS))
    if unknown:
        raise ValueError(f'config_file: unknown node sections {unknown}; known: '
                         f'{sorted(NODE_CONFIGS)}')
    for node, values in overrides.items():  # the nodes this launch starts
        try:
            NODE_CONFIGS[node]({**file_parameters.get(node, {}), **values})
        except ValueError as error:
            raise ValueError(f'{node}: {error}') from error
