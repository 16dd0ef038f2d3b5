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

from vla_adapter_core.cli import main as cli_main
from vla_adapter_core.config import LAYOUT_UPSTREAM_COMPAT
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.prompt import load_tokenizer
from vla_adapter_core.tiny_policies import (
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


# --- Upstream's windows, computed independently from README section 3.5-3.6 -----------------

UPSTREAM_SPLIT = 512  # upstream's hard-coded num_task_tokens
PLACEHOLDER_ID, STOP_ID = 1, 2  # upstream's 64 action placeholders and its STOP token

WINDOW_VARIANTS = {
    # name: cameras, action_dim, proprio_dim, chunk, normalisation, block, width, towers, proprio
    'libero_pro_1cam': (['full_image'], 7, 8, 8, 'bounds_q99', 'pro', 64, None, True),
    'libero_pro_2cam_no_proprio': (['full_image', 'wrist_image'], 7, 8, 8, 'bounds_q99', 'pro',
                                   64, None, False),
    'aloha_original_3cam_odd_sizes': (
        ALOHA_CAMERAS, 14, 14, 25, 'bounds', 'original', 40,
        # odd tower widths, head widths 12 and 10, depths 3 and 4
        [{'embed_dim': 36, 'depth': 3, 'num_heads': 3},
         {'embed_dim': 30, 'depth': 4, 'num_heads': 3}], True),
}


def _variant_config(name):
    cameras, action_dim, proprio_dim, chunk, mode, block, width, towers, proprio = (
        WINDOW_VARIANTS[name])
    config = build_tiny_config(action_dim, proprio_dim, chunk, cameras, block_type=block,
                               hidden_size=width, normalization_mode=mode, unnorm_key='robot',
                               use_proprio=proprio)
    if towers is not None:
        vision = dataclasses.replace(config.vision, tower_kwargs=towers,
                                     embed_dims=[tower['embed_dim'] for tower in towers])
        projector = dataclasses.replace(config.projector, vision_dim=vision.feature_dim)
        config = dataclasses.replace(config, vision=vision, projector=projector)
    return dataclasses.replace(config, layout=LAYOUT_UPSTREAM_COMPAT)


def upstream_reference(model, batch):
    """Upstream's head inputs and output for ONE unpadded sample, spelled out step by step.

    Returns (hidden states (N+1 tensors (1, S, D)), h_t, h_a, proprio token, normalised actions).
    """
    ids = batch['input_ids']  # (1, L)
    assert bool(batch['attention_mask'].all())
    length = ids.shape[1]
    queries = model.action_queries.weight  # (64, D)
    patches = model.projector(model.vision(batch['pixel_values']))  # (1, NP, D)
    num_patches = patches.shape[1]
    full_ids = torch.cat([ids, torch.full((1, queries.shape[0]), PLACEHOLDER_ID),
                          torch.full((1, 1), STOP_ID)], dim=1)  # (1, L + 65)
    embeds = model.llm.model.embed_tokens(full_ids).clone()  # (1, L + 65, D)
    embeds[:, length:length + queries.shape[0]] = queries
    sequence = torch.cat([embeds[:, :1], patches, embeds[:, 1:]], dim=1)  # (1, S, D)
    hidden = model.llm.model(inputs_embeds=sequence, output_hidden_states=True).hidden_states
    start = num_patches + length - 1  # the LAST prompt token
    windows = [torch.cat([h[:, :num_patches],
                          h[:, start:start + queries.shape[0]].to(torch.bfloat16).float()], dim=1)
               for h in hidden]  # each (1, NP + 64, D)
    stacked = torch.stack(windows, dim=1)[:, 1:]  # (1, N, NP + 64, D): block i reads entry i+1
    h_t, h_a = stacked[:, :, :UPSTREAM_SPLIT], stacked[:, :, UPSTREAM_SPLIT:]
    token = None
    if model.proprio_projector is not None:
        token = model.proprio_projector(batch['proprio'].to(torch.bfloat16).float())  # (1, 1, D)
    return hidden, h_t, h_a, token, model.action_head(h_t, h_a, token)


@pytest.fixture(scope='module', params=sorted(WINDOW_VARIANTS))
def loaded_variant(request, tmp_path_factory):
    config = _variant_config(request.param)
    model = _reference_model(config, seed=21)
    statistics = tiny_statistics(config.action_dim, config.proprio_dim, key='robot', seed=4)
    constants = {'ROBOT_PLATFORM': 'ALOHA' if config.action_dim == 14 else 'LIBERO',
                 'NUM_ACTIONS_CHUNK': config.chunk_size, 'ACTION_DIM': config.action_dim,
                 'PROPRIO_DIM': config.proprio_dim,
                 'ACTION_PROPRIO_NORMALIZATION_TYPE': config.normalization.mode}
    run_dir = tmp_path_factory.mktemp(request.param) / 'checkpoint'
    write_upstream_run(run_dir, model, statistics, overrides=None)
    # the fixtures' layout: tiny_overrides.json beside checkpoint/, not inside it
    overrides = _tiny_overrides(config, constants, config.num_cameras)
    (run_dir.parent / 'tiny_overrides.json').write_text(json.dumps(overrides))
    return config, VLAPolicy.from_pretrained(run_dir, dtype='float32'), run_dir


def test_head_inputs_are_upstreams_windows(loaded_variant):
    config, policy, _ = loaded_variant
    assert policy.config.camera_names == config.camera_names
    assert policy.config.action_head.block_type == config.action_head.block_type
    assert policy.config.use_proprio == config.use_proprio
    observation = random_observation(policy, seed=3, image_shape=(224, 224, 3),
                                     instruction='Put the cube in the bowl')
    batch = policy.prepare_batch([observation])
    model = policy.model
    with torch.inference_mode():
        outputs = model.forward_detailed(batch)
        hidden, h_t, h_a, token, actions = upstream_reference(model, batch)
    num_patches = 256 * config.num_cameras
    width = config.llm.hidden_size
    assert h_t.shape[2] == min(UPSTREAM_SPLIT, num_patches + 64)
    assert h_a.shape[2] == max(0, num_patches + 64 - UPSTREAM_SPLIT)  # 1 camera: empty
    if num_patches > UPSTREAM_SPLIT:  # 3 cameras: the last patches go to the adapter set
        for block in range(config.action_head.num_blocks):
            torch.testing.assert_close(h_a[0, block, :num_patches - UPSTREAM_SPLIT],
                                       hidden[block + 1][0, UPSTREAM_SPLIT:num_patches])
    assert outputs.task_states.shape == h_t.shape
    assert outputs.adapter_states.shape == h_a.shape == (1, config.action_head.num_blocks,
                                                         h_a.shape[2], width)
    torch.testing.assert_close(outputs.task_states, h_t, rtol=0, atol=1e-5)
    # bf16-rounded action window: isolated one-ulp flips allowed (fixture README section 4)
    torch.testing.assert_close(outputs.adapter_states, h_a, rtol=1e-2, atol=1e-3)
    if config.use_proprio:
        torch.testing.assert_close(outputs.proprio_token, token, rtol=0, atol=1e-6)
    else:
        assert outputs.proprio_token is None and token is None
    torch.testing.assert_close(outputs.head_output, actions, rtol=0, atol=1e-4)
    prediction = policy.predict([observation])
    np.testing.assert_allclose(prediction.normalized_actions[0], actions[0].numpy(), rtol=0,
                               atol=1e-4)


def test_upstream_layout_batches_like_one_by_one(loaded_variant):
    """Upstream runs batch size 1 only; our compat layout batches with left padding."""
    _, policy, _ = loaded_variant
    observations = [random_observation(policy, seed=5, instruction='open the drawer'),
                    random_observation(policy, seed=6,
                                       instruction='pick up the black bowl next to the plate')]
    batched = policy.predict(observations)
    for index, observation in enumerate(observations):
        single = policy.predict([observation])
        np.testing.assert_allclose(batched.normalized_actions[index],
                                   single.normalized_actions[0], rtol=0, atol=1e-5)


def _write_cli_inputs(path, observation, names, with_keys):
    arrays = {f'image_{index}': observation['images'][name] for index, name in enumerate(names)}
    if with_keys:
        arrays['image_keys'] = np.array(names)
    np.savez(path, proprio=observation['proprio'], instruction=np.array('Stack the blocks'),
             unnorm_key=np.array('robot'), **arrays)
    return dict(observation, instruction='Stack the blocks')


def test_cli_on_upstream_run_any_camera_count(loaded_variant, tmp_path):
    """image_0..image_{N-1} (N = 1..3) in model order; image_keys, when present, name them.

    Runs on the fixture folder (checkpoint/ inside, tiny_overrides.json beside it) with
    image_keys, and on the run directory itself with positional images.
    """
    _, policy, run_dir = loaded_variant
    names = policy.config.camera_names
    observation = random_observation(policy, seed=8)
    for checkpoint, with_keys in ((run_dir.parent, True), (run_dir, False)):
        observation = _write_cli_inputs(tmp_path / 'inputs.npz', observation, names, with_keys)
        expected = policy.predict([observation])
        output = tmp_path / 'out.npz'
        assert cli_main(['--checkpoint', str(checkpoint), '--inputs',
                         str(tmp_path / 'inputs.npz'), '--output', str(output)]) == 0
        with np.load(output, allow_pickle=False) as result:
            np.testing.assert_allclose(result['actions'], expected.actions[0], rtol=0, atol=1e-6)
            np.testing.assert_allclose(result['normalized_actions'],
                                       expected.normalized_actions[0], rtol=0, atol=1e-6)
        output.unlink()


ALOHA_VARIANT = pytest.mark.parametrize('loaded_variant', ['aloha_original_3cam_odd_sizes'],
                                        indirect=True)


@ALOHA_VARIANT
def test_cli_explicit_overrides_path(loaded_variant, tmp_path, capsys):
    """Overrides elsewhere than beside the run: needed (tower head counts), passed explicitly."""
    config, policy, run_dir = loaded_variant
    bare = tmp_path / 'bare_run'
    shutil.copytree(run_dir, bare)
    overrides = tmp_path / 'elsewhere.json'
    shutil.copy(run_dir.parent / 'tiny_overrides.json', overrides)
    observation = random_observation(policy, seed=9)
    observation = _write_cli_inputs(tmp_path / 'inputs.npz', observation,
                                    config.camera_names, True)
    arguments = ['--checkpoint', str(bare), '--inputs', str(tmp_path / 'inputs.npz'),
                 '--output', str(tmp_path / 'out.npz')]
    assert cli_main(arguments) == 2  # timm's default head counts do not divide tiny widths
    assert 'timm cannot build' in capsys.readouterr().err
    assert cli_main(arguments + ['--upstream-overrides', str(tmp_path / 'absent.json')]) == 2
    assert 'overrides file not found' in capsys.readouterr().err
    assert cli_main(arguments + ['--upstream-overrides', str(overrides)]) == 0
    too_few = tmp_path / 'two_images.npz'
    _write_cli_inputs(too_few, observation, config.camera_names[:2], True)
    assert cli_main(['--checkpoint', str(run_dir.parent), '--inputs', str(too_few),
                     '--output', str(tmp_path / 'none.npz')]) == 2
    assert 'num_images_in_input=3' in capsys.readouterr().err
    with np.load(tmp_path / 'out.npz', allow_pickle=False) as result:
        np.testing.assert_allclose(result['actions'], policy.predict([observation]).actions[0],
                                   rtol=0, atol=1e-6)


@ALOHA_VARIANT
def test_cli_refuses_upstream_head_that_needs_code_execution(loaded_variant, tmp_path, capsys):
    config, policy, run_dir = loaded_variant
    tampered = tmp_path / 'tampered'
    shutil.copytree(run_dir, tampered)
    shutil.copy(run_dir.parent / 'tiny_overrides.json', tmp_path / 'tiny_overrides.json')
    head_file = next(tampered.glob('action_head--*_checkpoint.pt'))
    state = torch.load(head_file, weights_only=True)
    state['module.payload'] = pathlib.PurePosixPath('not a tensor')  # needs a pickled class
    torch.save(state, head_file)
    observation = random_observation(policy, seed=9)
    _write_cli_inputs(tmp_path / 'inputs.npz', observation, config.camera_names, True)
    assert cli_main(['--checkpoint', str(tampered), '--inputs', str(tmp_path / 'inputs.npz'),
                     '--output', str(tmp_path / 'out.npz')]) == 2
    error = capsys.readouterr().err
    assert 'weights_only=True' in error and 'refused' in error
    assert not (tmp_path / 'out.npz').exists()
