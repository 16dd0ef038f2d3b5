"""Fine-tune a VLA-Adapter policy on recorded episodes (the loop of ``vla-adapter-train``).

One GPU, several GPUs (``torchrun --nproc_per_node N``: DDP with a DistributedSampler, rank 0 logs
and saves) or a CPU (fp32; bf16 autocast on CUDA). Reads top to bottom: data, model, optimiser,
resume, the loop (gradient accumulation and clipping, periodic validation on held-out episodes,
tensorboard + tqdm, checkpoints), the final checkpoint that ``VLAPolicy.from_pretrained`` loads.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass, replace
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from training.augmentation import ImageAugmenter
from training.aux_targets import AuxTargets
from training.compute_adaptive_bins import compute_bins
from training.compute_dataset_statistics import compute_statistics
from training.corrections import CorrectionSampling
from training.dataset import EpisodeDataset, SeededSampler, load_episodes, split_episodes
from training.lerobot_episodes import stats_differences
from training.model_setup import (
    adapt_policy_config,
    build_model,
    build_optimizer,
    export_model,
    load_policy_source,
    replaced_head_note,
    set_trainable,
)
from training.train_config import TrainConfig
from training.train_state import (
    CHECKPOINTS,
    latest_resumable,
    load_training_state,
    save_training_state,
    step_directory,
)
from vla_adapter_core.checkpoint import save_checkpoint
from vla_adapter_core.config import PolicyConfig
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.normalization import Normalizer
from vla_adapter_core.processor import VLAProcessor
from vla_adapter_core.provenance import git_revision

FINAL_DIR = 'final'
METRICS_FILE = 'metrics.jsonl'
TRAINING_RECORD = 'training_record.json'  # in every checkpoint: step and git revision
# The resolved TrainConfig, in the run directory and every checkpoint (``--config`` reads it).
TRAIN_CONFIG_FILE = 'train_config.json'


@dataclass
class DistributedContext:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and saves."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True under torchrun / several processes."""
        return self.world_size > 1


class TrainingCollate:
    """Raw samples -> model batch through the shared processor (runs in the loader workers)."""

    def __init__(self, processor: VLAProcessor) -> None:
        self.processor = processor

    def __call__(self, samples: list[dict]) -> dict:
        actions = np.stack([sample['actions'] for sample in samples])  # (B, T, A)
        mask = np.stack([sample['action_mask'] for sample in samples])  # (B, T)
        batch = self.processor(samples, actions=actions, action_mask=mask)
        if 'aux_target' in samples[0]:
            batch['aux_target'] = torch.as_tensor(
                np.stack([sample['aux_target'] for sample in samples]))  # (B, K)
            batch['aux_mask'] = torch.tensor([bool(s['aux_mask']) for s in samples])  # (B,)
        return batch


class LossModule(torch.nn.Module):
    """The model's own ``compute_loss`` as a forward, so DDP's gradient hooks see it.

    With ``aux_size`` > 0 it adds ``aux_weight`` x the mean squared error of a linear readout
    of the auxiliary targets from the task states (averaged over blocks and tokens), on the
    samples whose ``aux_mask`` is set. The readout trains with the model and is resumed with
    it, but is not part of the checkpoint.
    """

    def __init__(self, model: VLAAdapterModel, aux_size: int = 0, aux_weight: float = 0.0
                 ) -> None:
        super().__init__()
        self.model = model
        self.aux_weight = aux_weight
        self.aux_readout = (torch.nn.Linear(model.config.llm.hidden_size, aux_size)
                            if aux_size > 0 else None)

    @property
    def resumable(self) -> torch.nn.Module:
        """What a resumable checkpoint holds: the model, and the readout when there is one."""
        return self if self.aux_readout is not None else self.model

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """``(loss, metrics)`` of the batch (see ``VLAAdapterModel.compute_loss``)."""
        if self.aux_readout is None or 'aux_target' not in batch:
            return self.model.compute_loss(batch)
        outputs = self.model.forward_detailed(batch)
        loss, metrics = self.model.head_loss(outputs.head_output, batch)
        pooled = outputs.task_states.mean(dim=(1, 2))  # (B, N, K_t, D) -> (B, D)
        error = (self.aux_readout(pooled) - batch['aux_target'].to(pooled.dtype)).pow(2)
        mask = batch['aux_mask'].to(pooled.dtype)  # (B,)
        aux = (error.mean(dim=1) * mask).sum() / mask.sum().clamp_min(1.0)
        total = loss + self.aux_weight * aux
        return total, dict(metrics, loss=total.detach(), action_loss=loss.detach(),
                           aux_loss=aux.detach())


