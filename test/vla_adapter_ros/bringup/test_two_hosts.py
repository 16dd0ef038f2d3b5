"""The split deployment (role:=robot / role:=policy) across an emulated network link.

Two network namespaces made by the test, joined by a veth pair shaped with tc (1 % loss, a
20 Mbit/s cap, then a 2 s outage); the robot side (kinematic ALOHA, executor, image compressor)
in one, the inference node with a tiny CPU policy in the other, over real DDS with
config/fastdds_two_hosts.xml (test/support/two_host_run.py). Nothing leaves the namespaces:
their only addresses are the test's own 10.203.X.1/.2, and they are deleted afterwards.
"""

import subprocess

from inference_harness import statistics_around_the_start_pose, tiny_policy_for
from netns_link import LinkProfile, namespaces_unavailable
import pytest
from two_host_run import RunPlan, run_two_hosts, summarise

from vla_adapter_core.robot_description import load_robot_description

UNAVAILABLE = namespaces_unavailable()
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE),
                                reason=f'network namespaces unavailable: {UNAVAILABLE}')
PLAN = RunPlan(LinkProfile('lossy 20 Mbit/s', loss_pct=1.0, rate_mbit=20.0), settle_s=3.0,
               outage_s=2.0, after_s=6.0)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    robot = load_robot_description('aloha')
    policy = tiny_policy_for(robot, chunk_size=50, head_kind='dual_arm', seed=6,
                             statistics=statistics_around_the_start_pose(robot))
    path = tmp_path_factory.mktemp('two_hosts_policy')
    policy.save_pretrained(path)
    return path


def _tail(result: dict) -> str:
    return '\n'.join(f'--- {name}\n{text[-1500:]}' for name, text in result['logs'].items())


def test_the_split_deployment_holds_through_an_outage_and_never_plays_a_late_chunk(
        tmp_path, checkpoint):
    result = run_two_hosts(tmp_path / 'run', checkpoint, PLAN)
    assert result['events']['running'], _tail(result)
    assert result['events']['probe_linked'], (result['policy'].get('discovery'), _tail(result))
    summary = summarise(result)
    # Safety: every command inside the joint limits, no step beyond the speed limit, also
    # when the executor resumes after the outage.
    assert summary['commands'] > 200, summary
    assert summary['commands_out_of_limits'] == 0, summary
    assert summary['jumps'] == 0, summary
    # The outage: the executor holds on the stale-chunk watchdog, then runs again.
    assert 'stale chunk' in summary['outage_reasons'], summary
    assert summary['recovered_after_s'] < 5.0 and summary['accepted_after_outage'] > 0, summary
    # A chunk that crosses the link too late (3 s old) is refused, never played.
    assert summary['late_chunk_outcomes'], summary
    assert all(outcome.startswith('rejected: chunk from the past')
               for outcome in summary['late_chunk_outcomes']), summary
    # The cameras crossed the link compressed (15 Hz sent; a loaded 2-core machine delivers
    # fewer), and chunks came back.
    assert summary['images_per_s'] > 5.0, summary
    assert summary['chunks'] > 10 and summary['chunk_age_p50_ms'] < 1000.0, summary
    for side, exits in result['exits'].items():
        assert set(exits.values()) == {0}, (side, exits, _tail(result))
    for name, text in result['logs'].items():
        assert 'Traceback' not in text, (name, text[-3000:])
    listed = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
    assert 'vla_r' not in listed and 'vla_p' not in listed, listed
