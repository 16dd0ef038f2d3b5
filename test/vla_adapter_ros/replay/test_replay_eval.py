"""Offline replay evaluation on real rosbag2 bags (mcap and sqlite3) with a real tiny policy.

Known errors: a bag whose actions are the policy's own first chunk step at every observation
("the policy in the loop") gives a step-0 error of 0, and the same bag with a per-dimension
offset added gives exactly that offset; the full-horizon numbers are checked against a hand
computation from the bag's own action messages. The CLI writes a report whose HTML parses and
whose PNGs open; every bad bag is one line naming it, exit status 2 and no report.
"""

import dataclasses
from html.parser import HTMLParser
import json
import pathlib

from inference_harness import statistics_around_the_start_pose, tiny_policy_for  # noqa: E402
import numpy as np
from PIL import Image
import pytest
from replay_bags import BagWriter, write_episode  # noqa: E402
import torch
import yaml

from training.data_config import DatasetConfig
from training.episodes import EpisodeError
from training.rosbag_episodes import RosbagAligner
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.replay import replay_config, replay_eval
from vla_adapter_ros.replay.bag_episodes import find_bags, load_episode
from vla_adapter_ros.replay.replay_config import ReplayEvalConfig
from vla_adapter_ros.replay.replay_eval import evaluate

ALOHA = load_robot_description('aloha')
CHUNK = 6
DT = 1.0 / ALOHA.control_rate_hz
SETTINGS = ReplayEvalConfig(bag='', progress=False, executed_latency_s=0.0)


@pytest.fixture(scope='module')
def policy():
    return tiny_policy_for(ALOHA, chunk_size=CHUNK, seed=3,
                           statistics=statistics_around_the_start_pose(ALOHA))


def first_actions(policy, bag: pathlib.Path) -> list:
    """(observation stamp, first chunk step) at every inference point of ``bag``."""
    episode = load_episode(bag, ALOHA, policy.config, SETTINGS)
    run = replay_eval.replay_episode(episode, policy, ALOHA, SETTINGS)
    return [(stamp, chunk[0]) for stamp, chunk in zip(run.stamps_ns, run.predicted)]


def policy_in_the_loop_bag(policy, folder: pathlib.Path, storage: str,
                           offset: np.ndarray) -> pathlib.Path:
    """A bag whose /commanded_action is the policy's first step (+ offset) at each observation."""
    probe = write_episode(folder / 'probe', ALOHA, storage=storage, leader_actions=True)
    actions = [(stamp, action + offset) for stamp, action in first_actions(policy, probe)]
    return write_episode(folder / f'loop_{storage}', ALOHA, storage=storage, actions=actions)


