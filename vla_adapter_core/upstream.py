"""Loader for upstream VLA-Adapter run directories (REFERENCE section 1 layout).

Every size comes from the run directory itself: ``config.json`` (Qwen2 ``text_config``, a diff
against LlamaConfig, so missing keys take Qwen2 defaults), weight shapes (towers, projector, head,
proprio projector) and ``preprocessor_config.json`` (image size, normalisation). Upstream does not
store its robot-platform constants (chunk size, normalisation type, number of images) nor the
towers' head counts; they come from an overrides JSON (the fixtures' ``tiny_overrides.json``
format) when one is given or found next to the run directory, otherwise from the platform table
matched on (action_dim, proprio_dim) and timm's defaults. The result always uses the
``upstream_compat`` layout.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

from safetensors.torch import load_file
import torch
from transformers import Qwen2Config

from vla_adapter_core.checkpoint import WEIGHTS_FILE, read_json, torch_load_weights_only
from vla_adapter_core.config import (
    LAYOUT_UPSTREAM_COMPAT,
    LLMConfig,
    NormalizationConfig,
    PolicyConfig,
    ProcessorConfig,
    ProjectorConfig,
    VisionConfig,
    mlp_ratio_for_hidden,
)
from vla_adapter_core.heads import convert_upstream_head_state_dict, infer_upstream_head_config
from vla_adapter_core.normalization import STATISTICS_FILE, load_statistics

OVERRIDES_FILE = 'tiny_overrides.json'
# action_head--<step>_checkpoint.pt as training saves it; the released Hub repos (e.g.
# VLA-Adapter/LIBERO-Spatial) hold action_head--checkpoint.pt without the step.
HEAD_PATTERN = re.compile(r'^action_head--(?:(\d+)_)?checkpoint\.pt$')
TOWER_PREFIXES = ('vision_backbone.featurizer.', 'vision_backbone.fused_featurizer.')
DROPPED_TEXT_KEYS = ('model_type', 'torch_dtype', 'use_mrope')


@dataclasses.dataclass(frozen=True)
class Platform:
    """Upstream robot-platform constants (prismatic/vla/constants.py)."""

    name: str
    chunk_size: int
    action_dim: int
    proprio_dim: int
    normalization: str
    camera_names: tuple


PLATFORMS = (
    Platform('LIBERO', 8, 7, 8, 'bounds_q99', ('full_image', 'wrist_image')),
    Platform('ALOHA', 25, 14, 14, 'bounds', ('cam_high', 'cam_left_wrist', 'cam_right_wrist')),
    Platform('BRIDGE', 5, 7, 7, 'bounds_q99', ('full_image',)),
)


@dataclasses.dataclass
class UpstreamCheckpoint:
    """Everything read from an upstream run directory."""

    config: PolicyConfig
    state_dict: dict  # keys of VLAAdapterModel
    statistics: dict
    tokenizer_dir: str
    ignored_keys: list


def is_upstream_checkpoint(directory: str | os.PathLike) -> bool:
    """True for an upstream run directory (OpenVLA config or action_head--*.pt files)."""
    config_path = os.path.join(directory, 'config.json')
    if os.path.isfile(config_path) and read_json(config_path).get('model_type') == 'openvla':
        return True
    return bool(glob.glob(os.path.join(directory, 'action_head--*checkpoint.pt')))


def find_overrides(directory: str | os.PathLike) -> str | None:
    """``tiny_overrides.json`` in the run directory or its parent, if present."""
    for candidate in (directory, os.path.dirname(os.path.abspath(directory))):
        path = os.path.join(candidate, OVERRIDES_FILE)
        if os.path.isfile(path):
            return path
    return None


def load_torch_state(path: str) -> dict:
    """A torch.save'd state dict, loaded with ``weights_only=True``; ``module.`` stripped."""
    state = torch_load_weights_only(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path!r} is not a plain tensor state dict')
    return {key.removeprefix('module.'): value for key, value in state.items()}


