"""Loader for upstream Prismatic VLM directories (the VLM that VLA-Adapter fine-tunes from).

A Prismatic VLM directory (e.g. ``prism-qwen25-extra-dinosiglip-224px-0_5b``) holds:

* ``config.json``: the training run's config; its ``model`` entry names ``model_id``,
  ``vision_backbone_id`` (e.g. 'dinosiglip-vit-so-224px'), ``llm_backbone_id`` (e.g.
  'qwen25-0_5b-extra'), ``arch_specifier`` (e.g. 'no-align+fused-gelu-mlp') and
  ``image_resize_strategy``.
* ``checkpoints/latest-checkpoint.pt`` or ``checkpoints/step-<step>-epoch-<epoch>-loss=<x>.pt``:
  ``{'model': {'projector': ..., 'llm_backbone': ..., ['vision_backbone': ...]}}``, each a plain
  tensor state dict of that sub-module (projector ``projector.{0,2,4}.*``, LLM ``llm.model.*`` and
  ``llm.lm_head.weight``, vision ``dino_featurizer.*`` / ``siglip_featurizer.*``). Training saves
  only the modules it trained, so the vision towers are normally absent: upstream takes them from
  timm's pretrained weights, and so do we, through timm's own pretrained loading (its checkpoint
  filter resamples the position embeddings to the VLM's image size; the load is strict). By
  default timm reads the Hugging Face Hub through its cache (huggingface_hub honours
  HF_HUB_OFFLINE); ``tower_weights={'dino': PATH, 'siglip': PATH}`` gives local files instead
  (each tower's timm state dict, safetensors or a weights-only torch file), and a
  ``vision_backbone.safetensors`` in the directory (both towers under the two prefixes) is used
  when present.

The checkpoint holds no LLM architecture or tokenizer: both come from ``tokenizer_dir``, which
needs the Qwen2.5 tokenizer and a ``config.json`` with the Qwen2 text config (upstream
VLA-Adapter's ``pretrained_models/configs``, an OpenVLA config with ``text_config``, or a local
Qwen2.5 snapshot, model_type 'qwen2'). The result uses the 'aligned' layout with a fresh action
head, action queries and proprio projector. ``image_resize_strategy`` is not used: like upstream's
VLA fine-tuning (whose processor config says 'resize-naive'), our processor resizes naively.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import json
import os
import re

from safetensors.torch import load_file, save_file
import torch

from vla_adapter_core.checkpoint import read_json, torch_load_weights_only
from vla_adapter_core.config import (
    DINOV2_TIMM_ID,
    LAYOUT_ALIGNED,
    LLMConfig,
    PolicyConfig,
    ProjectorConfig,
    VisionConfig,
)
from vla_adapter_core.heads import ActionHeadConfig
from vla_adapter_core.upstream import (
    find_overrides,
    llm_config_from_text_config,
    tower_kwargs_from_weights,
    tower_overrides,
)
from vla_adapter_core.vision import build_pretrained_tower

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
LATEST_CHECKPOINT = 'latest-checkpoint.pt'
VISION_WEIGHTS_FILE = 'vision_backbone.safetensors'
STEP_PATTERN = re.compile(r'^step-(\d+)-epoch-(\d+)-loss=.*\.pt$')
REQUIRED_MODEL_FIELDS = ('model_id', 'vision_backbone_id', 'llm_backbone_id', 'arch_specifier')
TOWER_PREFIXES = ('dino_featurizer.', 'siglip_featurizer.')
TOWER_NAMES = ('dino', 'siglip')  # the keys of ``tower_weights``, in tower order
# Prismatic's HF-exported VLMs rename timm's LayerScale ``gamma`` to ``scale_factor``.
LAYER_SCALE_KEY = re.compile(r'\.(ls[12])\.scale_factor$')
# Prismatic's fused DINOv2 + SigLIP backbones: (image size, timm ids of the two towers).
VISION_BACKBONES = {
    'dinosiglip-vit-so-224px': (224, (DINOV2_TIMM_ID, 'vit_so400m_patch14_siglip_224')),
    'dinosiglip-vit-so-384px': (384, (DINOV2_TIMM_ID, 'vit_so400m_patch14_siglip_384')),
}
# The pretrained weights Prismatic's towers started from (timm 0.9's default tags; timm 1.x makes
# SigLIP 2 'v2_webli' the default of the 224 px id).
PRETRAINED_TAGS = {'vit_so400m_patch14_siglip_224': 'webli',
                   'vit_so400m_patch14_siglip_384': 'webli'}
# FusedMLPProjector's nn.Sequential indices -> our FusedGeluMLPProjector layers.
PROJECTOR_LAYERS = (('projector.0.', 'fc1.'), ('projector.2.', 'fc2.'), ('projector.4.', 'fc3.'))
LLM_PREFIX = 'llm.model.'


@dataclasses.dataclass
class PrismaticVLM:
    """A Prismatic VLM read into our names: base config, VLM weights and tokenizer directory."""

    config: PolicyConfig
    state_dict: dict  # keys of VLAAdapterModel (vision., projector., llm.)
    tokenizer_dir: str
    model_id: str
    checkpoint_path: str
    ignored_keys: list
    tower_sources: list = dataclasses.field(default_factory=list)  # where each tower came from


def _model_entry(directory: str | os.PathLike) -> dict | None:
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    model = read_json(path).get('model')
    return model if isinstance(model, dict) else None


def is_prismatic_vlm(directory: str | os.PathLike) -> bool:
    """True for a Prismatic VLM directory (``config.json`` 'model' entry + ``checkpoints/``)."""
    model = _model_entry(directory)
    return (model is not None and 'vision_backbone_id' in model and 'llm_backbone_id' in model
            and os.path.isdir(os.path.join(directory, CHECKPOINT_DIR)))


def read_model_config(directory: str | os.PathLike) -> dict:
    """The validated ``model`` entry of the directory's ``config.json``."""
    model = _model_entry(directory)
    if model is None:
        raise ValueError(f'{str(directory)!r} is not a Prismatic VLM directory: its {CONFIG_FILE} '
                         "lacks a 'model' entry")
    missing = [name for name in REQUIRED_MODEL_FIELDS if name not in model]
    if missing:
        raise ValueError(f'{CONFIG_FILE} of {str(directory)!r}: model entry lacks {missing}')
    if model['vision_backbone_id'] not in VISION_BACKBONES:
        raise ValueError(f"model.vision_backbone_id={model['vision_backbone_id']!r} is not "
                         f'supported (supported: {sorted(VISION_BACKBONES)})')
    if not str(model['arch_specifier']).endswith('fused-gelu-mlp'):
        raise ValueError(f"model.arch_specifier={model['arch_specifier']!r} is not supported: "
                         "only the 'fused-gelu-mlp' projector is")
    return model