def resolve_device(config: TrainConfig, context: DistributedContext) -> torch.device:
    """'auto' -> this rank's CUDA device when there is one, else the CPU."""
    if config.device == 'cpu' or (config.device == 'auto' and not torch.cuda.is_available()):
        return torch.device('cpu')
    if not torch.cuda.is_available():
        raise ValueError("TrainConfig.device='cuda' but no CUDA device is available")
    return torch.device('cuda', context.local_rank)


def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine / linear decay to ``min_lr_ratio`` (or constant)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == 'constant':
        return 1.0
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    shape = (0.5 * (1 + math.cos(math.pi * progress)) if config.lr_schedule == 'cosine'
             else 1 - progress)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * shape


def to_device(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a batch (non-blocking from pinned memory)."""
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def batch_stream(loader: DataLoader, sampler: SeededSampler, start_batch: int,
                 batches_per_epoch: int, batch_size: int) -> Iterator[dict]:
    """Endless batches, starting ``start_batch`` batches into the run (a resume point)."""
    epoch, offset = divmod(start_batch, batches_per_epoch)
    while True:
        sampler.set_epoch(epoch, skip=offset * batch_size)
        for index, batch in enumerate(loader):
            if index + offset >= batches_per_epoch:
                break
            yield batch
        epoch, offset = epoch + 1, 0


@dataclass
class RunState:
    """What the training loop works with."""

    config: TrainConfig
    context: DistributedContext
    device: torch.device
    policy_config: PolicyConfig
    model: torch.nn.Module  # VLAAdapterModel (unwrapped)
    loss_module: torch.nn.Module  # LossModule of the model, inside DDP when distributed
    tokenizer: object
    statistics: dict
    processor: VLAProcessor  # the inference processor (centre crop); holds the one Normalizer
    output_dir: Path
    aux_targets: AuxTargets | None  # the auxiliary targets' files, read once (aux_weight > 0)

    @property
    def resumable(self) -> torch.nn.Module:
        """The module whose trainable tensors a resumable checkpoint holds (see LossModule)."""
        inner = getattr(self.loss_module, 'module', self.loss_module)  # DDP wraps it
        return inner.resumable

    def autocast(self):
        """bf16 autocast on CUDA; nothing (fp32) on the CPU."""
        if self.device.type == 'cuda':
            return torch.autocast('cuda', dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def normalizer(self) -> Normalizer:
        """The processor's normaliser (the dataset statistics of this run)."""
        return self.processor.normalizer


def prepare_data(config: TrainConfig, context: DistributedContext):
    """Episodes (validated), split, statistics over all of them, bins for the discrete head."""
    if context.enabled and not context.is_main:
        torch_dist.barrier()  # rank 0 aligns and caches rosbag episodes first
    episodes = load_episodes(config.data)
    if context.enabled and context.is_main:
        torch_dist.barrier()
    train_episodes, val_episodes = split_episodes(episodes, config.num_val_episodes, config.seed)
    statistics = compute_statistics(episodes, config.unnorm_key)
    if context.is_main:  # ours are used; say where a LeRobot dataset's own statistics differ
        for line in stats_differences(episodes):
            print(f'note: {line}')
    bins = (compute_bins(episodes, config.n_action_bins) if config.head_kind == 'discrete'
            else None)
    return train_episodes, val_episodes, statistics, bins


def build_run(config: TrainConfig, context: DistributedContext, bins,
              statistics: dict) -> RunState:
    """Policy config, model (frozen VLM, optional LoRA), device placement and DDP."""
    source = load_policy_source(config)
    policy_config = adapt_policy_config(source.config, config)
    model, fresh = build_model(policy_config, source, bins, config.seed,
                               config.task_gate_init, config.vision_position_init)
    trainable = set_trainable(model, config)
    device = resolve_device(config, context)
    model.to(device)
    if context.is_main:
        count = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f'policy from {source.description}: {len(trainable)} trainable tensors '
              f'({count:,} values); freshly initialised: {len(fresh)} tensors')
        note = replaced_head_note(source, config.head_kind)
        if note:
            print(f'note: {note}')
    aux_targets = AuxTargets(config.aux_targets) if config.aux_weight > 0 else None
    loss_module = LossModule(model, aux_targets.size if aux_targets else 0,
                             config.aux_weight).to(device)
    if context.enabled:
        loss_module = DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == 'cuda' else None)
    processor = VLAProcessor.from_config(policy_config, source.tokenizer, statistics)
    return RunState(config, context, device, policy_config, model, loss_module,
                    source.tokenizer, statistics, processor, Path(config.output_dir), aux_targets)


