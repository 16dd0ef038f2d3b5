"""VLA-Adapter in pure PyTorch: upstream-compatible loading, fixed layouts for our own models.

Main entry points: :class:`VLAPolicy` (inference), :class:`VLAAdapterModel` (training),
:class:`VLAProcessor` (observations -> batches) and the config dataclasses.
"""

from vla_adapter_core.config import (
    LLMConfig,
    NormalizationConfig,
    PolicyConfig,
    ProcessorConfig,
    ProjectorConfig,
    VisionConfig,
)
from vla_adapter_core.heads import ActionBins, ActionHeadConfig, build_action_head
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.normalization import Normalizer, load_statistics, save_statistics
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.processor import VLAProcessor
from vla_adapter_core.prompt import PromptBuilder, load_tokenizer

__all__ = [
    'ActionBins',
    'ActionHeadConfig',
    'LLMConfig',
    'NormalizationConfig',
    'Normalizer',
    'PolicyConfig',
    'ProcessorConfig',
    'ProjectorConfig',
    'PromptBuilder',
    'VLAAdapterModel',
    'VLAPolicy',
    'VLAProcessor',
    'VisionConfig',
    'build_action_head',
    'load_statistics',
    'load_tokenizer',
    'save_statistics',
]
