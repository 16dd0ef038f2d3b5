"""Tiny random policies for tests and for other components' tests (ROS node, training).

Everything is real (timm towers, transformers Qwen2, the real heads), only small: two 2-block
ViT towers, a 2-layer 64-d Qwen2 with the full 151936-token vocabulary, a head with one block per
LLM layer. Builds in well under a second on a CPU.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import torch

from vla_adapter_core.config import (
    DINOV2_TIMM_ID,
    SIGLIP_TIMM_ID,
    LLMConfig,
    NormalizationConfig,
    PolicyConfig,
    ProcessorConfig,
    ProjectorConfig,
    VisionConfig,
)
from vla_adapter_core.heads import ActionBins, ActionHeadConfig
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.prompt import load_tokenizer

TINY_STATISTICS_KEY = 'tiny'
# Shipped with the package (setup.py package_data): the tiny policies work where it is installed.
_REPO_TOKENIZER = pathlib.Path(__file__).resolve().parent / 'assets' / 'qwen2_5_tokenizer'


def default_tokenizer_dir() -> str:
    """The Qwen2.5 tokenizer shipped with the package (assets/qwen2_5_tokenizer)."""
    if not _REPO_TOKENIZER.is_dir():
        raise ValueError(f'no tokenizer at {str(_REPO_TOKENIZER)!r}: pass tokenizer_dir')
    return str(_REPO_TOKENIZER)


def tiny_statistics(action_dim: int, proprio_dim: int, key: str = TINY_STATISTICS_KEY,
                    seed: int = 0) -> dict:
    """Made-up but well-formed dataset statistics (bounds about +-1 .. +-3, all dims masked in)."""
    rng = np.random.default_rng(seed)

    def feature(dim: int) -> dict:
        low = -rng.uniform(1.0, 3.0, dim)
        high = rng.uniform(1.0, 3.0, dim)
        return {'mean': ((low + high) / 2).tolist(), 'std': ((high - low) / 4).tolist(),
                'min': low.tolist(), 'max': high.tolist(), 'q01': (0.9 * low).tolist(),
                'q99': (0.9 * high).tolist(), 'mask': [True] * dim}

    return {key: {'action': feature(action_dim), 'proprio': feature(proprio_dim),
                  'num_transitions': 100, 'num_trajectories': 2}}


def build_tiny_config(action_dim: int = 14, proprio_dim: int = 14, chunk_size: int = 8,
                      camera_names=('cam_high',), head_kind: str = 'l1', *,
                      block_type: str = 'pro', llm_layers: int = 2, hidden_size: int = 64,
                      image_size: int = 224, use_proprio: bool = True,
                      normalization_mode: str = 'bounds', prompt_style: str = 'openvla',
                      center_crop_fraction: float = 1.0, n_action_bins: int = 256,
                      unnorm_key: str = TINY_STATISTICS_KEY) -> PolicyConfig:
    """A PolicyConfig with tiny sizes (aligned layout, one head block per LLM layer)."""
    towers = [{'embed_dim': 32, 'depth': 2, 'num_heads': 2},
              {'embed_dim': 24, 'depth': 2, 'num_heads': 2}]
    vision = VisionConfig(timm_model_ids=[DINOV2_TIMM_ID, SIGLIP_TIMM_ID], tower_kwargs=towers,
                          embed_dims=[32, 24], image_size=image_size)
    llm = LLMConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                    num_hidden_layers=llm_layers, num_attention_heads=4, num_key_value_heads=2)
    head = ActionHeadConfig(kind=head_kind, block_type=block_type, hidden_dim=hidden_size,
                            num_blocks=llm_layers, num_heads=8, chunk_size=chunk_size,
                            action_dim=action_dim, n_action_bins=n_action_bins,
                            use_proprio=use_proprio)
    return PolicyConfig(
        vision=vision, llm=llm,
        projector=ProjectorConfig(vision_dim=vision.feature_dim, llm_dim=hidden_size),
        action_head=head,
        normalization=NormalizationConfig(mode=normalization_mode, unnorm_key=unnorm_key),
        processor=ProcessorConfig(prompt_style=prompt_style,
                                  center_crop_fraction=center_crop_fraction),
        camera_names=list(camera_names), proprio_dim=proprio_dim)


def randomize_for_tests(model: VLAAdapterModel, seed: int = 0) -> None:
    """Give zero-initialised parameters (action queries, gates, LayerScale) O(1)-ish values.

    Upstream's initialisation zeroes the action queries and task gates and uses 1e-5 LayerScale,
    which would make a random tiny model blind to its images; tests want every path to matter.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith('gating_factor'):
                parameter.copy_(torch.rand(parameter.shape, generator=generator) + 0.5)
            elif name.endswith(('ls1.gamma', 'ls2.gamma')):
                parameter.fill_(0.1)
            elif name == 'action_queries.weight':
                parameter.copy_(torch.randn(parameter.shape, generator=generator))