def _step_files(directory: str) -> tuple[str, str | None]:
    steps = {}  # step (-1: unnumbered) -> path
    for path in glob.glob(os.path.join(directory, 'action_head--*checkpoint.pt')):
        match = HEAD_PATTERN.match(os.path.basename(path))
        if match:
            steps[int(match.group(1) or -1)] = path
    if not steps:
        raise FileNotFoundError(f'{directory!r} has no action_head--<step>_checkpoint.pt (nor '
                                'action_head--checkpoint.pt)')
    step = max(steps)
    tag = '' if step < 0 else f'{step}_'
    proprio = os.path.join(directory, f'proprio_projector--{tag}checkpoint.pt')
    return steps[step], proprio if os.path.isfile(proprio) else None


def llm_config_from_text_config(text_config: dict) -> LLMConfig:
    """LLMConfig from upstream's text_config.

    save_pretrained wrote it as a diff: a key is absent only when its value equals both the
    LlamaConfig and the Qwen2Config default, so absent keys take Qwen2Config's defaults.
    """
    text = {key: value for key, value in text_config.items() if key not in DROPPED_TEXT_KEYS}
    if text.get('rope_scaling'):
        raise ValueError(f"text_config.rope_scaling={text['rope_scaling']!r} is not supported")
    defaults = Qwen2Config()
    fields = {}
    for name in ('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
                 'num_key_value_heads', 'vocab_size', 'max_position_embeddings', 'rms_norm_eps',
                 'hidden_act', 'tie_word_embeddings'):
        fields[name] = text.get(name, getattr(defaults, name))
    fields['rope_theta'] = float(text.get('rope_theta', defaults.rope_parameters['rope_theta']))
    if fields['num_key_value_heads'] is None:
        fields['num_key_value_heads'] = fields['num_attention_heads']
    return LLMConfig(**fields)


def tower_overrides(model_id: str, overrides: dict) -> dict:
    """Timm kwargs the overrides give one tower (head counts are not in weight shapes).

    Its ``create_model_kwargs_override`` plus the ``num_heads`` of its ``resulting`` entry.
    """
    tower = overrides.get('timm', {}).get(model_id, {})
    kwargs = dict(tower.get('create_model_kwargs_override', {}))
    resulting = tower.get('resulting', {})
    if 'num_heads' not in kwargs and 'num_heads' in resulting:
        kwargs['num_heads'] = resulting['num_heads']
    return kwargs


def tower_kwargs_from_weights(weights: dict, prefix: str, model_id: str, overrides: dict) -> tuple:
    """Timm kwargs (sizes from weight shapes, num_heads from overrides) and the embed dim."""
    patch = weights[prefix + 'patch_embed.proj.weight']  # (d, 3, p, p)
    embed_dim = int(patch.shape[0])
    depth = len({key[len(prefix):].split('.')[1] for key in weights
                 if key.startswith(prefix + 'blocks.')})
    mlp_hidden = int(weights[prefix + 'blocks.0.mlp.fc1.weight'].shape[0])
    kwargs = tower_overrides(model_id, overrides)
    kwargs.update(embed_dim=embed_dim, depth=depth,
                  mlp_ratio=mlp_ratio_for_hidden(embed_dim, mlp_hidden))
    if prefix + 'reg_token' in weights:  # (1, R, d): DINOv2-reg towers
        kwargs['reg_tokens'] = int(weights[prefix + 'reg_token'].shape[1])
    return kwargs, embed_dim, int(patch.shape[-1])


def _vision_config(openvla: dict, preprocessor: dict, weights: dict, overrides: dict):
    model_ids = list(openvla.get('timm_model_ids', []))
    fused = bool(openvla.get('use_fused_vision_backbone', len(model_ids) == 2))
    model_ids = model_ids[:2 if fused else 1]
    normalize = preprocessor.get('tvf_normalize_params') or [
        {'mean': mean, 'std': std}
        for mean, std in zip(preprocessor['means'], preprocessor['stds'])]
    resize = preprocessor.get('tvf_resize_params')
    image_size = int(resize[0]['size'][0]) if resize else int(openvla['image_sizes'][0])
    kwargs, dims, patches = [], [], set()
    for model_id, prefix in zip(model_ids, TOWER_PREFIXES):
        tower_kwargs, dim, patch = tower_kwargs_from_weights(weights, prefix, model_id, overrides)
        kwargs.append(tower_kwargs)
        dims.append(dim)
        patches.add(patch)
    if len(patches) != 1:
        raise ValueError(f'vision towers use different patch sizes {sorted(patches)}')
    return VisionConfig(timm_model_ids=model_ids, tower_kwargs=kwargs, embed_dims=dims,
                        image_size=image_size, patch_size=patches.pop(),
                        image_means=[list(p['mean']) for p in normalize[:len(model_ids)]],
                        image_stds=[list(p['std']) for p in normalize[:len(model_ids)]])


