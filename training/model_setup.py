"""Building the policy to fine-tune: config, weights, freezing, LoRA, optimiser, export.

The VLM (vision towers and LLM) is frozen; the projector, action queries, proprio projector and
action head train. ``lora_rank`` > 0 adds LoRA adapters (peft) to every linear layer of the LLM;
``full_finetune`` trains every weight instead. Exported checkpoints carry the LoRA deltas merged
into the LLM weights, so ``VLAPolicy.from_pretrained`` loads them without peft.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
import torch

from training.train_config import TrainConfig
from vla_adapter_core.checkpoint import read_json
from vla_adapter_core.checkpoint_source import load_policy_source as load_checkpoint_source
from vla_adapter_core.config import (
    LAYOUT_ALIGNED,
    LAYOUT_UPSTREAM_COMPAT,
    PolicyConfig,
)
from vla_adapter_core.heads import ActionBins
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.prismatic import parse_tower_weights
from vla_adapter_core.prompt import load_tokenizer

LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
BINS_PREFIX = 'action_head.bins.'
VLM_PREFIXES = ('vision.', 'llm.', 'projector.')  # must come from the source, never fresh
GATE_SUFFIX = '.gating_factor'  # the action head blocks' vision gates


@dataclass
class PolicySource:
    """A starting point: its config, weights (None: fresh initialisation) and tokenizer."""

    config: PolicyConfig
    state: dict | None
    tokenizer: object
    description: str
    kind: str = 'policy_config'  # or a vla_adapter_core.checkpoint_source kind


def load_policy_source(config: TrainConfig) -> PolicySource:
    """Read ``--policy_config``, or ``--pretrained`` through the core's one checkpoint dispatch.

    ``--pretrained`` is a directory or a Hugging Face Hub repo id: ours, an upstream run or a
    Prismatic VLM (see :mod:`vla_adapter_core.checkpoint_source`).
    """
    if config.policy_config is not None:
        policy = PolicyConfig.from_dict(read_json(config.policy_config))
        return PolicySource(policy, None, load_tokenizer(config.tokenizer_dir),
                            f'config {config.policy_config}')
    source = load_checkpoint_source(config.pretrained, camera_names=config.data.camera_names,
                                    tokenizer_dir=config.tokenizer_dir,
                                    tower_weights=parse_tower_weights(config.vision_weights))
    return PolicySource(source.config, source.state, load_tokenizer(source.tokenizer_dir),
                        source.description, source.kind)


def adapt_policy_config(base: PolicyConfig, config: TrainConfig) -> PolicyConfig:
    """The base config with the dataset's sizes and the run's head, crop and normalisation.

    The robot layout (one name per action / proprio dimension, gripper convention) is the robot
    description's when the data has its sizes; otherwise (e.g. LIBERO HDF5) none is recorded.
    """
    data = config.data
    kind = config.head_kind
    head = dataclasses.replace(base.action_head, kind=kind, chunk_size=data.chunk_size,
                               action_dim=data.action_dim, n_action_bins=config.n_action_bins)
    crop = (config.augmentation.crop_area if config.augmentation.enabled
            else base.processor.center_crop_fraction)
    processor = dataclasses.replace(base.processor, center_crop_fraction=crop)
    normalization = dataclasses.replace(base.normalization, mode=config.normalization_mode,
                                        unnorm_key=config.unnorm_key)
    layout = base.layout
    if layout == LAYOUT_UPSTREAM_COMPAT and (
            kind != 'l1' or len(data.camera_names) != len(base.camera_names)):
        layout = LAYOUT_ALIGNED  # upstream's windows only exist for its own head and cameras
    robot_layout = None
    if data.matches_robot:
        gripper = 'normalized' if data.gripper_mode == 'aloha' else 'raw'
        robot_layout = data.robot_description().layout(gripper)
    return dataclasses.replace(
        base, action_head=head, processor=processor, normalization=normalization,
        camera_names=list(data.camera_names), proprio_dim=data.proprio_dim, layout=layout,
        robot_layout=robot_layout)


def load_matching_weights(model: torch.nn.Module, state: dict) -> list[str]:
    """Load every tensor whose name and shape match; return the names left freshly initialised.

    Only the action head, queries and proprio projector may start fresh (a new head kind, action
    size or chunk); a VLM tensor that does not match is an error, never a silently random VLM.
    Discrete-head bins are never taken from the source: they come from this run's dataset.
    """
    own = model.state_dict()
    matching = {name: value for name, value in state.items()
                if name in own and own[name].shape == value.shape
                and not name.startswith(BINS_PREFIX)}
    fresh = sorted(name for name in own if name not in matching and
                   not name.startswith(BINS_PREFIX))
    vlm = [name for name in fresh if name.startswith(VLM_PREFIXES)]
    if vlm:
        shapes = {name: (tuple(own[name].shape), tuple(state[name].shape) if name in state
                         else 'missing') for name in vlm[:4]}
        raise ValueError(f'pretrained weights do not fit the configured VLM: {len(vlm)} tensors '
                         f'differ or are missing, e.g. {shapes} (model shape, source shape)')
    model.load_state_dict(matching, strict=False)
    return fresh


def replaced_head_note(source: PolicySource, head_kind: str) -> str:
    """What a run whose head kind differs from its source checkpoint's throws away ('' if none)."""
    own_kind = source.config.action_head.kind
    if source.state is None or own_kind == head_kind:
        return ''
    return (f"the source's action head is {own_kind!r}; head_kind={head_kind!r} starts a fresh "
            f'one instead of fine-tuning it (--head_kind {own_kind} keeps it)')


