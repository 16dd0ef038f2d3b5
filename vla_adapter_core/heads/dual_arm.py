"""Dual-arm action head (ALOHA): two interacting MLPResNet streams, one per arm.

Layout: the adapter states hold ``2 * queries_per_arm`` action-query tokens, the left arm's first.
The action is ``[left (A/2), right (A/2)]``.

Design:

- Each arm has its own trunk (``self.left`` / ``self.right``, both ``MLPResNet`` with
  ``seed_actions = out_features = A/2``): its own seed embedding, blocks and readout.
- Block i of the left stream updates x_L from x_L (self keys), the left queries' states of LLM
  layer i+1 plus the proprio token (adapter keys), the shared task/vision states (gated task keys)
  and x_R, the right stream's CURRENT state (fourth key set, same joint softmax). The right stream
  does the same with the roles swapped. Both streams are updated from the previous block's x_L and
  x_R, so the update is symmetric (Q_L attends K_R and Q_R attends K_L in every block).
- Block 0 sees only the other arm's seed embedding, which does not depend on the inputs; from block
  1 on each arm sees the other arm's plan. Hence ``num_blocks >= 2`` (checked by the config). For
  the same reason the other arm's query states of the LAST layer only reach their own arm.
- Training: masked L1 on normalised targets, like the L1 head; metrics also per arm.
"""

from __future__ import annotations

import torch

from vla_adapter_core.heads.config import ActionHeadConfig
from vla_adapter_core.heads.l1 import BridgeActionHead, MLPResNet, masked_l1_loss
from vla_adapter_core.heads.registry import register_head


@register_head('dual_arm')
class DualArmActionHead(BridgeActionHead):
    """Two arm streams with inter-arm cross-attention in every block; normalised actions out."""

    target_space = 'normalized'  # loss targets: batch['actions']
    output_space = 'normalized'  # predict_actions output must be un-normalised by the caller

    def __init__(self, config: ActionHeadConfig) -> None:
        if config.kind != 'dual_arm':
            raise ValueError(
                f'DualArmActionHead needs config.kind "dual_arm", got {config.kind!r}'
            )
        super().__init__(config)
        self.arm_dim = config.action_dim // 2
        self.left = MLPResNet(config, self.arm_dim, self.arm_dim, cross_arm=True)
        self.right = MLPResNet(config, self.arm_dim, self.arm_dim, cross_arm=True)

    def forward(
        self,
        task_states: torch.Tensor,
        adapter_states: torch.Tensor,
        proprio_token: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict a chunk of normalised actions for both arms.

        Args:
            task_states: (B, num_blocks, K_t, D), shared by both arms.
            adapter_states: (B, num_blocks, 2 * queries_per_arm, D): left-arm queries, then right.
            proprio_token: (B, 1, D) projected proprio (both arms), or None without proprio.

        Returns:
            (B, chunk, action_dim) = [left A/2, right A/2].
        """
        self.check_inputs(task_states, adapter_states, proprio_token)
        queries = self.config.queries_per_arm
        if adapter_states.shape[2] != 2 * queries:
            raise ValueError(
                f'adapter_states must hold 2 * queries_per_arm = {2 * queries} tokens, '
                f'got {adapter_states.shape[2]}'
            )
        # (B, N, Q, D) per arm, plus the proprio token -> (B, N, Q + 1, D)
        left_kv = self.append_proprio(adapter_states[:, :, :queries], proprio_token)
        right_kv = self.append_proprio(adapter_states[:, :, queries:], proprio_token)
        batch = task_states.shape[0]
        x_left = self.left.embed_seed(
            self.make_seed(batch, self.left.seed_width, self.left.fc1.weight)
        )  # (B, T, D)
        x_right = self.right.embed_seed(
            self.make_seed(batch, self.right.seed_width, self.right.fc1.weight)
        )  # (B, T, D)
        # Both arms' key sets have the same lengths and their tables the same values.
        rotary = self.left.call_rotary(x_left.shape[1], task_states.shape[2], left_kv.shape[2])
        blocks = zip(self.left.mlp_resnet_blocks, self.right.mlp_resnet_blocks)
        for index, (left_block, right_block) in enumerate(blocks):
            task = task_states[:, index]  # (B, K_t, D)
            x_left, x_right = (
                left_block(x_left, task, left_kv[:, index], other_arm=x_right, rotary=rotary),
                right_block(x_right, task, right_kv[:, index], other_arm=x_left, rotary=rotary),
            )  # (B, T, D) each
        actions_left = self.left.readout(x_left)  # (B, T, A/2)
        actions_right = self.right.readout(x_right)  # (B, T, A/2)
        return torch.cat([actions_left, actions_right], dim=-1)  # (B, T, A)

    def loss(
        self, output: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked L1 against normalised targets (B, chunk, A); metrics also per arm."""
        self.check_loss_inputs(output, targets, mask)
        loss = masked_l1_loss(output, targets, mask)
        half = self.arm_dim
        with torch.no_grad():
            left = masked_l1_loss(output[..., :half], targets[..., :half], mask)
            right = masked_l1_loss(output[..., half:], targets[..., half:], mask)
        return loss, {'l1_loss': loss.detach(), 'l1_left': left, 'l1_right': right}

    def predict_actions(self, output: torch.Tensor) -> torch.Tensor:
        """Normalised actions (B, chunk, A): the forward output itself."""
        return output
