"""Configuration of a fine-tuning run, validated on construction and saved with the run.

The ``vla-adapter-train`` command line is derived from these fields (:mod:`training.config_cli`):
every field is a flag (nested ``data`` and ``augmentation`` fields too), with its help text here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import math
import os
from pathlib import Path
from typing import Any

from training.augmentation import AugmentationConfig
from training.config_cli import build_config_parser, option
from training.data_config import DatasetConfig
from vla_adapter_core.config import VISION_POSITION_INITS, ConfigDictMixin
from vla_adapter_core.heads import head_class, head_kinds

LR_SCHEDULES = ('cosine', 'linear', 'constant')
DEVICES = ('auto', 'cpu', 'cuda')
NORMALIZATION_MODES = ('bounds', 'bounds_q99')
OPTIMIZERS = ('adamw', 'adamw_fused', 'adamw_8bit')
# Input files checked (and made absolute) before anything heavy runs.
INPUT_PATHS = ('policy_config', 'tokenizer_dir')
# Settings a resumed run may change; everything else must match the interrupted run.
RESUMABLE_CHANGES = ('resume', 'max_steps', 'save_every', 'val_every', 'log_every',
                     'num_workers', 'progress_bar', 'gradient_checkpointing')
# Upstream's head flags, kept as command-line aliases (and read from old train_config.json).
HEAD_KIND_ALIASES = {'--use_discrete_head': 'discrete', '--use_dual_arm': 'dual_arm'}


def _require(condition: bool, name: str, value: Any, why: str) -> None:
    if not condition:
        raise ValueError(f'TrainConfig.{name}={value!r}: {why}')


@dataclass
class TrainConfig(ConfigDictMixin):
    """Everything a fine-tuning run needs; written to ``train_config.json`` with the run."""

    data: DatasetConfig
    output_dir: str = option(help='run directory: checkpoints, metrics.jsonl, tensorboard')
    # --- the policy ----------------------------------------------------------------------------
    pretrained: str | None = option(
        None, metavar='DIR', path='file_or_name',
        help='starting point: our checkpoint, an upstream VLA-Adapter run directory, a '
             'Prismatic VLM directory (prism-qwen25-...; needs --tokenizer_dir; its vision '
             "towers come from timm's pretrained weights or --vision_weights), or a Hugging "
             'Face Hub repo id of any of them; give it or --policy_config')
    vision_weights: list[str] | None = option(
        None, metavar='TOWER=FILE',
        help="Prismatic VLM only: local files of the vision towers instead of timm's "
             'download/cache, e.g. dino=dinov2.safetensors siglip=siglip.safetensors '
             '(offline machines)')
    policy_config: str | None = option(
        None, metavar='JSON', path='file', help='PolicyConfig JSON to build a fresh policy from')
    tokenizer_dir: str | None = option(
        None, metavar='DIR', path='file',
        help='Qwen2.5 tokenizer (and, for a Prismatic VLM, the LLM config.json), e.g. '
             "upstream's pretrained_models/configs; needed with --policy_config")
    head_kind: str = option(
        'l1', choices=head_kinds(), const_flags=HEAD_KIND_ALIASES,
        help="action head: 'l1' (continuous, L1 loss), 'discrete' (adaptive bins, "
             "cross-entropy) or 'dual_arm' (128 queries, inter-arm attention)")
    n_action_bins: int = option(256, help='bins per action dimension of the discrete head')
    normalization_mode: str = option(
        'bounds', choices=NORMALIZATION_MODES,
        help="'bounds' (min/max, for ALOHA's absolute joints) or 'bounds_q99' (q01/q99)")
    unnorm_key: str = option('default', help='name of the dataset statistics entry')
    lora_rank: int = option(0, help='LoRA rank on every LLM linear layer (0: no LoRA, the LLM '
                                    'stays frozen)')
    lora_alpha: float | None = option(None, help='LoRA alpha (None: 2 x rank)')
    lora_dropout: float = option(0.0, help='LoRA dropout')
    # Upstream trains LoRA + head; full fine-tuning is the reference point of the memory table.
    full_finetune: bool = option(
        False, help='train every weight (vision towers and LLM too, not only the projector, '
                    'queries, proprio projector and head); AdamW needs 16 bytes per parameter, '
                    'about 27 GB at the real size; excludes lora_rank')
    # A from-scratch model's towers are random: frozen, they hide a small object's position.
    train_vision: bool = option(
        False, help='train the vision towers too (with LoRA or a frozen LLM); for a policy '
                    'built from --policy_config, whose towers start random; pretrained '
                    'DINOv2/SigLIP towers usually stay frozen')
    # Random position embeddings stay ~10x weaker than a from-scratch tower's patch content: it
    # then tells where an object is inside its patch, hardly which patch (docs: recipe H).
    vision_position_init: str = option(
        'random', choices=VISION_POSITION_INITS,
        help="position embeddings of vision towers built from --policy_config: 'random' "
             "(timm's) or 'sincos' (fixed-frequency 2-D sine-cosine, then trained with "
             '--train_vision); pretrained towers keep theirs')
    # Upstream starts every head block's vision gate at 0: the queries then attend to all
    # vision tokens alike, and a from-scratch head never learns to single out a small object.
    task_gate_init: float | None = option(
        None, help="initial gating_factor of the action head's vision (task) keys where the "
                   'head starts fresh (tanh of it scales their attention logits; None: '
                   "upstream's 0, uniform attention to the vision tokens at the start)")
    # --- optimisation --------------------------------------------------------------------------
    max_steps: int = option(1000, help='optimiser steps')
    batch_size: int = option(8, help='samples per micro-batch and process')
    grad_accumulation: int = option(1, help='micro-batches per optimiser step')
    learning_rate: float = option(2e-4, help='peak learning rate (AdamW)')
    weight_decay: float = option(0.0, help='AdamW weight decay')
    warmup_steps: int = option(100, help='linear warm-up steps')
    lr_schedule: str = option('cosine', choices=LR_SCHEDULES, help='decay after the warm-up')
    min_lr_ratio: float = option(0.1, help='the decay ends at learning_rate x min_lr_ratio')
    max_grad_norm: float = option(1.0, help='gradient clipping norm')
    # The optimiser state is the largest part of full fine-tuning's memory (8 bytes per weight).
    optimizer: str = option(
        'adamw', choices=OPTIMIZERS,
        help="'adamw' (torch, multi-tensor), 'adamw_fused' (torch's fused kernel: the same "
             "update without the multi-tensor path's temporary copies) or 'adamw_8bit' "
             '(bitsandbytes, when installed: 2 instead of 8 bytes of state per weight)')
    # Activations grow with the batch; recomputing them trades step time for memory.
    gradient_checkpointing: bool = option(
        False, help='keep only the inputs of each LLM layer (and of each vision tower block '
                    'when the towers train) and recompute the rest in the backward pass')
    augmentation: AugmentationConfig = option(factory=AugmentationConfig,
                                              help='training image augmentation')
    # At an episode's start the arm state is the same for every object position: only the
    # cameras can tell the first chunk where to go, and those samples are few.
    start_steps: int = option(0, help="oversample each training episode's first this many "
                                      'steps (0: every step once)')
    start_repeat: int = option(1, help='times each of those first steps appears per epoch')
    # Behaviour cloning with the arm state learns to copy it (docs/demo_policy_diagnosis.md).
    proprio_noise_std: float = option(0.0, help='Gaussian noise (rad, raw units) added to the '
                                                'arm state of training samples')
    # Corrections are few beside the demonstrations they mix with; weighting keeps them heard.
    correction_repeat: int = option(1, help="times each correction sample (the operator's "
                                            'steps of takeover recordings and their context) '
                                            'appears per epoch')
    # A few pixels of object are a small share of the head's input and behaviour cloning learns
    # to ignore them; a loss that asks the task states where the object is keeps them in.
    aux_targets: list[str] = option(
        factory=list, metavar='JSON', path='file',
        help='auxiliary state targets per episode (training/aux_targets.py; vla-adapter-sim-'
             'demos writes aux_targets.json with the cube position), read from the task states')
    aux_weight: float = option(0.0, help="weight of the auxiliary targets' mean squared error "
                                         '(0: no auxiliary loss)')
    # --- validation, logging, checkpoints -----------------------------------------------------
    num_val_episodes: int = option(1, help='episodes held out for validation')
    val_every: int = option(200, help='validate every this many steps')
    val_batches: int = option(8, help='batches per validation')
    log_every: int = option(10, help='log training metrics every this many steps')
    save_every: int = option(500, help='write a resumable checkpoint every this many steps')
    resume: bool = option(False, help='continue from the latest checkpoint in --output_dir')
    progress_bar: bool = option(True, help='show a tqdm progress bar')
    # --- execution -----------------------------------------------------------------------------
    device: str = option('auto', choices=DEVICES, help="'auto': this rank's GPU if any, else CPU")
    num_workers: int = option(2, help='data loader worker processes')
    seed: int = option(0, help='seed of initialisation, data order and augmentation')

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            self.data = DatasetConfig.from_dict(self.data)
        if isinstance(self.augmentation, dict):
            self.augmentation = AugmentationConfig(**self.augmentation)
        _require(bool(self.output_dir), 'output_dir', self.output_dir, 'required')
        _require((self.pretrained is None) != (self.policy_config is None), 'pretrained',
                 self.pretrained, 'give exactly one of pretrained and policy_config')
        _require(self.policy_config is None or self.tokenizer_dir is not None, 'tokenizer_dir',
                 self.tokenizer_dir, 'required when building from policy_config')
        for name in INPUT_PATHS:  # absolute: a saved train_config.json works from anywhere
            if getattr(self, name):
                setattr(self, name, os.path.abspath(getattr(self, name)))
        try:
            head_class(self.head_kind)
        except ValueError as error:
            raise ValueError(f'TrainConfig.head_kind={self.head_kind!r}: {error}') from None
        _require(self.head_kind != 'dual_arm' or self.data.action_dim % 2 == 0, 'head_kind',
                 self.head_kind, f'needs an even action_dim, got {self.data.action_dim}')
        _require(self.n_action_bins >= 2, 'n_action_bins', self.n_action_bins, 'must be >= 2')
        _require(self.normalization_mode in NORMALIZATION_MODES, 'normalization_mode',
                 self.normalization_mode, f'expected one of {NORMALIZATION_MODES}')
        _require(self.lora_rank >= 0, 'lora_rank', self.lora_rank, 'must be >= 0')
        _require(0 <= self.lora_dropout < 1, 'lora_dropout', self.lora_dropout, 'in [0, 1)')
        _require(not (self.full_finetune and self.lora_rank > 0), 'full_finetune',
                 self.full_finetune, f'excludes lora_rank={self.lora_rank} (LoRA trains a '
                 'frozen LLM; full fine-tuning trains it directly)')
        _require(not (self.full_finetune and self.train_vision), 'train_vision',
                 self.train_vision, 'is implied by full_finetune (which trains every weight)')
        _require(self.optimizer in OPTIMIZERS, 'optimizer', self.optimizer,
                 f'expected one of {OPTIMIZERS}')
        for name in ('max_steps', 'batch_size', 'grad_accumulation', 'val_every', 'log_every',
                     'save_every'):
            value = getattr(self, name)
            _require(isinstance(value, int) and value > 0, name, value, 'must be a positive int')
        _require(self.learning_rate > 0, 'learning_rate', self.learning_rate, 'must be > 0')
        _require(self.weight_decay >= 0, 'weight_decay', self.weight_decay, 'must be >= 0')
        _require(self.warmup_steps >= 0, 'warmup_steps', self.warmup_steps, 'must be >= 0')
        _require(self.lr_schedule in LR_SCHEDULES, 'lr_schedule', self.lr_schedule,
                 f'expected one of {LR_SCHEDULES}')
        _require(0 <= self.min_lr_ratio <= 1, 'min_lr_ratio', self.min_lr_ratio, 'in [0, 1]')
        _require(self.max_grad_norm > 0, 'max_grad_norm', self.max_grad_norm, 'must be > 0')
        _require(self.num_val_episodes >= 0, 'num_val_episodes', self.num_val_episodes,
                 'must be >= 0')
        _require(self.start_steps >= 0, 'start_steps', self.start_steps, 'must be >= 0')
        _require(self.task_gate_init is None or -5.0 <= self.task_gate_init <= 5.0,
                 'task_gate_init', self.task_gate_init, 'must be None or in [-5, 5] (tanh '
                 'saturates beyond)')
        _require(self.vision_position_init in VISION_POSITION_INITS, 'vision_position_init',
                 self.vision_position_init, f'expected one of {VISION_POSITION_INITS}')
        _require(self.vision_position_init == 'random' or self.policy_config is not None,
                 'vision_position_init', self.vision_position_init,
                 'applies to towers built from scratch (--policy_config); --pretrained towers '
                 'keep their own')
        _require(self.start_repeat >= 1, 'start_repeat', self.start_repeat, 'must be >= 1')
        _require(isinstance(self.correction_repeat, int) and self.correction_repeat >= 1,
                 'correction_repeat', self.correction_repeat, 'must be an int >= 1')
        _require(self.proprio_noise_std >= 0, 'proprio_noise_std', self.proprio_noise_std,
                 'must be >= 0')
        _require(self.val_batches > 0, 'val_batches', self.val_batches, 'must be > 0')
        _require(math.isfinite(self.aux_weight) and self.aux_weight >= 0, 'aux_weight',
                 self.aux_weight, 'must be >= 0')
        _require(self.aux_weight == 0 or self.aux_targets, 'aux_weight', self.aux_weight,
                 'needs aux_targets (the files with the targets)')
        for path in self.aux_targets:
            _require(Path(path).is_file(), 'aux_targets', path, 'no such file')
        _require(self.device in DEVICES, 'device', self.device, f'expected one of {DEVICES}')
        _require(self.num_workers >= 0, 'num_workers', self.num_workers, 'must be >= 0')

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from ``to_dict()`` output; also reads the head booleans of older runs."""
        data = dict(data)
        kinds = [kind for flag, kind in HEAD_KIND_ALIASES.items() if data.pop(flag[2:], False)]
        if kinds:
            _require(len(kinds) == 1 and data.get('head_kind', kinds[0]) == kinds[0],
                     'head_kind', kinds, 'the old use_discrete_head / use_dual_arm flags '
                     'conflict')
            data['head_kind'] = kinds[0]
        return super().from_dict(data)

    def check_input_paths(self) -> None:
        """Raise FileNotFoundError naming the field when an input file or folder is missing."""
        for name in INPUT_PATHS:
            value = getattr(self, name)
            if value is not None and not os.path.exists(value):
                raise FileNotFoundError(f'TrainConfig.{name}={value!r}: no such file or '
                                        'directory')

    def differences(self, other: TrainConfig) -> list[str]:
        """Fields (except those a resume may change) that differ from ``other``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(key for key in mine
                      if key not in RESUMABLE_CHANGES and mine[key] != theirs[key])


def build_parser() -> argparse.ArgumentParser:
    """The ``vla-adapter-train`` command line, derived from :class:`TrainConfig`."""
    return build_config_parser(
        TrainConfig, prog='vla-adapter-train', title='training',
        description='Fine-tune a VLA-Adapter policy on recorded ALOHA / single-arm episodes. '
                    'Several GPUs: torchrun --nproc_per_node N $(which vla-adapter-train) ...')