def build_model(policy_config: PolicyConfig, source: PolicySource, bins: ActionBins | None,
                seed: int, task_gate_init: float | None = None,
                vision_position_init: str = 'random') -> tuple[VLAAdapterModel, list[str]]:
    """A model for ``policy_config`` initialised from ``source`` (seeded where fresh).

    ``task_gate_init``: the value given to every freshly initialised head gate (None: keep 0).
    ``vision_position_init='sincos'``: towers built from scratch get 2-D sine-cosine positions.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VLAAdapterModel(policy_config, bins=bins)
    fresh = [] if source.state is None else load_matching_weights(model, source.state)
    if vision_position_init == 'sincos' and source.state is None:
        model.vision.init_sincos_positions()
    if task_gate_init is not None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name.endswith(GATE_SUFFIX) and (source.state is None or name in fresh):
                    parameter.fill_(task_gate_init)
    return model, fresh


def set_trainable(model: VLAAdapterModel, config: TrainConfig) -> list[str]:
    """Freeze the vision towers and LLM, add LoRA when asked; return the trainable names.

    ``train_vision``: the towers train too. ``full_finetune``: nothing is frozen.
    ``gradient_checkpointing`` is switched on here too.
    """
    model.set_gradient_checkpointing(config.gradient_checkpointing)
    if config.full_finetune:
        model.requires_grad_(True)
        for param in model.vision.unused_parameters():  # no gradient would ever reach them
            param.requires_grad_(False)
        return model.trainable_parameter_names()
    model.freeze_vlm()
    if config.lora_rank > 0:
        alpha = config.lora_alpha if config.lora_alpha is not None else 2.0 * config.lora_rank
        lora = LoraConfig(r=config.lora_rank, lora_alpha=alpha, lora_dropout=config.lora_dropout,
                          target_modules=LORA_TARGETS, bias='none')
        inject_adapter_in_model(lora, model.llm.model)
    for module in (model.projector, model.action_queries, model.proprio_projector,
                   model.action_head):
        if module is not None:
            module.requires_grad_(True)
    if config.train_vision:
        model.vision.requires_grad_(True)
        for param in model.vision.unused_parameters():  # no gradient would ever reach them
            param.requires_grad_(False)
    return model.trainable_parameter_names()


def build_optimizer(parameters: list[torch.nn.Parameter],
                    config: TrainConfig) -> torch.optim.Optimizer:
    """The run's AdamW: torch's (multi-tensor or fused) or bitsandbytes' 8-bit one."""
    options = {'lr': config.learning_rate, 'weight_decay': config.weight_decay}
    if config.optimizer == 'adamw_8bit':
        try:
            import bitsandbytes
        except ImportError:
            raise ValueError("TrainConfig.optimizer='adamw_8bit': needs bitsandbytes, which is "
                             "not installed; use 'adamw_fused' or install it") from None
        return bitsandbytes.optim.AdamW8bit(parameters, **options)
    return torch.optim.AdamW(parameters, fused=config.optimizer == 'adamw_fused' or None,
                             **options)


def export_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with LoRA deltas merged, in plain VLAAdapterModel names (CPU)."""
    state = {}
    for name, value in model.state_dict().items():
        if '.lora_' in name:
            continue
        state[name.replace('.base_layer.', '.')] = value.detach().cpu()
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            weight = base.weight.detach().clone()
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    weight += module.get_delta_weight(adapter).detach().to(weight.dtype)
            state[f'{name}.weight'] = weight.cpu()
    return {name: value.contiguous() for name, value in state.items()}


def export_model(model: VLAAdapterModel, policy_config: PolicyConfig) -> VLAAdapterModel:
    """A plain VLAAdapterModel (CPU, float32) holding ``model``'s merged weights."""
    plain_config = dataclasses.replace(
        policy_config, llm=dataclasses.replace(policy_config.llm, pretrained_dir=None))
    plain = VLAAdapterModel(plain_config)
    result = plain.load_state_dict(export_state_dict(model), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return plain
