"""VLAPolicy: observation dicts in, un-normalised action chunks (numpy) out.

    policy = VLAPolicy.from_pretrained(path, device='cpu', dtype='auto')
    actions = policy.predict_action_chunk(observation)        # (chunk, action_dim)
    batch = policy.predict_action_chunk_batch([obs1, obs2])   # (B, chunk, action_dim)
    policy.save_pretrained(out_dir)

``from_pretrained`` reads our own format and upstream VLA-Adapter run directories (those load in
the 'upstream_compat' layout automatically).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from vla_adapter_core.checkpoint import (
    is_own_checkpoint,
    load_own_checkpoint,
    pickle_only_error,
    save_checkpoint,
)
from vla_adapter_core.config import PolicyConfig
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.normalization import Normalizer
from vla_adapter_core.processor import VLAProcessor
from vla_adapter_core.prompt import load_tokenizer
from vla_adapter_core.upstream import is_upstream_checkpoint, load_upstream_checkpoint

DTYPES = {'float32': torch.float32, 'fp32': torch.float32, 'bfloat16': torch.bfloat16,
          'bf16': torch.bfloat16, 'float16': torch.float16, 'fp16': torch.float16}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto' -> bfloat16 on CUDA devices that support it, float32 otherwise."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == 'auto':
        if device.type == 'cuda' and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected 'auto' or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


@dataclasses.dataclass
class PolicyPrediction:
    """Actions of a batch: un-normalised (B, chunk, A) float64 and normalised float32."""

    actions: np.ndarray
    normalized_actions: np.ndarray


class VLAPolicy:
    """A VLA-Adapter model with its processor and normaliser, ready for inference."""

    def __init__(self, model: VLAAdapterModel, tokenizer, statistics: dict,
                 device: str | torch.device = 'cpu', dtype: str | torch.dtype = 'auto') -> None:
        self.config: PolicyConfig = model.config
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.statistics = statistics
        self.processor = VLAProcessor.from_config(self.config, tokenizer, statistics)
        self.normalizer: Normalizer = self.processor.normalizer

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = 'cpu',
                        dtype: str | torch.dtype = 'auto', unnorm_key: str | None = None,
                        **upstream_options) -> VLAPolicy:
        """Load our checkpoint format or an upstream run directory.

        ``unnorm_key`` selects another dataset of ``dataset_statistics.json``.
        ``upstream_options`` (upstream directories only) go to
        :func:`vla_adapter_core.upstream.load_upstream_checkpoint` (``overrides``,
        ``camera_names``, ``prompt_style``, ``center_crop_fraction``).
        """
        path = str(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f'checkpoint directory not found: {path!r}')
        if is_own_checkpoint(path):
            if upstream_options:
                raise ValueError(f'options {sorted(upstream_options)} apply only to upstream '
                                 'checkpoints')
            config, state, statistics = load_own_checkpoint(path)
        elif is_upstream_checkpoint(path):
            upstream = load_upstream_checkpoint(path, unnorm_key=unnorm_key, **upstream_options)
            config, state, statistics = upstream.config, upstream.state_dict, upstream.statistics
        else:
            raise pickle_only_error(path) or ValueError(
                f'{path!r} is neither a vla_adapter_core checkpoint (config.json with "format": '
                '"vla_adapter_core") nor an upstream VLA-Adapter run directory')
        if unnorm_key is not None and unnorm_key != config.normalization.unnorm_key:
            config = dataclasses.replace(config, normalization=dataclasses.replace(
                config.normalization, unnorm_key=unnorm_key))
        if config.normalization.unnorm_key not in statistics:
            raise ValueError(f'unnorm_key={config.normalization.unnorm_key!r} is not in the '
                             f'dataset statistics (available: {sorted(statistics)})')
        model = VLAAdapterModel.from_state_dict(config, state, path)
        return cls(model, load_tokenizer(path), statistics, device=device, dtype=dtype)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write our own format (safetensors + config.json + statistics + tokenizer)."""
        save_checkpoint(directory, self.model, self.config, self.statistics, self.tokenizer)

    def prepare_batch(self, observations: list) -> dict:
        """Processor output moved to the policy's device and dtype."""
        batch = self.processor(observations)
        moved = {}
        for key, value in batch.items():
            if value.is_floating_point():
                moved[key] = value.to(device=self.device, dtype=self.dtype)
            else:
                moved[key] = value.to(device=self.device)
        return moved

    def outputs_to_actions(self, predicted: torch.Tensor) -> PolicyPrediction:
        """Head predictions (B, chunk, A) -> un-normalised and normalised numpy actions."""
        values = predicted.detach().float().cpu().numpy()
        if self.model.action_head.output_space == 'raw':
            actions = values.astype(np.float64)
            normalized = self.normalizer.normalize_actions(actions).astype(np.float32)
        else:
            normalized = values
            actions = self.normalizer.unnormalize_actions(values)
        return PolicyPrediction(actions=actions, normalized_actions=normalized)

    @torch.inference_mode()
    def predict(self, observations: list) -> PolicyPrediction:
        """Both action forms for a list of observations."""
        batch = self.prepare_batch(observations)
        return self.outputs_to_actions(self.model.predict_actions(batch))

    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        """One observation -> un-normalised actions (chunk, action_dim) float64."""
        if not isinstance(observation, dict):
            raise ValueError(f'observation must be a dict, got {type(observation).__name__}')
        return self.predict([observation]).actions[0]

    def predict_action_chunk_batch(self, observations: list) -> np.ndarray:
        """Observations -> un-normalised actions (B, chunk, action_dim) float64."""
        return self.predict(list(observations)).actions