def make_loaders(run: RunState, train_episodes, val_episodes):
    """Training loader (augmented, DistributedSampler order) and validation loader (fixed)."""
    config = run.config
    augmenter = (ImageAugmenter(config.augmentation, run.policy_config.vision.image_size)
                 if config.augmentation.enabled else None)
    corrections = CorrectionSampling(config.data.takeover_samples,
                                     config.data.correction_context_steps)
    train_set = EpisodeDataset(train_episodes, config.data.chunk_size, augmenter,
                               run.policy_config.processor.camera_crops, config.start_steps,
                               config.start_repeat, config.proprio_noise_std,
                               replace(corrections, repeat=config.correction_repeat),
                               run.aux_targets)
    if run.context.is_main and run.aux_targets is not None:
        with_target = sum(entry is not None for entry in train_set.aux_by_episode)
        print(f'auxiliary targets {run.aux_targets.names}: {with_target} of '
              f'{len(train_set.episodes)} training episodes')
        if with_target == 0:
            raise ValueError(f'TrainConfig.aux_targets={config.aux_targets}: no training '
                             "episode is named in them (by its path from the file's folder)")
    if run.context.is_main and train_set.correction_samples:
        print(f'training samples: {len(train_set)}, of which {train_set.correction_samples} '
              f'corrections (x{config.correction_repeat}) from takeover recordings')
    sampler = SeededSampler(len(train_set), run.context.world_size, run.context.rank,
                            shuffle=True, seed=config.seed, drop_last=run.context.enabled)
    batches_per_epoch = sampler.samples_per_epoch // config.batch_size
    if batches_per_epoch == 0:
        raise ValueError(f'TrainConfig.batch_size={config.batch_size}: larger than the '
                         f'{sampler.samples_per_epoch} training samples per process')
    collate = TrainingCollate(VLAProcessor.from_config(
        run.policy_config, run.tokenizer, run.statistics,
        center_crop=not config.augmentation.enabled,  # the augmentation crops at random
        camera_crop=False))  # the training set cut the camera crops before augmenting
    loader_options = {'num_workers': config.num_workers, 'pin_memory': run.device.type == 'cuda',
                      'persistent_workers': config.num_workers > 0,
                      'generator': torch.Generator().manual_seed(config.seed)}
    train_loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                              collate_fn=collate, drop_last=True, **loader_options)
    val_loader = None
    if val_episodes and run.context.is_main:  # rank 0 validates
        val_set = EpisodeDataset(val_episodes, config.data.chunk_size, None,
                                 corrections=corrections)
        val_sampler = SeededSampler(len(val_set), shuffle=True, seed=config.seed + 1)
        val_collate = TrainingCollate(run.processor)
        val_loader = DataLoader(val_set, batch_size=config.batch_size, sampler=val_sampler,
                                collate_fn=val_collate, **loader_options)
    return train_loader, sampler, batches_per_epoch, val_loader


@torch.no_grad()
def evaluate(run: RunState, loader: DataLoader) -> dict[str, float]:
    """Loss, L1 (normalised, raw, raw per joint) and bin accuracy on held-out episodes."""
    model = run.model
    model.eval()
    sums: dict[str, float] = {}
    joint_error = np.zeros(run.policy_config.action_dim)
    steps = 0.0
    batches = 0
    for batch in loader:
        if batches >= run.config.val_batches:
            break
        batch = to_device(batch, run.device)
        with run.autocast():
            loss, metrics = model.compute_loss(batch)
            predicted = model.predict_actions(batch)  # (B, T, A), the head's output space
        raw_predicted, normalized = run.normalizer.actions_from_head(
            predicted.float().cpu().numpy(), model.action_head.output_space)
        mask = batch['action_mask'].cpu().numpy()  # (B, T)
        raw_target = batch['raw_actions'].cpu().numpy()
        norm_error = np.abs(normalized - batch['actions'].cpu().numpy())[mask]  # (n, A)
        raw_error = np.abs(raw_predicted - raw_target)[mask]  # (n, A)
        for name, value in dict(metrics, loss=loss, l1=norm_error.sum() / max(1, norm_error.size),
                                l1_raw=raw_error.sum() / max(1, raw_error.size)).items():
            sums[name] = sums.get(name, 0.0) + float(value)
        joint_error += raw_error.sum(axis=0)
        steps += raw_error.shape[0]
        batches += 1
    model.train()
    results = {name: total / max(1, batches) for name, total in sums.items()}
    results.update({f'l1_raw_joint_{i}': float(e) / max(1.0, steps)
                    for i, e in enumerate(joint_error)})
    return results


