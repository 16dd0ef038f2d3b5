"""The L1 head against upstream: fixture numbers (Pro block), key names, RoPE and block math."""

import math
import pathlib

from head_reference import apply_upstream_rope, rotate_interleaved_pairs
import numpy as np
import pytest
import torch

from vla_adapter_core.heads import (
    ActionHeadConfig,
    L1RegressionActionHead,
    build_action_head,
    convert_upstream_head_state_dict,
    infer_upstream_head_config,
)
from vla_adapter_core.heads.attention import OriginalBridgeBlock

FIXTURE = (
    pathlib.Path(__file__).resolve().parents[1]
    / 'fixtures' / 'upstream_vla_adapter' / 'libero_pro_2cam'
)
HEAD_CHECKPOINT = FIXTURE / 'checkpoint' / 'action_head--5000_checkpoint.pt'
NUM_TASK_TOKENS = 512  # upstream's hard-coded split; exactly the 2-camera vision window here


@pytest.fixture(scope='module')
def upstream_state_dict():
    return torch.load(HEAD_CHECKPOINT, weights_only=True, map_location='cpu')


@pytest.fixture(scope='module')
def expected():
    with np.load(FIXTURE / 'expected.npz', allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope='module')
def upstream_head(upstream_state_dict):
    config = infer_upstream_head_config(upstream_state_dict, chunk_size=8)
    head = L1RegressionActionHead(config).eval()
    head.load_upstream_state_dict(upstream_state_dict)
    return head


def _head_inputs(expected, batch=1):
    hidden = torch.from_numpy(expected['multi_layer_hidden_states'])[:, 1:]  # (1, 24, 576, 48)
    proprio = torch.from_numpy(expected['proprio_features']).reshape(1, 1, -1)  # (1, 1, 48)
    hidden = hidden.expand(batch, -1, -1, -1)
    proprio = proprio.expand(batch, -1, -1)
    return hidden[:, :, :NUM_TASK_TOKENS], hidden[:, :, NUM_TASK_TOKENS:], proprio


def test_fixture_head_config_is_inferred(upstream_state_dict):
    config = infer_upstream_head_config(upstream_state_dict, chunk_size=8)
    assert (config.block_type, config.hidden_dim, config.num_blocks) == ('pro', 48, 24)
    assert (config.action_dim, config.num_heads, config.use_proprio) == (7, 8, True)


def test_pro_head_reproduces_upstream_normalized_actions(upstream_head, expected):
    task, adapter, proprio = _head_inputs(expected)
    with torch.no_grad():
        actions = upstream_head(task, adapter, proprio)  # (1, 8, 7)
    assert actions.dtype == torch.float32
    reference = torch.from_numpy(expected['normalized_actions'])
    assert actions.shape == (1, 8, 7)
    torch.testing.assert_close(actions[0], reference, atol=1e-5, rtol=0)


def test_pro_head_batches_what_upstream_can_only_do_one_by_one(upstream_head, expected):
    task, adapter, proprio = _head_inputs(expected, batch=3)
    with torch.no_grad():
        actions = upstream_head(task, adapter, proprio)  # (3, 8, 7)
    reference = torch.from_numpy(expected['normalized_actions'])
    for row in actions:
        torch.testing.assert_close(row, reference, atol=1e-5, rtol=0)


def test_upstream_load_ignores_only_film_keys(upstream_state_dict):
    config = infer_upstream_head_config(upstream_state_dict, chunk_size=8)
    head = L1RegressionActionHead(config)
    ignored = head.load_upstream_state_dict(upstream_state_dict)
    assert len(ignored) == 2 * config.num_blocks
    assert all('.film_gen.' in key for key in ignored)
    assert not any('film_gen' in name for name, _ in head.named_parameters())
    kept, _ = convert_upstream_head_state_dict(upstream_state_dict)
    assert set(kept) == set(head.state_dict())


def test_upstream_load_rejects_unknown_and_missing_keys(upstream_state_dict):
    config = infer_upstream_head_config(upstream_state_dict, chunk_size=8)
    head = L1RegressionActionHead(config)
    extra = dict(upstream_state_dict)
    extra['module.model.not_a_layer.weight'] = torch.zeros(1)
    with pytest.raises(RuntimeError, match='not_a_layer'):
        head.load_upstream_state_dict(extra)
    missing = {k: v for k, v in upstream_state_dict.items() if '.k_task.' not in k}
    with pytest.raises(RuntimeError, match='k_task'):
        head.load_upstream_state_dict(missing)


def test_original_block_has_upstream_parameter_names():
    config = ActionHeadConfig(
        block_type='original', hidden_dim=16, num_heads=2, num_blocks=2, chunk_size=3,
        action_dim=4,
    )
    names = set(build_action_head(config).state_dict())
    block_names = {
        f'model.mlp_resnet_blocks.{i}.{part}.{kind}'
        for i in range(2)
        for part in ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'ffn.0', 'ffn.1')
        for kind in ('weight', 'bias')
    }
    block_names |= {f'model.mlp_resnet_blocks.{i}.gating_factor' for i in range(2)}
    trunk_names = {
        f'model.{part}.{kind}'
        for part in ('layer_norm1', 'fc1', 'layer_norm2', 'fc2')
        for kind in ('weight', 'bias')
    }
    assert names == block_names | trunk_names


