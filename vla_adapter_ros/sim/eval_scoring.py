"""How sure a closed-loop success rate is: Wilson intervals, reward levels, paired comparisons.

Pure numpy/scipy. A rate is always reported with its 95 % Wilson score interval (scipy's
``binomtest(...).proportion_ci(method='wilson')``), and a claim that one controller beats
another on the same seeds needs either intervals that do not overlap or an exact McNemar test
over the seeds where the two disagree (``binomtest`` on the discordant pairs), p < 0.05.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest

from vla_adapter_ros.sim.task_facts import SUCCESS_REWARD

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # two-sided, for the paired test
REWARD_LEVELS = tuple(range(SUCCESS_REWARD + 1))  # gym-aloha's 0 .. 4


def wilson_interval(successes: int, episodes: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of ``successes`` out of ``episodes``."""
    if episodes <= 0:
        raise ValueError(f'episodes={episodes}: a rate needs at least one episode')
    if not 0 <= successes <= episodes:
        raise ValueError(f'successes={successes}: must be within 0..{episodes}')
    interval = binomtest(successes, episodes).proportion_ci(confidence_level=CONFIDENCE,
                                                            method='wilson')
    return float(interval.low), float(interval.high)


def max_rewards(rewards: Sequence[Sequence[float]]) -> np.ndarray:
    """(E,) the best reward each episode reached (0 for an empty episode)."""
    return np.array([max(sequence) if len(sequence) else 0.0 for sequence in rewards],
                    dtype=np.float64)


def reward_distribution(best: np.ndarray) -> dict[str, int]:
    """How many episodes reached each reward level at best: {'0': n0, ..., '4': n4}."""
    levels = np.clip(np.floor(best), 0, SUCCESS_REWARD).astype(int)
    return {str(level): int(np.sum(levels == level)) for level in REWARD_LEVELS}


def summarise(rewards: Sequence[Sequence[float]]) -> dict:
    """Success count, rate and its interval, mean / max of the max reward, reward levels."""
    best = max_rewards(rewards)
    successes = int(np.sum(best >= SUCCESS_REWARD))
    low, high = wilson_interval(successes, len(best))
    return {'episodes': int(len(best)), 'successes': successes,
            'success_rate': successes / len(best), 'success_ci95': [low, high],
            'mean_max_reward': float(best.mean()), 'max_reward': float(best.max()),
            'reward_levels': reward_distribution(best)}


def paired_comparison(policy: Sequence[bool], baseline: Sequence[bool]) -> dict:
    """Exact McNemar test of two success vectors over the same seeds.

    ``policy_only`` / ``baseline_only``: seeds only one of them solved; the two-sided p-value is
    that of ``policy_only`` successes in the discordant seeds under p = 1/2 (1.0 when none).
    """
    policy, baseline = np.asarray(policy, bool), np.asarray(baseline, bool)
    if policy.shape != baseline.shape:
        raise ValueError(f'paired comparison needs the same seeds: {policy.size} policy '
                         f'episodes against {baseline.size} baseline episodes')
    policy_only = int(np.sum(policy & ~baseline))
    baseline_only = int(np.sum(baseline & ~policy))
    discordant = policy_only + baseline_only
    p_value = float(binomtest(policy_only, discordant).pvalue) if discordant else 1.0
    return {'policy_only': policy_only, 'baseline_only': baseline_only, 'p_value': p_value}


def verdict(policy: dict, baseline: dict, paired: dict) -> str:
    """'better' / 'worse' / 'no difference' of the policy against a baseline, and on what.

    ``policy`` / ``baseline``: :func:`summarise` outputs; ``paired``: :func:`paired_comparison`.
    """
    policy_low, policy_high = policy['success_ci95']
    base_low, base_high = baseline['success_ci95']
    if policy_low > base_high:
        return 'better (95 % intervals do not overlap)'
    if policy_high < base_low:
        return 'worse (95 % intervals do not overlap)'
    if paired['p_value'] < SIGNIFICANCE:
        direction = 'better' if paired['policy_only'] > paired['baseline_only'] else 'worse'
        return (f'{direction} (paired McNemar test over the same seeds, '
                f'p = {paired["p_value"]:.3f})')
    return (f'no difference (intervals overlap; paired McNemar p = '
            f'{paired["p_value"]:.2f})')
