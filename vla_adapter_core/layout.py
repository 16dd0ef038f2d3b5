"""Sequence assembly and hidden-state window gathering (aligned and upstream-compatible layouts).

Token layout per sample (contract in docs/ARCHITECTURE.md)::

    [t0, image patches (256 per image), t1 .. t(L-1), action queries, (trailing), right padding]

The processor's prompts arrive left-padded; the assembly moves every sample's padding to the END
of its sequence. In a causal LLM no real token can then attend to a padding token, so the LLM
runs with no attention mask at all (the fastest SDPA form: ``is_causal``, flash kernels, GQA
without copies) and every sample's real tokens see exactly what a single call would: same
positions 0..n-1, same keys. What the padding tokens compute is never read. Windows fed to the
action head:

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
    attention_mask: torch.Tensor  # (B, S) long: 1 on real tokens, 0 on the trailing padding
    position_ids: torch.Tensor  # (1, S) long: 0..S-1, shared by every sample
    pad_counts: torch.Tensor  # (B,) long: padding tokens per sample (at the end)
    prompt_lengths: torch.Tensor  # (B,) long: real prompt tokens per sample
    num_patches: int
    num_queries: int
    num_trailing: int = 0  # tokens after the queries (upstream's STOP token in compat mode)


def round_to_bfloat16(tensor: torch.Tensor) -> torch.Tensor:
    """Round to bfloat16 precision and back to the original dtype (upstream's hard-coded casts)."""
    return tensor.to(torch.bfloat16).to(tensor.dtype)


def check_prompt_mask(prompt_mask: torch.Tensor) -> None:
    """Raise ValueError when a prompt of the (B, L) mask has no real token (a host sync)."""
    if bool((prompt_mask.sum(dim=1) == 0).any()):
        raise ValueError('every prompt needs at least one real token')


def assemble_sequence(prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor,
                      patch_embeds: torch.Tensor, query_embeds: torch.Tensor,
                      trailing_embeds: torch.Tensor | None = None) -> AssembledSequence:
    """Insert the patches after each sample's first real prompt token, append the queries.

    ``prompt_embeds`` (B, L, D) left-padded, ``prompt_mask`` (B, L) with 1 on real tokens,
    ``patch_embeds`` (B, NP, D), ``query_embeds`` (Q, D). ``trailing_embeds`` (T, D), if given,
    follow the queries (upstream appends a STOP token; with causal attention it changes nothing
    but the floating-point blocking of the attention kernels). Each sample's left padding moves
    to the end of its sequence. No data-dependent host sync (compile-friendly); the caller
    checks the mask with :func:`check_prompt_mask`.
    """
    batch, length, width = prompt_embeds.shape
    num_patches = patch_embeds.shape[1]
    num_queries = query_embeds.shape[0]
    tail = query_embeds if trailing_embeds is None else torch.cat([query_embeds,
                                                                   trailing_embeds])
    num_tail = tail.shape[0]
    prompt_mask = prompt_mask.to(torch.long)
    prompt_lengths = prompt_mask.sum(dim=1)  # (B,)
    pad_counts = length - prompt_lengths  # (B,)
    # Output position j takes row source[b, j] of cat(prompt, patches, tail) (B, L + NP + Q', D):
    # t0 (prompt row pad), the patches, t1..t(n-1), the tail, then padding (prompt row 0).
    total = length + num_patches + num_tail
    positions = torch.arange(total, device=prompt_embeds.device)  # (S,)
    pads = pad_counts.unsqueeze(1)  # (B, 1)
    real_end = (num_patches + prompt_lengths).unsqueeze(1)  # (B, 1): first tail position
    source = torch.where(positions < real_end, pads + positions - num_patches,
                         length + num_patches + positions - real_end)  # (B, S) prompt, tail
    source = torch.where((positions >= 1) & (positions <= num_patches),
                         length - 1 + positions, source)  # the patches
    source = torch.where(positions == 0, pads, source)  # t0
    is_padding = positions >= real_end + num_tail  # (B, S)
    source = torch.where(is_padding, torch.zeros_like(source), source)
    stacked = torch.cat([prompt_embeds, patch_embeds,
                         tail.unsqueeze(0).expand(batch, -1, -1)], dim=1)  # (B, S, D)
    inputs_embeds = torch.gather(stacked, 1, source.unsqueeze(-1).expand(-1, -1, width))
    attention_mask = (~is_padding).to(torch.long)  # (B, S)
    return AssembledSequence(inputs_embeds, attention_mask, positions.unsqueeze(0), pad_counts,
                             prompt_lengths, num_patches, num_queries, num_tail - num_queries)


def _gather_tokens(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``hidden`` (B, S, D), ``index`` (B, K) -> (B, K, D)."""
    return torch.gather(hidden, 1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))


def window_indices(sequence: AssembledSequence,
                   layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token indices (B, K_t) of the task window and (B, K_a) of the adapter/action window."""
    if layout not in LAYOUTS:
        raise ValueError(f'layout={layout!r}: must be one of {LAYOUTS}')
    device = sequence.prompt_lengths.device
    batch = sequence.prompt_lengths.shape[0]
    patch_offsets = torch.arange(sequence.num_patches, device=device)  # (NP,)
    query_offsets = torch.arange(sequence.num_queries, device=device)  # (Q,)
    start = (sequence.num_patches + sequence.prompt_lengths).unsqueeze(1)  # (B, 1): 1st query
    if layout == LAYOUT_ALIGNED:
        task = 1 + patch_offsets  # (NP,)
        adapter = start + query_offsets  # (B, Q)
    else:
        task = patch_offsets  # (NP,) from t0, last patch out
        adapter = start - 1 + query_offsets  # (B, Q) from the last prompt token, last query out
    return task.unsqueeze(0).expand(batch, -1), adapter


def gather_windows(hidden_states: list, sequence: AssembledSequence, layout: str,
                   num_task_tokens: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Task and adapter states for the action head from a list of per-layer hidden states.

    ``hidden_states``: N tensors (B, S, D), e.g. LLM hidden states 1..num_blocks (block i of the
    head reads entry i). Returns ``task_states`` (B, N, K_t, D) and ``adapter_states``
    (B, N, K_a, D). In ``upstream_compat`` the action window is bf16-rounded and the
    concatenated window is split at ``num_task_tokens`` as upstream does.
    """
    _, adapter_index = window_indices(sequence, layout)  # (B, K_a)
    first = 1 if layout == LAYOUT_ALIGNED else 0  # the task window is at the same place in all
    patches = slice(first, first + sequence.num_patches)
    task = torch.stack([h[:, patches] for h in hidden_states], dim=1)  # (B, N, NP, D)
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
