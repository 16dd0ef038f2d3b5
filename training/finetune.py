"""``vla-adapter-train``: the command line of fine-tuning (the loop is :mod:`training.trainer`).

One GPU, several GPUs (``torchrun --nproc_per_node N``), or a CPU; see :mod:`training.trainer`.
The settings are parsed and the input files checked before the training machinery is imported
(transformers, peft, timm and tensorboard take about 7 s to import on a 2-core machine), so a
mistyped ``--policy_config`` or ``--tokenizer_dir`` is reported at once: one line, exit code 2.

The training module's names (``train``, ``DistributedContext``, ``TrainingCollate``, ...) stay
importable from here; they are loaded on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
import importlib
from typing import Any

from training.config_cli import run_config_main
from training.train_config import TrainConfig, build_parser

TRAINER_MODULE = 'training.trainer'


def __getattr__(name: str) -> Any:
    """The training module's public names, imported on first access (PEP 562)."""
    if name.startswith('__'):
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    trainer = importlib.import_module(TRAINER_MODULE)
    try:
        return getattr(trainer, name)
    except AttributeError:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}') from None


def run_checked(config: TrainConfig) -> int:
    """Check the input paths, then import the trainer and run it."""
    config.check_input_paths()
    trainer = importlib.import_module(TRAINER_MODULE)
    return trainer.run_training(config)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point ``vla-adapter-train`` (single process or under torchrun).

    An error in the settings, the data or a checkpoint is one line and exit code 2
    (``--debug``: with the traceback).
    """
    return run_config_main(build_parser(), TrainConfig, argv, run_checked)


if __name__ == '__main__':
    raise SystemExit(main())
