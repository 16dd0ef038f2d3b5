"""Inference fast path: batches equal single calls, shared rotary tables, no LLM mask, compile."""

import dataclasses

from head_reference import apply_upstream_rope, joint_softmax_attention, split_heads
import numpy as np
import pytest
import torch

from vla_adapter_core.config import InferenceConfig, LLMConfig
from vla_adapter_core.heads import ActionHeadConfig, build_action_head
from vla_adapter_core.heads.attention import KeySetRotary, ProBridgeBlock, RotaryTables
from vla_adapter_core.llm import QwenBackbone
from vla_adapter_core.policy import VLAPolicy, pad_prompts, warmup_calls_needed
from vla_adapter_core.tiny_policies import build_tiny_policy, random_observation

INSTRUCTIONS = ('pick up the cube', 'open the top drawer and put the bowl inside of it', 'push',
                'stack the red block on the blue block')
TINY_LLM = LLMConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)


def _observations(policy, count=4):
    shapes = [(224, 224, 3), (480, 640, 3), (60, 80, 3), (480, 640, 3)]
    return [random_observation(policy, seed=index, image_shape=shapes[index % 4],
                               instruction=INSTRUCTIONS[index % 4]) for index in range(count)]


@pytest.mark.parametrize('head_kind', ['l1', 'dual_arm', 'discrete'])
def test_batch_of_four_equals_single_calls(head_kind):
    policy = build_tiny_policy(action_dim=4, proprio_dim=3, chunk_size=3, head_kind=head_kind,
                               camera_names=['front', 'wrist'], seed=5)
    observations = _observations(policy)
    batch = policy.prepare_batch(observations)
    assert len(set(batch['attention_mask'].sum(dim=1).tolist())) == 4  # padding occurs
    with torch.inference_mode():
        batched = policy.model(batch)  # (4, chunk, A) or logits
        for index, observation in enumerate(observations):
            single = policy.model(policy.prepare_batch([observation]))
            torch.testing.assert_close(batched[index:index + 1], single, rtol=0, atol=1e-5)
    actions = policy.predict_action_chunk_batch(observations)
    for index, observation in enumerate(observations):
        np.testing.assert_allclose(actions[index], policy.predict_action_chunk(observation),
                                   rtol=0, atol=1e-5)


def test_rotary_tables_equal_rebuilt_tables():
    tables = RotaryTables(head_dim=8, base=10000.0, length=16)
    for dtype in (torch.float32, torch.bfloat16):
        tables.to(dtype)
        for length in (1, 5, 16, 40):  # 40 > 16: the tables grow
            u = torch.randn(2, 3, length, 8).to(dtype)
            assert torch.equal(tables.apply(u), apply_upstream_rope(u, 10000.0))
    assert tables.cos.shape[0] >= 40
    assert not tables.state_dict()  # non-persistent: checkpoints do not change


def test_pro_block_with_shared_tables_equals_rebuilt_tables():
    torch.manual_seed(0)
    config = ActionHeadConfig(hidden_dim=16, num_heads=2, num_blocks=2, chunk_size=4,
                              action_dim=3)
    block = ProBridgeBlock(config, cross_arm=True)
    tables = RotaryTables(8, config.rope_base)
    x, task, adapter, other = (torch.randn(2, 4, 16), torch.randn(2, 7, 16),
                               torch.randn(2, 5, 16), torch.randn(2, 4, 16))
    with torch.no_grad():
        assert torch.equal(block(x, task, adapter, other, rotary=tables),
                           block(x, task, adapter, other))


def _written_out_pro_block(block, x, task, adapter, other):
    """The Pro block as upstream writes it: rotate each set on its own, gate the task logits."""
    heads, base = block.num_heads, block.rope_base

    def rotated(projection, tokens):
        return apply_upstream_rope(split_heads(projection(tokens), heads), base)

    def values(projection, tokens):
        return split_heads(projection(tokens), heads)

    sets = [(rotated(block.k_self, x), values(block.v_self, x), None),
            (rotated(block.k_adapter, adapter), values(block.v_adapter, adapter), None),
            (rotated(block.k_task, task), values(block.v_task, task),
             torch.tanh(block.gating_factor))]
    if other is not None:
        sets.append((rotated(block.k_cross, other), values(block.v_cross, other), None))
    attended = joint_softmax_attention(rotated(block.q_proj, x), sets)  # (B, H, T, hd)
    attended = attended.transpose(1, 2).reshape(x.shape)
    return block.ffn(block.o_proj(attended) + x)