def hand_computed(policy, bag: pathlib.Path) -> dict:
    """The policy's and hold's L1 from the bag's own action messages, by hand."""
    episode = load_episode(bag, ALOHA, policy.config, SETTINGS)
    run = replay_eval.replay_episode(episode, policy, ALOHA, SETTINGS)
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        typestore = RosbagAligner(bag, DatasetConfig(paths=[str(bag)])).typestore
        rows = [(time_ns, np.asarray(typestore.deserialize_cdr(raw, c.msgtype).data))
                for c, time_ns, raw in reader.messages()
                if c.topic == '/commanded_action']
    times = np.array([t for t, _ in rows])
    values = np.stack([v for _, v in rows])
    grid = episode.aligned.grid
    errors, hold, by_step = [], [], {k: [] for k in range(CHUNK)}
    for stamp, chunk, proprio in zip(run.stamps_ns, run.predicted, run.proprio):
        first = next(i for i, g in enumerate(grid) if g >= stamp)
        for k in range(CHUNK):
            if first + k >= len(grid):
                break
            latest = values[np.flatnonzero(times <= grid[first + k])[-1]]  # zero-order hold
            error = np.abs(chunk[k] - latest.astype(np.float32))
            errors.append(error)
            by_step[k].append(error.mean())
            hold.append(np.abs(proprio - latest.astype(np.float32)))
    return {'l1': np.mean(errors), 'l1_per_dim': np.mean(errors, axis=0),
            'l1_by_step': [np.mean(by_step[k]) for k in range(CHUNK)],
            'hold': np.mean(hold), 'samples': len(errors)}


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_policy_in_the_loop_has_zero_error_and_an_offset_is_measured_exactly(
        policy, tmp_path, storage):
    offset = np.linspace(-0.05, 0.08, ALOHA.action_dim)
    exact = policy_in_the_loop_bag(policy, tmp_path, storage, np.zeros(ALOHA.action_dim))
    shifted = policy_in_the_loop_bag(policy, tmp_path / 'shifted', storage, offset)
    for bag, expected_step0 in ((exact, np.zeros(ALOHA.action_dim)), (shifted, np.abs(offset))):
        report = evaluate([bag], policy, ALOHA, SETTINGS)
        [row] = report['episodes']
        assert row['inference_points'] > 30 and row['action_source'] == 'topic /commanded_action'
        # Step 0 of every chunk is what was recorded (+ offset): float32 rounding only.
        step0 = np.array(row['policy']['l1_step0'])
        assert step0 == pytest.approx(expected_step0.mean(), abs=1e-5)
        hand = hand_computed(policy, bag)
        assert row['policy']['samples'] == hand['samples']
        assert row['policy']['l1'] == pytest.approx(hand['l1'], abs=1e-6)
        np.testing.assert_allclose(row['policy']['l1_per_dim'], hand['l1_per_dim'], atol=1e-6)
        np.testing.assert_allclose(row['policy']['l1_by_step'], hand['l1_by_step'], atol=1e-6)
        assert row['hold']['l1'] == pytest.approx(hand['hold'], abs=1e-6)
        assert row['mean_demo']['l1'] == pytest.approx(0.0, abs=1e-7)  # one bag: itself
        executed = row['executed']
        assert executed['samples'] > 40 and executed['rejected_chunks'] == 0
        assert np.isfinite(executed['l1']) and executed['holding_fraction'] < 0.2
    per_dim_step0 = evaluate([shifted], policy, ALOHA, SETTINGS)
    assert per_dim_step0['aggregate']['policy']['l1_step0'] == pytest.approx(
        np.abs(offset).mean(), abs=1e-5)


def test_hold_and_mean_baselines_against_leader_actions(policy, tmp_path):
    """Two leader-action bags (one compressed, one shifted in time): baselines by hand."""
    first = write_episode(tmp_path / 'bags' / 'a', ALOHA, leader_actions=True, seconds=1.0)
    write_episode(tmp_path / 'bags' / 'b', ALOHA, leader_actions=True, seconds=1.2,
                  compressed=True, storage='sqlite3', time_shift_ns=400_000_000)
    report = evaluate(find_bags(tmp_path / 'bags'), policy, ALOHA, SETTINGS)
    assert [row['name'] for row in report['episodes']] == ['a', 'b']
    assert all(row['action_source'] == 'leader_joint_states' for row in report['episodes'])
    episodes = [load_episode(path, ALOHA, policy.config, SETTINGS)
                for path in find_bags(tmp_path / 'bags')]
    # mean_demo: the mean of both bags' actions per grid index; bag b is bag a shifted by
    # 0.4 s, so the mean differs from each and its error is not 0.
    a, b = (episode.aligned.actions.astype(np.float64) for episode in episodes)
    length = min(len(a), len(b))
    assert report['aggregate']['mean_demo']['l1'] > 0.01
    assert np.abs((a[:length] + b[:length]) / 2 - a[:length]).mean() > 0.01
    aggregate = report['aggregate']
    points = sum(row['inference_points'] for row in report['episodes'])
    assert aggregate['inference_points'] == points
    weights = [row['policy']['samples'] for row in report['episodes']]
    assert aggregate['policy']['l1'] == pytest.approx(np.average(
        [row['policy']['l1'] for row in report['episodes']], weights=weights), rel=1e-9)
    assert first.exists() and 0.0 <= aggregate['policy']['gripper_agreement'] <= 1.0
    assert aggregate['latency']['p50_ms'] > 0 and aggregate['latency']['count'] == points


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.tables, self.open = [], 0, []

    def handle_starttag(self, tag, attrs):
        self.open.append(tag)
        if tag == 'img':
            self.images.append(dict(attrs)['src'])
        self.tables += tag == 'table'


