"""Bridge-attention blocks of the action head (upstream MLPResNetBlock / MLPResNetBlock_Pro).

A block updates the action stream ``x`` (B, T, D), T = chunk size, with ONE softmax over the
concatenated keys of several sets:

- self: projections of ``x`` itself,
- adapter: the action-query hidden states of this block's LLM layer, plus the proprio token,
- task: the vision-patch hidden states of this block's LLM layer; their logits are multiplied by
  ``tanh(gating_factor)`` (a learnable scalar initialised to 0),
- other arm (dual-arm head only): projections of the other arm's current stream.

The attended values go through ``o_proj``, are added to ``x`` and the sum passes
``ffn = LayerNorm -> Linear -> ReLU``; there is no residual around the ffn.

Upstream details reproduced here on purpose (OpenHelix-Team/VLA-Adapter, commit 838a36da,
prismatic/models/action_heads.py), so that upstream checkpoints load with their own parameter names
and give the same numbers:

- Pro block parameter names ``q_proj, k_self, v_self, k_adapter, v_adapter, k_task, v_task, o_proj,
  ffn.0, ffn.1, gating_factor``; original block ``q_proj, k_proj, v_proj, o_proj, ffn.0, ffn.1,
  gating_factor`` (one K/V projection shared by all key sets, no rotary embedding). Upstream's Pro
  block also owns an unused ``film_gen`` Linear; our blocks do not (the loader drops those keys).
- Score order [self, adapter, task * tanh(g)], scaled by 1/sqrt(head_dim) after concatenation;
  both block variants gate the task (vision) set, not the adapter set.
- Pro rotary embedding: frequencies ``1 / base**(2j / hd)``; the angle table uses the half-split
  layout ``concat(ang, ang)`` while the rotation pairs interleaved channels
  (``rot(u)[2j] = -u[2j+1]``, ``rot(u)[2j+1] = u[2j]``). Queries and self keys use positions
  0..T-1, adapter keys 0..K_a-1 (proprio token last), task keys 0..K_t-1; values are not rotated.

Our own choices: the angle table is always computed in float32 and then cast to the stream dtype
(upstream computes it in the module dtype, so its bf16 positions are inexact above 256). The
tables are built once per head trunk (:class:`RotaryTables`, non-persistent buffers) and
handed to every block, instead of being rebuilt for each of the 4-5 rotated tensors of every
block and call (bit-identical).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vla_adapter_core.heads.config import ActionHeadConfig


def rope_cos_sin(
    length: int, head_dim: int, base: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables (length, head_dim) in upstream's half-split layout."""
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (base**exponents)  # (hd/2,)
    positions = torch.arange(length, device=device, dtype=torch.float32)  # (L,)
    angles = torch.outer(positions, inv_freq)  # (L, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (L, hd)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def swap_interleaved_pairs(u: torch.Tensor) -> torch.Tensor:
    """Swap channel pairs (2j, 2j+1): (a, b) -> (b, a); the sign lives in the sine table.

    Stacking the two strided halves copies about 3x faster on a CPU than ``flip`` of the
    pair axis (same values).
    """
    return torch.stack((u[..., 1::2], u[..., 0::2]), dim=-1).flatten(-2)  # (..., hd)


ROTARY_TABLE_LENGTH = 2048  # positions tabulated up front (4 cameras = 1024 task keys)


@dataclasses.dataclass(frozen=True)
class KeySetRotary:
    """Rotary tables of one block call: queries at 0..T-1, each key set restarting at 0.

    ``query_cos`` / ``query_sin`` (T, 1, hd) and ``key_cos`` / ``key_sin`` (S, 1, hd), S the sum
    of ``key_lengths``; the sines are signed (see :class:`RotaryTables`), the singleton axis
    broadcasts over heads of a (B, L, H, hd) tensor. A head builds this once per forward and
    hands it to every block, whose key sets all have the same lengths.
    """

    key_lengths: tuple
    query_cos: torch.Tensor
    query_sin: torch.Tensor
    key_cos: torch.Tensor
    key_sin: torch.Tensor