def build_tiny_policy(action_dim: int = 14, proprio_dim: int = 14, chunk_size: int = 8,
                      camera_names=('cam_high', 'cam_left_wrist', 'cam_right_wrist'),
                      head_kind: str = 'l1', tokenizer_dir: str | os.PathLike | None = None,
                      *, seed: int = 0, statistics: dict | None = None,
                      device: str = 'cpu', dtype: str = 'float32', compile: str = 'none',
                      **config_options) -> VLAPolicy:
    """A tiny random :class:`VLAPolicy` with real components, for tests.

    Args:
        action_dim, proprio_dim, chunk_size: robot sizes (ALOHA: 14, 14, 25).
        camera_names: cameras in model order (1 to 4).
        head_kind: 'l1', 'discrete' or 'dual_arm' (dual_arm needs an even action_dim).
        tokenizer_dir: a Qwen2.5 tokenizer directory; default: the repository's test fixture.
        seed: seeds the weights and the made-up statistics (same seed -> identical policy).
        statistics: dataset statistics ({key: {action: ..., proprio: ...}}); default
            :func:`tiny_statistics` under the key 'tiny'.
        device, dtype: where the policy runs ('auto' picks bf16 on CUDA).
        compile: 'none', 'default' or 'max' (see :class:`VLAPolicy`).
        config_options: forwarded to :func:`build_tiny_config` (block_type, llm_layers,
            hidden_size, image_size, use_proprio, normalization_mode, prompt_style,
            center_crop_fraction, n_action_bins, unnorm_key).

    The discrete head gets bins computed from random actions inside the statistics' bounds.
    """
    config = build_tiny_config(action_dim, proprio_dim, chunk_size, camera_names, head_kind,
                               **config_options)
    if statistics is None:
        statistics = tiny_statistics(action_dim, proprio_dim, config.normalization.unnorm_key,
                                     seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bins = None
        if head_kind == 'discrete':
            action = statistics[config.normalization.unnorm_key]['action']
            rng = np.random.default_rng(seed)
            samples = rng.uniform(action['min'], action['max'], size=(64, action_dim))
            bins = ActionBins.from_data(samples, n_bins=config.action_head.n_action_bins)
        model = VLAAdapterModel(config, bins=bins)
        randomize_for_tests(model, seed)
    tokenizer = load_tokenizer(tokenizer_dir or default_tokenizer_dir())
    return VLAPolicy(model, tokenizer, statistics, device=device, dtype=dtype, compile=compile)


def random_observation(policy: VLAPolicy, seed: int = 0, image_shape=(96, 128, 3),
                       instruction: str = 'pick up the cube') -> dict:
    """A random observation dict matching ``policy.config`` (uint8 images of ``image_shape``)."""
    rng = np.random.default_rng(seed)
    images = {name: rng.integers(0, 256, size=image_shape, dtype=np.uint8)
              for name in policy.config.camera_names}
    return {'images': images, 'proprio': rng.uniform(-1.0, 1.0, policy.config.proprio_dim),
            'instruction': instruction}
