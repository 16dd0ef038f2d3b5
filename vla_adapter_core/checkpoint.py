"""Our own checkpoint format: safetensors weights + JSON configuration, never pickle.

A checkpoint directory holds::

    model.safetensors                    every parameter and persistent buffer of VLAAdapterModel
    config.json                          PolicyConfig.to_dict() ("format": "vla_adapter_core")
    dataset_statistics.json              {dataset: {action: {...}, proprio: {...}}}
    dataset_statistics_<n>_bins.json     discrete head only: its raw-space bins
    vocab.json, merges.txt, ...          the tokenizer
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import pickle

import safetensors
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import timm
import torch
import transformers

from vla_adapter_core.config import CONFIG_FORMAT, PolicyConfig
from vla_adapter_core.heads.bins import ActionBins, bins_file_name, check_limits
from vla_adapter_core.normalization import (
    STATISTICS_FILE,
    check_statistics,
    load_statistics,
    save_statistics,
)
from vla_adapter_core.provenance import git_revision

WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
PICKLE_PATTERNS = ('*.bin', '*.pt', '*.pth', '*.pkl', '*.ckpt')
BINS_PREFIX = 'action_head.bins.'  # the discrete head's limits in the weights


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON object, with a clear error for a missing or malformed file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'file not found: {str(path)!r}')
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f'{str(path)!r} is not valid JSON: {error}') from error
    if not isinstance(data, dict):
        raise ValueError(f'{str(path)!r} must hold a JSON object')
    return data


def provenance() -> dict:
    """Code revision and library versions, recorded in every checkpoint's config.json."""
    return {'git_revision': git_revision(), 'torch': torch.__version__,
            'transformers': transformers.__version__, 'timm': timm.__version__,
            'safetensors': safetensors.__version__}


def is_own_checkpoint(directory: str | os.PathLike) -> bool:
    """True when ``directory/config.json`` is written by this package."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        return False
    return read_json(path).get('format') == CONFIG_FORMAT


def torch_load_weights_only(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)`` on the CPU; a ValueError when that is refused.

    Files written by torch.save may hold pickled objects whose loading runs code; weights_only
    refuses them, and so do we (with an explanation instead of torch's UnpicklingError).
    """
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(f'{str(path)!r} cannot be loaded with weights_only=True (it may need '
                         f'arbitrary code execution, which is refused): {error}') from error


def pickle_only_error(directory: str | os.PathLike) -> ValueError | None:
    """An explanatory error when the directory holds only pickled weights, else None."""
    pickled = sorted(os.path.basename(path) for pattern in PICKLE_PATTERNS
                     for path in glob.glob(os.path.join(directory, pattern)))
    if not pickled or os.path.isfile(os.path.join(directory, WEIGHTS_FILE)):
        return None
    return ValueError(f'checkpoint {str(directory)!r} has only pickled weights {pickled} and no '
                      f'{WEIGHTS_FILE}; loading pickles can execute code, so it is refused. '
                      'Convert the weights to safetensors in a trusted environment.')


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, config: PolicyConfig,
                    statistics: dict, tokenizer) -> None:
    """Write ``model`` (a VLAAdapterModel) and everything needed to rebuild it to ``directory``.

    The statistics and a discrete head's bins are checked first (finite, ordered): invalid ones
    raise ValueError and nothing is written.
    """
    check_statistics(statistics, os.path.join(directory, STATISTICS_FILE))
    head = config.action_head
    if head.kind == 'discrete':
        bins = model.action_head.bins
        check_limits(bins.low.cpu().numpy(), bins.high.cpu().numpy(),
                     os.path.join(directory, WEIGHTS_FILE), BINS_PREFIX)
    os.makedirs(directory, exist_ok=True)
    # Weights travel inside the checkpoint: never point back at a pretrained LLM directory.
    saved_config = dataclasses.replace(config, llm=dataclasses.replace(config.llm,
                                                                       pretrained_dir=None))
    state = {name: tensor.detach().contiguous().cpu()
             for name, tensor in model.state_dict().items()}
    save_file(state, os.path.join(directory, WEIGHTS_FILE), metadata={'format': CONFIG_FORMAT})
    with open(os.path.join(directory, CONFIG_FILE), 'w', encoding='utf-8') as handle:
        json.dump(dict(saved_config.to_dict(), provenance=provenance()), handle, indent=2)
    save_statistics(statistics, os.path.join(directory, STATISTICS_FILE))
    if head.kind == 'discrete':
        model.action_head.bins.to_json(os.path.join(directory, bins_file_name(head.n_action_bins)))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))


def load_own_checkpoint(directory: str | os.PathLike) -> tuple[PolicyConfig, dict, dict]:
    """Read ``(config, state_dict, statistics)`` of one of our checkpoints (weights on CPU).

    The statistics and a discrete head's bins are checked (finite, ordered; ValueError naming
    the file, key and value); the weights themselves are not.
    """
    config = PolicyConfig.from_dict(read_json(os.path.join(directory, CONFIG_FILE)))
    weights = os.path.join(directory, WEIGHTS_FILE)
    if not os.path.isfile(weights):
        raise pickle_only_error(directory) or FileNotFoundError(
            f'checkpoint {str(directory)!r} lacks {WEIGHTS_FILE}')
    try:
        state = load_file(weights, device='cpu')
    except (SafetensorError, OSError) as error:
        raise ValueError(f'{weights!r} is not a readable safetensors file: {error}') from error
    statistics = load_statistics(os.path.join(directory, STATISTICS_FILE))
    if config.action_head.kind == 'discrete':
        check_bins_file(directory, config.action_head.n_action_bins, state)
    return config, state, statistics


def check_bins_file(directory: str | os.PathLike, n_bins: int, state: dict) -> None:
    """The bins in the weights must be valid, and the bins file, when present, hold the same."""
    weights = os.path.join(directory, WEIGHTS_FILE)
    limits = [state.get(BINS_PREFIX + name) for name in ('low', 'high')]
    if any(limit is None for limit in limits):
        raise ValueError(f'{weights}: lacks {BINS_PREFIX}low / high, needed by the discrete '
                         'head')
    check_limits(*(limit.float().numpy() for limit in limits), weights, BINS_PREFIX)
    path = os.path.join(directory, bins_file_name(n_bins))
    if not os.path.isfile(path):
        return  # the weights carry the bins (action_head.bins.low / .high)
    bins = ActionBins.from_json(path)  # errors name the file, the key and the value
    for name in ('low', 'high'):
        stored = state.get(f'action_head.bins.{name}')
        if stored is None or stored.shape != getattr(bins, name).shape or not torch.allclose(
                stored.float(), getattr(bins, name), rtol=1e-6, atol=0.0):
            raise ValueError(f'{path!r}: bins.{name} differs from action_head.bins.{name} in '
                             f'{WEIGHTS_FILE}; the checkpoint is inconsistent')

