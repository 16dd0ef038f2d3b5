"""Fine-tuning from an upstream Prismatic VLM directory (``vla-adapter-train --pretrained``).

The tiny VLM directory is written in Prismatic's layout (config.json 'model' entry,
checkpoints/latest-checkpoint.pt, vision towers in vision_backbone.safetensors); the format
itself is pinned by test/vla_adapter_core/test_prismatic.py. The same VLM also sits in a
Hugging Face Hub cache laid out by the test, named by its Hub repo id and without
vision_backbone.safetensors: timm then loads the towers from its own Hub repos in that cache.
"""

import json
import shutil

from episode_writers import write_aloha_hdf5
from hub_cache import write_hub_snapshot
import huggingface_hub
import numpy as np
import pytest
from safetensors.torch import save_file
import torch

from training.config_cli import parse_config
from training.data_config import DatasetConfig
from training.finetune import main
from training.model_setup import load_policy_source
from training.train_config import TrainConfig, build_parser
from vla_adapter_core.config import DINOV2_TIMM_ID, SIGLIP_TIMM_ID
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.prismatic import save_prismatic_vlm
from vla_adapter_core.tiny_policies import (
    build_tiny_config,
    default_tokenizer_dir,
    randomize_for_tests,
)

CAMERAS = ['cam_high']
MODEL_ENTRY = {'model_id': 'prism-qwen25-extra-dinosiglip-224px+0_5b',
               'arch_specifier': 'no-align+fused-gelu-mlp',
               'vision_backbone_id': 'dinosiglip-vit-so-224px',
               'llm_backbone_id': 'qwen25-0_5b-extra', 'image_resize_strategy': 'resize-naive'}
VLM_REPO_ID = 'Stanford-ILIAD/prism-qwen25-extra-dinosiglip-224px-0_5b'
TIMM_REPOS = ('timm/vit_large_patch14_reg4_dinov2.lvd142m',
              'timm/vit_so400m_patch14_siglip_224.webli')
TINY_TOWERS = {DINOV2_TIMM_ID: {'embed_dim': 32, 'depth': 2, 'num_heads': 2},
               SIGLIP_TIMM_ID: {'embed_dim': 24, 'depth': 2, 'num_heads': 2}}


@pytest.fixture(scope='module')
def prismatic_setup(tmp_path_factory):
    """(VLM directory, tokenizer directory, the source VLM state dict, episode folder)."""
    root = tmp_path_factory.mktemp('prismatic')
    model = VLAAdapterModel(build_tiny_config(image_size=224))
    randomize_for_tests(model, seed=5)
    state = {name: value for name, value in model.state_dict().items()
             if name.startswith(('vision.', 'projector.', 'llm.'))}
    save_prismatic_vlm(root / 'vlm', state, MODEL_ENTRY)
    heads = {model_id: {'resulting': {'num_heads': 2}}
             for model_id in (DINOV2_TIMM_ID, SIGLIP_TIMM_ID)}
    (root / 'vlm' / 'tiny_overrides.json').write_text(json.dumps({'timm': heads}))
    shutil.copytree(default_tokenizer_dir(), root / 'tok')
    llm = model.config.llm
    text = {'model_type': 'qwen2', 'hidden_size': llm.hidden_size,
            'intermediate_size': llm.intermediate_size,
            'num_hidden_layers': llm.num_hidden_layers,
            'num_attention_heads': llm.num_attention_heads,
            'num_key_value_heads': llm.num_key_value_heads, 'vocab_size': llm.vocab_size}
    (root / 'tok' / 'config.json').write_text(json.dumps(text))  # a plain Qwen2 config
    (root / 'data').mkdir()
    rng = np.random.default_rng(2)
    for index in range(2):
        images = {'cam_high': rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)}
        write_aloha_hdf5(root / 'data' / f'episode_{index}.hdf5', images,
                         rng.normal(size=(4, 14)).astype(np.float32),
                         rng.normal(size=(4, 14)).astype(np.float32),
                         instruction='pick up the cup')
    return root / 'vlm', root / 'tok', state, root / 'data'


def test_policy_source_from_a_prismatic_vlm(prismatic_setup):
    vlm_dir, tokenizer_dir, state, data_dir = prismatic_setup
    data = DatasetConfig(paths=[str(data_dir)], camera_names=CAMERAS, chunk_size=4)
    config = TrainConfig(data=data, output_dir='unused', pretrained=str(vlm_dir),
                         tokenizer_dir=str(tokenizer_dir))
    source = load_policy_source(config)
    assert source.kind == 'prismatic_vlm'
    assert source.description == (f'Prismatic VLM {vlm_dir} (vision towers: dino_featurizer.* of '
                                  f'{vlm_dir}/vision_backbone.safetensors, siglip_featurizer.* '
                                  f'of {vlm_dir}/vision_backbone.safetensors)')
    assert source.config.layout == 'aligned'
    assert source.tokenizer('pick up the cup').input_ids  # the real Qwen2.5 tokenizer
    for name, value in state.items():
        torch.testing.assert_close(source.state[name], value, rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match='tokenizer_dir=None.*Prismatic VLM'):
        load_policy_source(TrainConfig(data=data, output_dir='unused', pretrained=str(vlm_dir)))