def test_cli_writes_a_complete_report_for_a_discrete_head(tmp_path, capsys):
    checkpoint = tmp_path / 'checkpoint'
    tiny_policy_for(ALOHA, chunk_size=CHUNK, head_kind='discrete', n_action_bins=32,
                    statistics=statistics_around_the_start_pose(ALOHA)).save_pretrained(
        checkpoint)
    write_episode(tmp_path / 'bags' / 'ep0', ALOHA, leader_actions=True, seconds=1.0)
    write_episode(tmp_path / 'bags' / 'ep1', ALOHA, leader_actions=True, seconds=0.8,
                  storage='sqlite3')
    output = tmp_path / 'report'
    status = replay_eval.main(['--bag', str(tmp_path / 'bags'), '--checkpoint', str(checkpoint),
                               '--output', str(output), '--no_progress', '--stride', '2',
                               '--threads', '1', '--batch_size', '3'])
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((output / 'metrics.json').read_text())
    assert metrics['settings']['threads'] == 1
    assert metrics['checkpoint']['config']['action_head']['kind'] == 'discrete'
    assert 'git_revision' in metrics and [b['name'] for b in metrics['bags']] == ['ep0', 'ep1']
    assert all(len(bag['sha256']) == 16 for bag in metrics['bags'])
    accuracy = metrics['aggregate']['policy']['bin_accuracy']
    assert accuracy is not None and 0.0 <= accuracy <= 1.0
    assert len(metrics['aggregate']['policy']['l1_by_step']) == CHUNK
    assert metrics['settings']['stride'] == 2
    assert metrics['aggregate']['batching']['batch_size'] == 3
    page = _Page()
    html = (output / 'report.html').read_text()
    assert 'Predicted 3 observations per call' in html
    page.feed(html)
    assert page.tables >= 3 and len(page.images) == len(metrics['plots']) >= 4
    assert all(src.startswith('data:image/png;base64,') for src in page.images)
    for name in metrics['plots']:
        with Image.open(output / name) as image:
            image.verify()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bags', 'checkpoint', 'report']


def _copy(source: pathlib.Path, target: pathlib.Path, change) -> pathlib.Path:
    """Copy a bag message by message (every connection, even one left without messages).

    ``change(topic, msgtype, message)`` -> (msgtype, message), or None to drop the message.
    """
    from rosbags.rosbag2 import Reader

    writer = BagWriter(target)
    with Reader(source) as reader:
        for connection in reader.connections:
            writer.connections[connection.topic] = writer.writer.add_connection(
                connection.topic, connection.msgtype, typestore=writer.typestore)
        for connection, time_ns, raw in reader.messages():
            message = writer.typestore.deserialize_cdr(raw, connection.msgtype)
            changed = change(connection.topic, connection.msgtype, message)
            if changed is not None:
                writer._write(connection.topic, *changed, time_ns)
    writer.close()
    return target


def _truncated(tmp_path):
    bag = write_episode(tmp_path / 'bag', ALOHA, leader_actions=True)
    storage = next(bag.glob('*.mcap'))
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
    return bag, f'{bag}: bag: '


def _missing_topic(tmp_path):
    """The right wrist camera is missing from a bag of compressed images."""
    return write_episode(tmp_path / 'bag', ALOHA, leader_actions=True, compressed=True,
                         cameras=['cam_high', 'cam_left_wrist']), (
        '/cam_right_wrist/camera/color/image_rect_raw (nor /cam_right_wrist/camera/color/'
        'image_rect_raw/compressed): topic missing')


def _wrong_type(tmp_path):
    """The right-wrist camera topic carries Float64MultiArray."""
    writer = BagWriter(tmp_path / 'bag')
    source = write_episode(tmp_path / 'ok', ALOHA, leader_actions=True, seconds=0.5)
    wrong = ALOHA.camera_topic.format(camera='cam_right_wrist')
    from rosbags.rosbag2 import Reader

    with Reader(source) as reader:
        for connection, time_ns, raw in reader.messages():
            if connection.topic == wrong:
                writer.float_array(wrong, time_ns, [0.0])
            else:
                message = writer.typestore.deserialize_cdr(raw, connection.msgtype)
                writer._write(connection.topic, connection.msgtype, message, time_ns)
    writer.close()
    return tmp_path / 'bag', 'message type std_msgs/msg/Float64MultiArray'


def _no_observation(tmp_path):
    """Images in an encoding the node cannot convert: aligned fine, never an observation."""
    source = write_episode(tmp_path / 'ok', ALOHA, leader_actions=True, seconds=0.5)

    def change(topic, msgtype, message):
        if msgtype == 'sensor_msgs/msg/Image':
            message.encoding = '16UC1'
        return msgtype, message

    return _copy(source, tmp_path / 'bag', change), 'no complete observation'


