"""Reading upstream Prismatic VLM directories (config.json 'model' + checkpoints/*.pt).

The directories are written here in Prismatic's on-disk format with tiny real towers and a tiny
Qwen2: ``torch.save({'model': {'projector': ..., 'llm_backbone': ...}})`` of plain tensor dicts
named as Prismatic's modules name them.
"""

import argparse
import collections
import json
import os
import pathlib
import shutil

import pytest
from safetensors.torch import save_file
import torch

from vla_adapter_core.config import DINOV2_TIMM_ID, SIGLIP_TIMM_ID
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.prismatic import (
    find_vlm_checkpoint,
    is_prismatic_vlm,
    load_prismatic_vlm,
    save_prismatic_vlm,
)
from vla_adapter_core.testing import build_tiny_config, default_tokenizer_dir, randomize_for_tests

UPSTREAM_RUN = (pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'upstream_vla_adapter'
                / 'libero_pro_2cam' / 'checkpoint')
MODEL_ENTRY = {
    'model_id': 'prism-qwen25-extra-dinosiglip-224px+0_5b',
    'arch_specifier': 'no-align+fused-gelu-mlp',
    'vision_backbone_id': 'dinosiglip-vit-so-224px',
    'llm_backbone_id': 'qwen25-0_5b-extra',
    'image_resize_strategy': 'resize-naive',
    'llm_max_length': 32768,
}
TINY_HEADS = {'timm': {DINOV2_TIMM_ID: {'resulting': {'num_heads': 2}},
                       SIGLIP_TIMM_ID: {'resulting': {'num_heads': 2}}}}


@pytest.fixture(scope='module')
def source_model():
    """A tiny model at Prismatic's 224 px whose VLM weights the directories carry."""
    model = VLAAdapterModel(build_tiny_config(image_size=224))
    randomize_for_tests(model, seed=3)
    return model


def write_tokenizer_dir(folder: pathlib.Path, llm, **changes) -> pathlib.Path:
    """The Qwen2.5 tokenizer plus an OpenVLA config.json with the tiny text_config."""
    shutil.copytree(default_tokenizer_dir(), folder)
    text = {'model_type': 'qwen2', 'hidden_size': llm.hidden_size,
            'intermediate_size': llm.intermediate_size,
            'num_hidden_layers': llm.num_hidden_layers,
            'num_attention_heads': llm.num_attention_heads,
            'num_key_value_heads': llm.num_key_value_heads, 'vocab_size': llm.vocab_size,
            'rope_theta': llm.rope_theta, 'tie_word_embeddings': True, **changes}
    (folder / 'config.json').write_text(json.dumps({'model_type': 'openvla',
                                                    'text_config': text}))
    return folder


def prismatic_modules(state: dict) -> tuple[dict, dict]:
    """Our VLM tensors under Prismatic's names: (checkpoint modules, vision backbone)."""
    projector = collections.OrderedDict()
    for ours, theirs in (('fc1', '0'), ('fc2', '2'), ('fc3', '4')):
        for kind in ('weight', 'bias'):
            projector[f'projector.{theirs}.{kind}'] = state[f'projector.{ours}.{kind}'].clone()
    llm = collections.OrderedDict((name, value.clone()) for name, value in state.items()
                                  if name.startswith('llm.model.'))
    llm['llm.lm_head.weight'] = state['llm.model.embed_tokens.weight'].clone()
    vision = {}
    for name, value in state.items():
        for index, prefix in enumerate(('dino_featurizer.', 'siglip_featurizer.')):
            if name.startswith(f'vision.towers.{index}.'):
                vision[prefix + name[len(f'vision.towers.{index}.'):]] = value.clone()
    return {'projector': projector, 'llm_backbone': llm}, vision


def write_vlm_dir(folder: pathlib.Path, state: dict, checkpoint_name='latest-checkpoint.pt',
                  vision_in_checkpoint=False, model_entry=None) -> pathlib.Path:
    (folder / 'checkpoints').mkdir(parents=True)
    modules, vision = prismatic_modules(state)
    if vision_in_checkpoint:
        modules['vision_backbone'] = vision
    else:
        save_file(vision, folder / 'vision_backbone.safetensors')
    torch.save({'model': modules}, folder / 'checkpoints' / checkpoint_name)
    config = {'model': model_entry or MODEL_ENTRY, 'dataset': {'type': 'llava-lvis4v-lrv'},
              'stage': 'finetune', 'run_id': 'prism-qwen25-extra-dinosiglip-224px+0_5b'}
    (folder / 'config.json').write_text(json.dumps(config))
    (folder / 'tiny_overrides.json').write_text(json.dumps(TINY_HEADS))
    return folder


def assert_vlm_weights_equal(loaded: dict, state: dict) -> None:
    vlm = [name for name in state if name.startswith(('vision.', 'projector.', 'llm.'))]
    assert sorted(loaded) == sorted(vlm)
    for name in vlm:
        torch.testing.assert_close(loaded[name], state[name], rtol=0, atol=0, msg=name)


def test_detects_only_prismatic_directories(source_model, tmp_path):
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', source_model.state_dict())
    assert is_prismatic_vlm(vlm_dir)
    assert not is_prismatic_vlm(UPSTREAM_RUN)
    assert not is_prismatic_vlm(tmp_path)
    os.remove(vlm_dir / 'vision_backbone.safetensors')
    shutil.rmtree(vlm_dir / 'checkpoints')
    assert not is_prismatic_vlm(vlm_dir)


