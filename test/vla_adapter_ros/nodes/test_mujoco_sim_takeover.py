"""The MuJoCo node's corrective-expert mode over real DDS: takeover and hand-back, repeatable.

The real nodes of sim-eval (inference with a tiny random policy, chunk executor, MuJoCo ALOHA on
the sim clock); the simulator publishes the expert's plan as the leader arms' joint_states and
its schedule rule asks the executor's ~/takeover service, so the executor's own takeover path
moves the followers.
"""

import dataclasses

import numpy as np
import pytest

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.tools import sim_eval
from vla_adapter_ros.tools.showcase import demo_policy

STEPS = 40
TAKEOVER_STEP, OPERATOR_STEPS = 5, 20
EXPERT = {'simulator': {'corrective_expert': True, 'takeover_rule': 'schedule',
                        'takeover_first_step': TAKEOVER_STEP, 'operator_steps': OPERATOR_STEPS},
          # The sim clock waits for chunks; a loaded machine must not make the leaders stale.
          'executor': {'leader_stale_s': 60.0}}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp('sim_takeover') / 'policy'
    demo_policy(load_robot_description('aloha_sim'), chunk_size=10).save_pretrained(directory)
    return directory


def test_expert_takes_over_and_hands_back_through_the_executor_repeatably(checkpoint, tmp_path):
    config = dataclasses.replace(sim_eval.SimEvalConfig(checkpoint=str(checkpoint)),
                                 episode_steps=STEPS, image_height=32, image_width=32)
    plain = sim_eval.run_policy_episodes(config, tmp_path / 'plain', [1000])
    result = sim_eval.run_policy_episodes(config, tmp_path / 'expert', [1000, 1000], EXPERT)
    assert not result['exited_early'] and not result['faults'] and not plain['faults']
    first, again = result['episodes']
    for episode in (first, again):
        assert episode['steps'] == STEPS
        sources = episode['control_sources']
        # Granted (handover to the leaders' pose), then the operator, then the policy again.
        assert 'handover' in sources and 'operator' in sources, sources
        assert sources[-1] == 'policy' and sources.index('operator') > sources.index('handover')
    np.testing.assert_array_equal(first['final_state'], again['final_state'])  # same seed
    # The expert moved the arms where the policy alone did not take them.
    assert np.abs(np.subtract(first['final_state'],
                              plain['episodes'][0]['final_state'])).max() > 1e-3
