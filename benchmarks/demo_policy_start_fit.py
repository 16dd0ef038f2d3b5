"""Issue 19: does the demo policy memorise the first chunk of its own training episodes.

At an episode's first step the arm state is the same for every cube; only the cameras say where
the cube is, and the labels (the recorded first chunk) follow it. This trains a fresh model of a
checkpoint's architecture on those first steps alone and prints, every ``--report_every``
steps, how far its chunks spread across the episodes against the labels' spread (a model that
sees the cube reaches the labels' spread and a gain near 1), then how sensitive the trained
head is to its inputs:

    .venv/bin/python benchmarks/demo_policy_start_fit.py --checkpoint RUN/final \
        --data demos_clean demos_disturbed --steps 150 [--gate_init 1.5] [--lr 5e-4] \
        [--train head|all] [--init upstream|open]

``--checkpoint`` gives the architecture, processor and statistics (its weights are not used).
``--init open``: LayerScale 0.1 and random action queries instead of upstream's 1e-5 and zeros.
``--aux_cube W``: trains with vla-adapter-train's auxiliary loss (its LossModule) on the cube's
x, y from the folders' aux_targets.json (vla-adapter-sim-demos writes them): W x the mean
squared error of a linear readout from the task states: does a loss that makes the towers encode
the cube raise the chunks' spread? The batch's readout R^2 is reported as ``cube_r2_batch``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']
INSTRUCTION = 'transfer the red cube to the other arm'


def spread_report(output, target) -> dict:
    """Across-episode spread (RMS of per-dimension std) of chunks (E, T, A) and their gain."""
    out_dev = output - output.mean(0)
    target_dev = target - target.mean(0)
    return {
        'spread': float(out_dev.std(0).pow(2).mean().sqrt()) if len(output) > 1 else 0.0,
        'label_spread': float(target_dev.std(0).pow(2).mean().sqrt()) if len(target) > 1 else 0.0,
        'gain': float((out_dev * target_dev).sum() / (target_dev ** 2).sum().clamp_min(1e-12)),
        'l1': float((output - target).abs().mean()),
    }


def head_sensitivity(model, batch: dict, seed: int = 0) -> dict:
    """RMS change of the head's output when its inputs get noise of their own RMS size."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        outputs = model.forward_detailed(batch)
        base = outputs.head_output  # (B, T, A)

        def noisy(tensor):
            noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
            return tensor + noise * tensor.std()

        inputs = (outputs.task_states, outputs.adapter_states, outputs.proprio_token)
        changed = {
            'task_states': (noisy(inputs[0]), inputs[1], inputs[2]),
            'adapter_states': (inputs[0], noisy(inputs[1]), inputs[2]),
        }
        if inputs[2] is not None:
            changed['proprio_token'] = (inputs[0], inputs[1], noisy(inputs[2]))
        report = {'output_rms': float(base.pow(2).mean().sqrt())}
        for name, args in changed.items():
            report[f'{name}_noise_output_change_rms'] = float(
                (model.action_head(*args) - base).pow(2).mean().sqrt())
    return report


def fresh_model(policy_config, gate_init: float | None, init: str, seed: int):
    """A model of the checkpoint's architecture, initialised as vla-adapter-train would."""
    import torch

    from training.model_setup import PolicySource, build_model

    source = PolicySource(policy_config, None, None, 'fresh')
    model, _ = build_model(policy_config, source, None, seed, task_gate_init=gate_init)
    if init == 'open':
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name.endswith(('ls1.gamma', 'ls2.gamma')):
                    parameter.fill_(0.1)
                elif name == 'action_queries.weight':
                    parameter.normal_(0.0, 1.0)
    return model


