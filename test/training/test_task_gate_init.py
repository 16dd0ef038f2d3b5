"""``--task_gate_init``: where the action head starts fresh its vision gates take the value.

A run whose head kind differs from its source checkpoint's says that it replaces the head.
Upstream starts them at 0 (uniform attention over the vision tokens); weights that come from a
source checkpoint keep the source's gates.
"""

import pytest
import torch

from training.data_config import DatasetConfig
from training.model_setup import GATE_SUFFIX, PolicySource, build_model, replaced_head_note
from training.train_config import TrainConfig
from vla_adapter_core.prompt import load_tokenizer
from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir

CAMERAS = ['cam_high']


@pytest.fixture(scope='module')
def tiny():
    config = build_tiny_config(chunk_size=4, camera_names=CAMERAS, head_kind='dual_arm',
                               image_size=28, unnorm_key='default')
    return config, load_tokenizer(default_tokenizer_dir())


def gates(model) -> dict[str, float]:
    return {name: value.item() for name, value in model.named_parameters()
            if name.endswith(GATE_SUFFIX)}


def test_fresh_gates_take_the_value_and_default_stays_upstream(tiny):
    config, tokenizer = tiny
    source = PolicySource(config, None, tokenizer, 'test')
    default, _ = build_model(config, source, None, seed=0)
    opened, _ = build_model(config, source, None, seed=0, task_gate_init=1.5)
    assert len(gates(default)) == 2 * config.action_head.num_blocks  # both arms' blocks
    assert set(gates(default).values()) == {0.0}
    assert set(gates(opened).values()) == {1.5}
    others = {name: value for name, value in opened.state_dict().items()
              if not name.endswith(GATE_SUFFIX)}
    for name, value in default.state_dict().items():  # only the gates differ
        if not name.endswith(GATE_SUFFIX):
            assert torch.equal(value, others[name]), name


def test_gates_loaded_from_a_source_are_kept(tiny):
    config, tokenizer = tiny
    trained, _ = build_model(config, PolicySource(config, None, tokenizer, 'test'), None, seed=0)
    with torch.no_grad():
        for name, parameter in trained.named_parameters():
            if name.endswith(GATE_SUFFIX):
                parameter.fill_(-0.25)
    state = {name: value.clone() for name, value in trained.state_dict().items()}
    source = PolicySource(config, state, tokenizer, 'a checkpoint')
    model, fresh = build_model(config, source, None, seed=1, task_gate_init=1.5)
    assert not [name for name in fresh if name.endswith(GATE_SUFFIX)]
    assert set(gates(model).values()) == {-0.25}


@pytest.mark.parametrize('value', [5.5, float('nan')])
def test_out_of_range_value_is_refused_naming_the_field(value):
    data = DatasetConfig(paths=['unused'], camera_names=CAMERAS, chunk_size=4)
    with pytest.raises(ValueError, match='task_gate_init'):
        TrainConfig(data=data, output_dir='unused', policy_config='unused.json',
                    tokenizer_dir='unused', task_gate_init=value)


def test_a_run_that_replaces_the_source_head_says_so(tiny):
    config, tokenizer = tiny  # a dual-arm checkpoint
    model, _ = build_model(config, PolicySource(config, None, tokenizer, 'test'), None, seed=0)
    source = PolicySource(config, model.state_dict(), tokenizer, 'a checkpoint')
    note = replaced_head_note(source, 'l1')
    assert "'dual_arm'" in note and '--head_kind dual_arm' in note
    assert replaced_head_note(source, 'dual_arm') == ''
    assert replaced_head_note(PolicySource(config, None, tokenizer, 'fresh'), 'l1') == ''
