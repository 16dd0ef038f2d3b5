"""Fine-tuning from an upstream Prismatic VLM directory (``vla-adapter-train --pretrained``).

The tiny VLM directory is written in Prismatic's layout (config.json 'model' entry,
checkpoints/latest-checkpoint.pt, vision towers in vision_backbone.safetensors); the format
itself is pinned by test/vla_adapter_core/test_prismatic.py.
"""

import json
import shutil

from episode_writers import write_aloha_hdf5
import numpy as np
import pytest
import torch

from training.data_config import DatasetConfig
from training.finetune import main
from training.model_setup import load_policy_source
from training.train_config import TrainConfig
from vla_adapter_core.config import DINOV2_TIMM_ID, SIGLIP_TIMM_ID
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.prismatic import save_prismatic_vlm
from vla_adapter_core.testing import build_tiny_config, default_tokenizer_dir, randomize_for_tests

CAMERAS = ['cam_high']
MODEL_ENTRY = {'model_id': 'prism-qwen25-extra-dinosiglip-224px+0_5b',
               'arch_specifier': 'no-align+fused-gelu-mlp',
               'vision_backbone_id': 'dinosiglip-vit-so-224px',
               'llm_backbone_id': 'qwen25-0_5b-extra', 'image_resize_strategy': 'resize-naive'}


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
    assert source.description == f'Prismatic VLM {vlm_dir}'
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
