"""All three action heads at tiny sizes: shapes, loss masking, gradients, seed noise, checks."""

import dataclasses

import pytest
import torch

from vla_adapter_core.heads import (
    ActionBins,
    ActionHeadConfig,
    DiscreteActionHead,
    DualArmActionHead,
    L1RegressionActionHead,
    build_action_head,
    head_class,
    head_kinds,
)

BATCH, BLOCKS, WIDTH, CHUNK, ACTION_DIM = 2, 3, 16, 4, 6
TASK_TOKENS, QUERIES_PER_ARM, N_BINS = 5, 3, 12
KINDS = ('l1', 'discrete', 'dual_arm')
BLOCK_TYPES = ('pro', 'original')


def tiny_config(kind='l1', block_type='pro', **overrides):
    fields = dict(
        kind=kind, block_type=block_type, hidden_dim=WIDTH, num_blocks=BLOCKS, num_heads=2,
        chunk_size=CHUNK, action_dim=ACTION_DIM, n_action_bins=N_BINS,
        queries_per_arm=QUERIES_PER_ARM,
    )
    fields.update(overrides)
    return ActionHeadConfig(**fields)


def tiny_bins():
    low = torch.linspace(-2.0, -1.0, ACTION_DIM)
    return ActionBins(low, low + 3.0, n_bins=N_BINS)


def tiny_head(kind='l1', block_type='pro', **overrides):
    torch.manual_seed(0)
    config = tiny_config(kind, block_type, **overrides)
    return build_action_head(config, bins=tiny_bins() if kind == 'discrete' else None)


def tiny_inputs(batch=BATCH, adapter_tokens=2 * QUERIES_PER_ARM, proprio=True, seed=1):
    generator = torch.Generator().manual_seed(seed)
    task = torch.randn(batch, BLOCKS, TASK_TOKENS, WIDTH, generator=generator)
    adapter = torch.randn(batch, BLOCKS, adapter_tokens, WIDTH, generator=generator)
    token = torch.randn(batch, 1, WIDTH, generator=generator) if proprio else None
    return task, adapter, token


def tiny_targets(kind, seed=2):
    generator = torch.Generator().manual_seed(seed)
    targets = torch.rand(BATCH, CHUNK, ACTION_DIM, generator=generator) * 2.0 - 1.0
    if kind == 'discrete':  # raw actions inside the bins' range
        targets = targets + tiny_bins().low + 1.5
    return targets


@pytest.mark.parametrize('block_type', BLOCK_TYPES)
@pytest.mark.parametrize('kind', KINDS)
def test_output_shapes_and_predict_actions(kind, block_type):
    head = tiny_head(kind, block_type).eval()
    with torch.no_grad():
        output = head(*tiny_inputs())
        actions = head.predict_actions(output)
    if kind == 'discrete':
        assert output.shape == (BATCH, CHUNK, ACTION_DIM, N_BINS)
        assert head.output_space == head.target_space == 'raw'
    else:
        assert output.shape == (BATCH, CHUNK, ACTION_DIM)
        assert head.output_space == head.target_space == 'normalized'
    assert actions.shape == (BATCH, CHUNK, ACTION_DIM)
    assert torch.isfinite(output).all()


def test_build_action_head_types():
    assert isinstance(tiny_head('l1'), L1RegressionActionHead)
    assert isinstance(tiny_head('discrete'), DiscreteActionHead)
    assert isinstance(tiny_head('dual_arm'), DualArmActionHead)
    with pytest.raises(ValueError, match='bins'):
        build_action_head(tiny_config('l1'), bins=tiny_bins())


def test_head_registry_names_unknown_kinds():
    assert head_kinds() == ('discrete', 'dual_arm', 'l1')
    assert head_class('dual_arm') is DualArmActionHead
    message = (r"unknown action head kind 'diffusion'; known kinds: "
               r"\['discrete', 'dual_arm', 'l1'\]")
    with pytest.raises(ValueError, match=message):
        head_class('diffusion')
    config = tiny_config('l1')
    config.kind = 'diffusion'  # bypassing the validation of the config
    with pytest.raises(ValueError, match=message):
        build_action_head(config)  # never silently another head
    with pytest.raises(ValueError, match=r'ActionHeadConfig.kind: ' + message):
        tiny_config('diffusion')


@pytest.mark.parametrize('kind', ('l1', 'discrete'))
@pytest.mark.parametrize('block_type', BLOCK_TYPES)
def test_empty_adapter_window_without_proprio(kind, block_type):
    head = tiny_head(kind, block_type, use_proprio=False).eval()
    task, adapter, _ = tiny_inputs(adapter_tokens=0, proprio=False)
    with torch.no_grad():
        output = head(task, adapter, None)
    assert output.shape[:3] == (BATCH, CHUNK, ACTION_DIM)
    assert torch.isfinite(output).all()


