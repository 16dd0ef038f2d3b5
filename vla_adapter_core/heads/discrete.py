"""Discrete action head: the same MLPResNet trunk, classifying each action dimension into bins.

The readout ``fc2`` maps D -> action_dim * n_bins per chunk step; the logits are reshaped to
(B, chunk, action_dim, n_bins) with the bin axis last (fc2 output index = a * n_bins + bin).
Training: cross-entropy against ``bins.to_bins(raw targets)`` over the unmasked steps. Inference:
argmax -> bin centre, already in RAW action space (the action normaliser is not applied to it).
"""

from __future__ import annotations

import torch
from torch.nn import functional

from vla_adapter_core.heads.bins import ActionBins
from vla_adapter_core.heads.config import ActionHeadConfig
from vla_adapter_core.heads.l1 import BridgeActionHead, MLPResNet, masked_l1_loss
from vla_adapter_core.heads.registry import register_head


@register_head('discrete')
class DiscreteActionHead(BridgeActionHead):
    """Per-dimension classification over adaptive bins; holds its ``ActionBins`` as ``self.bins``.

    Args:
        config: head configuration with ``kind='discrete'``.
        bins: the bins to use (``ActionBins.from_json`` of the checkpoint's bins file). When None
            the head starts with unset placeholder bins that ``load_state_dict`` of a trained head
            (keys ``bins.low`` / ``bins.high``) or ``set_bins`` fills in.
    """

    target_space = 'raw'  # loss targets: batch['raw_actions']
    output_space = 'raw'  # predict_actions output is final; do not un-normalise it
    uses_bins = True  # build_action_head passes the adaptive bins

    def __init__(self, config: ActionHeadConfig, bins: ActionBins | None = None) -> None:
        if config.kind != 'discrete':
            raise ValueError(
                f'DiscreteActionHead needs config.kind "discrete", got {config.kind!r}'
            )
        super().__init__(config)
        self.model = MLPResNet(
            config, config.action_dim, config.action_dim * config.n_action_bins
        )
        self.bins = ActionBins.placeholder(config.action_dim, config.n_action_bins)
        if bins is not None:
            self.set_bins(bins)

    def set_bins(self, bins: ActionBins) -> None:
        """Copy the limits of ``bins`` (must match action_dim and n_action_bins)."""
        self.bins.copy_from(bins)

    def forward(
        self,
        task_states: torch.Tensor,
        adapter_states: torch.Tensor,
        proprio_token: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Bin logits for a chunk.

        Args:
            task_states: (B, num_blocks, K_t, D); block i reads ``task_states[:, i]``.
            adapter_states: (B, num_blocks, K_a, D); K_a may be 0.
            proprio_token: (B, 1, D) projected proprio, or None when ``use_proprio`` is False.

        Returns:
            (B, chunk, action_dim, n_bins) logits.
        """
        self.check_inputs(task_states, adapter_states, proprio_token)
        adapter_kv = self.append_proprio(adapter_states, proprio_token)  # (B, N, K_a(+1), D)
        batch = task_states.shape[0]
        seed = self.make_seed(batch, self.model.seed_width, self.model.fc1.weight)
        flat = self.model(seed, task_states, adapter_kv)  # (B, T, A * n_bins)
        config = self.config
        return flat.reshape(batch, config.chunk_size, config.action_dim,
                            config.n_action_bins)  # (B, T, A, n_bins)

    def loss(
        self, output: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked cross-entropy of ``output`` logits against the bins of RAW ``targets``.

        Args:
            output: logits (B, chunk, A, n_bins).
            targets: raw (un-normalised) actions (B, chunk, A).
            mask: (B, chunk) bool, True for real steps.

        Returns:
            loss and metrics: ``cross_entropy``, ``action_accuracy`` (fraction of unmasked entries
            whose argmax bin is the target bin) and ``l1_decoded`` (mean |bin centre - target| in
            raw units); all 0 when every step is masked.
        """
        self.check_loss_inputs(output, targets, mask)
        target_bins = self.bins.to_bins(targets)  # (B, T, A)
        n_bins = self.config.n_action_bins
        per_entry = functional.cross_entropy(
            output.reshape(-1, n_bins), target_bins.reshape(-1),  # (B*T*A, n_bins), (B*T*A,)
            reduction='none'
        ).reshape(target_bins.shape)  # (B, T, A)
        weights = mask.to(per_entry.dtype).unsqueeze(-1).expand_as(per_entry)  # (B, T, A)
        count = weights.sum().clamp(min=1.0)
        loss = (per_entry * weights).sum() / count
        with torch.no_grad():
            predicted_bins = output.argmax(dim=-1)  # (B, T, A)
            hits = (predicted_bins == target_bins).to(weights.dtype) * weights
            accuracy = hits.sum() / count
            decoded = self.bins.to_centres(predicted_bins)  # (B, T, A)
            l1_decoded = masked_l1_loss(decoded, targets.to(decoded.dtype), mask)
        metrics = {
            'cross_entropy': loss.detach(),
            'action_accuracy': accuracy,
            'l1_decoded': l1_decoded,
        }
        return loss, metrics

    def predict_actions(self, output: torch.Tensor) -> torch.Tensor:
        """Logits (B, chunk, A, n_bins) -> raw actions (B, chunk, A) at the argmax bin centres."""
        return self.bins.to_centres(output.argmax(dim=-1))
