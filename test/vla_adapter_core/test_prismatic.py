"""Reading upstream Prismatic VLM directories (config.json 'model' + checkpoints/*.pt).

The directories are written here in Prismatic's on-disk format with tiny real towers and a tiny
Qwen2: ``torch.save({'model': {'projector': ..., 'llm_backbone': ...}})`` of plain tensor dicts
named as Prismatic's modules name them. The vision towers, absent from such checkpoints, come
through timm's pretrained loading: from local files, or from timm's Hub repos in a Hugging Face
cache the tests lay out themselves (HF_HUB_OFFLINE=1; nothing is downloaded).
"""

import argparse
import collections
import json
import os
import pathlib
import shutil

from hub_cache import write_hub_snapshot
import pytest
from safetensors.torch import save_file
import timm
import torch

from vla_adapter_core.config import DINOV2_TIMM_ID, SIGLIP_TIMM_ID
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.prismatic import (
    find_vlm_checkpoint,
    is_prismatic_vlm,
    load_prismatic_vlm,
    parse_tower_weights,
    save_prismatic_vlm,
)
from vla_adapter_core.tiny_policies import (
    build_tiny_config,
    default_tokenizer_dir,
    randomize_for_tests,
)

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
# The tiny towers of build_tiny_config, for timm's registered (Hub) weights of these ids.
TINY_TOWERS = {'timm': {
    DINOV2_TIMM_ID: {'create_model_kwargs_override': {'embed_dim': 32, 'depth': 2,
                                                      'num_heads': 2}},
    SIGLIP_TIMM_ID: {'create_model_kwargs_override': {'embed_dim': 24, 'depth': 2,
                                                      'num_heads': 2}}}}
TIMM_HUB_REPOS = ('timm/vit_large_patch14_reg4_dinov2.lvd142m',
                  'timm/vit_so400m_patch14_siglip_224.webli')


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
                  vision_in_checkpoint=False, model_entry=None,
                  vision_file=True) -> pathlib.Path:
    (folder / 'checkpoints').mkdir(parents=True)
    modules, vision = prismatic_modules(state)
    if vision_in_checkpoint:
        modules['vision_backbone'] = vision
    elif vision_file:
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


def tower_state(state: dict, index: int) -> dict:
    """One tower's weights of a VLAAdapterModel state dict, in timm's names."""
    prefix = f'vision.towers.{index}.'
    return {name[len(prefix):]: value.clone() for name, value in state.items()
            if name.startswith(prefix)}


def test_towers_from_local_files_through_timm(source_model, tmp_path):
    """Per-tower files, in either LayerScale naming, replace vision_backbone.safetensors."""
    state = source_model.state_dict()
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', state, vision_file=False)
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', source_model.config.llm)
    dino = tower_state(state, 0)
    assert 'blocks.0.ls1.gamma' in dino  # DINOv2 towers carry LayerScale
    # As Prismatic's HF export names them: LayerScale 'scale_factor', a DDP 'module.' prefix.
    exported = {'module.' + name.replace('.gamma', '.scale_factor'): value
                for name, value in dino.items()}
    save_file(exported, tmp_path / 'dino.safetensors')
    torch.save(tower_state(state, 1), tmp_path / 'siglip.pt')
    weights = {'dino': str(tmp_path / 'dino.safetensors'), 'siglip': str(tmp_path / 'siglip.pt')}
    vlm = load_prismatic_vlm(vlm_dir, tokenizer_dir, tower_weights=weights)
    assert vlm.tower_sources == [f'file {weights["dino"]}', f'file {weights["siglip"]}']
    assert_vlm_weights_equal(vlm.state_dict, state)
    assert parse_tower_weights([f'dino={weights["dino"]}', f'siglip={weights["siglip"]}']) \
        == weights
    with pytest.raises(ValueError, match=r"tower_weights has unknown towers \['clip'\]"):
        load_prismatic_vlm(vlm_dir, tokenizer_dir, tower_weights={'clip': weights['dino']})
    with pytest.raises(ValueError, match="'siglip:x': expected NAME=PATH"):
        parse_tower_weights(['siglip:x'])
    with pytest.raises(ValueError, match="timm cannot load pretrained weights for "
                       f"'{DINOV2_TIMM_ID}' from the given weights"):
        load_prismatic_vlm(vlm_dir, tokenizer_dir, tower_weights={'dino': weights['siglip']})


