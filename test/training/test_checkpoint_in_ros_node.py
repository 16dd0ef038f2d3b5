"""A checkpoint written by vla-adapter-train drives the ROS inference node (real DDS, loopback).

Uses the inference-node test harness of test/vla_adapter_ros: the node loads the trained
checkpoint by path, fake Interbotix/RealSense sensors run in another process.
"""

import json

from episode_writers import block_episode, write_aloha_hdf5
import numpy as np

from training.finetune import main
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir

try:
    from inference_harness import ALOHA, CAMERAS, expected_joint_angles, running_pipeline
except ImportError as error:  # the interface package lives in the colcon install space
    raise ImportError(f'{error}: source scripts/ros_env.sh first (make test does)') from error

from vla_adapter_ros.pipeline import conversions  # noqa: E402

CHUNK = 5


def test_trained_dual_arm_checkpoint_runs_in_the_inference_node(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / 'data').mkdir()
    for index in range(3):
        images, qpos, action = block_episode(rng.uniform(-1, 1, 2), 6, list(CAMERAS), size=48)
        action[:, [6, 13]] = rng.uniform(0, 1, (6, 2))  # normalised grippers, as ALOHA records
        write_aloha_hdf5(tmp_path / 'data' / f'episode_{index}.hdf5', images, qpos, action,
                         compress=True, instruction='pick up the cube')
    config = build_tiny_config(chunk_size=CHUNK, camera_names=['cam_high'], image_size=56)
    (tmp_path / 'policy.json').write_text(json.dumps(config.to_dict()))
    assert main(['--data', str(tmp_path / 'data'), '--camera_names', *CAMERAS, '--chunk_size',
                 str(CHUNK), '--policy_config', str(tmp_path / 'policy.json'), '--tokenizer_dir',
                 default_tokenizer_dir(), '--use_dual_arm', '--output_dir', str(tmp_path / 'run'),
                 '--max_steps', '2', '--batch_size', '2', '--num_workers', '0',
                 '--num_val_episodes', '0', '--no_progress_bar']) == 0
    checkpoint = tmp_path / 'run' / 'final'
    with running_pipeline(None, checkpoint=str(checkpoint), dtype='float32') as pipeline:
        probe = pipeline.probe
        assert pipeline.spin_until(lambda: len(probe.chunks) >= 2), (
            f'no chunks; faults: {sorted(set(probe.faults()))}')
    chunk = probe.chunks[-1]
    assert len(chunk.left.points) == CHUNK and len(chunk.right.points) == CHUNK
    policy = VLAPolicy.from_pretrained(checkpoint, dtype='float32')
    # A trained checkpoint records ALOHA's layout (older training code recorded none: the node
    # then checks the dimension only).
    assert policy.config.robot_layout in (None, ALOHA.layout())
    expected = expected_joint_angles(policy, ALOHA, 'pick up the cube')  # (CHUNK, 14)
    received = np.hstack([conversions.trajectory_positions(trajectory, arm.command_joint_names)
                          for trajectory, arm in zip((chunk.left, chunk.right), ALOHA.arms)])
    np.testing.assert_allclose(received, expected, atol=1e-5)