class RotaryTables(nn.Module):
    """Rotary tables shared by every block of a head trunk, built once (not per block and call).

    Non-persistent buffers (absent from state dicts; follow ``.to()``): ``cos`` (L_max, hd) and
    a signed sine whose even channels are negated, so that ``u * cos + swap(u) * signed_sin``
    equals ``u * cos + rotate(u) * sin`` bit for bit (the sign moves from ``-odd * sin`` to
    ``odd * (-sin)``, an exact operation). A length L uses the first L rows, which equal a table
    built for L. Computed in float32 and cast with the module, like :func:`rope_cos_sin`.
    Under ``torch.compile`` the tables are graph constants, not recomputed per element.
    """

    def __init__(self, head_dim: int, base: float, length: int = ROTARY_TABLE_LENGTH) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.base = base
        self._fill(length, device=None, dtype=torch.float32)

    def _fill(self, length: int, device: torch.device | None, dtype: torch.dtype) -> None:
        cos, sin = rope_cos_sin(length, self.head_dim, self.base, device, torch.float32)
        pairs = sin.unflatten(-1, (self.head_dim // 2, 2))  # (L, hd/2, 2)
        signed_sin = torch.stack((-pairs[..., 0], pairs[..., 1]), dim=-1).flatten(-2)  # (L, hd)
        self.register_buffer('cos', cos.to(dtype), persistent=False)  # (L, hd)
        self.register_buffer('signed_sin', signed_sin.to(dtype), persistent=False)  # (L, hd)

    def reset(self) -> None:
        """Recompute the tables in place (after ``to_empty`` of a meta-built module)."""
        self._fill(self.cos.shape[0], self.cos.device, self.cos.dtype)

    def tables(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, signed_sin)`` for positions 0..length-1, each (length, hd)."""
        if length > self.cos.shape[0]:  # longer than ever tabulated: grow once
            self._fill(2 * length, self.cos.device, self.cos.dtype)
        return self.cos[:length], self.signed_sin[:length]

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """Rotate ``u`` (B, H, L, hd) at positions 0..L-1."""
        return rotate_tokens(u, *self.tables(u.shape[-2]))  # tables (L, hd)

    def for_key_sets(self, query_length: int, key_lengths: tuple) -> KeySetRotary:
        """The tables of one block call (see :class:`KeySetRotary`)."""
        cos, signed_sin = self.tables(max(query_length, *key_lengths))  # (L, hd)
        key_cos = torch.cat([cos[:length] for length in key_lengths])  # (S, hd)
        key_sin = torch.cat([signed_sin[:length] for length in key_lengths])  # (S, hd)
        return KeySetRotary(tuple(key_lengths), cos[:query_length, None],
                            signed_sin[:query_length, None], key_cos[:, None], key_sin[:, None])


def rotate_tokens(u: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``u`` with tables that broadcast to it.

    ``u`` (B, L, H, hd) with tables (L, 1, hd), or (B, H, L, hd) with tables (L, hd).
    """
    return u * cos + swap_interleaved_pairs(u) * signed_sin


class _BridgeBlock(nn.Module):
    """Shared part of both block variants: query, gate, output projection and ffn.

    The key sets are concatenated along the tokens and attended to in ONE
    ``scaled_dot_product_attention`` call. The task gate multiplies the task keys rather than
    their logits: ``(q . k) * g == q . (g * k)``, and the rotary embedding is linear, so the
    result equals the per-set softmax written out (the tests' reference,
    ``test/head_reference.py``) up to rounding (about 1e-7 in float32), with a fraction of the
    operations.
    """

    def __init__(self, config: ActionHeadConfig) -> None:
        super().__init__()
        width = config.hidden_dim
        self.num_heads = config.num_heads
        self.head_dim = width // config.num_heads
        self.ffn = nn.Sequential(
            nn.LayerNorm(width, eps=config.layer_norm_eps),
            nn.Linear(width, width),
            nn.ReLU(),
        )
        self.q_proj = nn.Linear(width, width)
        self.o_proj = nn.Linear(width, width)
        self.gating_factor = nn.Parameter(torch.zeros(1))

    def check_other_arm(self, other_arm: torch.Tensor | None) -> None:
        """ValueError unless ``other_arm`` is given exactly when the block is cross-arm."""
        if self.cross_arm and other_arm is None:
            raise ValueError(f'{type(self).__name__}(cross_arm=True) needs other_arm, got None')
        if not self.cross_arm and other_arm is not None:
            raise ValueError(f'{type(self).__name__}(cross_arm=False) got other_arm; build it '
                             'cross_arm')

    def _queries_keys_values(
        self,
        x: torch.Tensor,
        task: torch.Tensor,
        adapter: torch.Tensor,
        other_arm: torch.Tensor | None,
        rotary: RotaryTables | KeySetRotary | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, T, H, hd), keys and values (B, S, H, hd) of all key sets."""
        raise NotImplementedError

    def forward(
        self,
        x: torch.Tensor,
        task: torch.Tensor,
        adapter: torch.Tensor,
        other_arm: torch.Tensor | None = None,
        rotary: RotaryTables | KeySetRotary | None = None,
    ) -> torch.Tensor:
        """Update the action stream.

        Args:
            x: action stream (B, T, D).
            task: task (vision) states of this block's layer (B, K_t, D); K_t may be 0.
            adapter: adapter states of this layer with the proprio token appended (B, K_a, D);
                K_a may be 0.
            other_arm: the other arm's current stream (B, T, D) for dual-arm blocks, else None.
            rotary: Pro blocks: the head's tables for this call (:class:`KeySetRotary`), the
                head's :class:`RotaryTables`, or None to build them here.

        Returns:
            (B, T, D) new stream.
        """
        batch, steps, width = x.shape
        q, keys, values = self._queries_keys_values(x, task, adapter, other_arm, rotary)
        attended = nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2))  # (B, H, T, hd)
        attended = attended.transpose(1, 2).reshape(batch, steps, width)  # (B, T, D)
        return self.ffn(self.o_proj(attended) + x)  # (B, T, D)

    def _by_head(self, t: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, H, hd), a view."""
        return t.unflatten(-1, (self.num_heads, self.head_dim))


class ProBridgeBlock(_BridgeBlock):
    """Upstream ``MLPResNetBlock_Pro``: separate K/V per key set, rotary embedding on q and keys.

    With ``cross_arm=True`` the block owns ``k_cross`` / ``v_cross`` and attends to the other arm's
    stream as a fourth key set (ungated, rotary positions 0..T-1 like the self keys, so step t of
    one arm lines up with step t of the other).
    """

    def __init__(self, config: ActionHeadConfig, cross_arm: bool = False) -> None:
        super().__init__(config)
        width = config.hidden_dim
        self.rope_base = config.rope_base
        self.k_self = nn.Linear(width, width)
        self.v_self = nn.Linear(width, width)
        self.k_adapter = nn.Linear(width, width)
        self.v_adapter = nn.Linear(width, width)
        self.k_task = nn.Linear(width, width)
        self.v_task = nn.Linear(width, width)
        self.cross_arm = cross_arm
        if cross_arm:
            self.k_cross = nn.Linear(width, width)
            self.v_cross = nn.Linear(width, width)

    def key_lengths(self, steps: int, task_length: int, adapter_length: int) -> tuple:
        """Lengths of the key sets in attention order: self, adapter, task (, other arm)."""
        lengths = (steps, adapter_length, task_length)
        return lengths + (steps,) if self.cross_arm else lengths

    def _tables(self, rotary, steps: int, lengths: tuple) -> KeySetRotary:
        if isinstance(rotary, KeySetRotary):
            if rotary.key_lengths != lengths or rotary.query_cos.shape[0] != steps:
                raise ValueError(f'rotary tables are for keys {rotary.key_lengths} and '
                                 f'{rotary.query_cos.shape[0]} queries, this call has keys '
                                 f'{lengths} and {steps} queries')
            return rotary
        if rotary is None:
            rotary = RotaryTables(self.head_dim, self.rope_base, max(steps, *lengths))
            rotary = rotary.to(device=self.q_proj.weight.device, dtype=self.q_proj.weight.dtype)
        return rotary.for_key_sets(steps, lengths)

    def _queries_keys_values(self, x, task, adapter, other_arm, rotary):
        self.check_other_arm(other_arm)
        gate = torch.tanh(self.gating_factor)  # (1,)
        keys = [self.k_self(x), self.k_adapter(adapter), self.k_task(task) * gate]
        values = [self.v_self(x), self.v_adapter(adapter), self.v_task(task)]
        if self.cross_arm:
            keys.append(self.k_cross(other_arm))
            values.append(self.v_cross(other_arm))
        steps = x.shape[1]
        tables = self._tables(rotary, steps,
                             self.key_lengths(steps, task.shape[1], adapter.shape[1]))
        q = rotate_tokens(self._by_head(self.q_proj(x)), tables.query_cos,
                          tables.query_sin)  # (B, T, H, hd)
        keys = rotate_tokens(self._by_head(torch.cat(keys, dim=1)), tables.key_cos,
                             tables.key_sin)  # (B, S, H, hd)
        return q, keys, self._by_head(torch.cat(values, dim=1))


class OriginalBridgeBlock(_BridgeBlock):
    """Upstream ``MLPResNetBlock``: one K/V projection shared by all key sets, no rotary embedding.

    With ``cross_arm=True`` the other arm's stream is a fourth key set through the same shared
    projections (no extra parameters). All key tokens go through ``k_proj`` / ``v_proj`` in one
    call each.
    """

    def __init__(self, config: ActionHeadConfig, cross_arm: bool = False) -> None:
        super().__init__(config)
        width = config.hidden_dim
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.cross_arm = cross_arm

    def _queries_keys_values(self, x, task, adapter, other_arm, rotary):
        self.check_other_arm(other_arm)
        before_task = x.shape[1] + adapter.shape[1]
        after_task = before_task + task.shape[1]
        tokens = torch.cat([x, adapter, task] + ([other_arm] if self.cross_arm else []),
                           dim=1)  # (B, S, D)
        keys = self.k_proj(tokens)  # (B, S, D)
        gate = torch.tanh(self.gating_factor)  # (1,)
        keys = torch.cat([keys[:, :before_task], keys[:, before_task:after_task] * gate,
                          keys[:, after_task:]], dim=1)  # task keys gated
        q = self._by_head(self.q_proj(x))  # (B, T, H, hd)
        return q, self._by_head(keys), self._by_head(self.v_proj(tokens))


def build_bridge_block(config: ActionHeadConfig, cross_arm: bool = False) -> _BridgeBlock:
    """The block variant named by ``config.block_type``."""
    if config.block_type == 'pro':
        return ProBridgeBlock(config, cross_arm=cross_arm)
    return OriginalBridgeBlock(config, cross_arm=cross_arm)


def build_rotary_tables(config: ActionHeadConfig) -> RotaryTables | None:
    """The rotary tables a head shares between its blocks; None for original (no-RoPE) blocks."""
    if config.block_type != 'pro':
        return None
    return RotaryTables(config.hidden_dim // config.num_heads, config.rope_base)