def test_timm_resamples_tower_position_embeddings(source_model, tmp_path):
    """A tower file at another image size is fitted to the VLM's 224 px by timm's filter."""
    state = source_model.state_dict()
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', state)
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', source_model.config.llm)
    small = timm.create_model(DINOV2_TIMM_ID, pretrained=False, num_classes=0, img_size=112,
                              embed_dim=32, depth=2, num_heads=2)
    save_file(small.state_dict(), tmp_path / 'dino_112.safetensors')
    vlm = load_prismatic_vlm(vlm_dir, tokenizer_dir,
                             tower_weights={'dino': str(tmp_path / 'dino_112.safetensors')})
    assert small.pos_embed.shape == (1, 8 * 8, 32)
    assert vlm.state_dict['vision.towers.0.pos_embed'].shape == (1, 16 * 16, 32)
    for name, value in small.state_dict().items():
        if name != 'pos_embed':
            torch.testing.assert_close(vlm.state_dict['vision.towers.0.' + name], value,
                                       rtol=0, atol=0, msg=name)
    # The other tower still comes from the directory's vision_backbone.safetensors.
    assert vlm.tower_sources[1].startswith('siglip_featurizer.* of ')
    for name, value in tower_state(state, 1).items():
        torch.testing.assert_close(vlm.state_dict['vision.towers.1.' + name], value,
                                   rtol=0, atol=0, msg=name)


def test_towers_from_timm_hub_repos_in_the_cache(source_model, tmp_path):
    """Without local files timm reads its own Hub repos, here from a cache laid out offline."""
    state = source_model.state_dict()
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', state, vision_file=False)
    (vlm_dir / 'tiny_overrides.json').write_text(json.dumps(TINY_TOWERS))
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', source_model.config.llm)
    cache = tmp_path / 'hub'
    for index, repo_id in enumerate(TIMM_HUB_REPOS):
        save_file(tower_state(state, index), tmp_path / 'tower.safetensors')
        write_hub_snapshot(cache, repo_id,
                           {'model.safetensors': (tmp_path / 'tower.safetensors').read_bytes()})
    vlm = load_prismatic_vlm(vlm_dir, tokenizer_dir, cache_dir=str(cache))
    # SigLIP: the 'webli' weights Prismatic trained with, not timm 1.x's default 'v2_webli'.
    assert vlm.tower_sources == [f'timm pretrained {DINOV2_TIMM_ID}',
                                 f'timm pretrained {SIGLIP_TIMM_ID}.webli']
    assert_vlm_weights_equal(vlm.state_dict, state)


def test_missing_vision_towers_are_an_error_never_random(source_model, tmp_path):
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', source_model.state_dict(), vision_file=False)
    (vlm_dir / 'tiny_overrides.json').write_text(json.dumps(TINY_TOWERS))
    tokenizer_dir = write_tokenizer_dir(tmp_path / 'tok', source_model.config.llm)
    with pytest.raises(FileNotFoundError, match='holds no vision_backbone.*'
                       'vit_large_patch14_reg4_dinov2.*not in the Hugging Face Hub cache.*'
                       'HF_HUB_OFFLINE.*tower_weights=.*vision_backbone.safetensors'):
        load_prismatic_vlm(vlm_dir, tokenizer_dir, cache_dir=str(tmp_path / 'empty_cache'))
    with pytest.raises(FileNotFoundError, match='vision tower weights file not found'):
        load_prismatic_vlm(vlm_dir, tokenizer_dir,
                           tower_weights={'dino': str(tmp_path / 'absent.safetensors')})


def test_a_prismatic_vlm_is_no_policy(source_model, tmp_path):
    vlm_dir = write_vlm_dir(tmp_path / 'vlm', source_model.state_dict())
    with pytest.raises(ValueError, match='is a Prismatic VLM.*no action head.*fine-tune it'):
        VLAPolicy.from_pretrained(vlm_dir)


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
