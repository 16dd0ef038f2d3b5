"""Configuration of the episode datasets (ALOHA HDF5 and rosbag2) and its command-line options."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from vla_adapter_core.config import ConfigDictMixin

ALOHA_CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
INTERBOTIX_ARM_JOINTS = (
    'waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate', 'gripper',
)
LAYOUTS = ('auto', 'aloha_hdf5', 'rosbag2')
JPEG_CHANNEL_ORDERS = ('bgr', 'rgb')
TIMESTAMP_SOURCES = ('header', 'bag')
GRIPPER_MODES = ('aloha', 'raw')
ACTION_SOURCES = ('leader_joint_states', 'topic')


def _require(condition: bool, name: str, value: Any, why: str) -> None:
    """Raise ValueError naming the config field and its value unless ``condition`` holds."""
    if not condition:
        raise ValueError(f'DatasetConfig.{name}={value!r}: {why}')


@dataclass
class DatasetConfig(ConfigDictMixin):
    """Where the recorded episodes are and how a training sample is built from them.

    Shapes: proprio (proprio_dim,), action chunk (chunk_size, action_dim). ALOHA is 14-d
    (2 x [6 joints, gripper]); a single arm is 7-d.
    """

    # --- what to read -------------------------------------------------------------------------
    paths: list[str] = field(default_factory=list)  # episode files / bag dirs / folders of them
    layout: str = 'auto'  # 'aloha_hdf5', 'rosbag2' or 'auto' (decided per path)
    camera_names: list[str] = field(default_factory=lambda: list(ALOHA_CAMERAS))
    proprio_dim: int = 14
    action_dim: int = 14
    chunk_size: int = 25
    # Instruction for every episode; overrides episode metadata and sidecar files when set.
    instruction: str | None = None
    # --- ALOHA HDF5 ---------------------------------------------------------------------------
    # ALOHA's record_episodes.py JPEG-encodes RGB arrays with cv2.imencode, which reads them as
    # BGR: 'bgr' undoes that. Files written by this package carry their own attribute.
    hdf5_jpeg_channel_order: str = 'bgr'
    # JPEG frames are decoded at the smallest 1/2^k scale with both sides >= this (0: full size);
    # the processor resizes to the model's 224 px anyway, so 224 loses nothing and is much faster.
    jpeg_draft_size: int = 224
    # --- rosbag2 ------------------------------------------------------------------------------
    rate_hz: float = 50.0
    camera_topic_template: str = '/{camera}/camera/color/image_rect_raw'
    follower_names: list[str] = field(default_factory=lambda: ['follower_left', 'follower_right'])
    leader_names: list[str] = field(default_factory=lambda: ['leader_left', 'leader_right'])
    joint_names: list[str] = field(default_factory=lambda: list(INTERBOTIX_ARM_JOINTS))
    # 'leader_joint_states': actions = the leader arms' joint_states; 'topic': action_topic
    # (sensor_msgs/JointState with joint_names per arm, or std_msgs Float32/64MultiArray).
    action_source: str = 'leader_joint_states'
    action_topic: str | None = None
    timestamp_source: str = 'header'  # 'header' stamps, or 'bag' receive times
    # 'aloha': grippers as ALOHA records them and the inference node feeds them (0 closed .. 1
    # open): proprio from the follower's left_finger position, actions from the gripper joint
    # angle (leader or commanded follower calibration); the last of joint_names is the gripper.
    # 'raw': the joint_names' positions as they are.
    gripper_mode: str = 'aloha'
    follower_finger_open: float = 0.0579
    follower_finger_closed: float = 0.0440
    follower_gripper_joint_open: float = 1.6214
    follower_gripper_joint_closed: float = 0.6197
    leader_gripper_joint_open: float = 0.8298
    leader_gripper_joint_closed: float = -0.0552
    max_gap_s: float = 0.2  # a topic silent for longer than this inside the episode is an error
    cache_dir: str | None = None  # aligned bag episodes are cached here (default: beside the bag)
    jpeg_quality: int = 95  # of the aligned-episode cache

    def __post_init__(self) -> None:
        self.paths = [str(path) for path in self.paths]
        self.camera_names = list(self.camera_names)
        self.follower_names = list(self.follower_names)
        self.leader_names = list(self.leader_names)
        self.joint_names = list(self.joint_names)
        _require(self.layout in LAYOUTS, 'layout', self.layout, f'expected one of {LAYOUTS}')
        _require(len(self.camera_names) > 0, 'camera_names', self.camera_names, 'empty')
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
        _require(self.follower_finger_open != self.follower_finger_closed,
                 'follower_finger_open', self.follower_finger_open, 'equals the closed value')
        _require(self.follower_gripper_joint_open != self.follower_gripper_joint_closed,
                 'follower_gripper_joint_open', self.follower_gripper_joint_open,
                 'equals the closed value')
        _require(self.leader_gripper_joint_open != self.leader_gripper_joint_closed,
                 'leader_gripper_joint_open', self.leader_gripper_joint_open,
                 'equals the closed value')
        _require(self.max_gap_s > 0, 'max_gap_s', self.max_gap_s, 'must be > 0')
        _require(1 <= self.jpeg_quality <= 100, 'jpeg_quality', self.jpeg_quality,
                 'must be in 1..100')
        _require(len(self.follower_names) > 0, 'follower_names', self.follower_names, 'empty')
        _require(len(self.joint_names) > 0, 'joint_names', self.joint_names, 'empty')

    def check_rosbag_dims(self) -> None:
        """Check that the arm/joint lists of the rosbag reader produce proprio_dim / action_dim."""
        per_arm = len(self.joint_names)
        proprio = per_arm * len(self.follower_names)
        _require(proprio == self.proprio_dim, 'proprio_dim', self.proprio_dim,
                 f'rosbag proprio has {len(self.follower_names)} arms x {per_arm} joints = '
                 f'{proprio}')
        if self.action_source == 'leader_joint_states':
            action = per_arm * len(self.leader_names)
            _require(action == self.action_dim, 'action_dim', self.action_dim,
                     f'leader actions have {len(self.leader_names)} arms x {per_arm} joints = '
                     f'{action}')




GRIPPER_FIELDS = ('follower_finger_open', 'follower_finger_closed',
                  'follower_gripper_joint_open', 'follower_gripper_joint_closed',
                  'leader_gripper_joint_open', 'leader_gripper_joint_closed')


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that build a :class:`DatasetConfig`."""
    group = parser.add_argument_group('dataset')
    group.add_argument('--data', nargs='+', required=True,
                       help='episode files, bag directories or folders of them')
    group.add_argument('--layout', default='auto', choices=['auto', 'aloha_hdf5', 'rosbag2'])
    group.add_argument('--camera_names', nargs='+', default=list(ALOHA_CAMERAS))
    group.add_argument('--proprio_dim', type=int, default=14)
    group.add_argument('--action_dim', type=int, default=14)
    group.add_argument('--chunk_size', type=int, default=25)
    group.add_argument('--instruction', default=None,
                       help='instruction for every episode (overrides metadata and sidecars)')
    group.add_argument('--hdf5_jpeg_channel_order', default='bgr', choices=['bgr', 'rgb'],
                       help="'bgr' for files from ALOHA's record_episodes.py (cv2.imencode)")
    group.add_argument('--jpeg_draft_size', type=int, default=224)
    group.add_argument('--rate_hz', type=float, default=50.0, help='rosbag alignment rate')
    group.add_argument('--camera_topic_template', default='/{camera}/camera/color/image_rect_raw')
    group.add_argument('--follower_names', nargs='+', default=['follower_left', 'follower_right'])
    group.add_argument('--leader_names', nargs='+', default=['leader_left', 'leader_right'])
    group.add_argument('--joint_names', nargs='+', default=list(INTERBOTIX_ARM_JOINTS))
    group.add_argument('--action_source', default='leader_joint_states',
                       choices=['leader_joint_states', 'topic'])
    group.add_argument('--action_topic', default=None)
    group.add_argument('--timestamp_source', default='header', choices=['header', 'bag'])
    group.add_argument('--max_gap_s', type=float, default=0.2)
    group.add_argument('--gripper_mode', default='aloha', choices=['aloha', 'raw'],
                       help="'aloha': grippers normalised 0..1 as ALOHA records them")
    defaults = DatasetConfig()
    for name in GRIPPER_FIELDS:
        group.add_argument(f'--{name}', type=float, default=getattr(defaults, name))
    group.add_argument('--cache_dir', default=None, help='where aligned bags are cached')


def dataset_config_from_args(args: argparse.Namespace) -> DatasetConfig:
    """The :class:`DatasetConfig` described by :func:`add_dataset_arguments`' options."""
    return DatasetConfig(
        paths=args.data, layout=args.layout, camera_names=args.camera_names,
        proprio_dim=args.proprio_dim, action_dim=args.action_dim, chunk_size=args.chunk_size,
        instruction=args.instruction, hdf5_jpeg_channel_order=args.hdf5_jpeg_channel_order,
        jpeg_draft_size=args.jpeg_draft_size, rate_hz=args.rate_hz,
        camera_topic_template=args.camera_topic_template, follower_names=args.follower_names,
        leader_names=args.leader_names, joint_names=args.joint_names,
        action_source=args.action_source, action_topic=args.action_topic,
        timestamp_source=args.timestamp_source, max_gap_s=args.max_gap_s,
        cache_dir=args.cache_dir, gripper_mode=args.gripper_mode,
        **{name: getattr(args, name) for name in GRIPPER_FIELDS})
