"""Sequence assembly and hidden-state window gathering (aligned and upstream-compatible layouts).

Token layout per sample (contract in docs/ARCHITECTURE.md)::

    [left padding, t0, image patches (256 per image), t1 .. t(L-1), action queries]

so the queries are always the last positions of a batch. Windows fed to the action head:

* ``aligned``: task states = exactly the patch positions, adapter states = exactly the queries.
* ``upstream_compat``: upstream's windows, reproduced on purpose: the task window starts at the
  first prompt token (last patch dropped), the action window starts at the last prompt token (last
  query dropped) and is rounded to bfloat16, and the concatenation of both is split at a fixed
  ``num_task_tokens`` (512, right only for two images).
"""

from __future__ import annotations

import dataclasses

import torch

from vla_adapter_core.config import LAYOUT_ALIGNED, LAYOUT_UPSTREAM_COMPAT, LAYOUTS


@dataclasses.dataclass
class AssembledSequence:
    """LLM inputs plus the bookkeeping needed to find the windows again."""

    inputs_embeds: torch.Tensor  # (B, S, D)
    attention_mask: torch.Tensor  # (B, S) long
    position_ids: torch.Tensor  # (B, S) long
    pad_counts: torch.Tensor  # (B,) long: left-padding tokens per sample
    num_patches: int
    num_queries: int
    num_trailing: int = 0  # tokens after the queries (upstream's STOP token in compat mode)


def round_to_bfloat16(tensor: torch.Tensor) -> torch.Tensor:
    """Round to bfloat16 precision and back to the original dtype (upstream's hard-coded casts)."""
    return tensor.to(torch.bfloat16).to(tensor.dtype)


def assemble_sequence(prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor,
                      patch_embeds: torch.Tensor, query_embeds: torch.Tensor,
                      trailing_embeds: torch.Tensor | None = None) -> AssembledSequence:
    """Insert the patches after each sample's first real prompt token and append the queries.

    ``prompt_embeds`` (B, L, D) left-padded, ``prompt_mask`` (B, L) with 1 on real tokens,
    ``patch_embeds`` (B, NP, D), ``query_embeds`` (Q, D). ``trailing_embeds`` (T, D), if given,
    follow the queries (upstream appends a STOP token; with causal attention it changes nothing
    but the floating-point blocking of the attention kernels).
    """
    batch, length, width = prompt_embeds.shape
    num_patches = patch_embeds.shape[1]
    num_queries = query_embeds.shape[0]
    prompt_mask = prompt_mask.to(torch.long)
    pad_counts = length - prompt_mask.sum(dim=1)  # (B,)
    if bool((pad_counts >= length).any()):
        raise ValueError('every prompt needs at least one real token')
    # Output position j (< L + NP) takes source row j of cat(prompt, patches) re-indexed so that
    # the patches sit right after the first real token t0 at position pad_count.
    positions = torch.arange(length + num_patches, device=prompt_embeds.device)  # (L + NP,)
    first = pad_counts.unsqueeze(1) + 1  # (B, 1): first patch position
    in_patches = (positions >= first) & (positions < first + num_patches)  # (B, L + NP)
    after = positions >= first + num_patches
    source = torch.where(in_patches, length + positions - first, positions)
    source = torch.where(after, positions - num_patches, source)  # (B, L + NP)
    stacked = torch.cat([prompt_embeds, patch_embeds], dim=1)  # (B, L + NP, D)
    gathered = torch.gather(stacked, 1, source.unsqueeze(-1).expand(-1, -1, width))
    tail = query_embeds if trailing_embeds is None else torch.cat([query_embeds,
                                                                   trailing_embeds])
    num_trailing = tail.shape[0] - num_queries
    inputs_embeds = torch.cat([gathered, tail.unsqueeze(0).expand(batch, -1, -1)],
                              dim=1)  # (B, S, D)
    prompt_part = torch.gather(prompt_mask, 1, source.clamp(max=length - 1))  # (B, L + NP)
    prompt_part = torch.where(source >= length, torch.ones_like(prompt_part), prompt_part)
    attention_mask = torch.cat([prompt_part, torch.ones(batch, tail.shape[0], dtype=torch.long,
                                                        device=prompt_mask.device)], dim=1)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # (B, S)
    return AssembledSequence(inputs_embeds, attention_mask, position_ids, pad_counts,
                             num_patches, num_queries, num_trailing)


def _gather_tokens(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``hidden`` (B, S, D), ``index`` (B, K) -> (B, K, D)."""
    return torch.gather(hidden, 1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))


def window_indices(sequence: AssembledSequence, layout: str,
                   total_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token indices (B, K_t) of the task window and (B, K_a) of the adapter/action window."""
    if layout not in LAYOUTS:
        raise ValueError(f'layout={layout!r}: must be one of {LAYOUTS}')
    device = sequence.pad_counts.device
    patch_offsets = torch.arange(sequence.num_patches, device=device)  # (NP,)
    query_offsets = torch.arange(sequence.num_queries, device=device)  # (Q,)
    start = total_length - sequence.num_trailing - sequence.num_queries
    if layout == LAYOUT_ALIGNED:
        task = sequence.pad_counts.unsqueeze(1) + 1 + patch_offsets  # (B, NP)
        adapter = start + query_offsets  # (Q,)
    else:
        task = sequence.pad_counts.unsqueeze(1) + patch_offsets  # (B, NP) from t0, last patch out
        adapter = start - 1 + query_offsets  # (Q,) from the last prompt token, last query out
    batch = sequence.pad_counts.shape[0]
    return task, adapter.unsqueeze(0).expand(batch, -1)


def gather_windows(hidden_states: list, sequence: AssembledSequence, layout: str,
                   num_task_tokens: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Task and adapter states for the action head from a list of per-layer hidden states.

    ``hidden_states``: N tensors (B, S, D), e.g. LLM hidden states 1..num_blocks (block i of the
    head reads entry i). Returns ``task_states`` (B, N, K_t, D) and ``adapter_states``
    (B, N, K_a, D). In ``upstream_compat`` the action window is bf16-rounded and the
    concatenated window is split at ``num_task_tokens`` as upstream does.
    """
    total_length = hidden_states[0].shape[1]
    task_index, adapter_index = window_indices(sequence, layout, total_length)
    task = torch.stack([_gather_tokens(h, task_index) for h in hidden_states], dim=1)
    adapter = torch.stack([_gather_tokens(h, adapter_index) for h in hidden_states], dim=1)
    if layout == LAYOUT_ALIGNED:
        return task, adapter  # (B, N, NP, D), (B, N, Q, D)
    window = torch.cat([task, round_to_bfloat16(adapter)], dim=2)  # (B, N, NP + Q, D)
    return window[:, :, :num_task_tokens], window[:, :, num_task_tokens:]


def upstream_window(hidden_states: list, sequence: AssembledSequence) -> torch.Tensor:
    """Upstream's concatenated per-layer window (B, N, NP + Q, D) before the 512 split.

    This is upstream's ``multi_layer_hidden_states`` when given all LLM hidden states.
    """
    task, adapter = gather_windows(hidden_states, sequence, LAYOUT_UPSTREAM_COMPAT,
                                   num_task_tokens=10 ** 9)
    return torch.cat([task, adapter], dim=2)