def write_train_config(config: TrainConfig, directory: Path) -> None:
    """The resolved config as ``train_config.json`` (readable, and a valid ``--config`` file)."""
    (directory / TRAIN_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + '\n')


def save_run_checkpoint(run: RunState, directory: Path, step: int) -> None:
    """An inference checkpoint (LoRA merged) in ``directory`` (rank 0), with the run's record."""
    to_save = (export_model(run.model, run.policy_config) if run.config.lora_rank > 0
               else run.model)
    save_checkpoint(directory, to_save, run.policy_config, run.statistics, run.tokenizer)
    record = {'step': step, 'git_revision': git_revision()}
    (directory / TRAINING_RECORD).write_text(json.dumps(record, indent=2))
    write_train_config(run.config, directory)


class MetricsLog:
    """tensorboard scalars plus ``metrics.jsonl`` (rank 0); a resume drops the later entries."""

    def __init__(self, output_dir: Path, start_step: int, enabled: bool) -> None:
        self.enabled = enabled
        self.path = output_dir / METRICS_FILE
        self.writer = None
        if not enabled:
            return
        if self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines()
                    if json.loads(line)['step'] <= start_step]
            self.path.write_text(''.join(line + '\n' for line in kept))
        self.writer = SummaryWriter(str(output_dir / 'tensorboard'), purge_step=start_step + 1)

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        """Log ``values`` under ``split/`` at ``step``."""
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(f'{split}/{name}', value, step)
        with self.path.open('a') as handle:
            handle.write(json.dumps({'step': step, 'split': split, **values}) + '\n')

    def close(self) -> None:
        """Flush tensorboard."""
        if self.writer is not None:
            self.writer.close()


def reduce_mean(values: dict[str, float], context: DistributedContext,
                device: torch.device) -> dict[str, float]:
    """Average logged scalars over the processes."""
    if not context.enabled:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[name] for name in names], device=device)
    torch_dist.all_reduce(tensor)
    return {name: float(v) / context.world_size for name, v in zip(names, tensor.tolist())}


def train_step(run: RunState, batches: Iterator[dict], optimizer, scheduler,
               trainable: list[torch.nn.Parameter]) -> dict[str, float]:
    """One optimiser step over ``grad_accumulation`` micro-batches; returns its metrics."""
    accumulation = run.config.grad_accumulation
    totals: dict[str, float] = {}
    for micro in range(accumulation):
        batch = to_device(next(batches), run.device)
        last = micro == accumulation - 1
        no_sync = run.loss_module.no_sync if run.context.enabled and not last else None
        with no_sync() if no_sync else contextlib.nullcontext():
            with run.autocast():
                loss, metrics = run.loss_module(batch)  # the model's compute_loss
            (loss / accumulation).backward()
        for name, value in metrics.items():
            totals[name] = totals.get(name, 0.0) + float(value) / accumulation
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, run.config.max_grad_norm)
    learning_rate = scheduler.get_last_lr()[0]  # the rate this step uses
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return dict(totals, grad_norm=float(grad_norm), lr=learning_rate)


def resume_if_asked(run: RunState, optimizer, scheduler) -> int:
    """Restore the latest checkpoint when ``--resume``; returns the step to continue from."""
    if not run.config.resume:
        return 0
    directory = latest_resumable(run.output_dir)
    if directory is None:
        if run.context.is_main:
            print(f'--resume: no checkpoint in {run.output_dir}; starting from step 0')
        return 0
    step, saved = load_training_state(directory, run.resumable, optimizer, scheduler)
    differences = run.config.differences(TrainConfig.from_dict(saved))
    if differences:
        raise ValueError(f'--resume: {directory} was trained with different settings: '
                         f'{differences}')
    if run.context.is_main:
        print(f'resumed from {directory} at step {step}')
    return step


