"""The Qwen2 backbone: built from config or from a local pretrained directory, no lm_head."""

import dataclasses

import pytest
import torch
from transformers import Qwen2ForCausalLM

from vla_adapter_core.config import LLMConfig
from vla_adapter_core.llm import QwenBackbone, qwen2_config_from

TINY = LLMConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)


def test_hidden_states_per_layer_and_no_lm_head():
    backbone = QwenBackbone(TINY)
    assert not any('lm_head' in name for name, _ in backbone.named_parameters())
    embeds = torch.randn(2, 7, 32)
    mask = torch.ones(2, 7, dtype=torch.long)
    positions = torch.arange(7).expand(2, -1)
    hidden = backbone(embeds, mask, positions)
    assert len(hidden) == TINY.num_hidden_layers + 1
    assert torch.equal(hidden[0], embeds)
    assert hidden[-1].shape == (2, 7, 32)
    # The last entry is after the final RMSNorm: divided by the norm weight it has unit RMS.
    unscaled = hidden[-1] / backbone.model.norm.weight  # (2, 7, 32)
    rms = unscaled.pow(2).mean(dim=-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), rtol=1e-3, atol=1e-3)
    assert backbone.model.config._attn_implementation == 'sdpa'


def test_left_padding_does_not_change_real_positions():
    backbone = QwenBackbone(TINY).eval()
    embeds = torch.randn(1, 5, 32)
    padded = torch.cat([torch.zeros(1, 3, 32), embeds], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        plain = backbone(embeds, torch.ones(1, 5, dtype=torch.long), torch.arange(5)[None])
        shifted = backbone(padded, mask, positions)
    for layer_plain, layer_padded in zip(plain, shifted):
        torch.testing.assert_close(layer_padded[:, 3:], layer_plain, rtol=1e-5, atol=1e-5)


def test_local_pretrained_directory(tmp_path):
    torch.manual_seed(0)
    causal = Qwen2ForCausalLM(qwen2_config_from(TINY))
    causal.save_pretrained(tmp_path)
    backbone = QwenBackbone(dataclasses.replace(TINY, pretrained_dir=str(tmp_path)))
    torch.testing.assert_close(backbone.embed_tokens.weight, causal.model.embed_tokens.weight)
    with pytest.raises(ValueError, match='LLMConfig.hidden_size=64'):
        QwenBackbone(dataclasses.replace(TINY, hidden_size=64, pretrained_dir=str(tmp_path)))


def test_tabulated_positions_equal_transformers_own_rotary():
    torch.manual_seed(1)
    backbone = QwenBackbone(TINY).eval()
    embeds = torch.randn(2, 9, 32)
    with torch.no_grad():
        tabulated = backbone(embeds)  # positions 0..8 from the tables
        explicit = backbone(embeds, None, torch.arange(9)[None])  # transformers' rotary module
        reference = backbone.model(inputs_embeds=embeds, output_hidden_states=True)
    for ours, theirs in zip(tabulated, explicit):
        assert torch.equal(ours, theirs)
    for ours, theirs in zip(tabulated[:-1], reference.hidden_states[:-1]):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert not any('rotary' in key for key in backbone.state_dict())


def test_bf16_tables_keep_float32_angles():
    backbone = QwenBackbone(TINY).to(torch.bfloat16)
    float32 = QwenBackbone(TINY)
    length = 1500  # late positions: where bf16 frequencies would shift the angles
    cos, sin = backbone.rotary.tables(length, torch.bfloat16)  # (1, L, hd)
    exact_cos, exact_sin = float32.rotary.tables(length, torch.float32)
    assert torch.equal(cos, exact_cos.to(torch.bfloat16))
    assert torch.equal(sin, exact_sin.to(torch.bfloat16))
    # transformers' module after .to(bf16) computes from bf16 frequencies: far off late on.
    their_cos, _ = backbone.model.rotary_emb(torch.zeros(1, dtype=torch.bfloat16),
                                             torch.arange(length)[None])
    assert (their_cos.float() - exact_cos).abs().max() > 0.1
    grown_cos, _ = backbone.rotary.tables(5000, torch.bfloat16)  # beyond the table: it grows
    assert grown_cos.shape[1] == 5000 and torch.equal(grown_cos[:, :length], cos)
