"""MLPResNet trunk and the L1-regression action head (upstream ``L1RegressionActionHead``).

Trunk (upstream ``MLPResNet``, same parameter names so upstream checkpoints load unchanged):

    seed = zeros(B, chunk, action_dim * D)            # plus optional training noise, see config
    x = ReLU(fc1(layer_norm1(seed)))                  # (B, chunk, D)
    x = block_i(x, task_states[:, i], adapter_states[:, i] + proprio)   for i in 0..num_blocks-1
    out = fc2(layer_norm2(x))                         # (B, chunk, out_features)

The seed is exactly zero at inference and, by default, in training too (see
``ActionHeadConfig.train_input_noise_std``). ``layer_norm1`` of a zero seed returns its bias, so
``layer_norm1.bias`` is in effect a registered, learned seed shared by train and inference, while
``layer_norm1.weight`` never receives a gradient (kept for upstream checkpoint compatibility). At
initialisation that bias is 0, so ``fc1.weight`` starts learning from the second update on.

Every head shares the call contract (see ``BridgeActionHead.forward``), ``loss(output, targets,
mask) -> (loss, metrics)`` and ``predict_actions(output) -> (B, chunk, action_dim)``.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from vla_adapter_core.heads.attention import (
    KeySetRotary,
    build_bridge_block,
    build_rotary_tables,
)
from vla_adapter_core.heads.config import ActionHeadConfig
from vla_adapter_core.heads.registry import register_head

UPSTREAM_PREFIX = 'module.'
# Upstream's Pro block owns a FiLM generator that its forward never uses; its weights are in every
# upstream Pro checkpoint. Our blocks do not have it, so these keys are dropped on load.
UPSTREAM_UNUSED_KEY = re.compile(r'^model\.mlp_resnet_blocks\.\d+\.film_gen\.')


class MLPResNet(nn.Module):
    """The action-head trunk: seed embedding, ``num_blocks`` bridge blocks, readout.

    Args:
        config: head configuration.
        seed_actions: action dimensions folded into the seed, which is (B, T, seed_actions * D).
        out_features: readout width per chunk step.
        cross_arm: build blocks that also attend to another arm's stream (dual-arm head).
    """

    def __init__(
        self,
        config: ActionHeadConfig,
        seed_actions: int,
        out_features: int,
        cross_arm: bool = False,
    ) -> None:
        super().__init__()
        width = config.hidden_dim
        self.seed_width = seed_actions * width
        self.layer_norm1 = nn.LayerNorm(self.seed_width, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(self.seed_width, width)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList(
            [build_bridge_block(config, cross_arm=cross_arm) for _ in range(config.num_blocks)]
        )
        self.layer_norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.fc2 = nn.Linear(width, out_features)
        # Rotary tables shared by all blocks (Pro blocks only): non-persistent buffers.
        self.rotary = build_rotary_tables(config)

    def embed_seed(self, seed: torch.Tensor) -> torch.Tensor:
        """(B, T, seed_width) -> (B, T, D)."""
        return self.relu(self.fc1(self.layer_norm1(seed)))

    def call_rotary(self, steps: int, task_length: int,
                    adapter_length: int) -> KeySetRotary | None:
        """The rotary tables every block of one forward uses (None: original blocks)."""
        if self.rotary is None:
            return None
        lengths = self.mlp_resnet_blocks[0].key_lengths(steps, task_length, adapter_length)
        return self.rotary.for_key_sets(steps, lengths)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, out_features)."""
        return self.fc2(self.layer_norm2(x))

    def forward(
        self, seed: torch.Tensor, task_states: torch.Tensor, adapter_states: torch.Tensor
    ) -> torch.Tensor:
        """Run the trunk; ``adapter_states`` already holds the proprio token (if any) last.

        Shapes: seed (B, T, seed_width), task_states (B, N, K_t, D), adapter_states (B, N, K_a, D)
        -> (B, T, out_features).
        """
        x = self.embed_seed(seed)  # (B, T, D)
        rotary = self.call_rotary(x.shape[1], task_states.shape[2], adapter_states.shape[2])
        for index, block in enumerate(self.mlp_resnet_blocks):
            x = block(x, task_states[:, index], adapter_states[:, index],
                      rotary=rotary)  # (B, T, D)
        return self.readout(x)


