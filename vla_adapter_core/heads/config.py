"""Configuration of the action heads (one dataclass for all three head kinds).

The head reads the LLM hidden states of every layer through bridge attention and turns them into an
action chunk. Which head is built, and with which block variant, is decided here and saved with the
checkpoint (``to_dict`` / ``from_dict``), so a reload can never build a different architecture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from vla_adapter_core.heads.registry import head_class

BLOCK_TYPES = ('pro', 'original')


@dataclass
class ActionHeadConfig:
    """Shape and behaviour of an action head.

    Architecture
        kind: ``'l1'`` (continuous, L1 regression on normalised actions), ``'discrete'``
            (per-dimension classification over ``n_action_bins`` adaptive bins in raw action
            space) or ``'dual_arm'`` (two interacting streams, left and right arm, L1 loss).
        block_type: ``'pro'`` (upstream ``MLPResNetBlock_Pro``: separate K/V projections per key
            set and upstream's rotary position embedding) or ``'original'`` (upstream
            ``MLPResNetBlock``: one shared K/V projection, no rotary embedding; note that with the
            all-zero seed every chunk step then gets the same action at inference, as upstream).
        hidden_dim: width D of the head; equals the LLM hidden size.
        num_blocks: number of bridge-attention blocks; block i reads LLM hidden state i + 1 (24
            for upstream's Qwen2.5-0.5B; our tiny models use their number of LLM layers).
        num_heads: attention heads per block (upstream: 8); ``hidden_dim`` must be divisible by
            it and the head width must be even for the rotary embedding.
        rope_base: base of the rotary embedding frequencies (upstream: 10000).
        layer_norm_eps: epsilon of every LayerNorm in the head (upstream: PyTorch's 1e-5).

    Action layout
        chunk_size: actions per chunk (LIBERO 8, ALOHA 25).
        action_dim: size of one action (LIBERO 7, ALOHA 14 = left 7 + right 7).
        n_action_bins: bins per action dimension for ``kind='discrete'`` (default 256).
        queries_per_arm: action-query tokens per arm for ``kind='dual_arm'``; the adapter states
            hold ``2 * queries_per_arm`` tokens, left arm first.

    Conditioning and training
        use_proprio: whether a projected proprio token (B, 1, D) joins the adapter key/value set.
        train_input_noise_std: standard deviation of Gaussian noise added to the all-zero seed
            of the trunk in training mode only. Default 0.0: train exactly as we infer. Upstream
            adds a fresh, never-learned N(0, 0.02) tensor during training but zeros at inference;
            because the seed goes straight into a LayerNorm, even tiny noise becomes unit-scale
            after normalisation, so training then sees inputs that inference never does.
            Non-zero values are offered for experiments only.
    """

    kind: str = 'l1'
    block_type: str = 'pro'
    hidden_dim: int = 896
    num_blocks: int = 24
    num_heads: int = 8
    rope_base: float = 10000.0
    layer_norm_eps: float = 1e-5
    chunk_size: int = 8
    action_dim: int = 7
    n_action_bins: int = 256
    queries_per_arm: int = 64
    use_proprio: bool = True
    train_input_noise_std: float = 0.0

    def __post_init__(self) -> None:
        try:
            head_class(self.kind)
        except ValueError as error:
            raise ValueError(f'ActionHeadConfig.kind: {error}') from None
        if self.block_type not in BLOCK_TYPES:
            raise ValueError(
                f'ActionHeadConfig.block_type must be one of {BLOCK_TYPES}, '
                f'got {self.block_type!r}'
            )
        for name in ('hidden_dim', 'num_blocks', 'num_heads', 'chunk_size', 'action_dim'):
            _require_positive_int(name, getattr(self, name))
        if self.hidden_dim % self.num_heads != 0:
            raise ValueError(
                f'ActionHeadConfig.hidden_dim ({self.hidden_dim}) must be divisible by '
                f'num_heads ({self.num_heads})'
            )
        if self.block_type == 'pro' and (self.hidden_dim // self.num_heads) % 2 != 0:
            raise ValueError(
                f'ActionHeadConfig.hidden_dim / num_heads must be even for the rotary embedding '
                f'of Pro blocks, got hidden_dim={self.hidden_dim}, num_heads={self.num_heads}'
            )
        if not self.rope_base > 1.0:
            raise ValueError(f'ActionHeadConfig.rope_base must be > 1, got {self.rope_base!r}')
        if not self.layer_norm_eps > 0.0:
            raise ValueError(
                f'ActionHeadConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}'
            )
        if not isinstance(self.use_proprio, bool):
            raise ValueError(
                f'ActionHeadConfig.use_proprio must be a bool, got {self.use_proprio!r}'
            )
        if not self.train_input_noise_std >= 0.0:
            raise ValueError(
                'ActionHeadConfig.train_input_noise_std must be >= 0, '
                f'got {self.train_input_noise_std!r}'
            )
        self._validate_kind_specific()

    def _validate_kind_specific(self) -> None:
        _require_positive_int('n_action_bins', self.n_action_bins)
        _require_positive_int('queries_per_arm', self.queries_per_arm)
        if self.kind == 'discrete' and self.n_action_bins < 2:
            raise ValueError(
                f'ActionHeadConfig.n_action_bins must be >= 2, got {self.n_action_bins}'
            )
        if self.kind == 'dual_arm' and self.action_dim % 2 != 0:
            raise ValueError(
                'ActionHeadConfig.action_dim must be even for kind="dual_arm" '
                f'(left half, right half), got {self.action_dim}'
            )
        if self.kind == 'dual_arm' and self.num_blocks < 2:
            raise ValueError(
                'ActionHeadConfig.num_blocks must be >= 2 for kind="dual_arm" (block 0 sees '
                f'only the seed of the other arm), got {self.num_blocks}'
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_dim // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of all fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionHeadConfig:
        """Build from ``to_dict`` output; unknown keys raise ValueError naming them."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'ActionHeadConfig.from_dict: unknown keys {unknown}')
        return cls(**data)


def _require_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f'ActionHeadConfig.{name} must be a positive int, got {value!r}')