def test_loads_sizes_and_weights_in_our_names(source_model, tmp_path):
    state = source_model.state_dict()
    config = source_model.config
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', state)
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', config.llm)
    vlm = load_prismatic_vlm(vlm_dir, tokenizer_dir, camera_names=['front', 'wrist'])
    assert vlm.model_id == MODEL_ENTRY['model_id']
    assert vlm.checkpoint_path.endswith(os.path.join('checkpoints', 'latest-checkpoint.pt'))
    assert vlm.config.layout == 'aligned'
    assert vlm.config.camera_names == ['front', 'wrist']
    assert vlm.config.vision.embed_dims == config.vision.embed_dims
    assert vlm.config.vision.image_size == 224
    assert vlm.config.vision.timm_model_ids == [DINOV2_TIMM_ID, SIGLIP_TIMM_ID]
    for name in ('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
                 'num_key_value_heads', 'vocab_size'):
        assert getattr(vlm.config.llm, name) == getattr(config.llm, name), name
    assert vlm.config.action_head.hidden_dim == config.llm.hidden_size
    assert vlm.ignored_keys == ['llm_backbone.llm.lm_head.weight']
    assert_vlm_weights_equal(vlm.state_dict, state)
    # The base config builds a model that takes every VLM tensor as it is.
    model = VLAAdapterModel(vlm.config)
    result = model.load_state_dict(vlm.state_dict, strict=False)
    assert not result.unexpected_keys
    assert all(not name.startswith(('vision.', 'projector.', 'llm.'))
               for name in result.missing_keys)


def test_step_checkpoint_and_vision_towers_inside_the_checkpoint(source_model, tmp_path):
    state = source_model.state_dict()
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', state, vision_in_checkpoint=True,
                            checkpoint_name='step-020792-epoch-01-loss=0.5268.pt')
    other = {name: torch.zeros_like(value) for name, value in state.items()}
    _, stale = prismatic_modules(other)
    torch.save({'model': prismatic_modules(other)[0] | {'vision_backbone': stale}},
               vlm_dir / 'checkpoints' / 'step-000100-epoch-00-loss=1.0000.pt')
    assert find_vlm_checkpoint(vlm_dir).endswith('step-020792-epoch-01-loss=0.5268.pt')
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', source_model.config.llm)
    vlm = load_prismatic_vlm(vlm_dir, tokenizer_dir)
    assert_vlm_weights_equal(vlm.state_dict, state)


def test_missing_vision_towers_are_an_error_never_random(source_model, tmp_path):
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', source_model.state_dict())
    os.remove(vlm_dir / 'vision_backbone.safetensors')
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', source_model.config.llm)
    with pytest.raises(FileNotFoundError, match='holds no vision_backbone.*'
                       'vit_large_patch14_reg4_dinov2.*vision_backbone.safetensors'):
        load_prismatic_vlm(vlm_dir, tokenizer_dir)


def test_tokenizer_dir_must_carry_a_matching_llm_config(source_model, tmp_path):
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', source_model.state_dict())
    bare = tmp_path / 'bare'
    shutil.copytree(default_tokenizer_dir(), bare)
    with pytest.raises(FileNotFoundError, match='lacks config.json'):
        load_prismatic_vlm(vlm_dir, bare)
    wrong = write_tokenizer_dir(tmp_path / 'wrong', source_model.config.llm,
                                num_hidden_layers=3)
    with pytest.raises(ValueError, match='num_hidden_layers=3 but the checkpoint weights give 2'):
        load_prismatic_vlm(vlm_dir, wrong)


def test_pickled_objects_and_unsupported_models_are_refused(source_model, tmp_path):
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', source_model.config.llm)
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', source_model.state_dict())
    checkpoint = vlm_dir / 'checkpoints' / 'latest-checkpoint.pt'
    modules, _ = prismatic_modules(source_model.state_dict())
    torch.save({'model': modules, 'args': argparse.Namespace(lr=1.0)}, checkpoint)
    with pytest.raises(ValueError, match='weights_only=True'):
        load_prismatic_vlm(vlm_dir, tokenizer_dir)
    torch.save({'model': {'projector': modules['projector']}}, checkpoint)
    with pytest.raises(ValueError, match=r"lacks \['llm_backbone'\]"):
        load_prismatic_vlm(vlm_dir, tokenizer_dir)
    for field, value, message in (('vision_backbone_id', 'clip-vit-l', 'vision_backbone_id'),
                                  ('arch_specifier', 'gelu-mlp', 'fused-gelu-mlp')):
        other = write_vlm_dir(tmp_path / field, source_model.state_dict(),
                              model_entry=MODEL_ENTRY | {field: value})
        with pytest.raises(ValueError, match=f'{message}.*{value}|{value}.*{message}'):
            load_prismatic_vlm(other, tokenizer_dir)


def test_save_writes_the_prismatic_layout_it_reads(source_model, tmp_path):
    state = source_model.state_dict()
    save_prismatic_vlm(tmp_path / 'vlm', state, MODEL_ENTRY)
    (tmp_path / 'vlm' / 'tiny_overrides.json').write_text(json.dumps(TINY_HEADS))
    saved = torch.load(tmp_path / 'vlm' / 'checkpoints' / 'latest-checkpoint.pt',
                       weights_only=True)
    expected, _ = prismatic_modules(state)
    assert set(saved['model']) == {'projector', 'llm_backbone'}
    for module in ('projector', 'llm_backbone'):
        assert sorted(saved['model'][module]) == sorted(expected[module])
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', source_model.config.llm)
    assert_vlm_weights_equal(load_prismatic_vlm(tmp_path / 'vlm', tokenizer_dir).state_dict,
                             state)
