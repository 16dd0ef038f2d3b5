"""Fine-tuning at the real VLA-Adapter size: peak memory, step time, what holds the memory.

Random weights (nothing is downloaded), built and stepped by the code of ``vla-adapter-train``
(:mod:`training.trainer`: ``build_run``, ``train_step``; ``build_optimizer``), with 3 cameras, the
dual-arm head and the ALOHA sizes (chunks of 25 x 14-d actions, 14-d proprio). For each mode
(LoRA rank 32 or full fine-tuning), gradient checkpointing off / on and each batch size it
reports the peak memory (CUDA allocated and reserved, or the CPU's peak resident set), the step
time, samples/s and the parts: weights, gradients, optimiser state and activations (the bytes
autograd keeps for the backward pass). The first step of every setting is checked: the loss is
finite, every trainable tensor that received a gradient changed, no frozen tensor changed.

Before a mode is built, its weights + gradients + optimiser state are computed from parameter
counts (meta device); a mode that cannot fit the device's memory is reported, not run.

    python benchmarks/train_step.py --device cuda --deadline_s 420  # every setting, < 8 min
    python benchmarks/train_step.py --device cpu --modes lora --batch_sizes 1 --steps 1
    python benchmarks/train_step.py --tiny                        # the same code, tiny, seconds
    python benchmarks/train_step.py --account_only                # computed memory only
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import itertools
import json
import math
from pathlib import Path
import sys
import tempfile
import time

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.augmentation import AugmentationConfig  # noqa: E402
from training.data_config import DatasetConfig  # noqa: E402
from training.memory_report import (  # noqa: E402
    GIB,
    SavedTensorMeter,
    available_memory,
    checksums,
    computed_memory,
    gradient_recorder,
    optimizer_state_bytes,
    parameter_bytes,
    peak_memory,
    reset_peak,
    step_check,
)
from training.model_setup import (  # noqa: E402
    adapt_policy_config,
    build_optimizer,
    load_policy_source,
    set_trainable,
)
from training.train_config import OPTIMIZERS, TrainConfig  # noqa: E402
from training.trainer import (  # noqa: E402
    DistributedContext,
    RunState,
    TrainingCollate,
    build_run,
    learning_rate_factor,
    resolve_device,
    to_device,
    train_step,
)
from vla_adapter_core.config import (  # noqa: E402
    LLMConfig,
    PolicyConfig,
    ProjectorConfig,
    VisionConfig,
)
from vla_adapter_core.heads import ActionHeadConfig  # noqa: E402
from vla_adapter_core.modeling import VLAAdapterModel  # noqa: E402
from vla_adapter_core.tiny_policies import (  # noqa: E402
    build_tiny_config,
    default_tokenizer_dir,
    tiny_statistics,
)

CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']
CHUNK, ACTION_DIM = 25, 14  # ALOHA: 25 steps of 2 x (6 joints + gripper)
MODES = ('lora', 'full')
FIT_MARGIN = 1.1  # computed need x this must be below the available memory to run a mode
FORWARD_MARGIN = 2.0  # weights x this must be below it to measure one forward pass instead


def policy_config(tiny: bool) -> PolicyConfig:
    """The paper's sizes (or tiny ones) with 3 cameras and the dual-arm ALOHA head."""
    if tiny:
        return build_tiny_config(chunk_size=CHUNK, camera_names=CAMERAS, head_kind='dual_arm',
                                 image_size=56, unnorm_key='default')
    head = ActionHeadConfig(kind='dual_arm', hidden_dim=896, num_blocks=24, chunk_size=CHUNK,
                            action_dim=ACTION_DIM)
    return PolicyConfig(vision=VisionConfig(), llm=LLMConfig(), projector=ProjectorConfig(),
                        action_head=head, camera_names=CAMERAS, proprio_dim=ACTION_DIM)