@dataclass
class TrainResult:
    """Where the run ended.

    The last step, the final checkpoint (None when stopped early) and this process's model.
    """

    step: int
    final_checkpoint: Path | None
    model: torch.nn.Module


def train(config: TrainConfig, context: DistributedContext | None = None,
          stop_at_step: int | None = None) -> TrainResult:
    """Run the fine-tuning (rank 0 writes the checkpoints).

    ``stop_at_step`` ends the run early after that step with a resumable checkpoint, as an
    interruption (a job's time limit) would; ``--resume`` continues it on the same loss curve.
    """
    context = context or DistributedContext()
    output_dir = Path(config.output_dir)
    if not config.resume and any((output_dir / name).exists()
                                 for name in (METRICS_FILE, CHECKPOINTS, FINAL_DIR)):
        raise ValueError(f'TrainConfig.output_dir={config.output_dir!r} already holds a run: '
                         'pass --resume to continue it or choose another directory')
    torch.manual_seed(config.seed + context.rank)
    train_episodes, val_episodes, statistics, bins = prepare_data(config, context)
    run = build_run(config, context, bins, statistics)
    loader, sampler, batches_per_epoch, val_loader = make_loaders(run, train_episodes,
                                                                  val_episodes)
    trainable = [param for param in run.resumable.parameters() if param.requires_grad]
    optimizer = build_optimizer(trainable, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, config))
    start = resume_if_asked(run, optimizer, scheduler)
    if context.is_main:
        run.output_dir.mkdir(parents=True, exist_ok=True)
        write_train_config(config, run.output_dir)
    log = MetricsLog(run.output_dir, start, context.is_main)
    batches = batch_stream(loader, sampler, start * config.grad_accumulation,
                           batches_per_epoch, config.batch_size)
    progress = tqdm(total=config.max_steps, initial=start, desc='train',
                    disable=not (context.is_main and config.progress_bar))
    if start == 0 and val_loader is not None and context.is_main:
        log.write(0, 'val', evaluate(run, val_loader))
    last = config.max_steps if stop_at_step is None else min(stop_at_step, config.max_steps)
    for step in range(start + 1, last + 1):
        metrics = train_step(run, batches, optimizer, scheduler, trainable)
        if step % config.log_every == 0 or step == config.max_steps:
            metrics = reduce_mean(metrics, context, run.device)
            log.write(step, 'train', metrics)
            progress.set_postfix(loss=f'{metrics["loss"]:.4f}')
        progress.update(1)
        if context.is_main and val_loader is not None and (
                step % config.val_every == 0 or step == config.max_steps):
            log.write(step, 'val', evaluate(run, val_loader))
        if step % config.save_every == 0 or step == last:
            if context.is_main:
                directory = step_directory(run.output_dir, step)
                save_run_checkpoint(run, directory, step)
                save_training_state(directory, run.resumable, optimizer, scheduler, step,
                                    config.to_dict())
            if context.enabled:
                torch_dist.barrier()
    progress.close()
    log.close()
    if last < config.max_steps:
        return TrainResult(last, None, run.model)
    final = run.output_dir / FINAL_DIR
    if context.is_main:
        save_run_checkpoint(run, final, last)
    if context.enabled:
        torch_dist.barrier()
    return TrainResult(last, final, run.model)


def context_from_environment(environ: dict) -> DistributedContext:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (read only by the CLI entry point)."""
    return DistributedContext(rank=int(environ.get('RANK', 0)),
                              world_size=int(environ.get('WORLD_SIZE', 1)),
                              local_rank=int(environ.get('LOCAL_RANK', 0)))


def run_training(config: TrainConfig) -> int:
    """``train`` in this process (one rank under torchrun); prints the final checkpoint."""
    context = context_from_environment(dict(os.environ))
    if context.enabled:
        use_nccl = config.device != 'cpu' and torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(context.local_rank)
        torch_dist.init_process_group('nccl' if use_nccl else 'gloo')
    try:
        result = train(config, context)
    finally:
        if context.enabled:
            torch_dist.destroy_process_group()
    if context.is_main:
        print(f'final checkpoint: {result.final_checkpoint}')
    return 0
