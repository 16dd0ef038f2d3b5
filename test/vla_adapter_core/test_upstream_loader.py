"""The upstream loader derives every size from the run directory, in any upstream configuration.

Covered beyond the public fixture: ALOHA constants with 3 cameras and bounds normalisation, the
original (non-Pro) block, one camera. Each test writes a run directory in upstream's layout
(upstream key names, bf16 safetensors, ``module.``-prefixed torch.save'd head / proprio
projector, a text_config diff without Qwen2 defaults) from a tiny model, loads it back and
compares the outputs.
"""

import dataclasses
import json
import pathlib
import re
import shutil

import numpy as np
import pytest
from safetensors.torch import save_file
import torch

from vla_adapter_core.config import LAYOUT_UPSTREAM_COMPAT
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.prompt import load_tokenizer
from vla_adapter_core.testing import (
    build_tiny_config,
    default_tokenizer_dir,
    random_observation,
    randomize_for_tests,
    tiny_statistics,
)
from vla_adapter_core.upstream import llm_config_from_text_config, load_torch_state

ALOHA_CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']


def _upstream_key(name: str) -> str | None:
    renames = (('vision.towers.0.', 'vision_backbone.featurizer.'),
               ('vision.towers.1.', 'vision_backbone.fused_featurizer.'),
               ('llm.model.', 'language_model.model.'), ('projector.', 'projector.'),
               ('action_queries.', 'action_queries.'))
    for ours, theirs in renames:
        if name.startswith(ours):
            return re.sub(r'\.(ls[12])\.gamma$', r'.\1.scale_factor', theirs + name[len(ours):])
    return None


def write_upstream_run(directory: pathlib.Path, model: VLAAdapterModel, statistics: dict,
                       overrides: dict | None) -> None:
    """Write ``model`` the way upstream's finetune.py + save_pretrained lay a run directory out."""
    directory.mkdir(parents=True)
    config = model.config
    state = model.state_dict()
    vlm = {_upstream_key(k): v.to(torch.bfloat16) for k, v in state.items() if _upstream_key(k)}
    save_file(vlm, directory / 'model.safetensors')
    llm = config.llm
    text_config = {'model_type': 'qwen2', 'torch_dtype': 'bfloat16', 'use_mrope': False,
                   'hidden_size': llm.hidden_size, 'intermediate_size': llm.intermediate_size,
                   'num_hidden_layers': llm.num_hidden_layers, 'vocab_size': llm.vocab_size,
                   'num_attention_heads': llm.num_attention_heads,
                   'num_key_value_heads': llm.num_key_value_heads, 'rope_theta': llm.rope_theta}
    openvla = {'model_type': 'openvla', 'timm_model_ids': config.vision.timm_model_ids,
               'use_fused_vision_backbone': True, 'image_sizes': [224, 224],
               'text_config': text_config}
    (directory / 'config.json').write_text(json.dumps(openvla))
    normalize = [{'mean': m, 'std': s} for m, s in zip(config.vision.image_means,
                                                       config.vision.image_stds)]
    preprocessor = {'tvf_normalize_params': normalize,
                    'tvf_resize_params': [{'size': [224, 224]}] * 2}
    (directory / 'preprocessor_config.json').write_text(json.dumps(preprocessor))
    (directory / 'dataset_statistics.json').write_text(json.dumps(statistics))
    for part in ('action_head', 'proprio_projector'):
        prefix = part + '.'
        tensors = {'module.' + k[len(prefix):]: v.to(torch.bfloat16)
                   for k, v in state.items() if k.startswith(prefix)}
        if not tensors:
            continue  # trained without proprio: upstream writes no projector file
        torch.save(tensors, directory / f'{part}--100_checkpoint.pt')
    for name in ('vocab.json', 'merges.txt'):
        shutil.copy(pathlib.Path(default_tokenizer_dir()) / name, directory / name)
    if overrides is not None:
        (directory / 'tiny_overrides.json').write_text(json.dumps(overrides))


def _tiny_overrides(config, constants: dict | None, num_images: int) -> dict:
    timm = {model_id: {'create_model_kwargs_override': {'num_heads': kwargs['num_heads']}}
            for model_id, kwargs in zip(config.vision.timm_model_ids, config.vision.tower_kwargs)}
    data = {'timm': timm, 'run_config': {'num_images_in_input': num_images}}
    if constants:
        data['robot_platform_constants'] = constants
    return data


def _reference_model(config, seed):
    torch.manual_seed(seed)
    model = VLAAdapterModel(config)
    randomize_for_tests(model, seed)
    with torch.no_grad():  # bf16-representable weights: the upstream copy is then lossless
        for parameter in model.parameters():
            parameter.copy_(parameter.to(torch.bfloat16).float())
    return model.eval()


@pytest.mark.parametrize('variant', ['aloha_original_3cam', 'aloha_table_3cam',
                                     'libero_pro_1cam', 'libero_no_proprio_2cam'])
