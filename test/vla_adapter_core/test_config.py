"""Config dataclasses: validation names the field and value; JSON round trip is lossless."""

import dataclasses
import json

import pytest

from vla_adapter_core.config import (
    LLMConfig,
    NormalizationConfig,
    PolicyConfig,
    ProcessorConfig,
    ProjectorConfig,
    VisionConfig,
)
from vla_adapter_core.heads import ActionHeadConfig
from vla_adapter_core.tiny_policies import build_tiny_config


def test_defaults_describe_the_real_model():
    config = PolicyConfig(action_head=ActionHeadConfig(hidden_dim=896, num_blocks=24))
    assert config.vision.feature_dim == 2176
    assert config.vision.patches_per_image == 256
    assert config.projector.vision_dim == 2176 and config.llm.hidden_size == 896
    assert config.llm.num_hidden_layers == 24 and config.llm.vocab_size == 151936
    assert config.num_action_queries == 64


def test_json_round_trip():
    config = build_tiny_config(head_kind='dual_arm', camera_names=['a', 'b', 'c'])
    text = json.dumps(config.to_dict())
    restored = PolicyConfig.from_dict(json.loads(text))
    assert restored == config
    assert restored.num_action_queries == 128


@pytest.mark.parametrize('build, message', [
    (lambda: VisionConfig(timm_model_ids=['a', 'b', 'c']), 'VisionConfig.timm_model_ids'),
    (lambda: VisionConfig(image_size=225), 'VisionConfig.image_size=225'),
    (lambda: VisionConfig(embed_dims=[1024]), 'VisionConfig.embed_dims'),
    (lambda: LLMConfig(num_attention_heads=5), 'LLMConfig.num_attention_heads=5'),
    (lambda: LLMConfig(num_key_value_heads=3), 'LLMConfig.num_key_value_heads=3'),
    (lambda: LLMConfig(hidden_size=0), 'LLMConfig.hidden_size=0'),
    (lambda: ProjectorConfig(kind='linear'), "ProjectorConfig.kind='linear'"),
    (lambda: NormalizationConfig(mode='zscore'), "NormalizationConfig.mode='zscore'"),
    (lambda: ProcessorConfig(center_crop_fraction=1.5), 'center_crop_fraction=1.5'),
    (lambda: ProcessorConfig(prompt_style='llama'), "prompt_style='llama'"),
])
def test_component_validation(build, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace('.', r'\.')):
        build()


def test_policy_validation():
    config = build_tiny_config()
    with pytest.raises(ValueError, match='camera_names'):
        dataclasses.replace(config, camera_names=[])
    with pytest.raises(ValueError, match='camera_names'):
        dataclasses.replace(config, camera_names=['a', 'b', 'c', 'd', 'e'])
    with pytest.raises(ValueError, match='unique'):
        dataclasses.replace(config, camera_names=['a', 'a'])
    with pytest.raises(ValueError, match="layout='sideways'"):
        dataclasses.replace(config, layout='sideways')
    with pytest.raises(ValueError, match='action_head.hidden_dim'):
        dataclasses.replace(config, action_head=dataclasses.replace(config.action_head,
                                                                    hidden_dim=32))
    with pytest.raises(ValueError, match='action_head.num_blocks'):
        dataclasses.replace(config, action_head=dataclasses.replace(config.action_head,
                                                                    num_blocks=3))
    with pytest.raises(ValueError, match='projector.vision_dim'):
        dataclasses.replace(config, projector=ProjectorConfig(vision_dim=10, llm_dim=64))


def test_upstream_compat_needs_one_head_block_per_layer_and_l1():
    config = build_tiny_config(llm_layers=3)
    fewer = dataclasses.replace(config, action_head=dataclasses.replace(config.action_head,
                                                                        num_blocks=2))
    with pytest.raises(ValueError, match='upstream_compat needs one head block per LLM layer'):
        dataclasses.replace(fewer, layout='upstream_compat')
    discrete = build_tiny_config(head_kind='discrete')
    with pytest.raises(ValueError, match='only the l1 head'):
        dataclasses.replace(discrete, layout='upstream_compat')


def test_from_dict_rejects_unknown_keys_and_other_formats():
    data = build_tiny_config().to_dict()
    with pytest.raises(ValueError, match='unknown config keys'):
        PolicyConfig.from_dict(dict(data, extra=1))
    with pytest.raises(ValueError, match="format='openvla'"):
        PolicyConfig.from_dict(dict(data, format='openvla'))
    with pytest.raises(ValueError, match='LLMConfig: unknown config keys'):
        PolicyConfig.from_dict(dict(data, llm=dict(data['llm'], flash=True)))
