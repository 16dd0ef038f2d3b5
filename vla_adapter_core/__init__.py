"""VLA-Adapter in pure PyTorch: upstream-compatible loading, fixed layouts for our own models.

Main entry points: :class:`VLAPolicy` (inference), :class:`VLAAdapterModel` (training),
:class:`VLAProcessor` (observations -> batches) and the config dataclasses.

The names below are imported on first use, so that the torch-free modules of this package
(``robot_description``) load without torch: the chunk executor, the simulator and the recorder
read robot descriptions and never pay for torch or transformers.
"""

import importlib

_EXPORTS = {
    'ActionBins': 'vla_adapter_core.heads',
    'ActionHeadConfig': 'vla_adapter_core.heads',
    'LLMConfig': 'vla_adapter_core.config',
    'NormalizationConfig': 'vla_adapter_core.config',
    'Normalizer': 'vla_adapter_core.normalization',
    'PolicyConfig': 'vla_adapter_core.config',
    'ProcessorConfig': 'vla_adapter_core.config',
    'ProjectorConfig': 'vla_adapter_core.config',
    'PromptBuilder': 'vla_adapter_core.prompt',
    'VLAAdapterModel': 'vla_adapter_core.modeling',
    'VLAPolicy': 'vla_adapter_core.policy',
    'VLAProcessor': 'vla_adapter_core.processor',
    'VisionConfig': 'vla_adapter_core.config',
    'build_action_head': 'vla_adapter_core.heads',
    'load_statistics': 'vla_adapter_core.normalization',
    'load_tokenizer': 'vla_adapter_core.prompt',
    'save_statistics': 'vla_adapter_core.normalization',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import an exported name's module on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
