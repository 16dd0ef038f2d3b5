"""The MuJoCo node's corrective-expert parameters: validated, one line naming the parameter."""

import pytest

from vla_adapter_ros.params.mujoco_sim_config import MujocoSimConfig
from vla_adapter_ros.sim.takeover_rule import rule_config_from


def test_the_expert_parameters_build_the_takeover_rule():
    config = MujocoSimConfig.from_dict({'clock': 'sim', 'corrective_expert': True,
                                        'takeover_rule': 'schedule', 'takeover_first_step': 7,
                                        'takeover_every_steps': 150, 'operator_steps': 40})
    rule = rule_config_from(config)
    assert (rule.rule, rule.first_step, rule.every_steps, rule.operator_steps) == (
        'schedule', 7, 150, 40)
    assert config.takeover_service == '/chunk_executor/takeover'


@pytest.mark.parametrize('values, message', [
    ({'corrective_expert': True}, "parameter corrective_expert=True: needs clock 'sim'"),
    ({'clock': 'sim', 'corrective_expert': True, 'task': 'insertion'},
     'knows transfer_cube only'),
    ({'clock': 'sim', 'takeover_rule': 'schedule', 'takeover_every_steps': 50,
      'operator_steps': 100}, 'parameter takeover_every_steps=50: must exceed operator_steps'),
    ({'takeover_rule': 'often'}, 'takeover_rule'),
])
def test_bad_expert_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        MujocoSimConfig.from_dict(values)
