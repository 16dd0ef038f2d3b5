"""The simulated operator's takeover rule: divergence, schedule, segments, validation."""

import pytest

from vla_adapter_ros.sim.takeover_rule import (
    HAND_BACK,
    TAKE_OVER,
    TakeoverRule,
    TakeoverRuleConfig,
)


def _run(rule: TakeoverRule, divergences: list[float]) -> dict[int, str]:
    """Requests by step for a divergence per step."""
    requests = {}
    for step, divergence in enumerate(divergences):
        request = rule.update(step, divergence)
        if request is not None:
            requests[step] = request
    return requests


def test_divergence_must_last_before_the_expert_takes_over():
    rule = TakeoverRule(TakeoverRuleConfig(rule='divergence', threshold_rad=0.3,
                                           divergence_steps=3, first_step=0, operator_steps=5))
    # A two-step spike is forgiven; three steps in a row above 0.3 rad trigger at the third.
    divergences = [0.0, 0.5, 0.5, 0.1, 0.4, 0.4, 0.4] + [1.0] * 10
    assert _run(rule, divergences) == {6: TAKE_OVER, 11: HAND_BACK}
    assert rule.takeovers == 1 and not rule.engaged
    assert rule.operator_step_count == 5


def test_divergence_before_the_first_step_waits_for_it():
    rule = TakeoverRule(TakeoverRuleConfig(rule='divergence', divergence_steps=2, first_step=10,
                                           operator_steps=3, max_takeovers=2))
    requests = _run(rule, [1.0] * 30)
    # At step 10 the divergence has lasted long enough; after the hand-back it must build up
    # again (2 steps) before the second segment; then max_takeovers ends it.
    assert requests == {10: TAKE_OVER, 13: HAND_BACK, 15: TAKE_OVER, 18: HAND_BACK}


def test_schedule_takes_over_at_fixed_steps_whatever_the_divergence():
    rule = TakeoverRule(TakeoverRuleConfig(rule='schedule', first_step=4, every_steps=10,
                                           operator_steps=3, max_takeovers=3))
    assert _run(rule, [0.0] * 40) == {4: TAKE_OVER, 7: HAND_BACK, 14: TAKE_OVER,
                                      17: HAND_BACK, 24: TAKE_OVER, 27: HAND_BACK}


def test_rule_none_never_asks_and_reset_starts_a_new_episode():
    assert _run(TakeoverRule(TakeoverRuleConfig(rule='none', first_step=0)), [9.0] * 50) == {}
    rule = TakeoverRule(TakeoverRuleConfig(rule='schedule', first_step=0, operator_steps=100))
    assert rule.update(0, 0.0) == TAKE_OVER and rule.engaged
    rule.reset()
    assert not rule.engaged and rule.takeovers == 0
    assert rule.update(0, 0.0) == TAKE_OVER  # the new episode's segment


@pytest.mark.parametrize('field, value', [
    ('rule', 'sometimes'), ('threshold_rad', 0.0), ('threshold_rad', float('nan')),
    ('divergence_steps', 0), ('operator_steps', 0), ('max_takeovers', 0), ('first_step', -1)])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=f'TakeoverRuleConfig.{field}='):
        TakeoverRuleConfig(**{field: value})


def test_overlapping_schedule_is_refused():
    with pytest.raises(ValueError, match='every_steps=50: must exceed operator_steps=100'):
        TakeoverRuleConfig(rule='schedule', every_steps=50, operator_steps=100)

