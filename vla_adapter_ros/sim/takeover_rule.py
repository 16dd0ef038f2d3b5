"""When the simulated operator (the corrective expert) takes over and hands back (no rclpy).

The simulator's stand-in for the operator's judgement in an HG-DAgger episode. Per control step
of a running episode the MuJoCo node tells :class:`TakeoverRule` how far the followers are from
the expert's plan (largest arm-joint difference, rad) and whether the executor reports the
operator in control; the rule answers with a request for the executor's real takeover endpoint
(``TAKE_OVER``, ``HAND_BACK``) or ``None``.

Rules (``TakeoverRuleConfig.rule``):
- ``divergence``: take over once the divergence stayed above ``threshold_rad`` for
  ``divergence_steps`` consecutive steps (after ``first_step``);
- ``schedule``: take over at ``first_step`` and then every ``every_steps`` (0: once);
- ``none``: never ask (the leaders are published; someone else decides).
Either way the operator's segment lasts ``operator_steps`` steps from the takeover request,
then the rule hands back; at most ``max_takeovers`` segments per episode. Everything counts
control steps of the simulated clock, so the same seed gives the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from vla_adapter_ros.params.mujoco_sim_config import TAKEOVER_RULES

TAKE_OVER, HAND_BACK = 'take_over', 'hand_back'


@dataclass(frozen=True)
class TakeoverRuleConfig:
    """Settings of the simulated operator's takeover rule (from MujocoSimConfig)."""

    rule: str = 'divergence'  # which trigger decides (TAKEOVER_RULES)
    threshold_rad: float = 0.3  # divergence: follower vs plan, largest arm joint (rad)
    divergence_steps: int = 10  # divergence: so many steps in a row above the threshold
    first_step: int = 25  # no takeover before this step (the policy gets a chance)
    every_steps: int = 0  # schedule: period between takeovers (0: only at first_step)
    operator_steps: int = 100  # the operator's segment, steps from the takeover request
    max_takeovers: int = 1  # segments per episode (the rest of it is the policy's)

    def __post_init__(self) -> None:
        if self.rule not in TAKEOVER_RULES:
            raise ValueError(f'TakeoverRuleConfig.rule={self.rule!r}: not one of '
                             f'{TAKEOVER_RULES}')
        if not (math.isfinite(self.threshold_rad) and self.threshold_rad > 0.0):
            raise ValueError(f'TakeoverRuleConfig.threshold_rad={self.threshold_rad!r}: must '
                             'be finite and > 0')
        for name, low in (('divergence_steps', 1), ('first_step', 0), ('every_steps', 0),
                          ('operator_steps', 1), ('max_takeovers', 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f'TakeoverRuleConfig.{name}={value!r}: must be an int >= {low}')
        if self.rule == 'schedule' and 0 < self.every_steps <= self.operator_steps:
            raise ValueError(f'TakeoverRuleConfig.every_steps={self.every_steps}: must exceed '
                             f'operator_steps={self.operator_steps} (segments would overlap)')


def rule_config_from(config) -> TakeoverRuleConfig:
    """The rule's settings from a ``MujocoSimConfig`` (its takeover parameters)."""
    return TakeoverRuleConfig(
        rule=config.takeover_rule, threshold_rad=config.takeover_threshold_rad,
        divergence_steps=config.takeover_divergence_steps, first_step=config.takeover_first_step,
        every_steps=config.takeover_every_steps, operator_steps=config.operator_steps,
        max_takeovers=config.max_takeovers)


class TakeoverRule:
    """Counts steps and divergence; says when to request a takeover and a hand-back."""

    def __init__(self, config: TakeoverRuleConfig) -> None:
        """A rule for episodes to come; :meth:`reset` before each."""
        self.config = config
        self.reset()

    def reset(self) -> None:
        """A new episode: the policy in control, no segment yet."""
        self.engaged_at: int | None = None  # step of the running segment's request
        self.takeovers = 0
        self._above = 0  # consecutive steps above the threshold
        self.operator_step_count = 0  # steps spent in an operator segment this episode

    @property
    def engaged(self) -> bool:
        """Whether an operator segment is running (requested and not yet handed back)."""
        return self.engaged_at is not None

    def update(self, step: int, divergence: float) -> str | None:
        """Step ``step`` of the episode with the followers ``divergence`` rad off the plan.

        Returns ``TAKE_OVER`` or ``HAND_BACK`` when the executor should be asked, else None.
        """
        config = self.config
        if self.engaged_at is not None:
            self.operator_step_count += 1
            if step - self.engaged_at >= config.operator_steps:
                self.engaged_at = None
                self._above = 0
                return HAND_BACK
            return None
        self._above = self._above + 1 if divergence > config.threshold_rad else 0
        if self.takeovers >= config.max_takeovers or step < config.first_step:
            return None
        if self._due(step):
            self.engaged_at = step
            self.takeovers += 1
            return TAKE_OVER
        return None

    def _due(self, step: int) -> bool:
        config = self.config
        if config.rule == 'divergence':
            return self._above >= config.divergence_steps
        if config.rule == 'schedule':
            since = step - config.first_step
            return since == 0 or (config.every_steps > 0 and since % config.every_steps == 0)
        return False