def train_config(args: argparse.Namespace, folder: Path, mode: str, batch_size: int = 1,
                 checkpointing: bool = False) -> TrainConfig:
    """The TrainConfig vla-adapter-train would get for this setting."""
    data = DatasetConfig(paths=[str(folder / 'no_episodes')], camera_names=CAMERAS,
                         chunk_size=CHUNK)
    return TrainConfig(
        data=data, output_dir=str(folder / 'run'), policy_config=str(folder / 'policy.json'),
        tokenizer_dir=default_tokenizer_dir(), head_kind='dual_arm',
        lora_rank=args.lora_rank if mode == 'lora' else 0, full_finetune=mode == 'full',
        optimizer=args.optimizer, gradient_checkpointing=checkpointing, batch_size=batch_size,
        warmup_steps=0, device=args.device, num_workers=0, progress_bar=False,
        augmentation=AugmentationConfig(enabled=False))


@dataclasses.dataclass
class BenchRun(RunState):
    """The trainer's RunState with the precision chosen on the command line."""

    precision: str = 'auto'  # 'auto': the trainer's (bf16 autocast on CUDA, fp32 on the CPU)

    def autocast(self):
        """bf16 autocast, none (fp32) or the trainer's choice."""
        if self.precision == 'bf16':
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == 'fp32':
            return contextlib.nullcontext()
        return super().autocast()


def parameter_counts(config: TrainConfig) -> tuple[int, int]:
    """(all, trainable) parameters of the run's model, built on the meta device."""
    source = load_policy_source(config)
    with torch.device('meta'):
        model = VLAAdapterModel(adapt_policy_config(source.config, config), vlm_device='meta')
        set_trainable(model, config)
    total = sum(param.numel() for param in model.parameters())
    return total, sum(param.numel() for param in model.parameters() if param.requires_grad)


def account(args: argparse.Namespace, folder: Path) -> list[dict]:
    """Computed bytes of weights, gradients and optimiser state of each mode and optimiser."""
    rows = []
    for mode in MODES:
        total, trainable = parameter_counts(train_config(args, folder, mode))
        for optimizer in OPTIMIZERS:
            parts = computed_memory(total, trainable, optimizer)
            rows.append({'mode': mode, 'optimizer': optimizer, 'parameters': total,
                         'trainable': trainable, **parts})
    return rows


def synthetic_batch(run: RunState, batch_size: int, seed: int = 0) -> dict:
    """A processed training batch of random 224 px images, proprio and action chunks."""
    rng = np.random.default_rng(seed)
    size = run.policy_config.vision.image_size
    samples = [{'images': {name: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                           for name in CAMERAS},
                'proprio': rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                'instruction': 'transfer the cube to the other arm',
                'actions': rng.uniform(-1, 1, (CHUNK, ACTION_DIM)).astype(np.float32),
                'action_mask': np.ones(CHUNK, dtype=bool)} for _ in range(batch_size)]
    return TrainingCollate(run.processor)(samples)


def measure(run: BenchRun, batches, trainable: list, steps: int) -> dict:
    """One checked step (parts measured) then ``steps`` timed steps; peak memory of all."""
    config, device = run.config, run.device
    optimizer = build_optimizer(trainable, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, config))
    seen: dict = {}
    optimizer.register_step_pre_hook(gradient_recorder(run.model, seen))
    reset_peak(device)
    before = checksums(run.model)
    with SavedTensorMeter(run.model) as meter:
        metrics = train_step(run, batches, optimizer, scheduler, trainable)
    check = step_check(run.model, before, checksums(run.model), seen['largest'],
                       metrics['loss'])
    times = []
    for _ in range(steps):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        train_step(run, batches, optimizer, scheduler, trainable)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    step_s = float(np.median(times)) if times else float('nan')
    parts = {'weights': parameter_bytes(run.model), 'gradients': seen['gradients'],
             'optimizer_state': optimizer_state_bytes(optimizer), 'activations': meter.bytes}
    return {'step_s': step_s, 'samples_per_s': config.batch_size / step_s,
            'seconds_per_1000_steps': 1000 * step_s, **parts, **peak_memory(device),
            'check': check}


def release(run: RunState) -> None:
    """Drop gradients and cached blocks between settings (and after an out-of-memory error)."""
    run.model.zero_grad(set_to_none=True)
    gc.collect()
    if run.device.type == 'cuda':
        torch.cuda.empty_cache()


