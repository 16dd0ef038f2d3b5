"""vla-adapter-sim-eval end to end: the real nodes on the MuJoCo ALOHA, short episodes."""

import dataclasses
import json

import numpy as np
import pytest
from rrd_contents import rrd_entities

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.sim.baselines import baseline_rewards, mean_demonstration
from vla_adapter_ros.tools import sim_eval
from vla_adapter_ros.tools.showcase import demo_policy

STEPS = 30


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp('sim_eval') / 'policy'
    demo_policy(load_robot_description('aloha_sim'), chunk_size=10).save_pretrained(directory)
    return directory


def _arguments(checkpoint, output, **overrides) -> sim_eval.SimEvalConfig:
    config = sim_eval.SimEvalConfig(checkpoint=str(checkpoint))
    return dataclasses.replace(config, episode_steps=STEPS, output_dir=str(output),
                               image_height=32, image_width=32, demo_seeds=2, **overrides)


def test_closed_loop_episodes_through_the_nodes_repeat_exactly(checkpoint, tmp_path):
    args = _arguments(checkpoint, tmp_path)
    result = sim_eval.run_policy_episodes(args, tmp_path, [1000, 1000, 1001])
    episodes = result['episodes']
    assert [episode['steps'] for episode in episodes] == [STEPS] * 3
    assert not result['exited_early'] and not result['faults']
    # A camera frame every 5 steps, each answered by one chunk.
    assert [episode['chunks'] for episode in episodes] == [STEPS // 5] * 3
    first, again, other = (np.array(episode['final_state']) for episode in episodes)
    np.testing.assert_array_equal(first, again)  # same seed, same episode
    assert np.abs(first - other).max() > 0 or episodes[0]['rewards'] != episodes[2]['rewards']
    assert len(result['frames']) == STEPS // 5
    assert result['frames'][0].shape == (32, 32, 3)
    # --blend_mode reaches the executor: the newest chunk alone instead of the ensemble.
    switched = sim_eval.run_policy_episodes(dataclasses.replace(args, blend_mode='switch'),
                                            tmp_path / 'switch', [1000])['episodes'][0]
    assert switched['steps'] == STEPS
    assert np.abs(np.array(switched['final_state']) - first).max() > 1e-6


def test_report_with_baselines_plots_and_strip(checkpoint, tmp_path, capsys):
    assert sim_eval.main(['--checkpoint', str(checkpoint), '--episodes', '1', '--seed', '7',
                          '--episode_steps', str(STEPS), '--demo_seeds', '2',
                          '--image_height', '32', '--image_width', '32',
                          '--output_dir', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'report.json').read_text())
    assert set(report['summary']) == {'policy', 'hold_still', 'mean_demonstration'}
    hold = report['summary']['hold_still']
    assert (hold['episodes'], hold['successes'], hold['mean_max_reward']) == (1, 0, 0.0)
    assert hold['reward_levels'] == {'0': 1, '1': 0, '2': 0, '3': 0, '4': 0}
    assert hold['success_ci95'][0] == 0.0 and 0.7 < hold['success_ci95'][1] < 0.8
    assert set(report['against_baselines']) == {'hold_still', 'mean_demonstration'}
    assert report['baseline_max_rewards']['hold_still'] == [0.0]
    assert len(report['baseline_max_rewards']['mean_demonstration']) == 1
    assert report['episodes'][0]['seed'] == 7 and report['inference_ms']['chunks'] >= 1
    assert report['executor'] == {}  # the executor's own blending
    for name in ('rewards.png', 'success.png', 'top_camera.png', 'top_camera.gif'):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert 'mean_demonstration' in out and 'inference latency' in out
    assert 'policy vs hold_still: no difference' in out and '[' in out


def test_rerun_writes_each_episode_as_the_live_view_draws_it(checkpoint, tmp_path):
    assert sim_eval.main(['--checkpoint', str(checkpoint), '--episodes', '2', '--seed', '1000',
                          '--episode_steps', str(STEPS), '--no_baselines', '--rerun',
                          '--image_height', '32', '--image_width', '32',
                          '--output_dir', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'report.json').read_text())
    frames = STEPS // 5  # a camera frame every 5 steps, each answered by one chunk
    for episode in report['episodes']:
        path = tmp_path / 'rerun' / f'seed_{episode["seed"]}.rrd'
        assert episode['rerun'] == str(path) and episode['chunks'] == frames
        entities = rrd_entities(path)  # read back with Rerun's own reader
        for camera in ('cam_high', 'cam_left_wrist', 'cam_right_wrist'):
            assert len(entities[f'/cameras/{camera}']['ros_time']) == frames
        camera_times = entities['/cameras/cam_high']['ros_time']
        measured = entities['/joints/left/waist/measured']['ros_time']
        assert len(measured) >= STEPS and measured[0] <= camera_times[0]
        assert len(entities['/joints/right/gripper/commanded']['ros_time']) >= STEPS
        assert len(entities['/joints/left/elbow/commanded']['ros_time']) >= STEPS
        # Every chunk as a future trajectory: chunk i in slot i % 5, 10 steps from its frame.
        plans = [entities[f'/joints/left/waist/plan/{slot}']['ros_time'] for slot in range(5)]
        assert sum(len(times) for times in plans) == frames * 10
        assert sorted(min(times) for times in plans) == camera_times[:5]
        assert len(entities['/policy/inference_ms']['Scalars:scalars']) == frames
        rewards = [row[0] for row in entities['/episode/reward']['Scalars:scalars']]
        assert len(rewards) == STEPS
        assert (max(rewards), rewards[-1]) == (episode['max_reward'], episode['final_reward'])
        assert entities['/status/executor']['TextLog:text']
        assert set(entities['/episode/reward']['timelines'][0]) >= {'ros_time'}


def test_user_errors_are_one_line(tmp_path, capsys):
    assert sim_eval.main(['--checkpoint', str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f'vla-adapter-sim-eval: error: --checkpoint {tmp_path}: no config.json (not a '
        'checkpoint directory)')
    assert sim_eval.main(['--checkpoint', str(tmp_path), '--ensemble_k', '11']) == 2
    assert capsys.readouterr().err.strip() == (
        'vla-adapter-sim-eval: error: --ensemble_k 11.0: must be in [-10.0, 10.0]')


def test_baselines_on_the_scene():
    seeds = [1000, 1001]
    hold = baseline_rewards('hold_still', seeds, None, 20)
    assert hold == [[0] * 20] * 2
    mean = mean_demonstration([0, 1], 20)
    assert mean.shape == (20, 14)
