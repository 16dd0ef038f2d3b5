"""Where a policy starts: one dispatch over every checkpoint kind, local or on the Hub.

    source = load_policy_source('VLA-Adapter/LIBERO-Spatial-Pro')   # or a local directory
    source.kind                  # 'vla_adapter_core', 'upstream' or 'prismatic_vlm'
    source.config, source.state, source.statistics, source.tokenizer_dir

The kinds, tried in this order on the resolved directory:

* our own checkpoints (``config.json`` with "format": "vla_adapter_core"; checkpoint.py);
* upstream VLA-Adapter run directories and their Hub releases (upstream.py; the
  'upstream_compat' layout);
* Prismatic VLM directories, the VLM upstream fine-tunes from (prismatic.py): no action head and
  no dataset statistics, so a starting point for fine-tuning only.

``path_or_repo_id``: a string naming an existing directory is that directory; otherwise a string
shaped like ``owner/name`` is a Hugging Face Hub model repo, resolved by
``huggingface_hub.snapshot_download`` through its cache. huggingface_hub itself reads
HF_HUB_OFFLINE and HF_HUB_CACHE; this module reads no environment variable.
"""

from __future__ import annotations

import dataclasses
import os
import re

from huggingface_hub import constants as hub_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from vla_adapter_core.checkpoint import is_own_checkpoint, load_own_checkpoint, pickle_only_error
from vla_adapter_core.config import PolicyConfig
from vla_adapter_core.prismatic import is_prismatic_vlm, load_prismatic_vlm
from vla_adapter_core.upstream import is_upstream_checkpoint, load_upstream_checkpoint

KIND_OWN = 'vla_adapter_core'
KIND_UPSTREAM = 'upstream'
KIND_PRISMATIC = 'prismatic_vlm'
KINDS = (KIND_OWN, KIND_UPSTREAM, KIND_PRISMATIC)
KIND_LABELS = {KIND_OWN: 'checkpoint', KIND_UPSTREAM: 'upstream run',
               KIND_PRISMATIC: 'Prismatic VLM'}
UPSTREAM_OPTIONS = ('overrides', 'prompt_style', 'center_crop_fraction')
REPO_ID_PATTERN = re.compile(r'^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$')


@dataclasses.dataclass
class PolicySource:
    """A checkpoint read into our names, whatever its kind."""

    config: PolicyConfig
    state: dict  # VLAAdapterModel keys (a Prismatic VLM: the VLM's only)
    statistics: dict  # dataset statistics ({} for a Prismatic VLM)
    tokenizer_dir: str
    kind: str  # one of KINDS
    description: str  # e.g. 'upstream run VLA-Adapter/LIBERO-Spatial-Pro (Hugging Face Hub ...)'
    directory: str  # the local directory read (a Hub repo's cached snapshot)


def is_repo_id(value) -> bool:
    """True for a string shaped like a Hugging Face Hub model repo id (``owner/name``)."""
    if not isinstance(value, str) or not REPO_ID_PATTERN.match(value):
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def resolve_pretrained_path(path_or_repo_id: str | os.PathLike, *, revision: str | None = None,
                            cache_dir: str | os.PathLike | None = None,
                            local_files_only: bool = False) -> str:
    """The local directory of a checkpoint: the directory itself, or a Hub repo's snapshot.

    A repo id is downloaded into (or found in) the Hugging Face Hub cache, ``cache_dir`` or
    huggingface_hub's default; ``revision`` is a branch, tag or commit (default 'main').
    """
    path = os.fspath(path_or_repo_id)
    if os.path.isdir(path):
        return path
    if isinstance(path_or_repo_id, os.PathLike) or not is_repo_id(path):
        if os.path.exists(path):
            raise ValueError(f'checkpoint {path!r} is a file: expected a checkpoint directory or '
                             'a Hugging Face Hub repo id (owner/name)')
        raise FileNotFoundError(f'checkpoint directory not found: {path!r} (nor is it a Hugging '
                                'Face Hub repo id, owner/name)')
    where = f'revision {revision!r} of ' if revision else ''
    cache = os.fspath(cache_dir) if cache_dir is not None else hub_constants.HF_HUB_CACHE
    try:
        return snapshot_download(path, revision=revision, cache_dir=cache_dir,
                                 local_files_only=local_files_only)
    except LocalEntryNotFoundError as error:  # also an incomplete cached snapshot
        raise FileNotFoundError(
            f'{path!r} is not a local directory, and {where}the Hugging Face Hub repo {path!r} '
            f'is not in the cache {cache!r} and cannot be downloaded (HF_HUB_OFFLINE set, '
            f'local_files_only or no network): {error}') from error
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise FileNotFoundError(f'{path!r} is neither a local directory nor {where}a Hugging Face '
                                f'Hub repo that can be read: {error}') from error
    except (HfHubHTTPError, OSError) as error:
        raise FileNotFoundError(f'{where}the Hugging Face Hub repo {path!r} cannot be '
                                f'downloaded: {error}') from error


def _label(path_or_repo_id, directory: str) -> str:
    name = os.fspath(path_or_repo_id)
    return name if name == directory else f'{name} (Hugging Face Hub snapshot {directory})'


