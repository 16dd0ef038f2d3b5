"""Success rates with their intervals, reward levels and paired comparisons (hand-derived)."""

import math

import numpy as np
import pytest

from vla_adapter_ros.sim import eval_scoring

Z = 1.959963984540054  # the two-sided 95 % normal quantile


def wilson_by_hand(successes: int, episodes: int) -> tuple[float, float]:
    rate = successes / episodes
    scale = 1 + Z * Z / episodes
    centre = (rate + Z * Z / (2 * episodes)) / scale
    half = Z / scale * math.sqrt(rate * (1 - rate) / episodes + Z * Z / (4 * episodes ** 2))
    return centre - half, centre + half


@pytest.mark.parametrize('successes, episodes', [(3, 40), (0, 5), (7, 50), (50, 50), (25, 50)])
def test_wilson_interval_matches_the_formula(successes, episodes):
    low, high = eval_scoring.wilson_interval(successes, episodes)
    expected_low, expected_high = wilson_by_hand(successes, episodes)
    assert low == pytest.approx(max(0.0, expected_low), abs=1e-9)
    assert high == pytest.approx(min(1.0, expected_high), abs=1e-9)


def test_the_issue_numbers():
    # 3/40 is "about 3-20 %" and 0/5 still allows 43 %.
    assert [round(100 * x) for x in eval_scoring.wilson_interval(3, 40)] == [3, 20]
    assert round(100 * eval_scoring.wilson_interval(0, 5)[1]) == 43


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match='episodes=0'):
        eval_scoring.wilson_interval(0, 0)
    with pytest.raises(ValueError, match='successes=6'):
        eval_scoring.wilson_interval(6, 5)


def test_summary_counts_each_reward_level_once():
    rewards = [[0, 1, 4, 2], [0, 2, 1], [], [3, 3], [0]]
    summary = eval_scoring.summarise(rewards)
    assert summary['episodes'] == 5 and summary['successes'] == 1
    assert summary['success_rate'] == 0.2
    assert summary['reward_levels'] == {'0': 2, '1': 0, '2': 1, '3': 1, '4': 1}
    assert summary['mean_max_reward'] == pytest.approx((4 + 2 + 0 + 3 + 0) / 5)
    assert summary['success_ci95'] == list(eval_scoring.wilson_interval(1, 5))


def test_paired_comparison_is_an_exact_mcnemar_test():
    policy = np.array([True] * 6 + [False] * 4 + [True] * 3)
    baseline = np.array([False] * 6 + [False] * 4 + [True] * 3)
    paired = eval_scoring.paired_comparison(policy, baseline)
    assert paired['policy_only'] == 6 and paired['baseline_only'] == 0
    assert paired['p_value'] == pytest.approx(2 * 0.5 ** 6)  # 0.03125
    same = eval_scoring.paired_comparison(policy, policy)
    assert same == {'policy_only': 0, 'baseline_only': 0, 'p_value': 1.0}
    with pytest.raises(ValueError, match='same seeds'):
        eval_scoring.paired_comparison(policy, baseline[:-1])


def test_verdicts_say_on_what_they_rest():
    def summary(successes, episodes=50):
        return eval_scoring.summarise([[4]] * successes + [[0]] * (episodes - successes))

    none = {'policy_only': 0, 'baseline_only': 0, 'p_value': 1.0}
    assert eval_scoring.verdict(summary(30), summary(4), none).startswith(
        'better (95 % intervals do not overlap)')
    assert eval_scoring.verdict(summary(4), summary(30), none).startswith('worse')
    paired = {'policy_only': 7, 'baseline_only': 0, 'p_value': 2 * 0.5 ** 7}
    assert eval_scoring.verdict(summary(11), summary(4), paired).startswith(
        'better (paired McNemar test')
    assert eval_scoring.verdict(summary(7), summary(4), none).startswith('no difference')