def set_trainable(model, train: str) -> list:
    """'head': towers, projector, queries, proprio projector and head (recipe E); 'all' too."""
    model.freeze_vlm()
    modules = [model.vision, model.projector, model.action_queries, model.proprio_projector,
               model.action_head]
    for module in modules:
        if module is not None:
            module.requires_grad_(True)
    if train == 'all':
        model.requires_grad_(True)
    for parameter in model.vision.unused_parameters():
        parameter.requires_grad_(False)
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def first_step_batch(policy, args: argparse.Namespace) -> tuple[dict, list]:
    """(the processor's batch of every episode's step 0 with its first chunk, the episodes)."""
    from training.data_config import DatasetConfig
    from training.dataset import load_episodes

    chunk = policy.config.action_head.chunk_size
    config = DatasetConfig(paths=[str(path) for path in args.data], robot=args.robot,
                           camera_names=list(policy.config.camera_names), chunk_size=chunk,
                           action_source='topic', action_topic='/commanded_action',
                           jpeg_draft_size=0)
    episodes = load_episodes(config)
    observations = [{'images': episode.read_images(0), 'proprio': episode.proprio[0],
                     'instruction': args.instruction} for episode in episodes]
    labels = np.stack([episode.actions[:chunk] for episode in episodes])  # (E, T, A)
    return policy.processor(observations, actions=labels,
                            action_mask=np.ones(labels.shape[:2], dtype=bool)), episodes


def add_cube_targets(batch: dict, episodes: list, folders: list[Path]) -> None:
    """The episodes' z-scored cube x, y from the folders' aux_targets.json, as the trainer's."""
    import torch

    from training.aux_targets import AUX_TARGETS_FILE, AuxTargets

    targets = AuxTargets([str(folder / AUX_TARGETS_FILE) for folder in folders])
    found = [targets.for_source(episode.source) for episode in episodes]
    missing = [str(episode.source) for episode, entry in zip(episodes, found) if entry is None]
    if missing:
        raise ValueError(f"no cube target for {missing[:3]} in the folders' aux_targets.json")
    batch['aux_target'] = torch.as_tensor(np.stack([target for target, _ in found]))  # (E, 2)
    batch['aux_mask'] = torch.ones(len(found), dtype=torch.bool)  # step 0: before any grasp


def run(args: argparse.Namespace) -> list[dict]:
    import torch

    from training.trainer import LossModule
    from vla_adapter_core.policy import VLAPolicy

    torch.set_num_threads(args.threads)
    policy = VLAPolicy.from_pretrained(str(args.checkpoint), device='cpu')
    batch, recorded = first_step_batch(policy, args)
    model = fresh_model(policy.config, args.gate_init, args.init, args.seed)
    parameters = set_trainable(model, args.train)
    loss_module = LossModule(model, 2 if args.aux_cube > 0 else 0, args.aux_cube)
    if args.aux_cube > 0:
        add_cube_targets(batch, recorded, args.data)
        parameters += list(loss_module.aux_readout.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(args.seed)
    episodes = batch['actions'].shape[0]
    rows, started = [], time.time()
    model.train()
    for step in range(1, args.steps + 1):
        chosen = torch.randperm(episodes, generator=generator)[:args.batch_size]
        loss, metrics = loss_module({key: value[chosen] for key, value in batch.items()})
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        if step % args.report_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                output = model(batch)  # (E, T, A) normalised
            model.train()
            row = {'step': step, 'loss': float(loss), 'seconds': round(time.time() - started, 1),
                   **spread_report(output, batch['actions']),
                   **({'cube_r2_batch': 1.0 - float(metrics['aux_loss'])}  # targets' var 1
                      if 'aux_loss' in metrics else {})}
            rows.append(row)
            print(json.dumps(row), flush=True)
    model.eval()
    rows.append({'head_sensitivity': head_sensitivity(model, batch)})
    print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', type=Path, required=True)
    parser.add_argument('--data', type=Path, nargs='+', required=True)
    parser.add_argument('--robot', default='aloha_sim')
    parser.add_argument('--instruction', default=INSTRUCTION)
    parser.add_argument('--steps', type=int, default=150)
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=5e-4)
    parser.add_argument('--gate_init', type=float, default=None)
    parser.add_argument('--init', choices=['upstream', 'open'], default='upstream')
    parser.add_argument('--train', choices=['head', 'all'], default='head')
    parser.add_argument('--aux_cube', type=float, default=0.0)
    parser.add_argument('--report_every', type=int, default=25)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    run(parser.parse_args(argv))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