def find_vlm_checkpoint(directory: str | os.PathLike) -> str:
    """``checkpoints/latest-checkpoint.pt``, else the ``step-*.pt`` with the highest step."""
    folder = os.path.join(directory, CHECKPOINT_DIR)
    latest = os.path.join(folder, LATEST_CHECKPOINT)
    if os.path.isfile(latest):
        return latest
    steps = {}
    for path in glob.glob(os.path.join(folder, 'step-*.pt')):
        match = STEP_PATTERN.match(os.path.basename(path))
        if match:
            steps[(int(match.group(1)), int(match.group(2)))] = path
    if not steps:
        raise FileNotFoundError(f'{folder!r} has neither {LATEST_CHECKPOINT} nor '
                                'step-<step>-epoch-<epoch>-loss=<loss>.pt')
    return steps[max(steps)]


def _plain_tensors(module: str, state, path: str) -> dict:
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor)
                                              for value in state.values()):
        raise ValueError(f"{path!r}: checkpoint['model'][{module!r}] is not a tensor state dict")
    return dict(state)


def load_vlm_checkpoint(path: str) -> dict:
    """The checkpoint's ``model`` modules, loaded with ``weights_only=True``."""
    checkpoint = torch_load_weights_only(path)
    modules = checkpoint.get('model') if isinstance(checkpoint, dict) else None
    if not isinstance(modules, dict):
        raise ValueError(f"{path!r} lacks the 'model' entry of a Prismatic checkpoint")
    missing = [name for name in ('projector', 'llm_backbone') if name not in modules]
    if missing:
        raise ValueError(f"{path!r}: checkpoint['model'] lacks {missing} "
                         f'(has {sorted(modules)})')
    return {name: _plain_tensors(name, state, path) for name, state in modules.items()}


