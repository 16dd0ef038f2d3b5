"""benchmarks/train_step.py at tiny size: the real-size benchmark's code path, on the CPU.

The measured parts must agree with what the parameter counts compute, every first step must be
correct (loss finite, trained tensors changed, frozen ones not), and checkpointing must keep
fewer activations.
"""

import importlib.util
import json
import math
from pathlib import Path
import sys

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def benchmark():
    spec = importlib.util.spec_from_file_location('train_step_benchmark',
                                                  REPO / 'benchmarks' / 'train_step.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_tiny_run_measures_what_the_counts_compute(benchmark, tmp_path, capsys):
    output = tmp_path / 'rows.json'
    assert benchmark.main(['--tiny', '--batch_sizes', '1', '--device', 'cpu', '--output',
                           str(output)]) == 0
    results = json.loads(output.read_text())
    computed = {(row['mode'], row['optimizer']): row for row in results['computed']}
    lora, full = computed['lora', 'adamw'], computed['full', 'adamw']
    # LoRA adds its adapters to the model and trains only them and the head side.
    assert lora['parameters'] - full['parameters'] < lora['trainable'] < full['trainable']
    assert full['optimizer_state'] == 8 * full['trainable']
    assert computed['full', 'adamw_8bit']['optimizer_state'] == 2 * full['trainable']
    rows = results['measured']
    assert [(row['mode'], row['checkpointing']) for row in rows] == [
        ('lora', 'off'), ('lora', 'on'), ('full', 'off'), ('full', 'on')]
    for row in rows:
        counted = computed[row['mode'], 'adamw']
        check = row['check']
        assert check['ok'] and math.isfinite(check['loss']) and not check['frozen_changed']
        assert row['weights'] == counted['weights']  # fp32: 4 bytes per parameter
        assert row['gradients'] == counted['gradients']  # every trainable tensor got one
        # Two fp32 moments per trainable weight plus a 4-byte step counter per tensor.
        assert row['optimizer_state'] == (counted['optimizer_state']
                                          + 4 * check['trainable_tensors'])
        assert row['peak_rss'] > row['weights'] and row['step_s'] > 0
    # Zero-initialised factors leave some tensors without a gradient on the first step (the
    # head's task keys behind tanh(gate = 0); LoRA's A matrices behind B = 0): 12 + 2 x 7.
    assert [row['check']['trainable_tensors'] - row['check']['with_gradient']
            for row in (rows[0], rows[2])] == [12 + 14, 12]
    for plain, recomputed in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert 0 < recomputed['activations'] < plain['activations']
    out = capsys.readouterr().out
    assert '| full | adamw_8bit |' in out and out.count(' ok (all ') == 4


def test_a_mode_that_cannot_fit_is_reported_not_run(benchmark, tmp_path, monkeypatch):
    output = tmp_path / 'rows.json'
    args = ['--tiny', '--modes', 'full', '--device', 'cpu', '--output', str(output)]
    monkeypatch.setattr(benchmark, 'available_memory', lambda device: 2 ** 20)
    assert benchmark.main(args) == 0
    (row,) = json.loads(output.read_text())['measured']
    assert row['skipped'].startswith('not run: weights + gradients + optimiser state need ')
    assert row['skipped'].endswith('GiB (computed), 0.0 GiB available on cpu')
    # Room for the weights and a forward pass, not for the step: activations measured alone.
    monkeypatch.setattr(benchmark, 'available_memory', lambda device: 100 * 2 ** 20)
    assert benchmark.main([*args, '--batch_sizes', '1']) == 0
    rows = json.loads(output.read_text())['measured']
    assert [(row['checkpointing'], row['forward_only']) for row in rows] == [
        ('off', True), ('on', True)]
    assert all(math.isfinite(row['loss']) and 'check' not in row for row in rows)
    assert 0 < rows[1]['activations'] < rows[0]['activations']