@pytest.mark.parametrize('cross_arm', [False, True])
@pytest.mark.parametrize('task_length', [0, 7])
def test_pro_block_one_attention_call_equals_the_written_out_joint_softmax(cross_arm,
                                                                          task_length):
    torch.manual_seed(3)
    config = ActionHeadConfig(hidden_dim=16, num_heads=2, num_blocks=1, chunk_size=4,
                              action_dim=3)
    block = ProBridgeBlock(config, cross_arm=cross_arm)
    with torch.no_grad():
        block.gating_factor.fill_(0.8)  # a live gate: it must act on the task keys only
    x, adapter = torch.randn(2, 4, 16), torch.randn(2, 5, 16)
    task = torch.randn(2, task_length, 16)
    other = torch.randn(2, 4, 16) if cross_arm else None
    with torch.no_grad():
        fused = block(x, task, adapter, other)
        reference = _written_out_pro_block(block, x, task, adapter, other)
    torch.testing.assert_close(fused, reference, atol=1e-6, rtol=1e-5)


def test_key_set_rotary_for_other_lengths_is_refused():
    config = ActionHeadConfig(hidden_dim=16, num_heads=2, num_blocks=1, chunk_size=4,
                              action_dim=3)
    block = ProBridgeBlock(config)
    tables = RotaryTables(8, config.rope_base).for_key_sets(4, (4, 5, 6))
    assert isinstance(tables, KeySetRotary)
    with pytest.raises(ValueError, match=r'keys \(4, 5, 6\).*this call has keys \(4, 5, 7\)'):
        block(torch.randn(1, 4, 16), torch.randn(1, 7, 16), torch.randn(1, 5, 16),
              rotary=tables)


def test_head_rotary_tables_follow_the_head_and_stay_out_of_state_dicts():
    config = ActionHeadConfig(kind='dual_arm', hidden_dim=16, num_heads=2, num_blocks=2,
                              chunk_size=4, action_dim=4)
    head = build_action_head(config).to(torch.bfloat16)
    assert head.left.rotary.cos.dtype == torch.bfloat16
    assert not any('rotary' in key for key in head.state_dict())
    original = build_action_head(dataclasses.replace(config, block_type='original'))
    assert original.left.rotary is None


def test_llm_layer_loop_equals_transformers_hidden_states():
    backbone = QwenBackbone(TINY_LLM).eval()
    embeds = torch.randn(2, 9, 32)
    with torch.no_grad():
        ours = backbone(embeds)
        theirs = backbone.model(inputs_embeds=embeds, output_hidden_states=True,
                                use_cache=False).hidden_states
    assert len(ours) == len(theirs) == TINY_LLM.num_hidden_layers + 1
    for mine, reference in zip(ours, theirs):
        assert torch.equal(mine, reference)


def test_llm_masks_built_once_in_the_fastest_form():
    backbone = QwenBackbone(TINY_LLM).eval()
    embeds = torch.randn(2, 6, 32)
    assert backbone.attention_mask_4d(None, embeds) is None
    assert backbone.attention_mask_4d(torch.ones(2, 6, dtype=torch.long), embeds) is None
    mask = backbone.attention_mask_4d(torch.tensor([[1] * 6, [0, 0] + [1] * 4]), embeds)
    assert mask.shape == (2, 1, 6, 6) and mask.dtype == embeds.dtype  # additive, once
    blocked = torch.finfo(embeds.dtype).min
    assert mask[1, 0, 3, 1] == blocked and mask[1, 0, 3, 2] == 0 and mask[1, 0, 1, 1] == 0
    assert mask[0, 0, 2, 3] == blocked  # causal


def test_eager_attention_gets_a_causal_mask():
    torch.manual_seed(0)
    sdpa = QwenBackbone(TINY_LLM).eval()
    eager = QwenBackbone(dataclasses.replace(TINY_LLM, attn_implementation='eager')).eval()
    eager.load_state_dict(sdpa.state_dict())
    embeds = torch.randn(1, 7, 32)
    with torch.no_grad():
        torch.testing.assert_close(eager(embeds)[-1], sdpa(embeds)[-1], rtol=1e-5, atol=1e-5)


