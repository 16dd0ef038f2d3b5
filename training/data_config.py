"""Configuration of the episode datasets (ALOHA HDF5, rosbag2 and LeRobot).

The robot is a description (:mod:`vla_adapter_core.robot_description`, ``--robot NAME|FILE``):
its follower arms give the proprio (joint_states topics, joints, finger calibration), its leader
arms the recorded actions, and their sizes the proprio / action sizes. The command-line options
are derived from the fields (:mod:`training.config_cli`).
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import os
from typing import Any

from training.config_cli import looks_like_repo_id, option
from training.corrections import TAKEOVER_SAMPLES
from vla_adapter_core.config import ConfigDictMixin
from vla_adapter_core.robot_description import RobotDescription, load_robot_description

# Kept for benchmarks/data_throughput.py; the robot descriptions are the source of camera names.
LAYOUTS = ('auto', 'aloha_hdf5', 'rosbag2', 'lerobot')
JPEG_CHANNEL_ORDERS = ('bgr', 'rgb')
TIMESTAMP_SOURCES = ('header', 'bag')
GRIPPER_MODES = ('aloha', 'raw')
ACTION_SOURCES = ('leader_joint_states', 'topic')


def _require(condition: bool, name: str, value: Any, why: str) -> None:
    """Raise ValueError naming the config field and its value unless ``condition`` holds."""
    if not condition:
        raise ValueError(f'DatasetConfig.{name}={value!r}: {why}')


@functools.lru_cache(maxsize=16)
def _description(robot: str) -> RobotDescription:
    return load_robot_description(robot)


@dataclass
class DatasetConfig(ConfigDictMixin):
    """Where the recorded episodes are, which robot recorded them, how samples are built.

    Shapes: proprio (proprio_dim,), action chunk (chunk_size, action_dim); both sizes come from
    the robot description (ALOHA: 14 = 2 x [6 joints, gripper]; a 6DOF single arm: 7).
    """

    # --- what to read -------------------------------------------------------------------------
    paths: list[str] = option(factory=list, flag='data', required=True, metavar='PATH',
                              path='file_or_repo_id',
                              help='episode files (HDF5), rosbag2 directories, LeRobot dataset '
                                   'directories or Hub repo ids (owner/name), or folders of them')
    layout: str = option('auto', choices=LAYOUTS,
                         help="episode format; 'auto' decides per path")
    robot: str = option('aloha', metavar='NAME|FILE', path='file_or_name',
                        help='robot description: a built-in name (aloha, aloha_v1, vx300s, '
                             'wx250s, wx250) or a description YAML file; gives the arms, joints, '
                             'gripper calibration, cameras and the proprio / action sizes')
    camera_names: list[str] | None = option(
        None, metavar='CAMERA', help="cameras in the order the policy sees them (None: the "
                                     "robot's cameras)")
    proprio_dim: int | None = option(
        None, help="proprio size (None: the robot's); set it with action_dim for HDF5 data of "
                   'another robot (e.g. LIBERO), then the checkpoint records no robot layout')
    action_dim: int | None = option(None, help="action size (None: the robot's); see proprio_dim")
    chunk_size: int = option(25, help='actions per training target chunk')
    instruction: str | None = option(
        None, help='instruction for every episode; overrides episode metadata and sidecar files')
    # --- ALOHA HDF5 ---------------------------------------------------------------------------
    hdf5_jpeg_channel_order: str = option(
        'bgr', choices=JPEG_CHANNEL_ORDERS,
        help="JPEG frames of ALOHA's record_episodes.py are RGB arrays cv2.imencode read as BGR: "
             "'bgr' undoes that (files written by this package carry their own attribute)")
    jpeg_draft_size: int = option(
        224, help='decode JPEG frames at the smallest 1/2^k scale with both sides >= this '
                  "(0: full size); the model's 224 px loses nothing and is much faster")
    # --- rosbag2 ------------------------------------------------------------------------------
    rate_hz: float = option(50.0, help='rosbag alignment rate (Hz)')
    camera_topic_template: str | None = option(
        None, help="image topic of a camera, with {camera} (None: the robot description's)")
    action_source: str = option(
        'leader_joint_states', choices=ACTION_SOURCES,
        help="'leader_joint_states': actions are the robot's leader arms' joint_states; 'topic': "
             'action_topic (JointState of a single arm, or std_msgs Float32/64MultiArray)')
    action_topic: str | None = option(None, help="recorded action topic (action_source='topic')")
    timestamp_source: str = option('header', choices=TIMESTAMP_SOURCES,
                                   help="align on message 'header' stamps or 'bag' receive times")
    gripper_mode: str = option(
        'aloha', choices=GRIPPER_MODES,
        help="'aloha': grippers 0 (closed) .. 1 (open) as ALOHA records them and the inference "
             "node feeds them (proprio from the follower finger, actions from the gripper joint "
             "with the robot description's calibration); 'raw': joint positions as recorded")
    max_gap_s: float = option(0.2, help='a topic silent for longer inside an episode is an error')
    cache_dir: str | None = option(
        None, help='where aligned bag episodes are cached (None: beside the bag)')
    jpeg_quality: int = option(95, help='JPEG quality of the aligned-episode cache')
    # A policy run's own steps would teach its mistakes back; the operator's corrections of
    # them are what DAgger learns from (training/corrections.py).
    takeover_samples: str = option(
        'corrections', choices=TAKEOVER_SAMPLES,
        help="bags recorded with the executor's control source (policy runs with takeovers): "
             "'corrections' = only the operator's steps plus correction_context_s before each "
             "takeover; 'all' = every step. Other episodes always give every step")
    # The chunks of the steps just before a takeover run into the correction: they teach the
    # policy to turn away before the operator has to step in.
    correction_context_s: float = option(
        0.5, help='seconds before each takeover whose steps are samples too')
    # --- LeRobot ------------------------------------------------------------------------------
    lerobot_mapping: str | None = option(
        None, metavar='NAME|FILE',
        help='feature mapping of LeRobot datasets onto the robot (config/lerobot: aloha, '
             'gym_aloha; or a YAML file) (None: the shipped mapping written for --robot)')
    revision: str | None = option(
        None, help='Hub revision (branch, tag or commit) of LeRobot datasets given as repo ids '
                   '(None: the default branch); HF_HUB_OFFLINE=1 reads the cache only')
    video_tolerance_s: float = option(
        1e-4, help="a LeRobot step's video frame must be this close to its timestamp (LeRobot's "
                   'own tolerance_s)')
    video_decoder_threads: int = option(
        1, help='threads per video decoder (0: FFmpeg decides); DataLoader workers already '
                'decode in parallel, and one thread used 17% less CPU per AV1 frame here')

    def __post_init__(self) -> None:
        # Absolute, so a saved train_config.json names the same files from any directory; a
        # Hub repo id (no such local path) stays as it is.
        self.paths = [str(path) if looks_like_repo_id(str(path)) else os.path.abspath(str(path))
                      for path in self.paths]
        _require(isinstance(self.robot, str) and self.robot.strip() != '', 'robot', self.robot,
                 'name a built-in robot or a description file')
        description = self.robot_description()
        if self.camera_names is None:
            self.camera_names = list(description.cameras)
        if self.camera_topic_template is None:
            self.camera_topic_template = description.camera_topic
        if self.proprio_dim is None:
            self.proprio_dim = description.proprio_dim
        if self.action_dim is None:
            self.action_dim = description.action_dim
        self.camera_names = list(self.camera_names)
        _require(self.layout in LAYOUTS, 'layout', self.layout, f'expected one of {LAYOUTS}')
        _require(len(self.camera_names) > 0, 'camera_names', self.camera_names,
                 'empty (and the robot description names no cameras)')
        _require(len(set(self.camera_names)) == len(self.camera_names), 'camera_names',
                 self.camera_names, 'duplicate camera')
        for name in ('proprio_dim', 'action_dim', 'chunk_size'):
            value = getattr(self, name)
            _require(isinstance(value, int) and value > 0, name, value, 'must be a positive int')
        _require(self.instruction is None or self.instruction.strip() != '', 'instruction',
                 self.instruction, 'empty instruction')
        _require(self.hdf5_jpeg_channel_order in JPEG_CHANNEL_ORDERS, 'hdf5_jpeg_channel_order',
                 self.hdf5_jpeg_channel_order, f'expected one of {JPEG_CHANNEL_ORDERS}')
        _require(isinstance(self.jpeg_draft_size, int) and self.jpeg_draft_size >= 0,
                 'jpeg_draft_size', self.jpeg_draft_size, 'must be an int >= 0')
        _require(self.rate_hz > 0, 'rate_hz', self.rate_hz, 'must be > 0')
        _require('{camera}' in self.camera_topic_template, 'camera_topic_template',
                 self.camera_topic_template, 'must contain {camera}')
        _require(self.timestamp_source in TIMESTAMP_SOURCES, 'timestamp_source',
                 self.timestamp_source, f'expected one of {TIMESTAMP_SOURCES}')
        _require(self.action_source in ACTION_SOURCES, 'action_source', self.action_source,
                 f'expected one of {ACTION_SOURCES}')
        _require(self.action_source != 'topic' or bool(self.action_topic), 'action_topic',
                 self.action_topic, "required when action_source='topic'")
        _require(self.gripper_mode in GRIPPER_MODES, 'gripper_mode', self.gripper_mode,
                 f'expected one of {GRIPPER_MODES}')
        _require(self.max_gap_s > 0, 'max_gap_s', self.max_gap_s, 'must be > 0')
        _require(1 <= self.jpeg_quality <= 100, 'jpeg_quality', self.jpeg_quality,
                 'must be in 1..100')
        _require(self.takeover_samples in TAKEOVER_SAMPLES, 'takeover_samples',
                 self.takeover_samples, f'expected one of {TAKEOVER_SAMPLES}')
        _require(isinstance(self.correction_context_s, (int, float))
                 and 0.0 <= self.correction_context_s <= 60.0, 'correction_context_s',
                 self.correction_context_s, 'must be within [0, 60] s')
        _require(self.lerobot_mapping is None or self.lerobot_mapping.strip() != '',
                 'lerobot_mapping', self.lerobot_mapping, 'empty')
        _require(self.revision is None or self.revision.strip() != '', 'revision',
                 self.revision, 'empty')
        _require(0 < self.video_tolerance_s < 1, 'video_tolerance_s', self.video_tolerance_s,
                 'must be in (0, 1) s')
        _require(isinstance(self.video_decoder_threads, int) and self.video_decoder_threads >= 0,
                 'video_decoder_threads', self.video_decoder_threads, 'must be an int >= 0')

    @property
    def correction_context_steps(self) -> int:
        """``correction_context_s`` in steps of the alignment rate."""
        return int(round(self.correction_context_s * self.rate_hz))

    def robot_description(self) -> RobotDescription:
        """The description ``robot`` names (loaded once per process)."""
        try:
            return _description(self.robot)
        except ValueError as error:
            raise ValueError(f'DatasetConfig.robot={self.robot!r}: {error}') from None

    @property
    def matches_robot(self) -> bool:
        """True when proprio_dim and action_dim are the robot description's sizes."""
        description = self.robot_description()
        return (self.proprio_dim, self.action_dim) == (description.proprio_dim,
                                                       description.action_dim)

    def dim_origin(self, name: str) -> str:
        """Where ``proprio_dim`` / ``action_dim`` come from, for error messages."""
        return f'{name} of --robot {self.robot}' if self.matches_robot else name

    def check_rosbag_robot(self) -> None:
        """Rosbags are read through the robot description: the sizes must be the robot's."""
        description = self.robot_description()
        _require(self.matches_robot, 'proprio_dim', (self.proprio_dim, self.action_dim),
                 f'rosbag episodes of robot {description.name!r} have proprio_dim='
                 f'{description.proprio_dim} and action_dim={description.action_dim}')
        if self.action_source == 'leader_joint_states':
            _require(bool(description.leaders), 'action_source', self.action_source,
                     f'robot {description.name!r} has no leader arms ({description.source}); '
                     "record the commanded actions and use action_source='topic'")