def test_original_upstream_style_state_dict_loads_and_is_detected():
    config = ActionHeadConfig(
        block_type='original', hidden_dim=16, num_heads=8, num_blocks=3, chunk_size=3,
        action_dim=4,
    )
    source = build_action_head(config)
    upstream_style = {f'module.{k}': v.to(torch.bfloat16) for k, v in source.state_dict().items()}
    inferred = infer_upstream_head_config(upstream_style, chunk_size=3)
    assert (inferred.block_type, inferred.num_blocks, inferred.action_dim) == ('original', 3, 4)
    target = L1RegressionActionHead(inferred)
    assert target.load_upstream_state_dict(upstream_style) == []
    weight = target.model.fc1.weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, source.model.fc1.weight.to(torch.bfloat16).float())


def test_rotate_interleaved_pairs():
    u = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert rotate_interleaved_pairs(u).tolist() == [-2.0, 1.0, -4.0, 3.0, -6.0, 5.0]


def test_upstream_rope_uses_half_split_angles_with_interleaved_pairs():
    # head width 4: inverse frequencies [1, 1/100]; the angle table is [p, p/100, p, p/100].
    u = torch.tensor([0.3, -1.2, 0.7, 2.0]).repeat(1, 1, 3, 1)  # (1, 1, 3, 4)
    rotated = apply_upstream_rope(u, base=10000.0)[0, 0]  # (3, 4)
    a, b, c, d = (0.3, -1.2, 0.7, 2.0)
    for p in range(3):
        slow = p / 100.0
        expected = [
            a * math.cos(p) - b * math.sin(p),
            b * math.cos(slow) + a * math.sin(slow),
            c * math.cos(p) - d * math.sin(p),
            d * math.cos(slow) + c * math.sin(slow),
        ]
        assert rotated[p].tolist() == pytest.approx(expected, abs=1e-6)


def test_original_block_math_and_gate_on_task_keys():
    torch.manual_seed(0)
    config = ActionHeadConfig(block_type='original', hidden_dim=8, num_heads=2, num_blocks=1)
    block = OriginalBridgeBlock(config)
    with torch.no_grad():
        block.gating_factor.fill_(0.7)
    x, task, adapter = torch.randn(1, 3, 8), torch.randn(1, 5, 8), torch.randn(1, 2, 8)
    with torch.no_grad():
        out = block(x, task, adapter)  # (1, 3, 8)
        # Written out per head: keys [x, adapter, task], task logits times tanh(g), 1/sqrt(hd).
        q = block.q_proj(x)[0]
        tokens = torch.cat([x, adapter, task], dim=1)[0]  # (10, 8)
        keys, values = block.k_proj(tokens), block.v_proj(tokens)
        scale = torch.ones(10)
        scale[5:] = math.tanh(0.7)
        heads = []
        for h in range(2):
            cols = slice(4 * h, 4 * h + 4)
            logits = (q[:, cols] @ keys[:, cols].T) * scale / 2.0  # (3, 10)
            heads.append(torch.softmax(logits, dim=-1) @ values[:, cols])
        reference = block.ffn(block.o_proj(torch.cat(heads, dim=-1)) + x[0])
    torch.testing.assert_close(out[0], reference, atol=1e-6, rtol=1e-5)


def test_original_blocks_give_identical_steps_pro_blocks_do_not():
    # Upstream's all-zero seed makes every chunk step identical unless positions are encoded.
    torch.manual_seed(1)
    task, adapter = torch.randn(1, 2, 5, 16), torch.randn(1, 2, 3, 16)
    proprio = torch.randn(1, 1, 16)
    outputs = {}
    for block_type in ('original', 'pro'):
        config = ActionHeadConfig(
            block_type=block_type, hidden_dim=16, num_heads=2, num_blocks=2, chunk_size=4,
            action_dim=3,
        )
        with torch.no_grad():
            outputs[block_type] = build_action_head(config).eval()(task, adapter, proprio)[0]
    original, pro = outputs['original'], outputs['pro']
    torch.testing.assert_close(original, original[:1].expand_as(original))
    assert (pro[1:] - pro[:1]).abs().max() > 1e-4


def test_original_block_accepts_odd_head_width():
    # No rotary embedding in original blocks, so upstream sizes such as 40 / 8 = 5 must load.
    config = ActionHeadConfig(
        block_type='original', hidden_dim=40, num_heads=8, num_blocks=2, chunk_size=3,
        action_dim=4,
    )
    head = build_action_head(config)
    out = head(torch.randn(1, 2, 5, 40), torch.randn(1, 2, 6, 40), torch.randn(1, 1, 40))
    assert out.shape == (1, 3, 4)
    with pytest.raises(ValueError, match='rotary'):
        ActionHeadConfig(block_type='pro', hidden_dim=40, num_heads=8, num_blocks=2,
                         chunk_size=3, action_dim=4)