def test_vla_adapter_train_starts_from_a_prismatic_vlm(prismatic_setup, tmp_path):
    vlm_dir, tokenizer_dir, state, data_dir = prismatic_setup
    code = main(['--data', str(data_dir), '--camera_names', *CAMERAS, '--chunk_size', '4',
                 '--pretrained', str(vlm_dir), '--tokenizer_dir', str(tokenizer_dir),
                 '--output_dir', str(tmp_path / 'run'), '--max_steps', '2',
                 '--batch_size', '2', '--num_workers', '0', '--num_val_episodes', '0',
                 '--no_progress_bar'])
    assert code == 0
    policy = VLAPolicy.from_pretrained(tmp_path / 'run' / 'final', dtype='float32')
    assert policy.config.layout == 'aligned'
    assert policy.config.camera_names == CAMERAS
    tuned = policy.model.state_dict()
    for name, value in state.items():
        if name.startswith(('vision.', 'llm.')):  # frozen: exactly the Prismatic weights
            torch.testing.assert_close(tuned[name], value, rtol=0, atol=0, msg=name)
    assert not torch.equal(tuned['projector.fc1.weight'], state['projector.fc1.weight'])


def test_policy_source_from_a_hub_repo_id_with_timm_towers(prismatic_setup, tmp_path,
                                                           monkeypatch):
    """The VLM by its Hub repo id; no tower file anywhere: timm's Hub repos in the cache."""
    vlm_dir, tokenizer_dir, state, data_dir = prismatic_setup
    cache = tmp_path / 'hub'
    files = {str(path.relative_to(vlm_dir)): path.read_bytes()
             for path in sorted(vlm_dir.rglob('*')) if path.is_file()
             and path.name not in ('vision_backbone.safetensors', 'tiny_overrides.json')}
    overrides = {'timm': {model_id: {'create_model_kwargs_override': kwargs}
                          for model_id, kwargs in TINY_TOWERS.items()}}
    files['tiny_overrides.json'] = json.dumps(overrides).encode()
    write_hub_snapshot(cache, VLM_REPO_ID, files)
    for index, repo_id in enumerate(TIMM_REPOS):
        prefix = f'vision.towers.{index}.'
        tower = {name[len(prefix):]: value for name, value in state.items()
                 if name.startswith(prefix)}
        save_file(tower, tmp_path / 'tower.safetensors')
        write_hub_snapshot(cache, repo_id,
                           {'model.safetensors': (tmp_path / 'tower.safetensors').read_bytes()})
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))  # the default
    data = DatasetConfig(paths=[str(data_dir)], camera_names=CAMERAS, chunk_size=4)
    source = load_policy_source(TrainConfig(data=data, output_dir='unused', pretrained=VLM_REPO_ID,
                                            tokenizer_dir=str(tokenizer_dir)))
    assert source.description.startswith(f'Prismatic VLM {VLM_REPO_ID} (Hugging Face Hub')
    assert source.description.endswith(f'(vision towers: timm pretrained {DINOV2_TIMM_ID}, '
                                       f'timm pretrained {SIGLIP_TIMM_ID}.webli)')
    assert source.config.camera_names == CAMERAS
    for name, value in state.items():
        torch.testing.assert_close(source.state[name], value, rtol=0, atol=0, msg=name)


def test_vision_weights_flag_gives_the_towers_from_local_files(prismatic_setup, tmp_path):
    """Offline machines: --vision_weights dino=FILE siglip=FILE, no vision_backbone file."""
    vlm_dir, tokenizer_dir, state, data_dir = prismatic_setup
    local_vlm = tmp_path / 'vlm'
    shutil.copytree(vlm_dir, local_vlm)
    (local_vlm / 'vision_backbone.safetensors').unlink()
    files = []
    for index, tower in enumerate(('dino', 'siglip')):
        prefix = f'vision.towers.{index}.'
        tower_state = {name[len(prefix):]: value.clone() for name, value in state.items()
                       if name.startswith(prefix)}
        save_file(tower_state, tmp_path / f'{tower}.safetensors')
        files.append(f'{tower}={tmp_path / f"{tower}.safetensors"}')
    config = parse_config(build_parser(), TrainConfig, [
        '--data', str(data_dir), '--camera_names', *CAMERAS, '--chunk_size', '4',
        '--pretrained', str(local_vlm), '--tokenizer_dir', str(tokenizer_dir),
        '--output_dir', str(tmp_path / 'run'), '--vision_weights', *files])
    assert config.vision_weights == files
    source = load_policy_source(config)
    assert f'{tmp_path / "dino.safetensors"}' in source.description
    for name, value in state.items():
        torch.testing.assert_close(source.state[name], value, rtol=0, atol=0, msg=name)
