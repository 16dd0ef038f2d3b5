"""The arithmetic and the head probe of benchmarks/demo_policy_start_fit.py (issue 19)."""

from pathlib import Path
import sys

import numpy as np
import pytest
import torch

from vla_adapter_core.tiny_policies import build_tiny_policy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
import demo_policy_start_fit as start_fit  # noqa: E402


def test_spread_and_gain_of_a_copy_a_constant_and_a_half():
    target = torch.tensor(np.random.default_rng(0).normal(size=(6, 4, 2)), dtype=torch.float32)
    same = start_fit.spread_report(target.clone(), target)
    assert same['gain'] == pytest.approx(1.0) and same['l1'] == 0.0
    assert same['spread'] == pytest.approx(same['label_spread'])
    constant = start_fit.spread_report(target.mean(0, keepdim=True).expand_as(target), target)
    assert constant['spread'] == pytest.approx(0.0, abs=1e-7)
    assert constant['gain'] == pytest.approx(0.0, abs=1e-6)
    half = start_fit.spread_report(target.mean(0) + 0.5 * (target - target.mean(0)), target)
    assert half['gain'] == pytest.approx(0.5) and half['spread'] == pytest.approx(
        0.5 * half['label_spread'])


def test_fresh_model_gates_and_head_sensitivity():
    policy = build_tiny_policy(chunk_size=4, head_kind='dual_arm', image_size=28)
    model = start_fit.fresh_model(policy.config, gate_init=1.5, init='open', seed=0).eval()
    gates = [p.item() for n, p in model.named_parameters() if n.endswith('.gating_factor')]
    assert gates and set(gates) == {1.5}
    assert torch.count_nonzero(model.action_queries.weight) > 0
    rng = np.random.default_rng(1)
    observations = [{'images': {camera: rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
                                for camera in policy.config.camera_names},
                     'proprio': rng.normal(size=14).astype(np.float32),
                     'instruction': 'pick'} for _ in range(3)]
    report = start_fit.head_sensitivity(model, policy.processor(observations))
    assert report['output_rms'] > 0
    for name in ('task_states', 'adapter_states', 'proprio_token'):
        assert report[f'{name}_noise_output_change_rms'] > 0, name
    trainable = start_fit.set_trainable(model, 'head')
    assert not any(p.requires_grad for p in model.llm.parameters())
    assert len(trainable) < len(start_fit.set_trainable(model, 'all'))
