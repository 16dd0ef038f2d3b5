"""Dual-arm head: query split, inter-arm attention being live in both directions, per-arm loss."""

import pytest
import torch

from vla_adapter_core.heads import ActionHeadConfig, DualArmActionHead, build_action_head
from vla_adapter_core.heads.attention import OriginalBridgeBlock, ProBridgeBlock

BATCH, BLOCKS, WIDTH, CHUNK, ACTION_DIM, QUERIES = 2, 3, 16, 4, 6, 3
HALF = ACTION_DIM // 2


def tiny_dual_head(block_type='pro', **overrides):
    torch.manual_seed(0)
    fields = dict(
        kind='dual_arm', block_type=block_type, hidden_dim=WIDTH, num_heads=2, num_blocks=BLOCKS,
        chunk_size=CHUNK, action_dim=ACTION_DIM, queries_per_arm=QUERIES,
    )
    fields.update(overrides)
    return build_action_head(ActionHeadConfig(**fields)).eval()


def tiny_inputs(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(BATCH, BLOCKS, 5, WIDTH, generator=generator),
        torch.randn(BATCH, BLOCKS, 2 * QUERIES, WIDTH, generator=generator),
        torch.randn(BATCH, 1, WIDTH, generator=generator),
    )


def _run(head, task, adapter, proprio):
    with torch.no_grad():
        actions = head(task, adapter, proprio)  # (B, T, A)
    return actions[..., :HALF], actions[..., HALF:]


@pytest.mark.parametrize('block_type', ('pro', 'original'))
def test_changing_only_right_queries_changes_the_left_arm(block_type):
    head = tiny_dual_head(block_type)
    task, adapter, proprio = tiny_inputs()
    left, right = _run(head, task, adapter, proprio)
    changed = adapter.clone()
    changed[:, :, QUERIES:] += torch.randn_like(changed[:, :, QUERIES:])
    new_left, new_right = _run(head, task, changed, proprio)
    assert (new_left - left).abs().max() > 1e-4
    assert (new_right - right).abs().max() > 1e-4


@pytest.mark.parametrize('block_type', ('pro', 'original'))
def test_changing_only_left_queries_changes_the_right_arm(block_type):
    head = tiny_dual_head(block_type)
    task, adapter, proprio = tiny_inputs()
    left, right = _run(head, task, adapter, proprio)
    changed = adapter.clone()
    changed[:, :, :QUERIES] += torch.randn_like(changed[:, :, :QUERIES])
    new_left, new_right = _run(head, task, changed, proprio)
    assert (new_right - right).abs().max() > 1e-4
    assert (new_left - left).abs().max() > 1e-4


def test_the_right_queries_reach_the_left_arm_only_through_the_cross_keys():
    # With the left stream's cross-arm key AND value projections zeroed, nothing of the right
    # arm reaches the left one any more: the cross keys are the only path between the arms.
    head = tiny_dual_head('pro')
    with torch.no_grad():
        for block in head.left.mlp_resnet_blocks:
            for layer in (block.k_cross, block.v_cross):
                layer.weight.zero_()
                layer.bias.zero_()
    task, adapter, proprio = tiny_inputs()
    left, _ = _run(head, task, adapter, proprio)
    changed = adapter.clone()
    changed[:, :, QUERIES:] += 1.0
    new_left, _ = _run(head, task, changed, proprio)
    torch.testing.assert_close(new_left, left, atol=0, rtol=0)


def test_block_zero_sees_only_the_other_seed_so_two_blocks_are_needed():
    with pytest.raises(ValueError, match='num_blocks'):
        ActionHeadConfig(
            kind='dual_arm', hidden_dim=WIDTH, num_heads=2, num_blocks=1, action_dim=ACTION_DIM
        )


def test_each_block_reads_the_other_arm_as_it_was_before_that_block():
    # Both streams update simultaneously: the right queries of the LAST layer reach the right arm
    # but no longer the left one; those of every earlier layer reach both.
    head = tiny_dual_head()
    task, adapter, proprio = tiny_inputs()
    left, right = _run(head, task, adapter, proprio)
    for layer in range(BLOCKS):
        changed = adapter.clone()
        changed[:, layer, QUERIES:] += 1.0
        new_left, new_right = _run(head, task, changed, proprio)
        assert (new_right - right).abs().max() > 1e-4
        left_moved = bool((new_left - left).abs().max() > 1e-4)
        assert left_moved == (layer < BLOCKS - 1), layer


def test_cross_arm_blocks_have_their_own_key_value_projections():
    head = tiny_dual_head('pro')
    block = head.left.mlp_resnet_blocks[0]
    assert isinstance(block, ProBridgeBlock) and block.cross_arm
    assert {'k_cross.weight', 'v_cross.weight'} <= set(block.state_dict())
    original = tiny_dual_head('original').right.mlp_resnet_blocks[1]
    assert isinstance(original, OriginalBridgeBlock) and original.cross_arm
    assert isinstance(tiny_dual_head(), DualArmActionHead)


def test_proprio_token_reaches_both_arms():
    head = tiny_dual_head()
    task, adapter, proprio = tiny_inputs()
    left, right = _run(head, task, adapter, proprio)
    new_left, new_right = _run(head, task, adapter, proprio + 1.0)
    assert (new_left - left).abs().max() > 1e-4
    assert (new_right - right).abs().max() > 1e-4


def test_query_count_must_be_two_arms_worth():
    head = tiny_dual_head()
    task, adapter, proprio = tiny_inputs()
    with pytest.raises(ValueError, match='queries_per_arm'):
        head(task, adapter[:, :, 1:], proprio)


def test_loss_reports_each_arm():
    head = tiny_dual_head().train()
    output = torch.zeros(BATCH, CHUNK, ACTION_DIM)
    targets = torch.cat(
        [torch.full((BATCH, CHUNK, HALF), 0.2), torch.full((BATCH, CHUNK, HALF), -0.6)], dim=-1
    )
    mask = torch.ones(BATCH, CHUNK, dtype=torch.bool)
    loss, metrics = head.loss(output, targets, mask)
    assert loss.item() == pytest.approx(0.4)
    assert metrics['l1_left'].item() == pytest.approx(0.2)
    assert metrics['l1_right'].item() == pytest.approx(0.6)
