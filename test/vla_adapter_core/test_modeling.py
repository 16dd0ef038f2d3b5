"""VLAAdapterModel training behaviour: loss, masking, gradient flow with a frozen VLM."""

import numpy as np
import pytest
import torch

from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.tiny_policies import build_tiny_policy, random_observation

HEAD_KINDS = ('l1', 'discrete', 'dual_arm')


def _training_batch(policy, seed=0, mask=None):
    observations = [random_observation(policy, seed=seed + index,
                                       instruction='stack the cups' * (index + 1))
                    for index in range(2)]
    rng = np.random.default_rng(seed)
    action = policy.statistics['tiny']['action']
    actions = rng.uniform(action['min'], action['max'],
                          size=(2, policy.config.chunk_size, policy.config.action_dim))
    return policy.processor(observations, actions=actions, action_mask=mask)


@pytest.fixture(params=HEAD_KINDS)
def policy(request):
    policy = build_tiny_policy(action_dim=4, proprio_dim=3, chunk_size=4,
                               camera_names=['cam_high'], head_kind=request.param, seed=2)
    policy.model.train()
    return policy


def test_batch_keys_and_shapes(policy):
    batch = _training_batch(policy)
    config = policy.config
    assert batch['pixel_values'].shape == (2, 1, 6, 224, 224)
    assert batch['input_ids'].dtype == torch.long
    assert batch['attention_mask'].shape == batch['input_ids'].shape
    assert batch['attention_mask'][0, 0] == 0  # the shorter prompt is left-padded
    assert batch['proprio'].shape == (2, config.proprio_dim)
    assert batch['actions'].shape == (2, config.chunk_size, config.action_dim)
    assert float(batch['actions'].abs().max()) <= 1.0
    assert batch['action_mask'].dtype == torch.bool


def _names(model, *prefixes):
    return {name for name, _ in model.named_parameters() if name.startswith(prefixes)}


def test_frozen_vlm_gradients_reach_only_trainable_parameters(policy):
    """Towers and LLM frozen: exactly head, queries, projector and proprio projector learn."""
    model = policy.model
    model.freeze_vlm()
    loss, metrics = model.compute_loss(_training_batch(policy))
    assert torch.isfinite(loss) and 'loss' in metrics
    loss.backward()
    frozen = _names(model, 'vision.', 'llm.')
    intended = _names(model, 'action_head.', 'action_queries.', 'projector.',
                      'proprio_projector.')
    assert frozen and intended
    assert frozen | intended == _names(model, '')  # every parameter is in one of the groups
    assert set(model.trainable_parameter_names()) == intended
    for name, parameter in model.named_parameters():
        if name in frozen:
            assert parameter.grad is None, name
        else:
            assert parameter.grad is not None, name
            assert torch.isfinite(parameter.grad).all(), name
    # Every trainable module gets a non-zero signal (through the frozen LLM for the queries).
    for prefix in ('action_queries.', 'projector.fc1.', 'proprio_projector.fc1.', 'action_head.'):
        total = sum(float(p.grad.abs().sum()) for name, p in model.named_parameters()
                    if name.startswith(prefix))
        assert total > 0, prefix


def test_freeze_projector_too(policy):
    model = policy.model
    model.freeze_vlm(freeze_projector=True)
    trainable = set(model.trainable_parameter_names())
    assert trainable == _names(model, 'action_head.', 'action_queries.', 'proprio_projector.')


def test_unfrozen_model_trains_the_vlm(policy):
    loss, _ = policy.model.compute_loss(_training_batch(policy))
    loss.backward()
    assert policy.model.projector.fc1.weight.grad is not None
    assert float(policy.model.llm.model.layers[0].mlp.up_proj.weight.grad.abs().sum()) > 0


def test_masked_steps_do_not_affect_the_loss(policy):
    mask = np.ones((2, policy.config.chunk_size), dtype=bool)
    mask[0, 2:] = False
    batch = _training_batch(policy, mask=mask)
    torch.manual_seed(0)
    loss, _ = policy.model.compute_loss(batch)
    changed = dict(batch)
    for key in ('actions', 'raw_actions'):
        changed[key] = batch[key].clone()
        changed[key][0, 2:] = -batch[key][0, 2:] + 0.3
    torch.manual_seed(0)
    loss_changed, _ = policy.model.compute_loss(changed)
    torch.testing.assert_close(loss_changed, loss)
    unmasked = dict(changed, action_mask=torch.ones_like(batch['action_mask']))
    torch.manual_seed(0)
    loss_unmasked, _ = policy.model.compute_loss(unmasked)
    assert abs(loss_unmasked.item() - loss.item()) > 1e-6


def test_compute_loss_needs_targets(policy):
    batch = _training_batch(policy)
    del batch['action_mask']
    with pytest.raises(ValueError, match='action_mask'):
        policy.model.compute_loss(batch)


def test_one_optimizer_step_lowers_l1_loss():
    policy = build_tiny_policy(action_dim=3, proprio_dim=3, chunk_size=2,
                               camera_names=['cam_high'], seed=5)
    model = policy.model.train()
    model.freeze_vlm()
    batch = _training_batch(policy)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    first, _ = model.compute_loss(batch)
    for _ in range(5):
        optimizer.zero_grad()
        loss, _ = model.compute_loss(batch)
        loss.backward()
        optimizer.step()
    final, _ = model.compute_loss(batch)
    assert final.item() < first.item()


def test_from_state_dict_matches_and_checks_keys():
    policy = build_tiny_policy(camera_names=['cam_high'], seed=6)
    model = policy.model.eval()
    state = model.state_dict()
    rebuilt = VLAAdapterModel.from_state_dict(policy.config, state, 'test').eval()
    batch = policy.prepare_batch([random_observation(policy, seed=1)])
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(batch), model(batch), rtol=0, atol=0)
    partial = {key: value for key, value in state.items() if key != 'projector.fc1.weight'}
    with pytest.raises(ValueError, match='projector.fc1.weight'):
        VLAAdapterModel.from_state_dict(policy.config, partial, 'test')
    resized = dict(state, **{'action_queries.weight': torch.zeros(3, 64)})
    with pytest.raises(ValueError, match='do not fit'):
        VLAAdapterModel.from_state_dict(policy.config, resized, 'test')


def test_bf16_autocast_training_runs_every_head_close_to_fp32(policy):
    """The GPU training path (bf16 autocast), on the CPU: bf16 proprio token, fp32 head.

    The loss and the head's gradients stay near the fp32 ones.
    """
    batch = _training_batch(policy)
    model = policy.model
    results = []
    for autocast in (False, True):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            loss, _ = model.compute_loss(batch)
        loss.backward()
        grad = next(model.action_head.parameters()).grad.clone()
        model.zero_grad(set_to_none=True)
        results.append((loss.item(), grad))
    assert np.isfinite(results[1][0])
    assert abs(results[1][0] - results[0][0]) < 0.05 * abs(results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1], rtol=0.1, atol=0.05)