def test_batched_preprocessing_equals_one_image_at_a_time():
    policy = build_tiny_policy(camera_names=['a', 'b'], seed=0, center_crop_fraction=0.9)
    observations = _observations(policy, 3)
    batched = policy.processor(observations)['pixel_values']  # (3, 2, 6, S, S)
    for index, observation in enumerate(observations):
        for camera, name in enumerate(policy.config.camera_names):
            single = policy.processor.image_tensor(observation['images'][name], name)
            assert torch.equal(batched[index, camera], single)
    reused = policy.processor(observations, reuse_buffer=True)['pixel_values']
    assert torch.equal(reused, batched)
    again = policy.processor(observations, reuse_buffer=True)['pixel_values']
    assert again.data_ptr() == reused.data_ptr()  # no new pixel buffer per call


def test_prompts_are_tokenised_once_per_instruction_tuple():
    policy = build_tiny_policy(camera_names=['a'], seed=0)
    first = policy.processor.prompts(['pick up the cube'])
    assert policy.processor.prompts(['pick up the cube']) is first
    with torch.inference_mode():
        inside = policy.processor.prompts(['pick up the cube'])
    assert inside is not first and not first[0].is_inference()


def test_inference_config_validation_and_buckets():
    with pytest.raises(ValueError, match='InferenceConfig.compile'):
        InferenceConfig(compile='fast')
    with pytest.raises(ValueError, match='InferenceConfig.prompt_buckets'):
        InferenceConfig(prompt_buckets=(64, 32))
    config = InferenceConfig(compile='default', prompt_buckets=[16, 64])
    assert config.prompt_buckets == (16, 64)
    assert [config.bucket_length(n) for n in (1, 16, 17, 64, 65, 130)] == [16, 16, 64, 64, 128,
                                                                           192]
    assert InferenceConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match='InferenceConfig.compile'):
        build_tiny_policy(camera_names=['a'], compile='maximum')


def test_extra_prompt_padding_does_not_change_actions():
    policy = build_tiny_policy(camera_names=['a'], chunk_size=3, seed=2)
    batch = policy.prepare_batch(_observations(policy, 2))
    padded = pad_prompts(batch, batch['input_ids'].shape[1] + 9,
                         policy.processor.prompt_builder.pad_token_id)
    assert padded['input_ids'].shape[1] == batch['input_ids'].shape[1] + 9
    with torch.inference_mode():
        torch.testing.assert_close(policy.model(padded), policy.model(batch), rtol=0,
                                   atol=1e-5)


@pytest.mark.slow
def test_compile_default_equals_eager_on_cpu():
    eager = build_tiny_policy(camera_names=['a'], chunk_size=3, seed=1)
    compiled = VLAPolicy(eager.model, eager.tokenizer, eager.statistics, device='cpu',
                         dtype='float32', compile='default')
    assert compiled.inference.compile == 'default'
    long_instruction = ' '.join(['then pick up the next cube'] * 6)  # another prompt bucket
    assert compiled.compiles_for('pick up the cube') and compiled.compiles_for(long_instruction)
    assert not eager.compiles_for('pick up the cube')
    for instruction in ('pick up the cube', 'push the red button'):  # same prompt bucket
        observation = random_observation(eager, seed=3, instruction=instruction)
        np.testing.assert_allclose(compiled.predict([observation]).normalized_actions,
                                   eager.predict([observation]).normalized_actions,
                                   rtol=0, atol=1e-4)
        assert not compiled.compiles_for(instruction)  # one call of the shape on a CPU
    assert compiled.compiles_for(long_instruction)
    assert compiled.compiles_for('pick up the cube', batch_size=2)


def test_warmup_calls_cover_cuda_graph_recording():
    # CUDA Graph Trees: warm-up run, recording run, then replays; elsewhere one call suffices.
    assert warmup_calls_needed('none', torch.device('cuda')) == 1
    assert warmup_calls_needed('default', torch.device('cuda', 0)) == 3
    assert warmup_calls_needed('max', torch.device('cuda')) == 3
    assert warmup_calls_needed('default', torch.device('cpu')) == 1
    policy = build_tiny_policy(camera_names=['a'], chunk_size=3, seed=1)
    assert policy.warmup_calls == 1
