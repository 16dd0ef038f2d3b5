"""Adaptive bins and the discrete head: round trip, json, metrics, bins saved with the weights."""

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
import torch

from vla_adapter_core.heads import (
    ActionBins,
    ActionHeadConfig,
    DiscreteActionHead,
    bins_file_name,
    build_action_head,
)

ACTION_DIM, CHUNK, N_BINS, WIDTH, BLOCKS = 3, 4, 32, 16, 2


def sample_actions(n=500, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.array([0.1, 2.0, 30.0])
    offset = np.array([-0.5, 1.0, 100.0])
    return rng.standard_normal((n, ACTION_DIM)) * scale + offset  # (N, A)


def tiny_discrete_head(bins=None, **overrides):
    torch.manual_seed(0)
    fields = dict(
        kind='discrete', hidden_dim=WIDTH, num_heads=2, num_blocks=BLOCKS, chunk_size=CHUNK,
        action_dim=ACTION_DIM, n_action_bins=N_BINS,
    )
    fields.update(overrides)
    return build_action_head(ActionHeadConfig(**fields), bins=bins)


def tiny_inputs(batch=2):
    generator = torch.Generator().manual_seed(3)
    return (
        torch.randn(batch, BLOCKS, 5, WIDTH, generator=generator),
        torch.randn(batch, BLOCKS, 4, WIDTH, generator=generator),
        torch.randn(batch, 1, WIDTH, generator=generator),
    )


def test_from_data_widens_each_dimension_by_five_percent_per_side():
    actions = sample_actions()
    bins = ActionBins.from_data(actions, n_bins=N_BINS)
    span = actions.max(axis=0) - actions.min(axis=0)
    np.testing.assert_allclose(bins.low.numpy(), actions.min(axis=0) - 0.05 * span, rtol=1e-6)
    np.testing.assert_allclose(bins.high.numpy(), actions.max(axis=0) + 0.05 * span, rtol=1e-6)
    assert bins.n_bins == N_BINS and bins.margin == 0.05
    assert ActionBins.from_data(torch.from_numpy(actions)).n_bins == 256


def test_constant_dimension_gets_a_unit_range():
    actions = sample_actions()
    actions[:, 1] = 0.25
    bins = ActionBins.from_data(actions, n_bins=N_BINS, margin=0.1)
    assert bins.low[1].item() == pytest.approx(0.15)
    assert bins.high[1].item() == pytest.approx(0.35)


def test_round_trip_error_is_at_most_half_a_bin():
    actions = sample_actions()
    bins = ActionBins.from_data(actions, n_bins=N_BINS)
    raw = torch.from_numpy(np.concatenate([actions, sample_actions(seed=1)])).float()
    edges = torch.stack([bins.low, bins.high, bins.low + 3.5 * bins.bin_width])  # bin borders
    raw = torch.cat([raw.clamp(bins.low, bins.high), edges])  # (N, A) inside the widened range
    indices = bins.to_bins(raw)
    assert indices.dtype == torch.long
    assert int(indices.min()) >= 0 and int(indices.max()) <= N_BINS - 1
    error = (bins.to_centres(indices) - raw).abs()  # (N, A)
    assert (error <= bins.bin_width / 2 * (1 + 1e-4)).all()


def test_values_outside_the_range_clamp_to_the_outer_bins():
    bins = ActionBins([0.0, -1.0, 5.0], [1.0, 1.0, 6.0], n_bins=N_BINS)
    raw = torch.tensor([[-10.0, 10.0, 5.5]])
    assert bins.to_bins(raw).tolist() == [[0, N_BINS - 1, N_BINS // 2]]


def test_json_round_trip(tmp_path):
    bins = ActionBins.from_data(sample_actions(), n_bins=N_BINS, margin=0.07)
    path = tmp_path / bins_file_name(N_BINS)
    assert path.name == 'dataset_statistics_32_bins.json'
    bins.to_json(path)
    data = json.loads(path.read_text())
    assert sorted(data) == ['high', 'low', 'margin', 'n_bins']
    assert data['n_bins'] == N_BINS and data['margin'] == 0.07 and len(data['low']) == ACTION_DIM
    loaded = ActionBins.from_json(path)
    assert (loaded.n_bins, loaded.margin) == (bins.n_bins, bins.margin)
    torch.testing.assert_close(loaded.low, bins.low, atol=0, rtol=0)
    torch.testing.assert_close(loaded.high, bins.high, atol=0, rtol=0)


def test_bad_bins_are_rejected(tmp_path):
    with pytest.raises(ValueError, match='n_bins'):
        ActionBins([0.0], [1.0], n_bins=1)
    with pytest.raises(ValueError, match='low < high'):
        ActionBins([0.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match='NaN'):
        ActionBins.from_data(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match=r'\(N, A\)'):
        ActionBins.from_data(np.zeros(5))
    path = tmp_path / 'bins.json'
    path.write_text(json.dumps({'n_bins': 4, 'low': [0.0], 'high': [1.0]}))
    with pytest.raises(ValueError, match='keys'):
        ActionBins.from_json(path)
    with pytest.raises(ValueError, match='action_dim'):
        ActionBins([0.0], [1.0]).to_bins(torch.zeros(2, 3))


def test_logits_put_on_the_target_bins_give_full_accuracy():
    bins = ActionBins.from_data(sample_actions(), n_bins=N_BINS)
    head = tiny_discrete_head(bins)
    raw = torch.from_numpy(sample_actions(n=2 * CHUNK, seed=4)).float().reshape(2, CHUNK, -1)
    raw = raw.clamp(bins.low, bins.high)
    logits = torch.nn.functional.one_hot(bins.to_bins(raw), N_BINS).float() * 20.0
    mask = torch.ones(2, CHUNK, dtype=torch.bool)
    mask[1, -1] = False
    logits[1, -1] = logits[1, -1].roll(1, dims=-1)  # wrong, but masked out
    loss, metrics = head.loss(logits, raw, mask)
    assert metrics['action_accuracy'].item() == 1.0
    assert loss.item() < 1e-6
    assert (metrics['l1_decoded'] <= bins.bin_width.max() / 2).all()
    decoded = head.predict_actions(logits)  # (B, T, A) raw actions
    assert ((decoded - raw)[mask].abs() <= bins.bin_width / 2 * (1 + 1e-4)).all()


def test_accuracy_counts_exact_bin_hits():
    bins = ActionBins([0.0] * ACTION_DIM, [1.0] * ACTION_DIM, n_bins=N_BINS)
    head = tiny_discrete_head(bins)
    raw = torch.full((1, CHUNK, ACTION_DIM), (N_BINS // 2 + 0.5) / N_BINS)  # centre of bin 16
    logits = torch.zeros(1, CHUNK, ACTION_DIM, N_BINS)
    logits[..., N_BINS // 2] = 5.0
    logits[0, 0, :, 0] = 9.0  # the first step (3 of 12 entries) predicts bin 0
    _, metrics = head.loss(logits, raw, torch.ones(1, CHUNK, dtype=torch.bool))
    assert metrics['action_accuracy'].item() == pytest.approx(0.75)
    expected_l1 = 0.25 * (N_BINS // 2) / N_BINS  # a quarter of the entries decode to bin 0
    assert metrics['l1_decoded'].item() == pytest.approx(expected_l1, rel=1e-5)


def test_trained_head_can_fit_a_target_chunk():
    bins = ActionBins.from_data(sample_actions(), n_bins=N_BINS)
    head = tiny_discrete_head(bins).train()
    inputs = tiny_inputs(batch=1)
    raw = torch.from_numpy(sample_actions(n=CHUNK, seed=5)).float().reshape(1, CHUNK, -1)
    raw = raw.clamp(bins.low, bins.high)
    mask = torch.ones(1, CHUNK, dtype=torch.bool)
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        optimizer.zero_grad()
        loss, metrics = head.loss(head(*inputs), raw, mask)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert metrics['action_accuracy'].item() == 1.0
    decoded = head.predict_actions(head.eval()(*inputs))
    assert ((decoded - raw).abs() <= bins.bin_width / 2 * (1 + 1e-4)).all()


def test_bins_are_saved_and_loaded_with_the_weights():
    bins = ActionBins.from_data(sample_actions(), n_bins=N_BINS)
    trained = tiny_discrete_head(bins).eval()
    state = trained.state_dict()
    assert {'bins.low', 'bins.high'} <= set(state)
    fresh = tiny_discrete_head(None).eval()
    with pytest.raises(RuntimeError, match='unset'):
        fresh.predict_actions(torch.zeros(1, CHUNK, ACTION_DIM, N_BINS))
    fresh.load_state_dict(state)
    with torch.no_grad():
        inputs = tiny_inputs()
        torch.testing.assert_close(
            fresh.predict_actions(fresh(*inputs)), trained.predict_actions(trained(*inputs))
        )


def test_head_rejects_bins_that_do_not_fit():
    with pytest.raises(ValueError, match='n_bins'):
        tiny_discrete_head(ActionBins([0.0] * ACTION_DIM, [1.0] * ACTION_DIM, n_bins=8))
    with pytest.raises(ValueError, match='action_dim'):
        tiny_discrete_head(ActionBins([0.0], [1.0], n_bins=N_BINS))
    assert isinstance(tiny_discrete_head(None), DiscreteActionHead)


def test_bins_stay_float32_in_a_bfloat16_head():
    # A bf16 policy (dtype='auto' on CUDA) must decode the same bin centres as a float32 one.
    bins = ActionBins.from_data(sample_actions(), n_bins=N_BINS)
    reference = bins.to_centres(torch.arange(N_BINS)[:, None].expand(-1, ACTION_DIM))
    head = tiny_discrete_head(bins).to(torch.bfloat16).eval()
    assert head.model.fc2.weight.dtype == torch.bfloat16
    assert head.bins.low.dtype == torch.float32 and head.bins.high.dtype == torch.float32
    torch.testing.assert_close(head.bins.low, bins.low, rtol=0, atol=0)
    logits = torch.full((1, N_BINS, ACTION_DIM, N_BINS), -5.0, dtype=torch.bfloat16)
    logits[0, torch.arange(N_BINS), :, torch.arange(N_BINS)] = 5.0  # step t -> bin t
    decoded = head.predict_actions(logits)[0]  # (N_BINS, A)
    assert decoded.dtype == torch.float32
    torch.testing.assert_close(decoded, reference, rtol=0, atol=0)
    with torch.no_grad():
        head(*(tensor.to(torch.bfloat16) for tensor in tiny_inputs()))  # runs in bf16


@pytest.mark.parametrize('low, high, message', [
    ([0.0, float('nan')], [1.0, 1.0], r'low\[1\] = nan: not finite'),
    ([0.0, 0.0], [1.0, float('inf')], r'high\[1\] = inf: not finite'),
    ([0.0, 2.0], [1.0, 1.0], r'low\[1\] = 2\.0 >= high\[1\] = 1\.0: bins need low < high'),
    ([0.0, 1.0], [1.0, 1.0], r'low\[1\] = 1\.0 >= high\[1\] = 1\.0'),  # zero width
])
def test_bins_file_errors_name_the_file_key_and_value(tmp_path, low, high, message):
    path = tmp_path / bins_file_name(4)
    path.write_text(json.dumps({'n_bins': 4, 'margin': 0.05, 'low': low, 'high': high}))
    with pytest.raises(ValueError, match=f'{bins_file_name(4)}: {message}'):
        ActionBins.from_json(path)


def test_unset_or_degenerate_bins_are_never_written(tmp_path):
    path = tmp_path / 'bins.json'
    with pytest.raises(ValueError, match=r'bins.json: low\[0\] = nan: not finite'):
        ActionBins.placeholder(ACTION_DIM, N_BINS).to_json(path)
    assert not path.exists()
    constant = np.array([[0.0, 1.0], [0.5, 1.0]])  # (N, A): dimension 1 never changes
    with pytest.raises(ValueError, match=r'action dimensions \[1\] are constant and margin=0'):
        ActionBins.from_data(constant, margin=0.0)
    bins = ActionBins.from_data(constant, margin=0.05)  # [v - margin, v + margin]
    np.testing.assert_allclose(bins.high.numpy() - bins.low.numpy(), [0.55, 0.1], rtol=1e-6)


@pytest.fixture(scope='module')
def discrete_checkpoint(tmp_path_factory):
    from vla_adapter_core.tiny_policies import build_tiny_policy

    policy = build_tiny_policy(action_dim=4, proprio_dim=3, chunk_size=2,
                               camera_names=['cam_high'], head_kind='discrete', seed=5,
                               n_action_bins=16)
    directory = tmp_path_factory.mktemp('discrete')
    policy.save_pretrained(directory)
    return directory


def test_discrete_checkpoint_with_invalid_bins_is_refused(discrete_checkpoint, tmp_path):
    from vla_adapter_core.policy import VLAPolicy

    VLAPolicy.from_pretrained(discrete_checkpoint)  # the saved one loads
    nan_weights = shutil.copytree(discrete_checkpoint, tmp_path / 'nan_weights')
    state = load_file(nan_weights / 'model.safetensors')
    state['action_head.bins.low'][1] = float('nan')
    save_file(state, nan_weights / 'model.safetensors', metadata={'format': 'vla_adapter_core'})
    (nan_weights / bins_file_name(16)).unlink()  # the weights alone carry the bins
    with pytest.raises(ValueError, match=r'model\.safetensors: action_head\.bins\.low\[1\] = '
                                         r'nan: not finite'):
        VLAPolicy.from_pretrained(nan_weights)
    inverted = shutil.copytree(discrete_checkpoint, tmp_path / 'inverted')
    path = inverted / bins_file_name(16)
    data = json.loads(path.read_text())
    data['low'][2], data['high'][2] = data['high'][2], data['low'][2]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f'{bins_file_name(16)}: low\\[2\\] = '):
        VLAPolicy.from_pretrained(inverted)
