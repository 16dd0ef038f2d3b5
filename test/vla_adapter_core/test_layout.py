"""Sequence assembly and hidden-state windows, aligned and upstream-compatible, with padding."""

import pytest
import torch

from vla_adapter_core.config import LAYOUT_ALIGNED, LAYOUT_UPSTREAM_COMPAT
from vla_adapter_core.layout import (
    assemble_sequence,
    check_prompt_mask,
    gather_windows,
    round_to_bfloat16,
    upstream_window,
)

WIDTH = 3
PATCHES = 4
QUERIES = 3


def _tagged_inputs(prompt_lengths):
    """Embeddings whose first channel names the token: prompt 10+i, patch 20+j, query 30+k."""
    batch, length = len(prompt_lengths), max(prompt_lengths)
    prompt = torch.zeros(batch, length, WIDTH)
    mask = torch.zeros(batch, length, dtype=torch.long)
    for row, real in enumerate(prompt_lengths):
        prompt[row, length - real:, 0] = 10 + torch.arange(real, dtype=torch.float32)
        mask[row, length - real:] = 1
    patches = torch.zeros(batch, PATCHES, WIDTH)
    patches[:, :, 0] = 20 + torch.arange(PATCHES, dtype=torch.float32)
    queries = torch.zeros(QUERIES, WIDTH)
    queries[:, 0] = 30 + torch.arange(QUERIES, dtype=torch.float32)
    return prompt, mask, patches, queries


def test_patches_follow_the_first_prompt_token_and_padding_comes_last():
    prompt, mask, patches, queries = _tagged_inputs([5, 3])
    sequence = assemble_sequence(prompt, mask, patches, queries)
    tags = sequence.inputs_embeds[..., 0]
    expected_full = [10, 20, 21, 22, 23, 11, 12, 13, 14, 30, 31, 32]
    assert tags[0].tolist() == expected_full
    # the shorter prompt's left padding moved to the end: its real tokens sit where a single
    # call puts them, so causal attention needs no mask
    assert tags[1, :10].tolist() == [10, 20, 21, 22, 23, 11, 12, 30, 31, 32]
    assert sequence.attention_mask[1].tolist() == [1] * 10 + [0, 0]
    assert sequence.attention_mask[0].tolist() == [1] * 12
    assert sequence.position_ids.tolist() == [list(range(12))]
    assert sequence.pad_counts.tolist() == [0, 2]
    assert sequence.prompt_lengths.tolist() == [5, 3]


def test_trailing_tokens_follow_the_queries_before_the_padding():
    prompt, mask, patches, queries = _tagged_inputs([2, 4])
    stop = torch.zeros(1, WIDTH)
    stop[0, 0] = 99
    sequence = assemble_sequence(prompt, mask, patches, queries, trailing_embeds=stop)
    tags = sequence.inputs_embeds[..., 0]
    assert tags[0, :9].tolist() == [10, 20, 21, 22, 23, 11, 30, 31, 32] and tags[0, 9] == 99
    assert tags[1].tolist() == [10, 20, 21, 22, 23, 11, 12, 13, 30, 31, 32, 99]
    assert sequence.attention_mask[0].tolist() == [1] * 10 + [0, 0]


def test_a_prompt_without_real_tokens_is_refused():
    with pytest.raises(ValueError, match='at least one real token'):
        check_prompt_mask(torch.tensor([[1, 1], [0, 0]]))
    check_prompt_mask(torch.tensor([[1, 1], [0, 1]]))


def test_aligned_windows_are_exactly_patches_and_queries():
    prompt, mask, patches, queries = _tagged_inputs([5, 3])
    sequence = assemble_sequence(prompt, mask, patches, queries)
    hidden = [sequence.inputs_embeds, sequence.inputs_embeds + 0.5]
    task, adapter = gather_windows(hidden, sequence, LAYOUT_ALIGNED)
    assert task.shape == (2, 2, PATCHES, WIDTH) and adapter.shape == (2, 2, QUERIES, WIDTH)
    for row in range(2):
        assert task[row, 0, :, 0].tolist() == [20, 21, 22, 23]
        assert adapter[row, 0, :, 0].tolist() == [30, 31, 32]
    assert task[0, 1, 0, 0].item() == 20.5


def test_upstream_windows_are_off_by_one_and_split_at_a_fixed_count():
    prompt, mask, patches, queries = _tagged_inputs([5, 3])
    stop = torch.zeros(1, WIDTH)
    stop[0, 0] = 99
    sequence = assemble_sequence(prompt, mask, patches, queries, trailing_embeds=stop)
    assert sequence.inputs_embeds[0, -1, 0].item() == 99  # the longest prompt: no padding
    hidden = [sequence.inputs_embeds]
    window = upstream_window(hidden, sequence)[..., 0]
    for row, last_prompt in ((0, 14), (1, 12)):
        assert window[row, 0].tolist() == [10, 20, 21, 22, last_prompt, 30, 31]
    task, adapter = gather_windows(hidden, sequence, LAYOUT_UPSTREAM_COMPAT, num_task_tokens=3)
    assert task[0, 0, :, 0].tolist() == [10, 20, 21]
    assert adapter[0, 0, :, 0].tolist() == [22, 14, 30, 31]


def test_upstream_action_window_is_bf16_rounded():
    prompt, mask, patches, queries = _tagged_inputs([4])
    sequence = assemble_sequence(prompt, mask, patches, queries)
    hidden = [torch.randn(1, sequence.inputs_embeds.shape[1], WIDTH)]
    task, adapter = gather_windows(hidden, sequence, LAYOUT_UPSTREAM_COMPAT,
                                   num_task_tokens=PATCHES)
    assert torch.equal(adapter, round_to_bfloat16(adapter))
    assert adapter.dtype == torch.float32
    assert torch.equal(task[0, 0], hidden[0][0, :PATCHES])  # task part keeps full precision
