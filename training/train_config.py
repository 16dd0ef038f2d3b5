"""Configuration of a fine-tuning run, validated on construction and saved with the run."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from training.augmentation import AugmentationConfig
from training.data_config import DatasetConfig, add_dataset_arguments, dataset_config_from_args
from vla_adapter_core.config import ConfigDictMixin

LR_SCHEDULES = ('cosine', 'linear', 'constant')
DEVICES = ('auto', 'cpu', 'cuda')
NORMALIZATION_MODES = ('bounds', 'bounds_q99')
# Settings a resumed run may change; everything else must match the interrupted run.
RESUMABLE_CHANGES = ('resume', 'max_steps', 'save_every', 'val_every', 'log_every',
                     'num_workers', 'progress_bar')


def _require(condition: bool, name: str, value: Any, why: str) -> None:
    if not condition:
        raise ValueError(f'TrainConfig.{name}={value!r}: {why}')


@dataclass
class TrainConfig(ConfigDictMixin):
    """Everything a fine-tuning run needs; written to ``<output_dir>/train_config.json``."""

    data: DatasetConfig
    output_dir: str
    # --- the policy ----------------------------------------------------------------------------
    # our checkpoint, an upstream VLA-Adapter run directory or a Prismatic VLM directory
    pretrained: str | None = None
    policy_config: str | None = None  # a PolicyConfig JSON to build from (weights: random/LLM)
    tokenizer_dir: str | None = None  # needed with policy_config
    use_discrete_head: bool = False
    n_action_bins: int = 256
    use_dual_arm: bool = False
    normalization_mode: str = 'bounds'  # ALOHA's absolute joints: min/max
    unnorm_key: str = 'default'
    lora_rank: int = 0  # 0: no LoRA, the LLM stays frozen
    lora_alpha: float | None = None  # default: 2 x rank
    lora_dropout: float = 0.0
    # --- optimisation --------------------------------------------------------------------------
    max_steps: int = 1000
    batch_size: int = 8  # per process
    grad_accumulation: int = 1
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_schedule: str = 'cosine'
    min_lr_ratio: float = 0.1  # the decay ends at learning_rate x min_lr_ratio
    max_grad_norm: float = 1.0
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    # --- validation, logging, checkpoints -----------------------------------------------------
    num_val_episodes: int = 1
    val_every: int = 200
    val_batches: int = 8
    log_every: int = 10
    save_every: int = 500
    resume: bool = False
    progress_bar: bool = True
    # --- execution -----------------------------------------------------------------------------
    device: str = 'auto'
    num_workers: int = 2
    seed: int = 0

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
        _require(not (self.use_discrete_head and self.use_dual_arm), 'use_dual_arm',
                 self.use_dual_arm, 'the dual-arm head is continuous (L1); not with the '
                 'discrete head')
        _require(not self.use_dual_arm or self.data.action_dim % 2 == 0, 'use_dual_arm',
                 self.use_dual_arm, f'needs an even action_dim, got {self.data.action_dim}')
        _require(self.n_action_bins >= 2, 'n_action_bins', self.n_action_bins, 'must be >= 2')
        _require(self.normalization_mode in NORMALIZATION_MODES, 'normalization_mode',
                 self.normalization_mode, f'expected one of {NORMALIZATION_MODES}')
        _require(self.lora_rank >= 0, 'lora_rank', self.lora_rank, 'must be >= 0')
        _require(0 <= self.lora_dropout < 1, 'lora_dropout', self.lora_dropout, 'in [0, 1)')
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
        _require(self.val_batches > 0, 'val_batches', self.val_batches, 'must be > 0')
        _require(self.device in DEVICES, 'device', self.device, f'expected one of {DEVICES}')
        _require(self.num_workers >= 0, 'num_workers', self.num_workers, 'must be >= 0')

    @property
    def head_kind(self) -> str:
        """'discrete', 'dual_arm' or 'l1'."""
        if self.use_discrete_head:
            return 'discrete'
        return 'dual_arm' if self.use_dual_arm else 'l1'



    def differences(self, other: TrainConfig) -> list[str]:
        """Fields (except those a resume may change) that differ from ``other``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(key for key in mine
                      if key not in RESUMABLE_CHANGES and mine[key] != theirs[key])