def map_vlm_keys(weights: dict) -> tuple[dict, list]:
    """Upstream VLM keys -> VLAAdapterModel keys; returns (mapped, ignored key names)."""
    mapped, ignored = {}, []
    renames = (('vision_backbone.featurizer.', 'vision.towers.0.'),
               ('vision_backbone.fused_featurizer.', 'vision.towers.1.'),
               ('projector.', 'projector.'), ('language_model.model.', 'llm.model.'),
               ('action_queries.', 'action_queries.'))
    for key, value in weights.items():
        for old, new in renames:
            if key.startswith(old):
                name = new + key[len(old):]
                name = re.sub(r'\.(ls[12])\.scale_factor$', r'.\1.gamma', name)
                mapped[name] = value
                break
        else:
            ignored.append(key)  # e.g. language_model.lm_head.weight (tied, never used)
    return mapped, ignored


def _platform(action_dim: int, proprio_dim: int | None, constants: dict) -> Platform | None:
    """Explicit constants (overrides file) win; otherwise match the table on the sizes."""
    known = [platform for platform in PLATFORMS if platform.action_dim == action_dim
             and proprio_dim in (None, platform.proprio_dim)]
    if not constants:
        return known[0] if known else None
    name = str(constants.get('ROBOT_PLATFORM', known[0].name if known else 'custom'))
    named = [platform for platform in PLATFORMS if platform.name == name.upper()] + known
    try:
        return Platform(name, int(constants['NUM_ACTIONS_CHUNK']),
                        int(constants['ACTION_DIM']), int(constants['PROPRIO_DIM']),
                        str(constants['ACTION_PROPRIO_NORMALIZATION_TYPE']),
                        named[0].camera_names if named else ())
    except KeyError as error:
        raise ValueError(f'robot_platform_constants lacks {error.args[0]!r}') from error


def _camera_names(platform: Platform, run: dict, camera_names) -> list:
    if camera_names is not None:
        camera_names = list(camera_names)
        expected = run.get('num_images_in_input')
        if expected is not None and len(camera_names) != int(expected):
            raise ValueError(f'camera_names={camera_names}: the run was trained with '
                             f'num_images_in_input={expected} images')
        return camera_names
    known = list(platform.camera_names)
    count = int(run.get('num_images_in_input', len(known) or 1))
    if len(known) >= count:
        return known[:count]
    return [f'image_{index}' for index in range(count)]


def _unnorm_key(statistics: dict, requested: str | None, run: dict) -> str:
    key = requested or run.get('unnorm_key')
    if key is None:
        if len(statistics) != 1:
            raise ValueError(f'unnorm_key is needed: the statistics hold {sorted(statistics)}')
        key = next(iter(statistics))
    if key not in statistics:
        raise ValueError(f'unnorm_key={key!r} is not in the dataset statistics '
                         f'(available: {sorted(statistics)})')
    return key


@dataclasses.dataclass
class _RunFiles:
    """The raw contents of a run directory."""

    openvla: dict
    preprocessor: dict
    weights: dict
    head_state: dict
    proprio_state: dict | None
    statistics: dict


def _read_run_files(directory: str) -> _RunFiles:
    openvla = read_json(os.path.join(directory, 'config.json'))
    preprocessor = read_json(os.path.join(directory, 'preprocessor_config.json'))
    weights_path = os.path.join(directory, WEIGHTS_FILE)
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f'upstream checkpoint {directory!r} lacks {WEIGHTS_FILE}')
    weights = load_file(weights_path, device='cpu')
    if 'action_queries.weight' not in weights:
        raise ValueError(f'{weights_path!r} lacks action_queries.weight')
    head_path, proprio_path = _step_files(directory)
    head_state = load_torch_state(head_path)
    proprio_state = load_torch_state(proprio_path) if proprio_path else None
    statistics = load_statistics(os.path.join(directory, STATISTICS_FILE))
    return _RunFiles(openvla, preprocessor, weights, head_state, proprio_state, statistics)


