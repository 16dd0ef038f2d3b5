"""Training on corrections: the sample selection of takeover recordings, on real bags.

The bags are written by the recorder's own EpisodeRecorder from rclpy-serialised messages
(support/takeover_bags.py), read with ``--action_source topic --action_topic
/commanded_action`` as a policy run's recording is.
"""

import numpy as np
import pytest
from takeover_bags import commanded, record_takeover_bag

from training.bag_types import CONTROL_OPERATOR, CONTROL_POLICY
from training.corrections import (
    MACHINE,
    OPERATOR,
    POLICY,
    CorrectionSampling,
    control_codes,
    correction_steps,
    takeover_starts,
)
from training.data_config import DatasetConfig
from training.dataset import EpisodeDataset, load_episodes
from training.train_config import TrainConfig
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.pipeline import status

ALOHA = load_robot_description('aloha')
P, H, OP = status.CONTROL_POLICY, status.CONTROL_HANDOVER, status.CONTROL_OPERATOR
# 60 steps at 50 Hz: policy 0-19, handover 20-24, operator 25-39, policy 40-49, operator 50-54
# (a second takeover straight into the operator), policy 55-59.
SOURCES = [P] * 20 + [H] * 5 + [OP] * 15 + [P] * 10 + [OP] * 5 + [P] * 5


def test_the_training_side_names_match_the_executor_vocabulary():
    assert (CONTROL_POLICY, CONTROL_OPERATOR) == (status.CONTROL_POLICY, status.CONTROL_OPERATOR)


def test_codes_hold_the_latest_source_and_steps_before_the_first_message_are_the_policy():
    grid = np.arange(6) * 10
    codes = control_codes([15, 31, 42], [H, OP, 'hold'], grid)
    np.testing.assert_array_equal(codes, [POLICY, POLICY, MACHINE, MACHINE, OPERATOR, MACHINE])
    np.testing.assert_array_equal(control_codes([], [], grid), [POLICY] * 6)


def test_operator_steps_plus_context_before_each_takeover():
    codes = np.array([POLICY] * 6 + [MACHINE] * 2 + [OPERATOR] * 3 + [POLICY] * 2
                     + [OPERATOR] * 2 + [POLICY])
    np.testing.assert_array_equal(takeover_starts(codes), [6, 13])
    np.testing.assert_array_equal(correction_steps(codes, 0), [8, 9, 10, 13, 14])
    np.testing.assert_array_equal(correction_steps(codes, 3),
                                  [3, 4, 5, 8, 9, 10, 11, 12, 13, 14])
    np.testing.assert_array_equal(correction_steps(np.array([OPERATOR, POLICY]), 5), [0])
    with pytest.raises(ValueError, match='context=-1'):
        correction_steps(codes, -1)


def test_config_fields_are_validated_by_name(tmp_path):
    with pytest.raises(ValueError, match=r'DatasetConfig.correction_context_s=-0.5'):
        DatasetConfig(paths=[str(tmp_path)], correction_context_s=-0.5)
    with pytest.raises(ValueError, match=r"DatasetConfig.takeover_samples='some'"):
        DatasetConfig(paths=[str(tmp_path)], takeover_samples='some')
    with pytest.raises(ValueError, match=r'TrainConfig.correction_repeat=0'):
        TrainConfig(data=DatasetConfig(paths=[str(tmp_path)]), output_dir=str(tmp_path),
                    policy_config='p.json', tokenizer_dir=str(tmp_path), correction_repeat=0)
    with pytest.raises(ValueError, match=r"CorrectionSampling.takeover_samples='x'"):
        CorrectionSampling('x')
    config = DatasetConfig(paths=[str(tmp_path)], correction_context_s=0.1)
    assert config.correction_context_steps == 5


def bag_config(paths, **overrides) -> DatasetConfig:
    return DatasetConfig(paths=[str(path) for path in paths], action_source='topic',
                         action_topic='/commanded_action', timestamp_source='bag',
                         jpeg_draft_size=0, **overrides)


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    """(takeover bag, ordinary demonstration bag), written by the recorder's writer."""
    folder = tmp_path_factory.mktemp('takeovers')
    takeover = record_takeover_bag(folder, SOURCES, name='runs').path
    demo = record_takeover_bag(folder, [P] * 30, name='demos', takeover_topics=False).path
    return takeover, demo


