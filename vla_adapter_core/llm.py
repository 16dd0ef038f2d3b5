"""The Qwen2 language model (transformers), run on input embeddings for its hidden states only.

The model is a bare ``Qwen2Model``: there is no lm_head, so the 151936-way vocabulary logits
(95 % of a tiny model's cost) are never computed. :class:`QwenBackbone` runs transformers' own
decoder layers itself, with the rotary embedding and the attention mask prepared once per
forward: no mask at all for a causal sequence without padding inside it (our layout puts the
padding last, see :mod:`vla_adapter_core.layout`), so SDPA takes its ``is_causal`` fast path; a
4-d additive mask, built once, only when a caller passes a padding mask with holes.

The rotary cosine and sine for positions 0..L-1 (our layout's only positions) are tabulated once
(:class:`LLMRotaryTables`), in float32 from float32 frequencies and then cast, as transformers
computes them when the frequencies stay float32. transformers' own table follows ``.to(bf16)``
into its frequencies, which shifts the angles of late positions by up to about a radian; ours
does not.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
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


LLM_ROTARY_LENGTH = 4096  # positions tabulated up front (4 cameras and a long prompt: ~1300)


class LLMRotaryTables(nn.Module):
    """The decoder's rotary (cos, sin) for positions 0..L-1, computed once in float32.

    Non-persistent buffers ``cos`` / ``sin`` (L_max, head_dim) that follow ``.to()``; the
    values come from a fresh float32 ``Qwen2RotaryEmbedding`` of the same config, so a slice
    equals that module's output for positions 0..L-1 bit for bit, then cast.
    """

    def __init__(self, qwen_config: Qwen2Config, length: int = LLM_ROTARY_LENGTH) -> None:
        super().__init__()
        self.qwen_config = qwen_config
        self.fill(length, device=None, dtype=torch.float32)

    def fill(self, length: int, device: torch.device | str | None, dtype: torch.dtype) -> None:
        """(Re)compute the tables for ``length`` positions, in float32, stored as ``dtype``."""
        rotary = Qwen2RotaryEmbedding(self.qwen_config).to(device)
        positions = torch.arange(length, device=device)[None]  # (1, L)
        probe = torch.zeros((), device=device, dtype=torch.float32)
        cos, sin = rotary(probe, positions)  # (1, L, hd) float32 each
        self.register_buffer('cos', cos[0].to(dtype), persistent=False)  # (L, hd)
        self.register_buffer('sin', sin[0].to(dtype), persistent=False)  # (L, hd)

    def tables(self, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)`` (1, length, hd) in ``dtype``, as the decoder layers take them."""
        if length > self.cos.shape[0]:  # longer than ever tabulated: grow once
            self.fill(2 * length, self.cos.device, self.cos.dtype)
        return self.cos[None, :length].to(dtype), self.sin[None, :length].to(dtype)


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
        self.rotary = LLMRotaryTables(self.model.config)
        # True: keep only each layer's input and recompute the layer in the backward pass.
        self.gradient_checkpointing = False

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
        self.rotary.fill(self.rotary.cos.shape[0], device, self.rotary.cos.dtype)

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
        ``position_ids`` (B, S) or (1, S), default 0..S-1 (the tabulated rotary rows; other
        positions go through transformers' rotary module). Returns ``num_hidden_layers + 1``
        tensors of shape (B, S, D): the embeddings, each layer's output, the last one after the
        final RMSNorm (as transformers' ``output_hidden_states``).
        """
        model = self.model
        mask = self.attention_mask_4d(attention_mask, inputs_embeds)
        if position_ids is None:  # 0..S-1: the tabulated rows
            position_embeddings = self.rotary.tables(inputs_embeds.shape[1], inputs_embeds.dtype)
        else:
            position_embeddings = model.rotary_emb(inputs_embeds, position_ids)
        hidden = inputs_embeds  # (B, S, D)
        hidden_states = [hidden]
        options = {'attention_mask': mask, 'position_ids': position_ids,
                   'position_embeddings': position_embeddings, 'use_cache': False}
        recompute = self.gradient_checkpointing and torch.is_grad_enabled()
        for layer in model.layers[:model.config.num_hidden_layers]:
            if recompute:
                hidden = checkpoint(layer, hidden, use_reentrant=False, **options)  # (B, S, D)
            else:
                hidden = layer(hidden, **options)  # (B, S, D)
            hidden_states.append(hidden)
        hidden_states[-1] = model.norm(hidden)
        return tuple(hidden_states)
