"""The launch arguments: their declarations, defaults and the parsing of their string values.

Plain Python (no launch / launch_ros): the launch files declare :data:`ROBOT_ARGUMENTS`; every
value is checked here with a one-line error naming the argument.
"""

from dataclasses import dataclass
import math
import pathlib

from vla_adapter_core.cli_errors import one_line
from vla_adapter_core.config import COMPILE_MODES
from vla_adapter_core.robot_description import (
    RobotDescription,
    RobotDescriptionError,
    available_robots,
    load_robot_description,
)

MODES = ('dual', 'single')
DEFAULT_ROBOTS = {'dual': 'aloha', 'single': 'vx300s'}
CONFIG_FILES = {'dual': 'aloha.yaml', 'single': 'single_arm.yaml'}
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
SIM_KINDS = ('kinematic', 'mujoco')
DEFAULT_CHUNK_TOPIC = 'action_chunk'
# Which nodes a launch starts: every node here, or one side of a two-computer deployment.
ROLES = ('all', 'robot', 'policy')
POLICY_ARGUMENTS = ('checkpoint',)  # required unless role:=robot (no policy runs there)


@dataclass(frozen=True)
class LaunchArgument:
    """One launch argument: ``default`` None means required."""

    name: str
    default: str | None
    description: str


def _arguments(default_robot: str) -> tuple[LaunchArgument, ...]:
    return (
        LaunchArgument('checkpoint', '',
                       'Policy checkpoint: a directory (VLAPolicy.save_pretrained, an upstream '
                       'run) or a Hugging Face Hub repo id (owner/name). Required, except with '
                       'role:=robot.'),
        LaunchArgument('role', 'all',
                       "Nodes of this computer: 'all' (one computer), 'robot' (the computer "
                       'beside the arms: drivers or simulator, executor, recorder, image '
                       "compressor) or 'policy' (the GPU computer: the inference node); see "
                       'README "Policy on another computer".'),
        LaunchArgument('compress_images', 'false',
                       'true: the robot side JPEG-compresses the cameras '
                       '(vla-adapter-compress-images, <topic>/compressed) and the inference '
                       'node subscribes the compressed topics. Use it when the cameras cross a '
                       'network.'),
        LaunchArgument('jpeg_quality', '',
                       'JPEG quality (1-100) of compress_images; empty = config_file '
                       '(image_compressor: jpeg_quality, default 80).'),
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


def fail_argument(name: str, value, reason: str) -> None:
    raise ValueError(f'launch argument {name}={value!r}: {reason}')


def split_list(name: str, text: str) -> list[str]:
    """Comma-separated entries; '' gives [] (= the default), only commas are refused."""
    items = [item.strip() for item in text.split(',') if item.strip()]
    if text.strip() and not items:
        fail_argument(name, text, 'needs at least one comma-separated entry')
    return items


def parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ('true', 'false'):
        fail_argument(name, text, "must be 'true' or 'false'")
    return lowered == 'true'


def compile_mode(text: str) -> str:
    mode = text.strip()
    if mode not in COMPILE_MODES:
        fail_argument('compile', text, f'must be one of {list(COMPILE_MODES)}')
    return mode


def parse_positive_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        fail_argument(name, text, 'must be a number')
    if not math.isfinite(value) or value <= 0:
        fail_argument(name, text, 'must be a positive number')
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
    if str(resolved['role']).strip() != 'robot':
        missing += [name for name in POLICY_ARGUMENTS if not str(resolved[name]).strip()]
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
        fail_argument(name, text,
                      f'needs a robot: one of {available_robots()} or a description path')
    try:
        robot = load_robot_description(text)
    except RobotDescriptionError as error:  # one line, also for a YAML parser's message
        fail_argument(name, text, one_line(error))
    names = split_list('robot_names', arguments['robot_names'])
    if names:
        try:
            robot = robot.with_namespaces(names)
        except RobotDescriptionError as error:
            fail_argument('robot_names', arguments['robot_names'], str(error))
    return robot