def fit(base: TrainConfig, total: int, trainable: int) -> tuple[str, str]:
    """('step' | 'forward' | 'none', why): what of a mode fits this device (computed).

    'forward': the step does not fit, the weights and one forward pass may (its activations
    are then measured without a backward pass or an optimiser).
    """
    device = resolve_device(base, DistributedContext())
    need = computed_memory(total, trainable, base.optimizer)
    available = available_memory(device)
    if need['total'] * FIT_MARGIN <= available:
        return 'step', ''
    why = (f'weights + gradients + optimiser state need {need["total"] / GIB:.1f} GiB '
           f'(computed), {available / GIB:.1f} GiB available on {device.type}')
    return ('forward' if need['weights'] * FORWARD_MARGIN <= available else 'none'), why


def build_bench_run(args: argparse.Namespace, base: TrainConfig, statistics: dict) -> BenchRun:
    """The trainer's RunState for ``base`` (seeded as trainer.train seeds it), in training mode."""
    torch.manual_seed(base.seed)  # LoRA's initialisation draws from the global generator
    plain = build_run(base, DistributedContext(), None, statistics)
    run = BenchRun(**{item.name: getattr(plain, item.name)
                      for item in dataclasses.fields(RunState)}, precision=args.precision)
    run.model.train()
    return run


def forward_only(run: BenchRun, batches) -> dict:
    """Activations and peak of one forward pass with the graph kept (no backward, no step)."""
    reset_peak(run.device)
    with SavedTensorMeter(run.model) as meter, run.autocast():
        loss, _ = run.loss_module(to_device(next(batches), run.device))
    return {'forward_only': True, 'loss': float(loss.detach()),
            'weights': parameter_bytes(run.model), 'activations': meter.bytes,
            **peak_memory(run.device)}


def run_mode(args: argparse.Namespace, folder: Path, mode: str, statistics: dict) -> list[dict]:
    """Build one mode's model once, then measure each checkpointing x batch-size setting."""
    base = train_config(args, folder, mode)
    total, trainable_count = parameter_counts(base)
    common = {'mode': mode, 'optimizer': args.optimizer, 'parameters': total,
              'trainable': trainable_count}
    fits, why = fit(base, total, trainable_count)
    if fits != 'step':
        print(f'{mode}: step not run: {why}' + ('; one forward pass measured instead'
                                                if fits == 'forward' else ''), flush=True)
        common['skipped'] = f'not run: {why}'
    if fits == 'none':
        return [common]
    if time.monotonic() > args.deadline:
        print(f'{mode}: not built: --deadline_s passed', flush=True)
        return [dict(common, skipped='not started: --deadline_s passed')]
    started = time.perf_counter()
    run = build_bench_run(args, base, statistics)
    common['build_s'] = time.perf_counter() - started
    common['precision'] = 'bf16' if (args.precision == 'bf16' or (
        args.precision == 'auto' and run.device.type == 'cuda')) else 'fp32'
    trainable = [param for param in run.model.parameters() if param.requires_grad]
    rows = []
    for checkpointing in args.checkpointing:
        for batch_size in args.batch_sizes:
            if time.monotonic() > args.deadline:
                print(f'| {mode} | {checkpointing} | {batch_size} | not started: --deadline_s |')
                continue
            config = train_config(args, folder, mode, batch_size, checkpointing == 'on')
            run.model.set_gradient_checkpointing(config.gradient_checkpointing)
            batches = itertools.repeat(synthetic_batch(run, batch_size))
            try:
                result = (forward_only(run, batches) if fits == 'forward' else
                          measure(dataclasses.replace(run, config=config), batches, trainable,
                                  args.steps))
            except torch.OutOfMemoryError:
                result = {'out_of_memory': True}
            release(run)
            rows.append(dict(common, checkpointing=checkpointing, batch_size=batch_size,
                             **result))
            print(format_row(rows[-1]), flush=True)
            if result.get('out_of_memory'):
                break  # larger batches do not fit either
    return rows


