"""vla-adapter-sim-demos: scripted episodes recorded by the recorder, read back for training."""

from gym_aloha.utils import sample_box_pose
import h5py
import numpy as np
import yaml

from training.aux_targets import AUX_TARGETS_FILE, AuxTargets, read_aux_targets
from training.data_config import DatasetConfig
from training.export_hdf5 import main as export_main
from training.rosbag_episodes import load_rosbag_episode
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.recording.bag_format import read_episode_metadata
from vla_adapter_ros.sim import scripted_expert
from vla_adapter_ros.tools import scripted_demos

ROBOT = load_robot_description('aloha_sim')


def test_demo_bags_are_training_episodes(tmp_path, capsys):
    output = tmp_path / 'demos'
    assert scripted_demos.main(['--output', str(output), '--episodes', '1', '--first_seed', '3',
                           '--image_height', '24', '--image_width', '32',
                           '--workers', '1']) == 0
    assert '1/1 scripted episodes transferred the cube' in capsys.readouterr().out
    summary = yaml.safe_load((output / 'demos_summary.yaml').read_text())
    assert summary['successes'] == 1 and summary['per_episode'][0]['seed'] == 3
    bag = output / 'episode_0000'
    metadata = read_episode_metadata(bag)
    assert metadata['success'] is True
    assert metadata['instruction'] == scripted_demos.DEFAULT_INSTRUCTION

    config = DatasetConfig(paths=[str(output)], robot='aloha_sim', action_source='topic',
                           action_topic='/commanded_action', jpeg_draft_size=0,
                           cache_dir=str(tmp_path / 'cache'))
    episode = load_rosbag_episode(bag, config)
    # The cube's start position until the grasp, for --aux_targets, found by the bag's path.
    names, targets = read_aux_targets(output / AUX_TARGETS_FILE)
    assert names == ['cube_x', 'cube_y'] and list(targets) == ['episode_0000']
    cube, until = targets['episode_0000']
    np.testing.assert_allclose(cube, sample_box_pose(3)[:2], atol=1e-6)
    assert until == scripted_expert.CUBE_GRASPED_STEP
    assert AuxTargets([str(output / AUX_TARGETS_FILE)]).for_source(episode.source) is not None
    # Aligned at 50 Hz from the first instant every topic has a message (the first command).
    assert len(episode) == scripted_expert.EPISODE_STEPS - 1
    assert episode.read_images(0)['cam_high'].shape == (24, 32, 3)
    # The recorded actions are the scripted targets as commanded (within the joint limits;
    # policy units, grippers 0..1).
    targets, _ = scripted_expert.scripted_joint_trajectory(ROBOT, 3)
    lower, upper = ROBOT.joint_angle_bounds()
    commanded = ROBOT.joint_angles_to_policy(
        np.clip(ROBOT.policy_to_joint_angles(targets), lower, upper))
    np.testing.assert_allclose(episode.actions, commanded[:len(episode)], atol=1e-4)
    # The proprio is the observed state: the arms start at the description's start pose.
    np.testing.assert_allclose(episode.proprio[0], np.concatenate(
        [arm.start_pose for arm in ROBOT.arms]), atol=1e-4)

    hdf5 = tmp_path / 'episode.hdf5'
    assert export_main(['--bag', str(bag), '--output', str(hdf5), '--robot', 'aloha_sim',
                        '--action_source', 'topic', '--action_topic', '/commanded_action']) == 0
    with h5py.File(hdf5) as handle:
        np.testing.assert_allclose(handle['action'][()], episode.actions, atol=1e-4)


def test_jpeg_quality_zero_records_the_raw_images(tmp_path):
    writer = scripted_demos.DemoBagWriter(ROBOT, tmp_path, jpeg_quality=0)
    try:
        cameras = [entry for entry in writer.plan if entry.role == 'camera']
        assert [entry.bag_topic for entry in cameras] == list(ROBOT.camera_topics())
        assert {entry.bag_msgtype for entry in cameras} == {'sensor_msgs/msg/Image'}
        assert writer.recorder.jpeg_quality == 0
    finally:
        writer.close()


def test_bad_arguments_are_one_line(tmp_path, capsys):
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'x').write_text('x')
    assert scripted_demos.main(['--output', str(tmp_path / 'full')]) == 2
    assert 'folder exists and is not empty' in capsys.readouterr().err
    assert scripted_demos.main(['--output', str(tmp_path / 'o'), '--disturbance_std', '2']) == 2
    assert capsys.readouterr().err.strip() == (
        'vla-adapter-sim-demos: error: --disturbance_std 2.0: must be in [0, 0.5] rad')
    assert scripted_demos.main(['--output', str(tmp_path / 'o'), '--jpeg_quality', '101']) == 2
    assert capsys.readouterr().err.strip() == (
        'vla-adapter-sim-demos: error: --jpeg_quality 101: must be in [0, 100] (0: raw images)')
