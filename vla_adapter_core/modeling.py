"""VLAAdapterModel: vision backbone + projector + Qwen2 + action queries + proprio + action head.

Tensors in, head output (or ``(loss, metrics)``) out. The batch is the processor's output
(docs/ARCHITECTURE.md, training batch table). dtype and device follow the module (``.to()``);
the only casts inside are the documented upstream-compat bf16 roundings.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch import nn

from vla_adapter_core.config import LAYOUT_UPSTREAM_COMPAT, PolicyConfig
from vla_adapter_core.heads import ActionBins, build_action_head
from vla_adapter_core.layout import (
    AssembledSequence,
    assemble_sequence,
    check_prompt_mask,
    gather_windows,
    round_to_bfloat16,
)
from vla_adapter_core.llm import QwenBackbone
from vla_adapter_core.projector import FusedGeluMLPProjector, ProprioProjector
from vla_adapter_core.vision import FusedVisionBackbone

BATCH_KEYS = ('pixel_values', 'input_ids', 'attention_mask')


@dataclasses.dataclass
class ModelOutputs:
    """Head output plus the intermediates (for tests, debugging and benchmarks)."""

    head_output: torch.Tensor  # (B, chunk, A) or (B, chunk, A, n_bins)
    vision_features: torch.Tensor  # (B, NP, Dv)
    patch_embeddings: torch.Tensor  # (B, NP, D)
    proprio_token: torch.Tensor | None  # (B, 1, D)
    hidden_states: tuple  # num_layers + 1 tensors (B, S, D)
    sequence: AssembledSequence
    task_states: torch.Tensor  # (B, num_blocks, K_t, D)
    adapter_states: torch.Tensor  # (B, num_blocks, K_a, D)


class VLAAdapterModel(nn.Module):
    """The full VLA-Adapter network for one :class:`PolicyConfig`."""

    def __init__(self, config: PolicyConfig, bins: ActionBins | None = None,
                 vlm_device: str | None = None) -> None:
        """Build all modules; ``vlm_device='meta'`` skips allocating / initialising the VLM."""
        super().__init__()
        self.config = config
        width = config.llm.hidden_size
        with torch.device(vlm_device) if vlm_device else contextlib.nullcontext():
            self.vision = FusedVisionBackbone(config.vision)
            self.projector = FusedGeluMLPProjector(config.projector)
            self.llm = QwenBackbone(config.llm)
        self.action_queries = nn.Embedding(config.num_action_queries, width)
        nn.init.zeros_(self.action_queries.weight)
        self.proprio_projector = (ProprioProjector(config.proprio_dim, width)
                                  if config.use_proprio else None)
        self.action_head = build_action_head(config.action_head, bins=bins)

    @classmethod
    def from_state_dict(cls, config: PolicyConfig, state: dict, source: str) -> VLAAdapterModel:
        """Build without random initialisation (meta device) and load ``state`` strictly.

        Every parameter and persistent buffer must be in ``state``; the only non-persistent
        buffers of the meta-built modules (the LLM's rotary frequencies and tables) are
        recomputed (the head, built normally, computes its own rotary tables). Saves ~20 s at
        the real size.
        """
        model = cls(config, vlm_device='meta')
        for module in model.vlm_modules():
            module.to_empty(device='cpu')
        model.llm.rebuild_rotary_embedding('cpu')
        persistent = set(model.state_dict())
        meta_built = ('vision.', 'projector.', 'llm.')  # the head's buffers are computed
        unexpected = [name for name, _ in model.named_buffers()
                      if name not in persistent and name.startswith(meta_built)
                      and not name.startswith(('llm.model.rotary_emb.', 'llm.rotary.'))]
        if unexpected:
            raise RuntimeError(f'non-persistent buffers {unexpected} would stay uninitialised')
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shape mismatches
            raise ValueError(f'{source}: weights do not fit the configuration: {error}') from error
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f'{source}: weights do not match the configuration; missing '
                             f'{result.missing_keys[:8]} (of {len(result.missing_keys)}), '
                             f'unexpected {result.unexpected_keys[:8]} '
                             f'(of {len(result.unexpected_keys)})')
        return model

    @property
    def compat(self) -> bool:
        """True when reproducing upstream's windows and roundings."""
        return self.config.layout == LAYOUT_UPSTREAM_COMPAT

    def trailing_embeds(self) -> torch.Tensor | None:
        """Upstream's STOP token after the queries (compat only). (1, D) or None."""
        if not self.compat:
            return None
        stop = torch.tensor([self.config.upstream_stop_token_id],
                            device=self.action_queries.weight.device)
        return self.llm.embed_tokens(stop)  # (1, D)

    def _check_batch(self, batch: dict) -> None:
        missing = [key for key in BATCH_KEYS if key not in batch]
        if self.config.use_proprio and 'proprio' not in batch:
            missing.append('proprio')
        if missing:
            raise ValueError(f'batch lacks keys {missing}')

    def proprio_token(self, proprio: torch.Tensor | None) -> torch.Tensor | None:
        """Normalised proprio (B, P) -> (B, 1, D), or None when the policy ignores proprio."""
        if self.proprio_projector is None:
            return None
        if self.compat:
            proprio = round_to_bfloat16(proprio)  # upstream casts the state to bf16
        return self.proprio_projector(proprio)  # (B, 1, D)

    def _frozen_vision_context(self, pixel_values: torch.Tensor):
        """``no_grad`` when no gradient can reach the towers: none of their activations kept."""
        if pixel_values.requires_grad or any(
                param.requires_grad for param in self.vision.parameters()):
            return contextlib.nullcontext()
        return torch.no_grad()

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute LLM layers and vision tower blocks in the backward pass (less memory)."""
        self.llm.gradient_checkpointing = enabled
        self.vision.gradient_checkpointing = enabled

    def forward_detailed(self, batch: dict) -> ModelOutputs:
        """Run everything and keep the intermediates.

        The LLM runs without an attention mask: the sequence keeps each sample's padding after
        its last real token (see :mod:`vla_adapter_core.layout`), so a batch gives every sample
        the numbers of a single call.
        """
        self._check_batch(batch)
        if not torch.compiler.is_compiling():
            check_prompt_mask(batch['attention_mask'])  # a host sync; compiled graphs skip it
        with self._frozen_vision_context(batch['pixel_values']):
            vision_features = self.vision(batch['pixel_values'])  # (B, NP, Dv)
        patch_embeddings = self.projector(vision_features)  # (B, NP, D)
        prompt_embeds = self.llm.embed_tokens(batch['input_ids'])  # (B, L, D)
        sequence = assemble_sequence(prompt_embeds, batch['attention_mask'], patch_embeddings,
                                     self.action_queries.weight, self.trailing_embeds())
        hidden_states = self.llm(sequence.inputs_embeds)  # positions 0..S-1
        num_blocks = self.config.action_head.num_blocks
        task_states, adapter_states = gather_windows(
            list(hidden_states[1:num_blocks + 1]), sequence, self.config.layout,
            self.config.upstream_num_task_tokens)  # (B, N, K_t, D), (B, N, K_a, D)
        proprio_token = self.proprio_token(batch.get('proprio'))
        head_output = self.action_head(task_states, adapter_states, proprio_token)
        return ModelOutputs(head_output, vision_features, patch_embeddings, proprio_token,
                            hidden_states, sequence, task_states, adapter_states)

    def forward(self, batch: dict) -> torch.Tensor:
        """Head output: normalised actions (B, chunk, A) (l1, dual_arm) or logits (discrete)."""
        return self.forward_detailed(batch).head_output

    def predict_actions(self, batch: dict) -> torch.Tensor:
        """(B, chunk, A) actions: normalised (l1, dual_arm) or raw (discrete, see output_space)."""
        return self.action_head.predict_actions(self.forward(batch))

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Loss on the batch's targets with padded steps masked out; returns (loss, metrics)."""
        return self.head_loss(self.forward(batch), batch)

    def head_loss(self, head_output: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict]:
        """The head's loss of ``head_output`` on the batch's targets; (loss, metrics)."""
        target_key = 'raw_actions' if self.action_head.target_space == 'raw' else 'actions'
        for key in (target_key, 'action_mask'):
            if key not in batch:
                kind = self.config.action_head.kind
                raise ValueError(f'batch lacks {key!r} needed by the {kind} head loss')
        loss, metrics = self.action_head.loss(head_output, batch[target_key],
                                              batch['action_mask'].to(torch.bool))
        return loss, dict(metrics, loss=loss.detach())

    def vlm_modules(self) -> list:
        """The pretrained vision-language modules (vision towers, projector, LLM)."""
        return [self.vision, self.projector, self.llm]

    def freeze_vlm(self, freeze_projector: bool = False) -> None:
        """Stop gradients into the vision towers and the LLM.

        The projector, action queries, proprio projector and action head stay trainable (the
        fine-tuning recipe); ``freeze_projector=True`` also freezes the projector. Gradients
        still flow *through* the frozen LLM into the action queries.
        """
        frozen = [self.vision, self.llm] + ([self.projector] if freeze_projector else [])
        for module in frozen:
            for parameter in module.parameters():
                parameter.requires_grad_(False)

    def trainable_parameter_names(self) -> list:
        """Names of parameters that currently require gradients."""
        return [name for name, param in self.named_parameters() if param.requires_grad]