def _zero_length(tmp_path):
    source = write_episode(tmp_path / 'ok', ALOHA, leader_actions=True, seconds=0.5)
    return _copy(source, tmp_path / 'bag', lambda *args: None), 'no messages'


def _other_robot(tmp_path):
    wx250 = load_robot_description('wx250s')
    bag = write_episode(tmp_path / 'bag', wx250, actions=[(10**18, np.zeros(7))])
    return bag, 'topic missing'


def _other_robot_sidecar(tmp_path):
    bag = write_episode(tmp_path / 'bag', ALOHA, leader_actions=True, sidecar={
        'robot': load_robot_description('wx250s').summary()})
    return bag, ("recorded on robot 'wx250s', whose layout differs from 'aloha': "
                 'action_names: bag 7 dims')


BAD_BAGS = {'truncated': _truncated, 'missing_topic': _missing_topic, 'wrong_type': _wrong_type,
            'no_observation': _no_observation, 'zero_length': _zero_length,
            'other_robot': _other_robot, 'other_robot_sidecar': _other_robot_sidecar}


@pytest.mark.parametrize('case', sorted(BAD_BAGS))
def test_bad_bag_is_one_line_naming_it_and_no_report(policy, tmp_path, capsys, monkeypatch,
                                                     case):
    bag, problem = BAD_BAGS[case](tmp_path)
    monkeypatch.setattr(replay_eval, 'load_policy', lambda *args, **kwargs: policy)
    output = tmp_path / 'report'
    status = replay_eval.main(['--bag', str(bag), '--checkpoint', 'unused', '--output',
                               str(output), '--no_progress'])
    error = capsys.readouterr().err.strip()
    assert status == 2, error
    assert error.startswith('vla-adapter-replay-eval: error: ') and '\n' not in error
    assert str(bag) in error and problem in error, error
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.report')]


def test_sidecar_of_the_same_robot_and_recorder_action_source_are_used(policy, tmp_path):
    metadata = {'robot': ALOHA.summary(), 'recorder': {'action_source': 'leader_joint_states'}}
    bag = write_episode(tmp_path / 'bag', ALOHA, leader_actions=True, sidecar=metadata,
                        instruction=None)
    with pytest.raises(ValueError, match='instruction'):
        evaluate([bag], policy, ALOHA, SETTINGS)
    (bag / 'episode_metadata.yaml').write_text(yaml.safe_dump({**metadata,
                                                               'instruction': 'pick it up'}))
    report = evaluate([bag], policy, ALOHA, SETTINGS)
    assert report['episodes'][0]['instruction'] == 'pick it up'