class BridgeActionHead(nn.Module):
    """Common base of all heads: input checks, the proprio token and the trunk seed."""

    def __init__(self, config: ActionHeadConfig) -> None:
        super().__init__()
        self.config = config

    def check_inputs(
        self,
        task_states: torch.Tensor,
        adapter_states: torch.Tensor,
        proprio_token: torch.Tensor | None,
    ) -> None:
        """Raise ValueError naming the argument whose shape does not fit the config."""
        config = self.config
        for name, states in (('task_states', task_states), ('adapter_states', adapter_states)):
            if states.dim() != 4 or states.shape[1] != config.num_blocks:
                raise ValueError(
                    f'{name} must be (B, num_blocks={config.num_blocks}, K, '
                    f'{config.hidden_dim}), got {tuple(states.shape)}'
                )
            if states.shape[3] != config.hidden_dim or states.shape[0] != task_states.shape[0]:
                raise ValueError(
                    f'{name} must be (B, {config.num_blocks}, K, hidden_dim={config.hidden_dim}) '
                    f'with the batch of task_states, got {tuple(states.shape)}'
                )
        dtype = next(self.parameters()).dtype
        for name, tensor in (
            ('task_states', task_states), ('adapter_states', adapter_states),
            ('proprio_token', proprio_token),
        ):
            # Under autocast (bf16 training) a Linear's output is bf16 beside fp32 weights.
            if (tensor is not None and tensor.dtype != dtype
                    and not torch.is_autocast_enabled(tensor.device.type)):
                raise ValueError(f'{name} must have the head dtype {dtype}, got {tensor.dtype}')
        if not config.use_proprio:
            if proprio_token is not None:
                raise ValueError('proprio_token must be None when config.use_proprio is False')
            return
        expected = (task_states.shape[0], 1, config.hidden_dim)
        if proprio_token is None or tuple(proprio_token.shape) != expected:
            shape = None if proprio_token is None else tuple(proprio_token.shape)
            raise ValueError(f'proprio_token must have shape {expected}, got {shape}')

    @staticmethod
    def append_proprio(
        adapter_states: torch.Tensor, proprio_token: torch.Tensor | None
    ) -> torch.Tensor:
        """Append the proprio token to each adapter set: (B, N, K_a, D) -> (B, N, K_a + 1, D)."""
        if proprio_token is None:
            return adapter_states
        batch, num_blocks, _, width = adapter_states.shape
        token = proprio_token.unsqueeze(1).expand(batch, num_blocks, 1, width)  # (B, N, 1, D)
        return torch.cat([adapter_states, token], dim=2)

    def make_seed(self, batch: int, seed_width: int, reference: torch.Tensor) -> torch.Tensor:
        """Trunk input (B, chunk, seed_width): zeros, plus N(0, std) noise when training."""
        seed = torch.zeros(
            batch, self.config.chunk_size, seed_width, dtype=reference.dtype,
            device=reference.device,
        )  # (B, T, seed_width)
        noise_std = self.config.train_input_noise_std
        if self.training and noise_std > 0.0:
            seed = seed + noise_std * torch.randn_like(seed)
        return seed

    def check_loss_inputs(
        self, output: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> None:
        """Targets (B, chunk, action_dim) and a bool mask (B, chunk) matching ``output``."""
        expected = (output.shape[0], self.config.chunk_size, self.config.action_dim)
        if tuple(targets.shape) != expected:
            raise ValueError(f'targets must have shape {expected}, got {tuple(targets.shape)}')
        if mask.dtype != torch.bool or tuple(mask.shape) != expected[:2]:
            raise ValueError(
                f'mask must be a bool tensor of shape {expected[:2]}, '
                f'got {mask.dtype} {tuple(mask.shape)}'
            )


def masked_l1_loss(
    predicted: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean |predicted - targets| over the unmasked chunk steps; 0 (not NaN) if all are masked.

    Shapes: predicted, targets (B, T, A); mask (B, T) bool, True = a real step.
    """
    weights = mask.to(predicted.dtype).unsqueeze(-1)  # (B, T, 1)
    errors = (predicted - targets).abs() * weights  # (B, T, A)
    count = weights.sum() * predicted.shape[-1]
    return errors.sum() / count.clamp(min=1.0)


@register_head('l1')
class L1RegressionActionHead(BridgeActionHead):
    """Continuous head: normalised actions (B, chunk, action_dim), trained with masked L1.

    Parameter names equal upstream's after stripping ``module.`` (``model.fc1.weight``,
    ``model.mlp_resnet_blocks.<i>.k_self.weight``, ...); use ``load_upstream_state_dict`` for an
    upstream ``action_head--<step>_checkpoint.pt``.
    """

    target_space = 'normalized'  # loss targets: batch['actions']
    output_space = 'normalized'  # predict_actions output must be un-normalised by the caller

    def __init__(self, config: ActionHeadConfig) -> None:
        if config.kind != 'l1':
            raise ValueError(f'L1RegressionActionHead needs config.kind "l1", got {config.kind!r}')
        super().__init__(config)
        self.model = MLPResNet(config, config.action_dim, config.action_dim)

    def forward(
        self,
        task_states: torch.Tensor,
        adapter_states: torch.Tensor,
        proprio_token: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict a chunk of normalised actions.

        Args:
            task_states: (B, num_blocks, K_t, D); block i reads ``task_states[:, i]``.
            adapter_states: (B, num_blocks, K_a, D); K_a may be 0.
            proprio_token: (B, 1, D) projected proprio, or None when ``use_proprio`` is False.

        Returns:
            (B, chunk, action_dim) normalised actions.
        """
        self.check_inputs(task_states, adapter_states, proprio_token)
        adapter_kv = self.append_proprio(adapter_states, proprio_token)  # (B, N, K_a(+1), D)
        seed = self.make_seed(task_states.shape[0], self.model.seed_width, self.model.fc1.weight)
        return self.model(seed, task_states, adapter_kv)  # (B, T, A)

    def loss(
        self, output: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked L1 against normalised targets (B, chunk, A); mask (B, chunk) bool."""
        self.check_loss_inputs(output, targets, mask)
        loss = masked_l1_loss(output, targets, mask)
        return loss, {'l1_loss': loss.detach()}

    def predict_actions(self, output: torch.Tensor) -> torch.Tensor:
        """Normalised actions (B, chunk, A): the forward output itself."""
        return output

    def load_upstream_state_dict(self, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """Load an upstream action-head state dict; returns the ignored (unused FiLM) keys.

        Strips the DDP ``module.`` prefix, drops only the unused ``film_gen.*`` keys and loads the
        rest strictly (values are converted to this head's dtype by ``load_state_dict``).
        """
        converted, ignored = convert_upstream_head_state_dict(state_dict)
        self.load_state_dict(converted, strict=True)
        return ignored


def convert_upstream_head_state_dict(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Strip ``module.`` and split off the unused ``film_gen`` keys: (kept, ignored key names)."""
    kept: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state_dict.items():
        name = key[len(UPSTREAM_PREFIX):] if key.startswith(UPSTREAM_PREFIX) else key
        if UPSTREAM_UNUSED_KEY.match(name):
            ignored.append(name)
        else:
            kept[name] = value
    return kept, ignored


def infer_upstream_head_config(
    state_dict: dict[str, torch.Tensor], chunk_size: int, **overrides: Any
) -> ActionHeadConfig:
    """Head config of an upstream L1 checkpoint (block type, width, depth, action_dim from shapes).

    ``chunk_size`` is not stored in upstream weights and must be given (LIBERO 8, ALOHA 25);
    upstream always uses 8 attention heads and a proprio token. ``overrides`` replace any field.
    """
    kept, _ = convert_upstream_head_state_dict(state_dict)
    if 'model.fc1.weight' not in kept or 'model.fc2.weight' not in kept:
        raise ValueError('not an upstream action-head state dict: model.fc1/fc2 weights missing')
    hidden_dim, seed_width = kept['model.fc1.weight'].shape
    action_dim = kept['model.fc2.weight'].shape[0]
    if seed_width != action_dim * hidden_dim:
        raise ValueError(
            f'upstream head fc1 input {seed_width} != '
            f'action_dim {action_dim} * hidden {hidden_dim}'
        )
    block_prefix = 'model.mlp_resnet_blocks.'
    block_ids = {int(key.split('.')[2]) for key in kept if key.startswith(block_prefix)}
    pro = any('.k_self.' in key for key in kept)
    fields: dict[str, Any] = {
        'kind': 'l1',
        'block_type': 'pro' if pro else 'original',
        'hidden_dim': int(hidden_dim),
        'num_blocks': len(block_ids),
        'num_heads': 8,
        'chunk_size': chunk_size,
        'action_dim': int(action_dim),
        'use_proprio': True,
    }
    fields.update(overrides)
    return ActionHeadConfig(**fields)
