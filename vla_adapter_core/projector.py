"""Projectors into the LLM width: the fused-gelu-mlp vision projector and the proprio projector."""

from __future__ import annotations

import torch
from torch import nn

from vla_adapter_core.config import ProjectorConfig


class FusedGeluMLPProjector(nn.Module):
    """Vision features -> LLM embeddings: fc1 (Dv -> 4 Dv), GELU, fc2 (-> D), GELU, fc3."""

    def __init__(self, config: ProjectorConfig) -> None:
        super().__init__()
        hidden = 4 * config.vision_dim
        self.fc1 = nn.Linear(config.vision_dim, hidden)
        self.fc2 = nn.Linear(hidden, config.llm_dim)
        self.fc3 = nn.Linear(config.llm_dim, config.llm_dim)
        self.act = nn.GELU()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` (B, P, Dv) -> (B, P, D)."""
        hidden = self.act(self.fc1(features))  # (B, P, 4 Dv)
        hidden = self.act(self.fc2(hidden))  # (B, P, D)
        return self.fc3(hidden)  # (B, P, D)


class ProprioProjector(nn.Module):
    """Normalised robot state -> one adapter token: fc1 (P -> D), GELU, fc2 (D -> D)."""

    def __init__(self, proprio_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(proprio_dim, llm_dim)
        self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act = nn.GELU()

    def forward(self, proprio: torch.Tensor) -> torch.Tensor:
        """``proprio`` (B, P) -> (B, 1, D)."""
        return self.fc2(self.act(self.fc1(proprio))).unsqueeze(1)  # (B, 1, D)