def test_a_takeover_bag_gives_the_operator_steps_and_context_weighted(recorded):
    takeover, demo = recorded
    config = bag_config([takeover, demo], correction_context_s=0.1)  # 5 steps
    episodes = load_episodes(config)
    run, ordinary = sorted(episodes, key=len, reverse=True)
    assert ordinary.control is None and len(run.control) == len(run)
    first_operator = int(np.flatnonzero(run.control == OPERATOR)[0])
    assert first_operator in (24, 25, 26)  # the grid starts within a step of the first message
    sampling = CorrectionSampling('corrections', config.correction_context_steps, repeat=3)
    dataset = EpisodeDataset([run, ordinary], chunk_size=10, corrections=sampling)
    expected = correction_steps(run.control, 5)
    assert dataset.correction_samples == len(expected)
    assert len(dataset) == 3 * len(expected) + len(ordinary)  # corrections x3, the demo once
    located = [dataset.locate(index) for index in range(len(dataset))]
    run_steps = sorted(step for episode, step in located if episode == 0)
    assert run_steps == sorted(np.repeat(expected, 3).tolist())
    policy_steps = set(np.flatnonzero(run.control == POLICY)) - set(expected.tolist())
    assert policy_steps and not policy_steps & set(run_steps)  # the policy's own: left out
    assert sorted(step for episode, step in located if episode == 1) == list(range(len(ordinary)))
    # A correction sample's targets are the commands the operator's arm was sent.
    sample = dataset[located.index((0, first_operator))]
    np.testing.assert_allclose(sample['actions'][0], run.actions[first_operator])
    step_of = round((run.actions[first_operator][0] - commanded(0)[0]) / 0.001)
    np.testing.assert_allclose(run.actions[first_operator],
                               ALOHA.joint_angles_to_policy(commanded(step_of)), atol=1e-5)
    assert sample['action_mask'].all()


def test_takeover_samples_all_uses_every_step(recorded):
    takeover, _ = recorded
    episodes = load_episodes(bag_config([takeover], takeover_samples='all'))
    dataset = EpisodeDataset(episodes, chunk_size=10,
                             corrections=CorrectionSampling('all', 5, repeat=3))
    assert len(dataset) == len(episodes[0]) and dataset.correction_samples == 0


def test_vla_adapter_train_runs_on_takeover_recordings_and_demos(recorded, tmp_path, capsys):
    import json

    from training.finetune import main
    from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir

    takeover, demo = recorded
    policy = build_tiny_config(action_dim=14, proprio_dim=14, chunk_size=4,
                               camera_names=['cam_high'], image_size=56)
    (tmp_path / 'policy.json').write_text(json.dumps(policy.to_dict()))
    code = main(['--data', str(takeover), str(demo), '--camera_names', 'cam_high',
                 '--chunk_size', '4', '--action_source', 'topic',
                 '--action_topic', '/commanded_action', '--timestamp_source', 'bag',
                 '--correction_context_s', '0.1', '--correction_repeat', '2',
                 '--cache_dir', str(tmp_path / 'cache'),
                 '--policy_config', str(tmp_path / 'policy.json'),
                 '--tokenizer_dir', default_tokenizer_dir(), '--output_dir',
                 str(tmp_path / 'run'), '--max_steps', '2', '--batch_size', '2',
                 '--num_workers', '0', '--num_val_episodes', '0', '--no_progress_bar'])
    assert code == 0
    corrections = len(correction_steps(load_episodes(bag_config(
        [takeover], cache_dir=str(tmp_path / 'cache')))[0].control, 5))
    assert f'of which {corrections} corrections (x2)' in capsys.readouterr().out
    saved = json.loads((tmp_path / 'run' / 'train_config.json').read_text())
    assert (saved['correction_repeat'], saved['data']['correction_context_s']) == (2, 0.1)
    assert saved['data']['takeover_samples'] == 'corrections'
