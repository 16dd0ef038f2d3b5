"""Command-line arguments shared by the training tools (dataset selection and layout)."""

from __future__ import annotations

import argparse

from training.data_config import ALOHA_CAMERAS, INTERBOTIX_ARM_JOINTS, DatasetConfig

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
