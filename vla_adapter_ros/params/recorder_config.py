"""Configuration of the episode recorder: one parameter table, one validated dataclass.

Every field of :class:`RecorderConfig` is a ROS parameter of the recorder node with the same
name, declared from :data:`RECORDER_PARAMETERS` (vla_adapter_ros/params/parameters.py). The robot's
facts (arm namespaces, leader arms, cameras and their topic, joint names, the control rate)
come from its robot description (``robot_description``: a built-in name or a YAML path) and are
never repeated here. ``instruction`` is dynamic (``ros2 param set`` applies it to the next
episode); the rest are read-only.
"""

from dataclasses import dataclass
from pathlib import Path

from training.bag_types import INSTRUCTION_TOPIC
from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
    robot_rows,
)

STORAGES = ('mcap', 'sqlite3')
ACTION_SOURCES = ('leader_joint_states', 'executor_commands', 'none')
CAMERA_TRANSPORTS = ('raw', 'compressed')

RECORDER_PARAMETERS = ParameterTable((
    *robot_rows(arms='the follower arms'),
    ParameterSpec('output_dir', '~/vla_adapter_episodes',
                  'Folder of the bags: one rosbag2 directory <episode_prefix>_NNNN per episode.'),
    ParameterSpec('episode_prefix', 'episode', 'Name of each bag directory before its number.'),
    ParameterSpec('storage', 'mcap', "rosbag2 storage: 'mcap' or 'sqlite3'.", choices=STORAGES),
    ParameterSpec('action_source', 'leader_joint_states',
                  "'leader_joint_states' (teleoperation: the description's leader arms), "
                  "'executor_commands' (the policy drives: each follower's "
                  'commands/joint_group and commands/joint_single, plus their combination in '
                  "policy units on commanded_action_topic) or 'none'.", choices=ACTION_SOURCES),
    ParameterSpec('camera_transport', 'raw',
                  "'raw': sensor_msgs/Image on the description's camera topics; 'compressed': "
                  'sensor_msgs/CompressedImage on <camera topic>/compressed.',
                  choices=CAMERA_TRANSPORTS),
    ParameterSpec('jpeg_quality', 0, 'JPEG-compress raw images on the fly at this quality '
                  "(1-100; 0 = store them as received). Compressed frames go to the camera's "
                  '<topic>/compressed as image_transport names them.', (0, 100)),
    ParameterSpec('joint_states_topic', 'joint_states',
                  'sensor_msgs/JointState topic below each arm namespace.'),
    ParameterSpec('commanded_action_topic', '/commanded_action',
                  "Bag topic of the combined executor commands (std_msgs/Float64MultiArray, "
                  "one value per action dimension, policy units) for 'executor_commands'."),
    ParameterSpec('control_source_topic', '',
                  "The chunk executor's std_msgs/String control source ('policy', 'operator', "
                  '...): recorded as /control_source, its intervals go into the sidecar; '
                  "'' = not recorded. Set it when the operator may take over."),
    ParameterSpec('chunk_topic', '', "The policy's vla_adapter_msgs/ActionChunk topic, recorded "
                  "as it is (also while the operator is in control); '' = not recorded."),
    ParameterSpec('instruction', '', 'Instruction of the next episode (a String on '
                  'instruction_topic replaces it).', dynamic=True),
    ParameterSpec('instruction_topic', INSTRUCTION_TOPIC,
                  'std_msgs/String topic of the instruction; recorded into the bag.'),
    ParameterSpec('max_episode_s', 0.0, 'Stop an episode after this long (s); 0 = only by '
                  'service or topic.', (0.0, 86400.0)),
    ParameterSpec('require_all_topics', True, 'Refuse to start an episode while a recorded '
                  'topic has no publisher (the refusal names the topics).'),
    ParameterSpec('queue_size', 2000, 'Messages waiting for the writer thread; beyond it new '
                  'messages are dropped and counted (the callbacks never wait).', (1, 1000000)),
    ParameterSpec('status_rate_hz', 2.0, '/diagnostics rate (Hz).', (0.1, 100.0)),
))


@dataclass(frozen=True)
@parameter_fields
class RecorderConfig(NodeConfig):
    """Settings of the episode recorder node (field names = ROS parameter names)."""

    PARAMETERS = RECORDER_PARAMETERS

    def __post_init__(self) -> None:
        self.coerce_fields()
        for name in ('output_dir', 'episode_prefix', 'joint_states_topic', 'instruction_topic',
                     'commanded_action_topic'):
            if not getattr(self, name).strip():
                RECORDER_PARAMETERS[name].fail(getattr(self, name), 'must not be empty')
        if '/' in self.episode_prefix:
            RECORDER_PARAMETERS['episode_prefix'].fail(self.episode_prefix, 'must not hold /')
        if not self.commanded_action_topic.startswith('/'):
            RECORDER_PARAMETERS['commanded_action_topic'].fail(
                self.commanded_action_topic, 'must be absolute (it names a bag topic)')
        try:
            robot = self.load_robot()
        except ValueError as error:
            raise ValueError(f'parameter robot_description={self.robot_description!r}: '
                             f'{error}') from None
        if self.action_source == 'leader_joint_states' and not robot.leaders:
            RECORDER_PARAMETERS['action_source'].fail(
                self.action_source, f'robot {robot.name!r} has no leader arms ({robot.source}); '
                "use 'executor_commands' or 'none'")
        if self.camera_transport == 'compressed' and self.jpeg_quality:
            RECORDER_PARAMETERS['jpeg_quality'].fail(
                self.jpeg_quality, "compresses raw images; camera_transport 'compressed' "
                'already receives JPEG/PNG frames (set 0)')

    @property
    def output_path(self) -> Path:
        """``output_dir`` with ``~`` expanded."""
        return Path(self.output_dir).expanduser()

