"""Takeovers in the replay evaluation: counts, errors split by who was in control, the report.

Known errors: a bag whose /commanded_action is the policy's own first chunk step at every
observation while the policy is in control, that step + ``offset`` while the operator is and +
``offset / 2`` during the handover ramp, gives step-0 errors of exactly 0, mean |offset| and
half of it on the three parts. The intervals come from the sidecar when it has them, else from
the /control_source topic; a bag with neither evaluates and says 'no takeover information'.
"""

import json
import pathlib

from inference_harness import statistics_around_the_start_pose, tiny_policy_for  # noqa: E402
import numpy as np
import pytest
from replay_bags import T0, write_episode  # noqa: E402
from rrd_contents import rrd_entities  # noqa: E402
from takeover_bags import record_takeover_bag  # noqa: E402

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.pipeline import status
from vla_adapter_ros.recording.bag_format import read_episode_metadata
from vla_adapter_ros.recording.control_log import ControlLog
from vla_adapter_ros.replay import replay_eval
from vla_adapter_ros.replay.bag_episodes import load_episode
from vla_adapter_ros.replay.replay_config import ReplayEvalConfig
from vla_adapter_ros.replay.replay_eval import evaluate
from vla_adapter_ros.replay.replay_report import CONTROL_SPANS, joint_figure

ALOHA = load_robot_description('aloha')
CHUNK = 6
SETTINGS = ReplayEvalConfig(bag='', progress=False, executed_latency_s=0.0)
P, H, OP = status.CONTROL_POLICY, status.CONTROL_HANDOVER, status.CONTROL_OPERATOR
# From which inference point on each source commands: two takeovers, one handback.
SWITCHES = [(0, P), (8, H), (11, OP), (20, P), (28, H), (31, OP)]
SHIFT = {P: 0.0, H: 0.5, OP: 1.0}  # the recorded action: first step + SHIFT * offset
OFFSET = np.linspace(-0.05, 0.08, ALOHA.action_dim)


@pytest.fixture(scope='module')
def policy():
    return tiny_policy_for(ALOHA, chunk_size=CHUNK, seed=3,
                           statistics=statistics_around_the_start_pose(ALOHA))


@pytest.fixture(scope='module')
def first_steps(policy, tmp_path_factory) -> list:
    """(observation stamp, the policy's first chunk step) at every inference point."""
    probe = write_episode(tmp_path_factory.mktemp('probe') / 'probe', ALOHA,
                          leader_actions=True)
    episode = load_episode(probe, ALOHA, policy.config, SETTINGS)
    run = replay_eval.replay_episode(episode, policy, ALOHA, SETTINGS)
    assert len(run.predicted) > 36
    return [(stamp, chunk[0]) for stamp, chunk in zip(run.stamps_ns, run.predicted)]


def takeover_bag(first_steps: list, path: pathlib.Path, sidecar: dict | None = None):
    """The bag of the module's docstring; returns (path, [(bag time ns, source)] changes)."""
    starts = dict(SWITCHES)
    changes, actions, source = [], [], P
    for index, (stamp, action) in enumerate(first_steps):
        if index in starts:
            source = starts[index]
            changes.append((stamp, source))
        actions.append((stamp, action + SHIFT[source] * OFFSET))
    write_episode(path, ALOHA, actions=actions, control=changes, sidecar=sidecar)
    return path, changes


def test_topic_intervals_count_takeovers_and_split_the_errors(policy, first_steps, tmp_path):
    bag, changes = takeover_bag(first_steps, tmp_path / 'run')
    report = evaluate([bag], policy, ALOHA, SETTINGS)
    [row] = report['episodes']
    control = row['control']
    grid = load_episode(bag, ALOHA, policy.config, SETTINGS).aligned.grid
    operator_s = (changes[3][0] - changes[2][0] + grid[-1] - changes[5][0]) / 1e9
    assert control['from'] == 'topic' and control['takeovers'] == 2
    assert control['operator_s'] == pytest.approx(operator_s, abs=1e-3)
    assert [entry['source'] for entry in control['intervals']] == [s for _, s in SWITCHES]
    assert control['intervals'][1]['start_s'] == pytest.approx(
        (changes[1][0] - grid[0]) / 1e9, abs=1e-3)  # seconds on the plots' axis
    parts = row['policy']['by_control']
    assert parts['policy']['l1_step0'] == pytest.approx(0.0, abs=1e-5)
    assert parts['operator']['l1_step0'] == pytest.approx(np.abs(OFFSET).mean(), abs=1e-5)
    assert parts['machine']['l1_step0'] == pytest.approx(np.abs(OFFSET).mean() / 2, abs=1e-5)
    assert sum(part['samples'] for part in parts.values()) == row['policy']['samples']
    assert min(part['samples'] for part in parts.values()) >= 3 * CHUNK
    assert set(row['hold']['by_control']) == {'policy', 'operator', 'machine'}
    assert report['aggregate']['control'] == {'episodes_with_information': 1, 'takeovers': 2,
                                              'operator_s': control['operator_s']}
    assert control['line'].startswith(f"run: 2 takeover(s), {control['operator_s']:.2f} s "
                                      'under the operator (from the topic)')
    assert '2 takeover(s)' in report['summary_line']
    # The joint plot shades the two handovers and the two operator intervals in every panel.
    spans = report['_plots']['episodes'][0]['control_spans']
    assert [source for source, _, _ in spans] == [H, OP, H, OP]
    from matplotlib import pyplot

    figure = joint_figure(pyplot, report['_plots']['episodes'][0], report['dimension_names'],
                          report['gripper_dims'])
    try:
        panels = [axis for axis in figure.axes if axis.lines]
        assert len(panels) == ALOHA.action_dim
        assert all(len(axis.patches) == 4 for axis in panels)
        labels = [text.get_text() for text in figure.legends[0].get_texts()]
        assert labels.count(CONTROL_SPANS[OP][1]) == 1 and CONTROL_SPANS[H][1] in labels
    finally:
        pyplot.close(figure)