def map_prismatic_keys(modules: dict) -> tuple[dict, list]:
    """Prismatic module state dicts -> VLAAdapterModel keys; returns (mapped, ignored keys)."""
    mapped, ignored = {}, []
    for key, value in modules['projector'].items():
        for old, new in PROJECTOR_LAYERS:
            if key.startswith(old):
                mapped['projector.' + new + key[len(old):]] = value
                break
        else:
            ignored.append('projector.' + key)
    for key, value in modules['llm_backbone'].items():
        if key.startswith(LLM_PREFIX):
            mapped[key] = value  # llm.model.* is already our name
        else:
            ignored.append('llm_backbone.' + key)
    for key, value in modules.get('vision_backbone', {}).items():
        for index, prefix in enumerate(TOWER_PREFIXES):
            if key.startswith(prefix):
                mapped[f'vision.towers.{index}.' + key[len(prefix):]] = value
                break
        else:
            ignored.append('vision_backbone.' + key)
    return mapped, ignored


def _read_text_config(tokenizer_dir: str) -> dict:
    path = os.path.join(tokenizer_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'tokenizer_dir={tokenizer_dir!r} lacks {CONFIG_FILE}: a Prismatic checkpoint holds '
            "no LLM config; give upstream's pretrained_models/configs or a local Qwen2.5 snapshot")
    config = read_json(path)
    if config.get('model_type') == 'openvla' and isinstance(config.get('text_config'), dict):
        return config['text_config']
    if config.get('model_type') == 'qwen2':
        text = dict(config)
        parameters = text.get('rope_parameters') or {}
        if 'rope_theta' not in text and 'rope_theta' in parameters:
            text['rope_theta'] = parameters['rope_theta']
        return text
    raise ValueError(f'{path!r}: model_type={config.get("model_type")!r}; expected an OpenVLA '
                     "config with text_config or a 'qwen2' config")


