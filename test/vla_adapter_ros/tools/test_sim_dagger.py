"""vla-adapter-sim-dagger end to end at tiny scale: one round, then --resume.

Real nodes over DDS on the MuJoCo ALOHA (sim clock), a tiny random policy, one scripted
demonstration, one short takeover episode recorded by the recorder, two training steps.
"""

import json

import pytest

from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.recording.bag_format import read_episode_metadata
from vla_adapter_ros.tools import scripted_demos, sim_dagger
from vla_adapter_ros.tools.showcase import demo_policy

STEPS = 40


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """(checkpoint, demonstrations folder)."""
    folder = tmp_path_factory.mktemp('sim_dagger')
    demo_policy(load_robot_description('aloha_sim'), chunk_size=10).save_pretrained(
        folder / 'policy')
    assert scripted_demos.main(['--output', str(folder / 'demos'), '--episodes', '1',
                                '--first_seed', '3', '--image_height', '32',
                                '--image_width', '32', '--workers', '1']) == 0
    return folder / 'policy', folder / 'demos'


def _argv(inputs, run) -> list[str]:
    checkpoint, demos = inputs
    return ['--checkpoint', str(checkpoint), '--demos', str(demos), '--output_dir', str(run),
            '--rounds', '1', '--episodes_per_round', '1', '--eval_episodes', '1',
            '--episode_steps', str(STEPS), '--image_height', '32', '--image_width', '32',
            '--takeover_rule', 'schedule', '--takeover_first_step', '5',
            '--operator_steps', '25', '--train_steps', '2', '--batch_size', '2',
            '--val_episodes', '0', '--no_final_eval']


def test_one_round_collects_corrections_and_fine_tunes_then_resume_skips_it(
        inputs, tmp_path, capsys):
    run = tmp_path / 'run'
    assert sim_dagger.main(_argv(inputs, run)) == 0
    for name in ('dagger.md', 'dagger.png', 'dagger.json', 'round_0/round.json',
                 'round_0/eval/report.json'):
        assert (run / name).stat().st_size > 0
    row = json.loads((run / 'round_0' / 'round.json').read_text())
    assert row['episodes'] == 1 and row['episodes_collected'] == 1
    assert 0.0 <= row['success_ci95'][0] <= row['success_rate'] <= row['success_ci95'][1]
    assert 0.0 < row['takeover_fraction'] < 1.0 and row['training_minutes'] > 0
    # The collected bag: the operator's segment between the policy's, in the sidecar.
    intervals = read_episode_metadata(row['bags'][0])['control']['intervals']
    sources = [entry['source'] for entry in intervals]
    assert 'operator' in sources and sources[-1] == 'policy', intervals
    operator = next(entry for entry in intervals if entry['source'] == 'operator')
    assert operator['stop_s'] > operator['start_s']
    table = (run / 'dagger.md').read_text()
    assert table.splitlines()[2].startswith('| 0 | ')
    policy = VLAPolicy.from_pretrained(row['trained_checkpoint'], device='cpu')
    assert policy.config.chunk_size == 10
    # Fine-tuned, not replaced: the source's dual-arm head, every tensor loaded from it.
    assert policy.config.action_head.kind == 'dual_arm'
    assert 'freshly initialised: 0 tensors' in capsys.readouterr().out

    capsys.readouterr()
    assert sim_dagger.main(_argv(inputs, run)) == 2  # finished rounds, no --resume
    assert '--resume' in capsys.readouterr().err
    before = (run / 'round_0' / 'round.json').stat().st_mtime_ns
    assert sim_dagger.main([*_argv(inputs, run), '--resume']) == 0
    assert (run / 'round_0' / 'round.json').stat().st_mtime_ns == before  # not run again
    assert '1 round(s)' in capsys.readouterr().out

    # Cut short after its collection: the round's evaluation and bags are reused.
    (run / 'round_0' / 'round.json').unlink()
    bags = sorted((run / 'round_0' / 'bags').iterdir())
    assert sim_dagger.main([*_argv(inputs, run), '--resume']) == 0
    out = capsys.readouterr().out
    assert 'reusing the evaluation' in out and 'reusing the bags' in out, out
    assert sorted((run / 'round_0' / 'bags').iterdir()) == bags
    assert json.loads((run / 'round_0' / 'round.json').read_text())['trained_checkpoint']


def test_bad_arguments_are_one_line(inputs, tmp_path, capsys):
    assert sim_dagger.main([*_argv(inputs, tmp_path / 'r'), '--rounds', '0']) == 2
    assert capsys.readouterr().err.strip().endswith('--rounds 0: must be >= 1')
