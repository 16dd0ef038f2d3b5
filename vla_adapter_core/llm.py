"""The Qwen2 language model (transformers), run on input embeddings for its hidden states only.

The model is a bare ``Qwen2Model``: there is no lm_head, so the 151936-way vocabulary logits
(95 % of a tiny model's cost) are never computed.
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

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor) -> tuple:
        """Run the decoder causally.

        ``inputs_embeds`` (B, S, D), ``attention_mask`` (B, S) with 0 on left padding,
        ``position_ids`` (B, S). Returns ``num_hidden_layers + 1`` tensors of shape (B, S, D).
        """
        outputs = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                             position_ids=position_ids, output_hidden_states=True,
                             use_cache=False, return_dict=True)
        return outputs.hidden_states