def _resolve_platform(files: _RunFiles, overrides: dict) -> tuple[Platform, int | None]:
    proprio_dim = (int(files.proprio_state['fc1.weight'].shape[1])
                   if files.proprio_state else None)
    kept, _ = convert_upstream_head_state_dict(files.head_state)
    if 'model.fc2.weight' not in kept:
        raise ValueError('the action-head checkpoint lacks model.fc2.weight')
    action_dim = int(kept['model.fc2.weight'].shape[0])
    platform = _platform(action_dim, proprio_dim, overrides.get('robot_platform_constants'))
    if platform is None:
        raise ValueError(f'cannot tell the robot platform of action_dim={action_dim}, '
                         f'proprio_dim={proprio_dim}: pass an overrides file with '
                         'robot_platform_constants')
    if platform.action_dim != action_dim or proprio_dim not in (None, platform.proprio_dim):
        raise ValueError(f'robot platform {platform.name} (action_dim={platform.action_dim}, '
                         f'proprio_dim={platform.proprio_dim}) does not match the weights '
                         f'(action_dim={action_dim}, proprio_dim={proprio_dim})')
    return platform, proprio_dim


def _model_state(files: _RunFiles) -> tuple[dict, list]:
    """VLAAdapterModel state dict and the ignored upstream keys."""
    state, ignored = map_vlm_keys(files.weights)
    head_kept, head_ignored = convert_upstream_head_state_dict(files.head_state)
    state.update({'action_head.' + key: value for key, value in head_kept.items()})
    if files.proprio_state:
        state.update({'proprio_projector.' + key: value
                      for key, value in files.proprio_state.items()})
    return state, ignored + ['action_head.' + key for key in head_ignored]


def load_upstream_checkpoint(directory: str | os.PathLike, overrides: str | dict | None = None,
                             camera_names=None, unnorm_key: str | None = None,
                             prompt_style: str = 'openvla',
                             center_crop_fraction: float | None = None) -> UpstreamCheckpoint:
    """Read an upstream run directory into a PolicyConfig (layout 'upstream_compat') + weights.

    ``overrides``: a ``tiny_overrides.json``-style dict or path (timm kwargs such as num_heads,
    robot-platform constants, run config); by default one is looked up next to the directory.
    ``camera_names`` default to the platform's (LIBERO: full_image, wrist_image; ALOHA: cam_high,
    cam_left_wrist, cam_right_wrist) cut to the run's number of images.
    """
    directory = str(directory)
    if overrides is None:
        overrides = find_overrides(directory)
    if isinstance(overrides, (str, os.PathLike)):
        overrides = read_json(overrides)
    overrides = overrides or {}
    run = overrides.get('run_config', {})
    files = _read_run_files(directory)
    platform, proprio_dim = _resolve_platform(files, overrides)
    head_config = infer_upstream_head_config(
        files.head_state, platform.chunk_size, use_proprio=files.proprio_state is not None,
        queries_per_arm=int(files.weights['action_queries.weight'].shape[0]))
    vision = _vision_config(files.openvla, files.preprocessor, files.weights, overrides)
    llm = llm_config_from_text_config(files.openvla.get('text_config', {}))
    if center_crop_fraction is None:
        center_crop_fraction = 0.9 if run.get('center_crop', False) else 1.0
    config = PolicyConfig(
        vision=vision, llm=llm,
        projector=ProjectorConfig(vision_dim=vision.feature_dim, llm_dim=llm.hidden_size),
        action_head=head_config,
        normalization=NormalizationConfig(
            mode=platform.normalization,
            unnorm_key=_unnorm_key(files.statistics, unnorm_key, run)),
        processor=ProcessorConfig(prompt_style=prompt_style,
                                  center_crop_fraction=center_crop_fraction),
        camera_names=_camera_names(platform, run, camera_names),
        proprio_dim=proprio_dim or platform.proprio_dim,
        layout=LAYOUT_UPSTREAM_COMPAT,
        upstream_num_task_tokens=int(run.get('action_head_num_task_tokens', 512)))
    state, ignored = _model_state(files)
    return UpstreamCheckpoint(config, state, files.statistics, directory, ignored)
