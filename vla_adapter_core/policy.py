"""VLAPolicy: observation dicts in, un-normalised action chunks (numpy) out.

    policy = VLAPolicy.from_pretrained(path, device='cpu', dtype='auto')
    actions = policy.predict_action_chunk(observation)        # (chunk, action_dim)
    batch = policy.predict_action_chunk_batch([obs1, obs2])   # (B, chunk, action_dim)
    policy.save_pretrained(out_dir)

``from_pretrained`` reads our own format and upstream VLA-Adapter run directories (those load in
the 'upstream_compat' layout automatically), from a local directory or a Hugging Face Hub repo id
such as 'VLA-Adapter/LIBERO-Spatial-Pro' (see :mod:`vla_adapter_core.checkpoint_source`).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from vla_adapter_core.checkpoint import save_checkpoint
from vla_adapter_core.checkpoint_source import KIND_OWN, KIND_UPSTREAM, load_policy_source
from vla_adapter_core.config import PolicyConfig
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.normalization import Normalizer
from vla_adapter_core.processor import VLAProcessor
from vla_adapter_core.prompt import load_tokenizer

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
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike,
                        device: str | torch.device = 'cpu', dtype: str | torch.dtype = 'auto',
                        unnorm_key: str | None = None, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False, **upstream_options) -> VLAPolicy:
        """Load our checkpoint format or an upstream run, from a directory or a Hub repo id.

        ``unnorm_key`` selects another dataset of ``dataset_statistics.json``. ``revision``,
        ``cache_dir``, ``local_files_only``: the Hugging Face Hub download of a repo id.
        ``upstream_options`` (upstream runs only): ``camera_names``, ``overrides``,
        ``prompt_style``, ``center_crop_fraction`` (see
        :func:`vla_adapter_core.upstream.load_upstream_checkpoint`).
        """
        source = load_policy_source(path_or_repo_id, unnorm_key=unnorm_key, revision=revision,
                                    cache_dir=cache_dir, local_files_only=local_files_only,
                                    kinds=(KIND_OWN, KIND_UPSTREAM), **upstream_options)
        model = VLAAdapterModel.from_state_dict(source.config, source.state, source.directory)
        return cls(model, load_tokenizer(source.tokenizer_dir), source.statistics, device=device,
                   dtype=dtype)

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
        actions, normalized = self.normalizer.actions_from_head(
            values, self.model.action_head.output_space)
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
