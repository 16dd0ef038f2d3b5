"""Action heads of VLA-Adapter: L1 regression, discrete bins and dual-arm.

Contract shared by every head (see docs/ARCHITECTURE.md):

- ``head(task_states, adapter_states, proprio_token)`` with task_states (B, num_blocks, K_t, D),
  adapter_states (B, num_blocks, K_a, D) (block i reads LLM hidden state i + 1; the embedding
  output is already dropped), proprio_token (B, 1, D) or None. K_a may be 0.
  L1 / dual-arm heads return normalised actions (B, chunk, A); the discrete head returns logits
  (B, chunk, A, n_bins).
- ``head.loss(output, targets, mask) -> (loss, metrics)``; mask (B, chunk) bool. Targets are
  normalised actions for L1 / dual-arm and RAW actions for the discrete head
  (``head.target_space`` is ``'normalized'`` or ``'raw'``).
- ``head.predict_actions(output) -> (B, chunk, A)``; normalised for L1 / dual-arm, raw for discrete
  (``head.output_space``).
"""

from __future__ import annotations

from torch import nn

from vla_adapter_core.heads.bins import ActionBins, bins_file_name
from vla_adapter_core.heads.config import ActionHeadConfig
from vla_adapter_core.heads.discrete import DiscreteActionHead
from vla_adapter_core.heads.dual_arm import DualArmActionHead
from vla_adapter_core.heads.l1 import (
    L1RegressionActionHead,
    convert_upstream_head_state_dict,
    infer_upstream_head_config,
    masked_l1_loss,
)
from vla_adapter_core.heads.registry import head_class, head_kinds, register_head

__all__ = [
    'ActionBins',
    'ActionHeadConfig',
    'DiscreteActionHead',
    'DualArmActionHead',
    'L1RegressionActionHead',
    'bins_file_name',
    'build_action_head',
    'convert_upstream_head_state_dict',
    'head_class',
    'head_kinds',
    'infer_upstream_head_config',
    'masked_l1_loss',
    'register_head',
]


def build_action_head(config: ActionHeadConfig, bins: ActionBins | None = None) -> nn.Module:
    """Build the head registered for ``config.kind`` (an unknown kind raises ValueError).

    Args:
        config: the head configuration.
        bins: adaptive bins for heads that use them (``kind='discrete'``; optional there: a
            trained head's state dict also carries them); must be None for the other kinds.
    """
    cls = head_class(config.kind)
    if getattr(cls, 'uses_bins', False):
        return cls(config, bins=bins)
    if bins is not None:
        raise ValueError(f'bins are only used by kind="discrete", got kind={config.kind!r}')
    return cls(config)