def _detect_kind(directory: str, label: str) -> str:
    if is_own_checkpoint(directory):
        return KIND_OWN
    if is_upstream_checkpoint(directory):
        return KIND_UPSTREAM
    if is_prismatic_vlm(directory):
        return KIND_PRISMATIC
    raise pickle_only_error(directory) or ValueError(
        f'{label!r} is neither a vla_adapter_core checkpoint (config.json with "format": '
        '"vla_adapter_core"), an upstream VLA-Adapter run directory (OpenVLA config.json, '
        'action_head--*checkpoint.pt) nor a Prismatic VLM directory (config.json with a '
        '"model" entry, checkpoints/)')


def _check_options(kind: str, label: str, options: dict, allowed: tuple) -> None:
    unknown = sorted(set(options) - set(UPSTREAM_OPTIONS))
    if unknown:
        raise ValueError(f'unknown checkpoint options {unknown} (known: {list(UPSTREAM_OPTIONS)})')
    refused = sorted(set(options) - set(allowed))
    if refused:
        raise ValueError(f'options {refused} apply only to upstream checkpoints; {label!r} is a '
                         f'{KIND_LABELS[kind]}')


def _own_source(directory: str, unnorm_key: str | None) -> tuple[PolicyConfig, dict, dict]:
    config, state, statistics = load_own_checkpoint(directory)
    if unnorm_key is not None and unnorm_key != config.normalization.unnorm_key:
        config = dataclasses.replace(config, normalization=dataclasses.replace(
            config.normalization, unnorm_key=unnorm_key))
    if config.normalization.unnorm_key not in statistics:
        raise ValueError(f'unnorm_key={config.normalization.unnorm_key!r} is not in the '
                         f'dataset statistics (available: {sorted(statistics)})')
    return config, state, statistics


def load_policy_source(path_or_repo_id: str | os.PathLike, *, camera_names=None,
                       tokenizer_dir: str | os.PathLike | None = None,
                       unnorm_key: str | None = None, tower_weights: dict | None = None,
                       revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                       local_files_only: bool = False, kinds: tuple = KINDS,
                       **upstream_options) -> PolicySource:
    """Read any checkpoint kind (see the module docstring) from a directory or a Hub repo id.

    ``camera_names``: the cameras of an upstream run or Prismatic VLM (ours carry their own).
    ``tokenizer_dir``: Prismatic VLMs only (their Qwen2.5 tokenizer and LLM config.json).
    ``unnorm_key``: the statistics entry of ours or an upstream run. ``tower_weights``: Prismatic
    VLMs only, local files of the timm towers (``{'dino': PATH, 'siglip': PATH}``; default:
    timm's pretrained weights through the Hub cache, ``cache_dir``). ``revision``, ``cache_dir``,
    ``local_files_only``: the Hub download. ``kinds``: the kinds the caller accepts.
    ``upstream_options``: ``overrides`` (upstream runs and Prismatic VLMs), ``prompt_style`` and
    ``center_crop_fraction`` (upstream runs), see :func:`load_upstream_checkpoint`.
    """
    directory = resolve_pretrained_path(path_or_repo_id, revision=revision, cache_dir=cache_dir,
                                        local_files_only=local_files_only)
    label = _label(path_or_repo_id, directory)
    kind = _detect_kind(directory, label)
    if kind not in kinds:
        hint = (': it has no action head nor dataset statistics; fine-tune it first '
                '(vla-adapter-train --pretrained)' if kind == KIND_PRISMATIC else '')
        raise ValueError(f'{label!r} is a {KIND_LABELS[kind]}, not one of '
                         f'{[KIND_LABELS[name] for name in kinds]}{hint}')
    description = f'{KIND_LABELS[kind]} {label}'
    if kind == KIND_OWN:
        _check_options(kind, label, upstream_options, ())
        config, state, statistics = _own_source(directory, unnorm_key)
        return PolicySource(config, state, statistics, directory, kind, description, directory)
    if kind == KIND_UPSTREAM:
        _check_options(kind, label, upstream_options, UPSTREAM_OPTIONS)
        upstream = load_upstream_checkpoint(directory, unnorm_key=unnorm_key,
                                            camera_names=camera_names, **upstream_options)
        return PolicySource(upstream.config, upstream.state_dict, upstream.statistics,
                            upstream.tokenizer_dir, kind, description, directory)
    _check_options(kind, label, upstream_options, ('overrides',))
    if tokenizer_dir is None:
        raise ValueError(f'tokenizer_dir=None: the Prismatic VLM {label!r} needs a local '
                         'tokenizer directory with the Qwen2 config.json')
    vlm = load_prismatic_vlm(directory, tokenizer_dir, camera_names=camera_names,
                             overrides=upstream_options.get('overrides'),
                             tower_weights=tower_weights,
                             cache_dir=None if cache_dir is None else os.fspath(cache_dir))
    description += f' (vision towers: {", ".join(vlm.tower_sources)})'
    return PolicySource(vlm.config, vlm.state_dict, {}, vlm.tokenizer_dir, kind, description,
                        directory)