def test_the_sidecar_intervals_come_first(policy, first_steps, tmp_path):
    log = ControlLog()  # the recorder's: its summary is the sidecar's control entry
    _, changes = takeover_bag(first_steps, tmp_path / 'probe')
    for time_ns, source in changes:
        log.update(time_ns, source)
    stop_ns = first_steps[-1][0] + 20_000_000
    sidecar = {'start_time_ns': T0, 'stop_time_ns': stop_ns, 'control': log.summary(T0, stop_ns)}
    bag, _ = takeover_bag(first_steps, tmp_path / 'run', sidecar=sidecar)
    report = evaluate([bag], policy, ALOHA, SETTINGS)
    [row] = report['episodes']
    assert row['control']['from'] == 'sidecar'
    assert row['control']['operator_s'] == sidecar['control']['operator_s']
    assert row['control']['takeovers'] == 2
    assert row['policy']['by_control']['operator']['l1_step0'] == pytest.approx(
        np.abs(OFFSET).mean(), abs=1e-5)


def test_a_recorder_written_takeover_bag(policy, tmp_path):
    sources = [P] * 15 + [H] * 3 + [OP] * 12 + [P] * 10
    episode = record_takeover_bag(tmp_path, sources, name='runs')
    recorded = read_episode_metadata(episode.path)['control']
    report = evaluate([episode.path], policy, ALOHA, SETTINGS)
    [row] = report['episodes']
    assert row['control']['from'] == 'sidecar'
    assert (row['control']['takeovers'], row['control']['operator_s']) == (
        recorded['takeovers'], recorded['operator_s']) == (1, 0.24)
    parts = row['policy']['by_control']
    assert parts['operator']['samples'] > 0 and parts['policy']['samples'] > 0


def test_cli_prints_reports_and_views_takeovers_and_a_bag_without_them(
        policy, first_steps, tmp_path, capsys, monkeypatch):
    bags = tmp_path / 'bags'
    _, changes = takeover_bag(first_steps, bags / 'a_run')
    write_episode(bags / 'b_demo', ALOHA, leader_actions=True, seconds=1.0)
    monkeypatch.setattr(replay_eval, 'load_policy', lambda *args, **kwargs: policy)
    output = tmp_path / 'report'
    assert replay_eval.main(['--bag', str(bags), '--checkpoint', 'unused', '--output',
                             str(output), '--no_progress', '--rerun']) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((output / 'metrics.json').read_text())
    run, demo = metrics['episodes']
    assert f'vla-adapter-replay-eval: {run["control"]["line"]}' in printed
    assert 'vla-adapter-replay-eval: b_demo: no takeover information' in printed
    assert run['control']['takeovers'] == 2 and run['control']['operator_s'] > 0.3
    assert demo['control'] == {'from': None, 'takeovers': None, 'operator_s': None,
                               'intervals': [], 'line': demo['control']['line']}
    # Without takeover information every step counts as the demonstrator's (policy part).
    assert demo['policy']['by_control']['policy']['samples'] == demo['policy']['samples']
    assert demo['policy']['by_control']['operator']['l1'] is None
    assert metrics['aggregate']['control']['episodes_with_information'] == 1
    page = (output / 'report.html').read_text()
    assert '<h2>Takeovers</h2>' in page and 'b_demo: no takeover information' in page
    assert 'a_run: 2 takeover(s)' in page
    # The Rerun view logs the control source at every change; none for the demonstration.
    logged = rrd_entities(output / 'rerun' / 'a_run.rrd')['/status/control']
    assert [row[0] for row in logged['TextLog:text']] == [source for _, source in changes]
    assert logged['ros_time'] == [time_ns for time_ns, _ in changes]
    assert '/status/control' not in rrd_entities(output / 'rerun' / 'b_demo.rrd')