def test_upstream_variants_load_and_match(tmp_path, variant):
    if variant.startswith('aloha'):
        cameras, action_dim, proprio_dim, chunk, mode = ALOHA_CAMERAS, 14, 14, 25, 'bounds'
        block_type = 'original' if 'original' in variant else 'pro'
    else:
        cameras, action_dim, proprio_dim, chunk, mode = ['full_image'], 7, 8, 8, 'bounds_q99'
        block_type = 'pro'
    if variant == 'libero_no_proprio_2cam':
        cameras = ['full_image', 'wrist_image']
    config = build_tiny_config(action_dim, proprio_dim, chunk, cameras, block_type=block_type,
                               normalization_mode=mode, unnorm_key='robot',
                               use_proprio='no_proprio' not in variant)
    config = dataclasses.replace(config, layout=LAYOUT_UPSTREAM_COMPAT)
    model = _reference_model(config, seed=11)
    statistics = tiny_statistics(action_dim, proprio_dim, key='robot')
    constants = None if variant == 'aloha_table_3cam' else {
        'NUM_ACTIONS_CHUNK': chunk, 'ACTION_DIM': action_dim, 'PROPRIO_DIM': proprio_dim,
        'ACTION_PROPRIO_NORMALIZATION_TYPE': mode}
    run_dir = tmp_path / 'run'
    write_upstream_run(run_dir, model, statistics,
                       _tiny_overrides(config, constants, len(cameras)))
    loaded = VLAPolicy.from_pretrained(run_dir, dtype='float32')
    derived = loaded.config
    assert derived.layout == LAYOUT_UPSTREAM_COMPAT
    assert derived.camera_names == cameras
    assert (derived.chunk_size, derived.action_dim, derived.proprio_dim) == (chunk, action_dim,
                                                                             proprio_dim)
    assert derived.normalization.mode == mode
    assert derived.action_head.block_type == block_type
    assert derived.llm.rms_norm_eps == 1e-6  # absent from text_config: Qwen2's default
    assert derived.vision.tower_kwargs[0]['num_heads'] == config.vision.tower_kwargs[0][
        'num_heads']
    reference = VLAPolicy(model, load_tokenizer(default_tokenizer_dir()), statistics,
                          dtype='float32')
    observation = random_observation(reference, seed=2)
    np.testing.assert_allclose(loaded.predict_action_chunk(observation),
                               reference.predict_action_chunk(observation), rtol=0, atol=1e-6)


def test_upstream_windows_differ_from_aligned(tmp_path):
    """The same weights in the aligned layout give different actions (the windows matter)."""
    config = build_tiny_config(7, 8, 8, ['full_image', 'wrist_image'], unnorm_key='robot')
    compat = dataclasses.replace(config, layout=LAYOUT_UPSTREAM_COMPAT)
    aligned_model = _reference_model(config, seed=3)
    compat_model = VLAAdapterModel(compat)
    compat_model.load_state_dict(aligned_model.state_dict())
    tokenizer = load_tokenizer(default_tokenizer_dir())
    statistics = tiny_statistics(7, 8, key='robot')
    aligned = VLAPolicy(aligned_model, tokenizer, statistics)
    upstream = VLAPolicy(compat_model.eval(), tokenizer, statistics)
    observation = random_observation(aligned, seed=1)
    difference = np.abs(aligned.predict_action_chunk(observation)
                        - upstream.predict_action_chunk(observation)).max()
    assert difference > 1e-4


def test_code_executing_pickle_is_refused(tmp_path):
    path = tmp_path / 'action_head--1_checkpoint.pt'
    torch.save({'module.fc.weight': torch.zeros(1), 'payload': pathlib.PurePosixPath('x')}, path)
    with pytest.raises(ValueError, match='weights_only=True'):
        load_torch_state(str(path))


def test_module_prefix_is_stripped(tmp_path):
    path = tmp_path / 'proprio_projector--1_checkpoint.pt'
    torch.save({'module.fc1.weight': torch.ones(2, 2)}, path)
    assert list(load_torch_state(str(path))) == ['fc1.weight']


def test_text_config_gaps_take_qwen2_defaults():
    config = llm_config_from_text_config({'model_type': 'qwen2', 'torch_dtype': 'bfloat16',
                                          'use_mrope': False, 'hidden_size': 48,
                                          'intermediate_size': 96, 'num_hidden_layers': 24,
                                          'num_attention_heads': 4, 'num_key_value_heads': 2,
                                          'rope_theta': 1000000.0})
    assert (config.rms_norm_eps, config.hidden_act, config.vocab_size) == (1e-6, 'silu', 151936)
    assert config.max_position_embeddings == 32768 and config.rope_theta == 1e6
    with pytest.raises(ValueError, match='rope_scaling'):
        llm_config_from_text_config({'rope_scaling': {'type': 'linear', 'factor': 2.0}})
