"""Upstream's action-head attention math written out, the reference the head's tests hold it to.

``vla_adapter_core.heads.attention`` computes the same numbers with tables built once and one
fused attention call per block; these functions restate upstream's per-tensor form.
"""

import math

import torch

from vla_adapter_core.heads.attention import rope_cos_sin


def rotate_interleaved_pairs(u: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (2j, 2j+1) by 90 degrees: (a, b) -> (-b, a)."""
    even = u[..., 0::2]  # (..., hd/2)
    odd = u[..., 1::2]  # (..., hd/2)
    return torch.stack((-odd, even), dim=-1).reshape(u.shape)


def apply_upstream_rope(u: torch.Tensor, base: float) -> torch.Tensor:
    """Upstream's rotary embedding on ``u`` (B, H, L, hd), positions 0..L-1 (tables built here)."""
    cos, sin = rope_cos_sin(u.shape[-2], u.shape[-1], base, u.device, u.dtype)  # (L, hd)
    return u * cos + rotate_interleaved_pairs(u) * sin


def split_heads(t: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, L, D) -> (B, H, L, D / H); works for L = 0."""
    batch, length, width = t.shape
    return t.reshape(batch, length, num_heads, width // num_heads).transpose(1, 2)


def joint_softmax_attention(
    q: torch.Tensor,
    key_sets: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
) -> torch.Tensor:
    """One softmax over the concatenated logits of several key sets, written out.

    The blocks compute the same thing in one fused attention call (the gate folded into the
    keys, see ``_BridgeBlock.forward``); this is the reference the tests hold them to.

    Args:
        q: queries (B, H, T, hd).
        key_sets: ``(k, v, logit_scale)`` per set, k and v (B, H, K_i, hd); ``logit_scale`` (a
            scalar tensor) multiplies that set's logits before the common 1/sqrt(hd), or None.

    Returns:
        (B, H, T, hd) attended values.
    """
    scores = []
    for keys, _, logit_scale in key_sets:
        set_scores = torch.matmul(q, keys.transpose(-2, -1))  # (B, H, T, K_i)
        if logit_scale is not None:
            set_scores = set_scores * logit_scale
        scores.append(set_scores)
    all_scores = torch.cat(scores, dim=-1) / math.sqrt(q.shape[-1])  # (B, H, T, sum K_i)
    weights = torch.softmax(all_scores, dim=-1)  # (B, H, T, sum K_i)
    values = torch.cat([values for _, values, _ in key_sets], dim=2)  # (B, H, sum K_i, hd)
    return torch.matmul(weights, values)  # (B, H, T, hd)