def build_parser() -> argparse.ArgumentParser:
    """The ``vla-adapter-train`` command line."""
    parser = argparse.ArgumentParser(
        prog='vla-adapter-train',
        description='Fine-tune a VLA-Adapter policy on recorded ALOHA / single-arm episodes. '
                    'Several GPUs: torchrun --nproc_per_node N $(which vla-adapter-train) ...')
    add_dataset_arguments(parser)
    defaults = TrainConfig(data=DatasetConfig(), output_dir='-', pretrained='-')
    model = parser.add_argument_group('policy')
    model.add_argument('--pretrained', default=None,
                       help='our checkpoint, an upstream VLA-Adapter run directory, or a '
                            'Prismatic VLM directory (prism-qwen25-...; needs --tokenizer_dir '
                            'and the vision towers in <dir>/vision_backbone.safetensors)')
    model.add_argument('--policy_config', default=None, help='PolicyConfig JSON to build from')
    model.add_argument('--tokenizer_dir', default=None,
                       help='Qwen2.5 tokenizer (and, for a Prismatic VLM, the LLM config.json), '
                            "e.g. upstream's pretrained_models/configs")
    model.add_argument('--use_discrete_head', action='store_true')
    model.add_argument('--n_action_bins', type=int, default=defaults.n_action_bins)
    model.add_argument('--use_dual_arm', action='store_true')
    model.add_argument('--normalization_mode', default=defaults.normalization_mode,
                       choices=NORMALIZATION_MODES)
    model.add_argument('--unnorm_key', default=defaults.unnorm_key)
    model.add_argument('--lora_rank', type=int, default=0)
    model.add_argument('--lora_alpha', type=float, default=None)
    model.add_argument('--lora_dropout', type=float, default=0.0)
    run = parser.add_argument_group('run')
    run.add_argument('--output_dir', required=True)
    for name in ('max_steps', 'batch_size', 'grad_accumulation', 'warmup_steps',
                 'num_val_episodes', 'val_every', 'val_batches', 'log_every', 'save_every',
                 'num_workers', 'seed'):
        run.add_argument(f'--{name}', type=int, default=getattr(defaults, name))
    for name in ('learning_rate', 'weight_decay', 'min_lr_ratio', 'max_grad_norm'):
        run.add_argument(f'--{name}', type=float, default=getattr(defaults, name))
    run.add_argument('--lr_schedule', default=defaults.lr_schedule, choices=LR_SCHEDULES)
    run.add_argument('--device', default='auto', choices=DEVICES)
    run.add_argument('--resume', action='store_true',
                     help='continue from the latest checkpoint in --output_dir')
    run.add_argument('--no_augmentation', action='store_true')
    run.add_argument('--no_progress_bar', action='store_true')
    return parser


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``vla-adapter-train`` arguments."""
    names = ('pretrained', 'policy_config', 'tokenizer_dir', 'use_discrete_head',
             'n_action_bins', 'use_dual_arm', 'normalization_mode', 'unnorm_key', 'lora_rank',
             'lora_alpha', 'lora_dropout', 'output_dir', 'max_steps', 'batch_size',
             'grad_accumulation', 'warmup_steps', 'num_val_episodes', 'val_every',
             'val_batches', 'log_every', 'save_every', 'num_workers', 'seed', 'learning_rate',
             'weight_decay', 'min_lr_ratio', 'max_grad_norm', 'lr_schedule', 'device', 'resume')
    return TrainConfig(data=dataset_config_from_args(args),
                       augmentation=AugmentationConfig(enabled=not args.no_augmentation),
                       progress_bar=not args.no_progress_bar,
                       **{name: getattr(args, name) for name in names})
