"""Checkpoints of a run: an inference checkpoint per save, plus the state a resume needs.

``<output_dir>/checkpoints/step_<N>/`` is a complete ``VLAPolicy.from_pretrained`` directory
(LoRA merged) with a ``training_state/`` folder inside:

- ``trainable.safetensors``: the trainable tensors as they are in the training model (LoRA
  unmerged) and every buffer;
- ``optimizer.pt``: optimizer and LR-scheduler state dicts and the RNG states (tensors and plain
  values only, read back with ``torch.load(weights_only=True)``);
- ``trainer_state.json``: the step and the run's TrainConfig.

The frozen weights are not repeated: a resume rebuilds them from the same source and seed.
"""

from __future__ import annotations

import json
from pathlib import Path
import pickle
import re
import shutil

from safetensors.torch import load_file, save_file
import torch

CHECKPOINTS = 'checkpoints'
STATE_DIR = 'training_state'
TRAINABLE_FILE = 'trainable.safetensors'
OPTIMIZER_FILE = 'optimizer.pt'
TRAINER_FILE = 'trainer_state.json'


def step_directory(output_dir: Path, step: int) -> Path:
    """``<output_dir>/checkpoints/step_<step>``."""
    return output_dir / CHECKPOINTS / f'step_{step:07d}'


def latest_resumable(output_dir: Path) -> Path | None:
    """The newest step directory with a complete training state, or None."""
    folder = output_dir / CHECKPOINTS
    if not folder.is_dir():
        return None
    complete = [path for path in folder.glob('step_*')
                if (path / STATE_DIR / TRAINER_FILE).is_file()]
    return max(complete, key=lambda path: int(path.name.removeprefix('step_')), default=None)


def resumable_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and all buffers of ``model``, on the CPU."""
    tensors = {name: param.detach().cpu().contiguous()
               for name, param in model.named_parameters() if param.requires_grad}
    tensors.update({name: buffer.detach().cpu().contiguous()
                    for name, buffer in model.named_buffers()})
    return tensors


def save_training_state(directory: Path, model: torch.nn.Module, optimizer, scheduler,
                        step: int, train_config: dict) -> None:
    """Write ``directory/training_state`` (atomically: a partial folder is renamed at the end)."""
    final = directory / STATE_DIR
    partial = directory / f'{STATE_DIR}.partial'
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(resumable_tensors(model), str(partial / TRAINABLE_FILE))
    rng = {'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        rng['cuda'] = torch.cuda.get_rng_state_all()
    torch.save({'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
                'rng': rng}, partial / OPTIMIZER_FILE)
    (partial / TRAINER_FILE).write_text(json.dumps({'step': step, 'train_config': train_config},
                                                   indent=2))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)


def load_tensor_pickle(path: Path) -> dict:
    """``torch.load(weights_only=True)``; a file it refuses is a ``ValueError`` naming the file.

    Such a file holds Python objects other than tensors and plain values: this package never
    writes one, and loading it would run code from the file, so it is refused, not retried.
    """
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r'GLOBAL ([\w.]+)', str(error))  # torch names the refused global
        detail = f'the global {found.group(1)}' if found else 'content outside the allowed set'
        raise ValueError(f'{path}: refused to load: it holds {detail}, not only tensors and '
                         'plain values; vla-adapter-train never writes such a file, and loading '
                         'it could run code from it (was it replaced?)') from None


def load_training_state(directory: Path, model: torch.nn.Module, optimizer,
                        scheduler) -> tuple[int, dict]:
    """Restore what :func:`save_training_state` wrote; returns (step, saved TrainConfig dict)."""
    folder = directory / STATE_DIR
    tensors = load_file(str(folder / TRAINABLE_FILE), device='cpu')
    expected = resumable_tensors(model)
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))[:5]
        extra = sorted(set(tensors) - set(expected))[:5]
        raise ValueError(f'{folder}: saved tensors do not match the model (missing {missing}, '
                         f'unexpected {extra}); was the run configured differently?')
    model.load_state_dict(tensors, strict=False)
    state = load_tensor_pickle(folder / OPTIMIZER_FILE)
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    torch.set_rng_state(state['rng']['torch'])
    if 'cuda' in state['rng'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['rng']['cuda'])
    trainer = json.loads((folder / TRAINER_FILE).read_text())
    return int(trainer['step']), trainer['train_config']