def format_row(row: dict) -> str:
    """One markdown table row of a measured setting (GiB)."""
    head = f"| {row['mode']} | {row['checkpointing']} | {row['batch_size']} | "
    if row.get('out_of_memory'):
        return head + 'out of memory |'
    gib = {key: value / GIB for key, value in row.items() if isinstance(value, int)}
    peak = (f"{gib['peak_allocated']:.2f} / {gib['peak_reserved']:.2f}"
            if 'peak_allocated' in row else f"{gib['peak_rss']:.2f} (CPU RSS)")
    if row.get('forward_only'):
        return (head + f"{peak} (forward only) | - | - | {gib['weights']:.2f} | - | - | "
                f"{gib['activations']:.3f} | loss {row['loss']:.4f}, no step (does not fit) |")
    check = row['check']
    verdict = (f"ok (all {check['changed_with_gradient']} of {check['trainable_tensors']} "
               'trainable tensors with a gradient above 1e-6 changed, no frozen one)'
               if check['ok'] else f'FAILED {check}')
    return (head + f"{peak} | {row['step_s']:.3f} | {row['samples_per_s']:.2f} | "
            f"{gib['weights']:.2f} | {gib['gradients']:.3f} | {gib['optimizer_state']:.3f} | "
            f"{gib['activations']:.3f} | loss {check['loss']:.4f}, {verdict} |")


TABLE_HEAD = ('| mode | checkpointing | batch | peak GiB (allocated / reserved) | step s | '
              'samples/s | weights GiB | gradients GiB | optimiser GiB | activations GiB | '
              'first step |\n|' + ' --- |' * 11)


def print_account(rows: list[dict]) -> None:
    """The computed memory of each mode and optimiser."""
    print('\ncomputed from parameter counts (fp32 weights; GiB):')
    print('| mode | optimizer | parameters | trainable | weights | gradients | optimiser | '
          'total |\n|' + ' --- |' * 8)
    for row in rows:
        print(f"| {row['mode']} | {row['optimizer']} | {row['parameters'] / 1e6:.1f} M | "
              f"{row['trainable'] / 1e6:.2f} M | " + ' | '.join(
                  f'{row[key] / GIB:.2f}' for key in ('weights', 'gradients', 'optimizer_state',
                                                      'total')) + ' |')


def parse_args(argv=None) -> argparse.Namespace:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--batch_sizes', nargs='+', type=int, default=None,
                        help='default: 1 4 8 16 (--tiny: 1 2)')
    parser.add_argument('--checkpointing', nargs='+', choices=('off', 'on'),
                        default=['off', 'on'])
    parser.add_argument('--optimizer', choices=OPTIMIZERS, default='adamw')
    parser.add_argument('--precision', choices=('auto', 'bf16', 'fp32'), default='auto',
                        help="autocast: 'auto' as vla-adapter-train (bf16 on CUDA, fp32 on CPU)")
    parser.add_argument('--lora_rank', type=int, default=32)
    parser.add_argument('--steps', type=int, default=None,
                        help='timed steps after the checked one (default 3; --tiny 1)')
    parser.add_argument('--tiny', action='store_true',
                        help='tiny model, same code path: a CPU check that runs in seconds')
    parser.add_argument('--account_only', action='store_true',
                        help='print the computed memory table only (no model is built)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--output', type=Path, default=None, help='write the rows as JSON')
    parser.add_argument('--deadline_s', type=float, default=None,
                        help="start no setting after this many seconds (a lent GPU's budget)")
    args = parser.parse_args(argv)
    args.deadline = (time.monotonic() + args.deadline_s if args.deadline_s is not None
                     else math.inf)
    if args.batch_sizes is None:
        args.batch_sizes = [1, 2] if args.tiny else [1, 4, 8, 16]
    if args.steps is None:
        args.steps = 1 if args.tiny else 3
    return args


def main(argv=None) -> int:
    """Account, measure, print the table; write JSON with --output."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    statistics = tiny_statistics(ACTION_DIM, ACTION_DIM, 'default')
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        (folder / 'policy.json').write_text(json.dumps(policy_config(args.tiny).to_dict()))
        accounted = account(args, folder)
        print_account(accounted)
        rows = []
        if not args.account_only:
            print(f'\nmeasured ({"tiny" if args.tiny else "real size"}, {args.optimizer}):')
            print(TABLE_HEAD, flush=True)
            for mode in args.modes:
                rows.extend(run_mode(args, folder, mode, statistics))
    if args.output:
        args.output.write_text(json.dumps({'computed': accounted, 'measured': rows}, indent=1,
                                          default=str))
    failed = [row for row in rows if 'check' in row and not row['check']['ok']]
    return 1 if failed else 0


if __name__ == '__main__':
    raise SystemExit(main())
