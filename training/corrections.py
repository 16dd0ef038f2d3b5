"""Training on corrections (HG-DAgger): which steps of a takeover recording become samples.

A policy run recorded with the chunk executor's control source (the bag topic
``training.bag_types.CONTROL_SOURCE_TOPIC``; see vla_adapter_ros/pipeline/takeover.py) says at
every moment who commanded the followers. Aligned to the episode grid it becomes one code per
step (:func:`control_codes`): the policy, the machine (the handover ramp to the leaders, or a
hold after a refused takeover) or the operator. The aligned-bag cache keeps the codes
(``training.episodes.CONTROL_KEY``); ordinary demonstrations have none, and every one of
their steps is a sample.

With ``DatasetConfig.takeover_samples='corrections'`` a takeover recording contributes
(:func:`correction_steps`):
- every step the operator commanded: the demonstration of what to do from the states the
  policy itself led to;
- the ``context`` steps before each takeover: their action chunks run into the correction, so
  the policy learns to turn away before the operator would have to step in.
The policy's own steps elsewhere are left out (they would teach its mistakes back), and so are
the machine's (a ramp or a hold is nobody's demonstration). ``TrainConfig.correction_repeat``
weights the selected steps by repeating them in every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.bag_types import CONTROL_OPERATOR, CONTROL_POLICY

POLICY, MACHINE, OPERATOR = 0, 1, 2  # the codes
TAKEOVER_SAMPLES = ('corrections', 'all')


def control_codes(stamps_ns: Sequence[int], sources: Sequence[str],
                  grid_ns: np.ndarray) -> np.ndarray:
    """The control source in force at every grid time, (T,) uint8 codes.

    ``stamps_ns`` / ``sources``: the recorded control-source messages in time order. Each grid
    step takes the latest message at or before it; steps before the first message count as the
    policy's (the executor publishes its source at least at its status rate).
    """
    codes = np.array([OPERATOR if source == CONTROL_OPERATOR else
                      POLICY if source == CONTROL_POLICY else MACHINE for source in sources],
                     dtype=np.uint8)
    if not len(codes):
        return np.full(len(grid_ns), POLICY, dtype=np.uint8)
    index = np.searchsorted(np.asarray(stamps_ns, dtype=np.int64), grid_ns, side='right') - 1
    return np.where(index >= 0, codes[np.maximum(index, 0)], POLICY).astype(np.uint8)


def takeover_starts(codes: np.ndarray) -> np.ndarray:
    """Steps where a takeover begins: the first non-policy step after a policy step, (K,)."""
    off_policy = codes != POLICY
    previous = np.concatenate([[False], off_policy[:-1]])
    return np.flatnonzero(off_policy & ~previous)


def correction_steps(codes: np.ndarray, context: int) -> np.ndarray:
    """Sorted steps that become samples: the operator's, plus ``context`` before each takeover.

    A takeover that starts at step 0 has no context; contexts never reach before step 0.
    """
    if context < 0:
        raise ValueError(f'context={context}: must be >= 0')
    selected = codes == OPERATOR
    for start in takeover_starts(codes):
        selected[max(0, start - context):start] = True
    return np.flatnonzero(selected)


@dataclass(frozen=True)
class CorrectionSampling:
    """How takeover recordings become samples (from DatasetConfig and TrainConfig)."""

    takeover_samples: str = 'corrections'  # DatasetConfig.takeover_samples
    context_steps: int = 0  # DatasetConfig.correction_context_s in steps
    repeat: int = 1  # TrainConfig.correction_repeat (1 for validation)

    def __post_init__(self) -> None:
        if self.takeover_samples not in TAKEOVER_SAMPLES:
            raise ValueError(f'CorrectionSampling.takeover_samples={self.takeover_samples!r}: '
                             f'expected one of {TAKEOVER_SAMPLES}')
        if self.context_steps < 0 or self.repeat < 1:
            raise ValueError(f'CorrectionSampling context_steps={self.context_steps}, '
                             f'repeat={self.repeat}: need context_steps >= 0 and repeat >= 1')

    def steps(self, codes: np.ndarray | None, length: int) -> tuple[np.ndarray, bool]:
        """(the steps of one episode that are samples, whether they are corrections)."""
        if codes is None or self.takeover_samples == 'all':
            return np.arange(length), False
        return correction_steps(codes, self.context_steps), True