def test_rows_of_a_batch_are_independent():
    head = tiny_head('l1').eval()
    task, adapter, proprio = tiny_inputs()
    with torch.no_grad():
        together = head(task, adapter, proprio)
        alone = head(task[1:], adapter[1:], proprio[1:])
    torch.testing.assert_close(together[1:], alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('block_type', BLOCK_TYPES)
@pytest.mark.parametrize('kind', KINDS)
def test_loss_ignores_masked_steps(kind, block_type):
    head = tiny_head(kind, block_type)
    output = head(*tiny_inputs())
    targets = tiny_targets(kind)
    mask = torch.ones(BATCH, CHUNK, dtype=torch.bool)
    mask[0, 2:] = False
    mask[1, 3] = False
    loss, metrics = head.loss(output, targets, mask)
    changed = targets.clone()
    changed[~mask] += 0.9
    changed_loss, changed_metrics = head.loss(output, changed, mask)
    torch.testing.assert_close(loss, changed_loss)
    for name, value in metrics.items():
        assert value.dim() == 0 and not value.requires_grad
        torch.testing.assert_close(value, changed_metrics[name])
    visible = targets.clone()
    visible[0, 0] += 0.9
    assert head.loss(output, visible, mask)[0] != loss


@pytest.mark.parametrize('kind', KINDS)
def test_all_masked_batch_gives_finite_zero(kind):
    head = tiny_head(kind)
    output = head(*tiny_inputs())
    mask = torch.zeros(BATCH, CHUNK, dtype=torch.bool)
    loss, metrics = head.loss(output, tiny_targets(kind), mask)
    assert loss.item() == 0.0
    assert all(torch.isfinite(value) for value in metrics.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


def test_l1_loss_value_is_masked_mean():
    head = tiny_head('l1')
    output = torch.zeros(BATCH, CHUNK, ACTION_DIM)
    targets = torch.full((BATCH, CHUNK, ACTION_DIM), 0.5)
    targets[1] = 3.0  # masked out below
    mask = torch.zeros(BATCH, CHUNK, dtype=torch.bool)
    mask[0] = True
    loss, metrics = head.loss(output, targets, mask)
    assert loss.item() == pytest.approx(0.5)
    assert metrics['l1_loss'].item() == pytest.approx(0.5)


def _gradients(kind, block_type, **overrides):
    head = tiny_head(kind, block_type, **overrides).train()
    with torch.no_grad():  # away from tanh'(0)-only paths: make the task gates non-zero
        for name, parameter in head.named_parameters():
            if name.endswith('gating_factor'):
                parameter.fill_(0.3)
    mask = torch.ones(BATCH, CHUNK, dtype=torch.bool)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    grads_per_step = []
    for _step in range(2):
        optimizer.zero_grad()
        loss, _metrics = head.loss(head(*tiny_inputs()), tiny_targets(kind), mask)
        loss.backward()
        grads_per_step.append({n: p.grad.clone() for n, p in head.named_parameters()})
        optimizer.step()
    if not overrides.get('train_input_noise_std'):
        # At initialisation the first LayerNorm's bias (the effective learned seed) is 0, so
        # fc1's weight sees a zero input and only starts to learn after one update.
        fc1_weight = 'left.fc1.weight' if kind == 'dual_arm' else 'model.fc1.weight'
        assert grads_per_step[0][fc1_weight].abs().sum() == 0
    assert not any('film_gen' in name for name, _ in head.named_parameters())
    return grads_per_step[1]


@pytest.mark.parametrize('block_type', BLOCK_TYPES)
@pytest.mark.parametrize('kind', KINDS)
def test_every_parameter_gets_a_gradient(kind, block_type):
    # The only exception is documented in l1.py: the seed is all zeros, so the first LayerNorm
    # outputs its bias and its weight (kept for upstream checkpoints) cannot learn.
    for name, grad in _gradients(kind, block_type).items():
        assert grad is not None, name
        if name.endswith('layer_norm1.weight'):
            assert grad.abs().sum() == 0, name
        else:
            assert grad.abs().sum() > 0, name


def test_first_layer_norm_weight_learns_only_with_seed_noise():
    grads = _gradients('l1', 'pro', train_input_noise_std=0.02)
    assert grads['model.layer_norm1.weight'].abs().sum() > 0


def test_gradient_reaches_the_llm_states_and_proprio():
    head = tiny_head('l1')
    task, adapter, proprio = (t.requires_grad_() for t in tiny_inputs())
    head(task, adapter, proprio).sum().backward()
    for tensor in (task, adapter, proprio):
        assert tensor.grad.abs().sum() > 0
    assert (task.grad.abs().sum(dim=(0, 2, 3)) > 0).all()  # every block reads its own layer


def test_seed_is_zeros_at_inference_and_in_training_without_noise():
    head = tiny_head('l1')
    inputs = tiny_inputs()
    with torch.no_grad():
        trained_mode = head.train()(*inputs)
        eval_mode = head.eval()(*inputs)
    torch.testing.assert_close(trained_mode, eval_mode, atol=0, rtol=0)


def test_training_noise_only_in_training_mode():
    head = tiny_head('l1', train_input_noise_std=0.02)
    inputs = tiny_inputs()
    with torch.no_grad():
        first, second = head.train()(*inputs), head(*inputs)
        eval_first, eval_second = head.eval()(*inputs), head(*inputs)
    assert (first - second).abs().max() > 0
    torch.testing.assert_close(eval_first, eval_second, atol=0, rtol=0)
    no_noise = tiny_head('l1')
    with torch.no_grad():
        torch.testing.assert_close(no_noise.eval()(*inputs), eval_first, atol=0, rtol=0)


def test_forward_rejects_inputs_that_do_not_fit():
    head = tiny_head('l1')
    task, adapter, proprio = tiny_inputs()
    with pytest.raises(ValueError, match='task_states'):
        head(task[:, 1:], adapter, proprio)
    with pytest.raises(ValueError, match='adapter_states'):
        head(task, adapter[..., :8], proprio)
    with pytest.raises(ValueError, match='proprio_token'):
        head(task, adapter, None)
    with pytest.raises(ValueError, match='proprio_token'):
        tiny_head('l1', use_proprio=False)(task, adapter, proprio)
    with pytest.raises(ValueError, match='mask'):
        head.loss(head(task, adapter, proprio), tiny_targets('l1'), torch.ones(BATCH, CHUNK))
    with pytest.raises(ValueError, match='targets'):
        head.loss(head(task, adapter, proprio), tiny_targets('l1')[:, 1:], torch.ones(2, 4).bool())


@pytest.mark.parametrize('kind', KINDS)
def test_heads_run_in_bfloat16_and_reject_mixed_dtypes(kind):
    head = tiny_head(kind).eval()
    task, adapter, proprio = tiny_inputs()
    with pytest.raises(ValueError, match='dtype'):
        head.to(torch.bfloat16)(task, adapter, proprio)
    with torch.no_grad():
        output = head(task.bfloat16(), adapter.bfloat16(), proprio.bfloat16())
        actions = head.predict_actions(output)
    assert output.dtype == torch.bfloat16 and torch.isfinite(actions.float()).all()
    assert actions.shape == (BATCH, CHUNK, ACTION_DIM)


def test_config_round_trip_and_validation():
    config = tiny_config('dual_arm', 'original', train_input_noise_std=0.01)
    assert ActionHeadConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match='unknown keys'):
        ActionHeadConfig.from_dict({**config.to_dict(), 'surprise': 1})
    bad_values = [
        ({'kind': 'diffusion'}, 'kind'),
        ({'block_type': 'turbo'}, 'block_type'),
        ({'hidden_dim': 18, 'num_heads': 4}, 'divisible'),
        ({'hidden_dim': 12, 'num_heads': 4}, 'even'),
        ({'chunk_size': 0}, 'chunk_size'),
        ({'num_blocks': True}, 'num_blocks'),
        ({'kind': 'dual_arm', 'action_dim': 7}, 'action_dim'),
        ({'kind': 'dual_arm', 'num_blocks': 1}, 'num_blocks'),
        ({'kind': 'discrete', 'n_action_bins': 1}, 'n_action_bins'),
        ({'train_input_noise_std': -0.1}, 'train_input_noise_std'),
        ({'layer_norm_eps': 0.0}, 'layer_norm_eps'),
        ({'use_proprio': 1}, 'use_proprio'),
    ]
    for overrides, field_name in bad_values:
        fields = {**dataclasses.asdict(tiny_config()), **overrides}
        with pytest.raises(ValueError, match=field_name):
            ActionHeadConfig(**fields)


def test_heads_reject_a_config_of_another_kind():
    with pytest.raises(ValueError, match='kind'):
        L1RegressionActionHead(tiny_config('discrete'))
    with pytest.raises(ValueError, match='kind'):
        DiscreteActionHead(tiny_config('l1'))
    with pytest.raises(ValueError, match='kind'):
        DualArmActionHead(tiny_config('l1'))