def llm_config_for_weights(tokenizer_dir: str, weights: dict) -> LLMConfig:
    """LLMConfig from ``tokenizer_dir``'s config, checked against the checkpoint's shapes."""
    text = {key: value for key, value in _read_text_config(tokenizer_dir).items()
            if key != 'rope_parameters'}
    llm = llm_config_from_text_config(text)
    embed = weights.get(LLM_PREFIX + 'embed_tokens.weight')  # (V, D)
    if embed is None:
        raise ValueError(f'the checkpoint lacks {LLM_PREFIX}embed_tokens.weight')
    layers = {key.split('.')[3] for key in weights if key.startswith(LLM_PREFIX + 'layers.')}
    first = LLM_PREFIX + 'layers.0.'
    needed = [first + 'mlp.gate_proj.weight', first + 'self_attn.k_proj.weight']
    if any(name not in weights for name in needed):
        raise ValueError(f'the checkpoint lacks LLM layer weights such as {needed}')
    head_dim = llm.hidden_size // llm.num_attention_heads
    found = {'vocab_size': int(embed.shape[0]), 'hidden_size': int(embed.shape[1]),
             'num_hidden_layers': len(layers),
             'intermediate_size': int(weights[first + 'mlp.gate_proj.weight'].shape[0]),
             'num_key_value_heads': int(weights[first + 'self_attn.k_proj.weight'].shape[0])
             // head_dim}
    for name, value in found.items():
        if getattr(llm, name) != value:
            raise ValueError(f'LLM config of tokenizer_dir={tokenizer_dir!r}: {name}='
                             f'{getattr(llm, name)} but the checkpoint weights give {value}')
    return llm


def normalize_tower_keys(state: dict, prefix: str = '') -> dict:
    """The tensors under ``prefix`` in timm's names.

    ``prefix`` and DDP's ``module.`` are stripped, LayerScale ``scale_factor`` becomes ``gamma``.
    """
    tensors = {}
    for key, value in state.items():
        key = key.removeprefix('module.')
        if not key.startswith(prefix):
            continue
        tensors[LAYER_SCALE_KEY.sub(r'.\1.gamma', key[len(prefix):])] = value
    return tensors


def read_tower_weights(path: str | os.PathLike) -> dict:
    """One tower's timm state dict from a safetensors file or a weights-only torch file."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'vision tower weights file not found: {path!r}')
    if path.endswith('.safetensors'):
        state = load_file(path, device='cpu')
    else:
        state = torch_load_weights_only(path)
        state = state.get('state_dict', state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state or not all(
            isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f'{path!r} is not a tensor state dict of a vision tower')
    return normalize_tower_keys(state)


def parse_tower_weights(items) -> dict:
    """``['dino=PATH', 'siglip=PATH']`` (a command line's form) -> ``tower_weights``."""
    weights = {}
    for item in items or ():
        name, sep, path = str(item).partition('=')
        if not sep or name not in TOWER_NAMES or not path:
            raise ValueError(f'vision weights {item!r}: expected NAME=PATH with NAME one of '
                             f'{list(TOWER_NAMES)}')
        weights[name] = path
    return weights


def _local_tower_states(directory: str, tower_weights: dict | None,
                        vision_weights: str | None) -> list:
    """Per tower: ``(state dict, source description)`` from local files, or None (timm's own)."""
    tower_weights = dict(tower_weights or {})
    unknown = sorted(set(tower_weights) - set(TOWER_NAMES))
    if unknown:
        raise ValueError(f'tower_weights has unknown towers {unknown}: expected keys among '
                         f'{list(TOWER_NAMES)}')
    combined_path = vision_weights or os.path.join(directory, VISION_WEIGHTS_FILE)
    if vision_weights is not None and not os.path.isfile(vision_weights):
        raise FileNotFoundError(f'vision weights file not found: {vision_weights!r}')
    combined = load_file(combined_path, device='cpu') if os.path.isfile(combined_path) else None
    states = []
    for name, prefix in zip(TOWER_NAMES, TOWER_PREFIXES):
        if name in tower_weights:
            path = str(tower_weights[name])
            states.append((read_tower_weights(path), f'file {path}'))
        elif combined is not None:
            state = normalize_tower_keys(combined, prefix)
            if not state:
                raise ValueError(f'{combined_path!r} holds no {prefix}* tensors')
            states.append((state, f'{prefix}* of {combined_path}'))
        else:
            states.append(None)
    return states


def pretrained_tower_weights(directory: str, model_ids: tuple, image_size: int,
                             overrides: dict, tower_weights: dict | None = None,
                             vision_weights: str | None = None,
                             cache_dir: str | None = None) -> tuple[dict, list]:
    """Both towers built by timm with pretrained weights: (prefixed state dict, sources).

    Sizes come from a local file's shapes (plus head counts from ``overrides``) or, for timm's
    registered weights, from the model id and ``overrides``.
    """
    local = _local_tower_states(directory, tower_weights, vision_weights)
    weights, sources = {}, []
    for model_id, prefix, entry in zip(model_ids, TOWER_PREFIXES, local):
        pretrained_id = (f'{model_id}.{PRETRAINED_TAGS[model_id]}'
                         if model_id in PRETRAINED_TAGS else model_id)
        state, source = entry if entry is not None else (None, f'timm pretrained {pretrained_id}')
        if state is not None and 'patch_embed.proj.weight' not in state:
            raise ValueError(f'the vision weights ({source}) lack patch_embed.proj.weight')
        kwargs = (tower_kwargs_from_weights(state, '', model_id, overrides)[0]
                  if state is not None else tower_overrides(model_id, overrides))
        try:
            tower = build_pretrained_tower(pretrained_id, image_size, kwargs, state, cache_dir)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f'the Prismatic checkpoint of {directory!r} holds no vision_backbone, and '
                f"{error}. Give the towers' timm state dicts as local files: tower_weights="
                f"{{'dino': PATH, 'siglip': PATH}} or {VISION_WEIGHTS_FILE} in the directory"
            ) from error
        weights.update({prefix + key: value.detach().clone()
                        for key, value in tower.state_dict().items()})
        sources.append(source)
    return weights, sources


def _vision_config(weights: dict, image_size: int, model_ids: tuple,
                   overrides: dict) -> VisionConfig:
    kwargs, dims, patches = [], [], set()
    for model_id, prefix in zip(model_ids, TOWER_PREFIXES):
        if prefix + 'patch_embed.proj.weight' not in weights:
            raise ValueError(f'the vision weights lack {prefix}patch_embed.proj.weight')
        tower_kwargs, dim, patch = tower_kwargs_from_weights(weights, prefix, model_id, overrides)
        kwargs.append(tower_kwargs)
        dims.append(dim)
        patches.add(patch)
    if len(patches) != 1:
        raise ValueError(f'vision towers use different patch sizes {sorted(patches)}')
    return VisionConfig(timm_model_ids=list(model_ids), tower_kwargs=kwargs, embed_dims=dims,
                        image_size=image_size, patch_size=patches.pop())


def load_prismatic_vlm(directory: str | os.PathLike, tokenizer_dir: str | os.PathLike,
                       vision_weights: str | None = None, camera_names=None,
                       overrides: str | dict | None = None, tower_weights: dict | None = None,
                       cache_dir: str | None = None) -> PrismaticVLM:
    """Read a Prismatic VLM directory into a base PolicyConfig ('aligned') and VLM weights.

    ``tokenizer_dir``: Qwen2.5 tokenizer + text config (see the module docstring).
    When the checkpoint holds no vision towers, timm loads their pretrained weights: from
    ``tower_weights`` (``{'dino': PATH, 'siglip': PATH}``, either or both), else from
    ``vision_weights`` (one safetensors file with both towers under the Prismatic prefixes;
    default ``<directory>/vision_backbone.safetensors`` when it exists), else from the Hugging
    Face Hub through timm's cache (``cache_dir``). ``overrides``: a ``tiny_overrides.json``-style
    dict or path for timm kwargs (num_heads) of non-standard towers; by default one is looked up
    next to the directory.
    """
    directory, tokenizer_dir = str(directory), str(tokenizer_dir)
    model = read_model_config(directory)
    image_size, model_ids = VISION_BACKBONES[model['vision_backbone_id']]
    checkpoint_path = find_vlm_checkpoint(directory)
    modules = load_vlm_checkpoint(checkpoint_path)
    if overrides is None:
        overrides = find_overrides(directory)
    if isinstance(overrides, (str, os.PathLike)):
        overrides = read_json(overrides)
    overrides = overrides or {}
    sources = ['checkpoint'] * len(model_ids)
    if 'vision_backbone' not in modules:
        modules['vision_backbone'], sources = pretrained_tower_weights(
            directory, model_ids, image_size, overrides, tower_weights, vision_weights,
            cache_dir)
    state, ignored = map_prismatic_keys(modules)
    vision = _vision_config(modules['vision_backbone'], image_size, model_ids, overrides)
    llm = llm_config_for_weights(tokenizer_dir, state)
    head = ActionHeadConfig(hidden_dim=llm.hidden_size, num_blocks=llm.num_hidden_layers)
    config = PolicyConfig(
        vision=vision, llm=llm,
        projector=ProjectorConfig(vision_dim=vision.feature_dim, llm_dim=llm.hidden_size),
        action_head=head, camera_names=list(camera_names or ['cam_high']),
        layout=LAYOUT_ALIGNED)
    return PrismaticVLM(config, state, tokenizer_dir, str(model['model_id']), checkpoint_path,
                        ignored, sources)


def save_prismatic_vlm(directory: str | os.PathLike, state: dict, model_config: dict,
                       checkpoint_name: str = LATEST_CHECKPOINT,
                       include_vision: bool = False) -> None:
    """Write VLAAdapterModel VLM weights as a Prismatic VLM directory (the inverse mapping).

    ``model_config`` becomes ``config.json``'s 'model' entry. The vision towers go into the
    checkpoint when ``include_vision`` (as a full fine-tune saves them), otherwise into
    ``vision_backbone.safetensors`` beside it. The LLM embeddings double as ``llm.lm_head``.
    """
    directory = str(directory)
    os.makedirs(os.path.join(directory, CHECKPOINT_DIR), exist_ok=True)
    projector, llm, vision = (collections.OrderedDict() for _ in range(3))
    to_prismatic = {new: old for old, new in PROJECTOR_LAYERS}
    for name, value in state.items():
        value = value.detach().cpu().contiguous()
        if name.startswith('projector.'):
            layer, rest = name[len('projector.'):].split('.', 1)
            projector[to_prismatic[layer + '.'] + rest] = value
        elif name.startswith(LLM_PREFIX):
            llm[name] = value
        elif name.startswith('vision.towers.'):
            index = int(name.split('.')[2])
            vision[TOWER_PREFIXES[index] + name.split('.', 3)[3]] = value
    llm['llm.lm_head.weight'] = llm[LLM_PREFIX + 'embed_tokens.weight'].clone()
    modules = {'projector': projector, 'llm_backbone': llm}
    if include_vision:
        modules['vision_backbone'] = vision
    else:
        save_file(dict(vision), os.path.join(directory, VISION_WEIGHTS_FILE))
    torch.save({'model': modules}, os.path.join(directory, CHECKPOINT_DIR, checkpoint_name))
    with open(os.path.join(directory, CONFIG_FILE), 'w', encoding='utf-8') as handle:
        json.dump({'model': dict(model_config), 'stage': 'finetune'}, handle, indent=2)
