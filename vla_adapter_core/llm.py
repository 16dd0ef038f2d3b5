"""The Qwen2 language model (transformers), run on input embeddings for its hidden states only.

The model is a bare ``Qwen2Model``: there is no lm_head, so the 151936-way vocabulary logits
(95 % of a tiny model's cost) are never computed. :class:`QwenBackbone` runs transformers' own
decoder layers itself, with the rotary embedding and the attention mask prepared once per
forward: no mask at all for a causal sequence without padding inside it (our layout puts the
padding last, see :mod:`vla_adapter_core.layout`), so SDPA takes its ``is_causal`` fast path; a
4-d additive mask, built once, only when a caller passes a padding mask with holes.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2Model
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

from vla_adapter_core.config import LLMConfig


def qwen2_config_from(config: LLMConfig) -> Qwen2Config:
    """The transformers config for an :class:`LLMConfig`."""
    qwen_config = Qwen2Config(
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        vocab_size=config.vocab_size,
        max_position_embeddings=config.max_position_embeddings,
        rope_theta=config.rope_theta,
        rms_norm_eps=config.rms_norm_eps,
        hidden_act=config.hidden_act,
        tie_word_embeddings=config.tie_word_embeddings,
        use_sliding_window=False,
        attention_dropout=0.0,
        use_cache=False,
    )
    qwen_config._attn_implementation = config.attn_implementation
    return qwen_config


class QwenBackbone(nn.Module):
    """Qwen2 decoder returning every hidden state (embedding output + one per layer).

    The last entry is after the final RMSNorm, as in transformers' ``output_hidden_states``.
    """

    def __init__(self, config: LLMConfig) -> None:
        super().__init__()
        self.config = config
        if config.pretrained_dir:
            self.model = Qwen2Model.from_pretrained(
                config.pretrained_dir, local_files_only=True,
                attn_implementation=config.attn_implementation)
            self._check_pretrained()
        else:
            self.model = Qwen2Model(qwen2_config_from(config))

    def _check_pretrained(self) -> None:
        loaded = self.model.config
        for name in ('hidden_size', 'num_hidden_layers', 'num_attention_heads',
                     'num_key_value_heads', 'intermediate_size', 'vocab_size'):
            if getattr(loaded, name) != getattr(self.config, name):
                raise ValueError(f'LLMConfig.{name}={getattr(self.config, name)} does not match '
                                 f'{self.config.pretrained_dir!r} ({getattr(loaded, name)})')

    def rebuild_rotary_embedding(self, device: torch.device | str) -> None:
        """Recompute the rotary frequencies (non-persistent buffers, absent from state dicts).

        Needed after building on the meta device and materialising with ``to_empty``.
        """
        self.model.rotary_emb = Qwen2RotaryEmbedding(self.model.config).to(device)

    @property
    def embed_tokens(self) -> nn.Embedding:
        """The token embedding table (V, D)."""
        return self.model.embed_tokens

    def attention_mask_4d(self, attention_mask: torch.Tensor | None,
                          inputs_embeds: torch.Tensor) -> torch.Tensor | None:
        """The mask every layer uses, built once: None (causal SDPA) or additive (B, 1, S, S).

        ``attention_mask``: None (causal, nothing padded), a (B, S) padding mask (1 = real) or a
        prepared 4-d mask (returned as is). A padding token attends to itself only, so no row is
        empty; real tokens never attend to padding.
        """
        if attention_mask is not None and attention_mask.dim() == 4:
            return attention_mask
        sdpa = self.model.config._attn_implementation == 'sdpa'
        if attention_mask is not None and sdpa and bool(attention_mask.all()):
            attention_mask = None
        if attention_mask is None and sdpa:
            return None
        batch, length = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        positions = torch.arange(length, device=device)  # (S,)
        allowed = positions[None, :] <= positions[:, None]  # (S, S) causal
        allowed = allowed.expand(batch, 1, length, length)  # (B, 1, S, S)
        if attention_mask is not None:
            keys = attention_mask.to(torch.bool)[:, None, None, :]  # (B, 1, 1, S)
            allowed = allowed & (keys | torch.eye(length, dtype=torch.bool, device=device))
        blocked = torch.finfo(inputs_embeds.dtype).min
        zeros = torch.zeros((), dtype=inputs_embeds.dtype, device=device)
        return torch.where(allowed, zeros, blocked)  # (B, 1, S, S)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> tuple:
        """Run the decoder causally.

        ``inputs_embeds`` (B, S, D); ``attention_mask`` None (nothing padded, or only after the
        last token any caller reads), (B, S) with 0 on padding, or a prepared 4-d mask;
        ``position_ids`` (B, S) or (1, S), default 0..S-1. Returns ``num_hidden_layers + 1``
        tensors of shape (B, S, D): the embeddings, each layer's output, the last one after the
        final RMSNorm (as transformers' ``output_hidden_states``).
        """
        model = self.model
        if position_ids is None:
            position_ids = torch.arange(inputs_embeds.shape[1],
                                        device=inputs_embeds.device).unsqueeze(0)  # (1, S)
        mask = self.attention_mask_4d(attention_mask, inputs_embeds)
        position_embeddings = model.rotary_emb(inputs_embeds, position_ids)  # cos, sin once
        hidden = inputs_embeds  # (B, S, D)
        hidden_states = [hidden]
        for layer in model.layers[:model.config.num_hidden_layers]:
            hidden = layer(hidden, attention_mask=mask, position_ids=position_ids,
                           position_embeddings=position_embeddings, use_cache=False)
            hidden_states.append(hidden)  # (B, S, D)
        hidden_states[-1] = model.norm(hidden)
        return tuple(hidden_states)
