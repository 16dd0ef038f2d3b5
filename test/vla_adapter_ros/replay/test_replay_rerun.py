"""`vla-adapter-replay-eval --rerun`: each episode's .rrd, read back with Rerun's own reader."""

import json

from inference_harness import statistics_around_the_start_pose, tiny_policy_for  # noqa: E402
import numpy as np
import pytest
from replay_bags import write_episode  # noqa: E402
from rrd_contents import rrd_entities

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.replay import replay_eval
from vla_adapter_ros.replay.bag_episodes import load_episode
from vla_adapter_ros.replay.replay_config import ReplayEvalConfig

ALOHA = load_robot_description('aloha')
CHUNK = 6
DT = 1.0 / ALOHA.control_rate_hz


@pytest.fixture(scope='module')
def policy():
    return tiny_policy_for(ALOHA, chunk_size=CHUNK, seed=3,
                           statistics=statistics_around_the_start_pose(ALOHA))


def test_rerun_files_hold_state_actions_and_every_chunk(policy, tmp_path, monkeypatch):
    bags = tmp_path / 'bags'
    write_episode(bags / 'take_a', ALOHA, leader_actions=True, seconds=1.5)
    monkeypatch.setattr(replay_eval, 'load_policy', lambda *args, **kwargs: policy)
    output = tmp_path / 'report'
    assert replay_eval.main(['--bag', str(bags), '--checkpoint', 'unused', '--output',
                             str(output), '--no_progress', '--rerun']) == 0
    metrics = json.loads((output / 'metrics.json').read_text())
    assert metrics['rerun_files'] == ['rerun/take_a.rrd']
    entities = rrd_entities(output / 'rerun' / 'take_a.rrd')
    # The oracle: the same bag replayed in this process (the policy is deterministic).
    settings = ReplayEvalConfig(bag='', progress=False)
    episode = load_episode(bags / 'take_a', ALOHA, policy.config, settings)
    run = replay_eval.replay_episode(episode, policy, ALOHA, settings)
    grid = episode.aligned.grid.tolist()
    measured = entities['/joints/right/elbow/measured']
    assert measured['ros_time'] == grid
    elbow = ALOHA.arms[0].dim + ALOHA.arms[1].joint_names.index('elbow')
    assert [row[0] for row in measured['Scalars:scalars']] == pytest.approx(
        episode.aligned.proprio[:, elbow].tolist())
    demonstrated = entities['/joints/left/gripper/demonstrated']['Scalars:scalars']
    assert [row[0] for row in demonstrated] == pytest.approx(
        episode.aligned.actions[:, ALOHA.arms[0].dim - 1].tolist())
    # Chunk i in slot i % 5, each at its observation stamp + k * DT.
    chunks = len(run.predicted)
    assert chunks > 10
    assert len(entities['/policy/inference_ms']['Scalars:scalars']) == chunks
    slot = entities['/joints/left/waist/plan/1']
    mine = range(1, chunks, 5)
    expected_times = sorted(run.stamps_ns[i] + round(k * DT * 1e9) for i in mine
                            for k in range(CHUNK))
    assert slot['ros_time'] == pytest.approx(expected_times, abs=1)
    first = [row[0] for row in slot['Scalars:scalars'][:CHUNK]]
    assert first == pytest.approx(np.asarray(run.predicted[1])[:, 0].tolist(), abs=1e-6)


def test_without_the_flag_no_rerun_files_are_written(policy, tmp_path, monkeypatch):
    write_episode(tmp_path / 'bags' / 'take_b', ALOHA, leader_actions=True, seconds=1.0)
    monkeypatch.setattr(replay_eval, 'load_policy', lambda *args, **kwargs: policy)
    output = tmp_path / 'report'
    assert replay_eval.main(['--bag', str(tmp_path / 'bags'), '--checkpoint', 'unused',
                             '--output', str(output), '--no_progress']) == 0
    assert not (output / 'rerun').exists()
    assert 'rerun_files' not in json.loads((output / 'metrics.json').read_text())