def test_batched_prediction_gives_the_single_call_report_and_probes_latency(policy, tmp_path):
    bag = write_episode(tmp_path / 'bag', ALOHA, leader_actions=True, seconds=1.0)
    single = evaluate([bag], policy, ALOHA, SETTINGS)
    measured = dataclasses.replace(SETTINGS, executed_latency_s=None, batch_size=4)
    batched = evaluate([bag], policy, ALOHA, measured)
    [one], [many] = single['episodes'], batched['episodes']
    points = one['inference_points']
    assert points > 8 and many['inference_points'] == points
    for predictor in ('policy', 'hold', 'mean_demo'):
        assert many[predictor]['samples'] == one[predictor]['samples']
        np.testing.assert_allclose(many[predictor]['l1_per_dim'], one[predictor]['l1_per_dim'],
                                   atol=1e-5)
    batching = batched['aggregate']['batching']
    assert batching['batch_size'] == 4 and batching['calls'] == -(-points // 4)
    assert batching['observations_per_s'] > 0
    assert batching['max_abs_batched_vs_single'] < 1e-5
    # Latencies are single-observation probes on the first batches, and the executed view
    # delays every chunk by their median.
    assert many['latency']['count'] == replay_config.LATENCY_PROBES
    assert many['executed']['latency'] == 'median of single-call probes'
    assert many['executed']['samples'] > 40 and many['executed']['rejected_chunks'] == 0
    assert single['aggregate']['batching'] is None


class _BrokenPolicy:
    """The real tiny policy whose batched chunks are NaN, or whose calls raise."""

    def __init__(self, policy, fault: str) -> None:
        self.policy, self.fault, self.config = policy, fault, policy.config

    def predict_action_chunk(self, observation):
        return self.policy.predict_action_chunk(observation)

    def predict_action_chunk_batch(self, observations):
        if self.fault == 'raises':
            raise RuntimeError('CUDA out of memory (made up)')
        return np.full_like(self.policy.predict_action_chunk_batch(observations), np.nan)


def test_a_failing_policy_is_named_as_such_not_as_a_damaged_bag(policy, tmp_path):
    bag = write_episode(tmp_path / 'bag', ALOHA, leader_actions=True, seconds=0.6)
    for batch_size in (3, 64):  # batches while the bag is read; one batch after its end
        batched = dataclasses.replace(SETTINGS, batch_size=batch_size)
        episode = load_episode(bag, ALOHA, policy.config, batched)
        with pytest.raises(EpisodeError, match=r': policy: its chunk for the observation at'):
            replay_eval.replay_episode(episode, _BrokenPolicy(policy, 'nan'), ALOHA, batched)
        with pytest.raises(RuntimeError, match='out of memory'):
            replay_eval.replay_episode(episode, _BrokenPolicy(policy, 'raises'), ALOHA, batched)


def test_batch_size_out_of_range_is_a_one_line_cli_error(tmp_path, capsys):
    for value in ('0', str(replay_config.MAX_BATCH_SIZE + 1)):
        status = replay_eval.main(['--bag', str(tmp_path), '--checkpoint', 'unused',
                                   '--output', str(tmp_path / 'report'), '--batch_size', value])
        error = capsys.readouterr().err.strip()
        assert status == 2 and error == (f'vla-adapter-replay-eval: error: --batch_size {value}: '
                                         f'must be 1 to {replay_config.MAX_BATCH_SIZE}')


def test_an_executed_view_of_rejected_chunks_says_so_everywhere(policy, tmp_path, capsys,
                                                                 monkeypatch):
    bag = write_episode(tmp_path / 'bag', ALOHA, leader_actions=True, seconds=3.0)
    # Every chunk arrives 0.5 s after its observation: its CHUNK steps (0.12 s) are past then.
    late = dataclasses.replace(SETTINGS, executed_latency_s=0.5)
    report = evaluate([bag], policy, ALOHA, late)
    executed = report['aggregate']['executed']
    row = report['episodes'][0]['executed']
    points = report['aggregate']['inference_points'] - row['chunks_after_end']
    assert row['chunks_after_end'] > 0  # the last 0.5 s of chunks arrive after the recording
    assert executed['chunks'] == points and executed['rejected_chunks'] == points
    assert executed['rejected_fraction'] == 1.0 and executed['rejections']
    assert report['executed_warning'].startswith(
        f'WARNING: the executed view is mostly "hold still": the executor rejected {points} '
        f'of {points} chunks (100 %)')
    assert f'({points} of {points} chunks rejected by the executor)' in report['summary_line']
    on_time = evaluate([bag], policy, ALOHA, SETTINGS)
    assert on_time['executed_warning'] == '' and on_time['aggregate']['executed'][
        'rejected_chunks'] == 0
    monkeypatch.setattr(replay_eval, 'load_policy', lambda *args, **kwargs: policy)
    threads = []  # the default is one thread: torch's one-per-core stalls on a busy machine
    monkeypatch.setattr(torch, 'set_num_threads', threads.append)
    output = tmp_path / 'report'
    assert replay_eval.main(['--bag', str(bag), '--checkpoint', 'unused', '--output',
                             str(output), '--no_progress', '--executed_latency_s', '0.5']) == 0
    assert threads == [1]
    printed = capsys.readouterr().out
    assert 'vla-adapter-replay-eval: WARNING: the executed view is mostly' in printed
    page = (output / 'report.html').read_text()
    assert '<p class="warning">WARNING: the executed view is mostly' in page


def test_a_bare_mcap_takes_its_instruction_from_the_instruction_topic(policy, tmp_path):
    folder = write_episode(tmp_path / 'bag', ALOHA, leader_actions=True, instruction=None,
                           instruction_topic='fold the towel')
    [mcap] = folder.glob('*.mcap')
    bare = tmp_path / 'episode.mcap'  # the file alone: no metadata.yaml, no custom data
    mcap.rename(bare)
    report = evaluate([bare], policy, ALOHA, SETTINGS)
    assert report['episodes'][0]['instruction'] == 'fold the towel'
