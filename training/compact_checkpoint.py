"""`vla-adapter-compact-checkpoint`: a trained checkpoint with its frozen tensors in bfloat16.

A run that freezes the VLM (the default recipe, and every from-scratch demo policy) saves the
untouched LLM and vision weights in float32 beside the trained ones; for a small policy the
frozen 151,936-row vocabulary embedding alone is most of the file. The copy written here keeps
every tensor the run trained in float32 and stores the ones it froze in bfloat16 (upstream's
own storage type), which halves them; ``--tensors all`` rounds the trained ones too. Which
tensors were frozen is read from the checkpoint's ``train_config.json`` through the trainer's
own freezing rule (``model_setup.set_trainable``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
import shutil
import sys

from safetensors import safe_open
from safetensors.torch import load_file, save_file
import torch

from training.config_cli import build_config_parser, option, require_option, run_config_main
from training.model_setup import set_trainable
from training.train_config import TrainConfig
from training.trainer import TRAIN_CONFIG_FILE
from vla_adapter_core.checkpoint import WEIGHTS_FILE, read_json
from vla_adapter_core.policy import VLAPolicy

PROG = 'vla-adapter-compact-checkpoint'
COMPACT_DTYPE = torch.bfloat16  # upstream's checkpoints store the VLM in bfloat16 too
COMPACT_SCOPES = ('frozen', 'all')
LLM_PREFIX = 'llm.'


@dataclass(frozen=True)
class CompactConfig:
    """What `vla-adapter-compact-checkpoint` reads and writes (the fields are its command line)."""

    checkpoint: str = option(metavar='DIR', help='a checkpoint written by vla-adapter-train (it '
                                                 f'carries {TRAIN_CONFIG_FILE})')
    # A new folder: the source stays as training left it.
    output_dir: str = option(metavar='DIR', help='where the compact copy goes (must not exist)')
    # 'all' rounds the trained tensors too, as upstream ships its checkpoints: a smaller file
    # whose predictions move by the rounding (measure the policy on the copy before shipping).
    tensors: str = option('frozen', choices=COMPACT_SCOPES,
                          help="which tensors go to bfloat16: 'frozen' (those the run froze; "
                               "the trained ones stay float32) or 'all' (every floating tensor)")

    def __post_init__(self) -> None:
        require_option(self.tensors in COMPACT_SCOPES, 'tensors', self.tensors,
                       f'must be one of {COMPACT_SCOPES}')


def frozen_tensor_names(checkpoint: str | Path) -> list[str]:
    """The parameters the run that wrote ``checkpoint`` kept frozen (from its train_config.json).

    LoRA runs merge their deltas into the LLM's weights on export, so no LLM tensor counts as
    frozen there.
    """
    config_file = Path(checkpoint) / TRAIN_CONFIG_FILE
    if not config_file.is_file():
        raise ValueError(f'--checkpoint {checkpoint}: no {TRAIN_CONFIG_FILE}, so which tensors '
                         'training froze is unknown (only vla-adapter-train checkpoints)')
    train_config = TrainConfig.from_dict(read_json(config_file))
    model = VLAPolicy.from_pretrained(checkpoint, dtype='float32').model
    trainable = set(set_trainable(model, replace(train_config, lora_rank=0)))
    return [name for name, _ in model.named_parameters() if name not in trainable
            and not (train_config.lora_rank > 0 and name.startswith(LLM_PREFIX))]


def compact(config: CompactConfig) -> dict:
    """Write the compact copy; the number of tensors and bytes before and after."""
    source, output = Path(config.checkpoint), Path(config.output_dir)
    if output.exists():
        raise ValueError(f'--output_dir {output}: already exists (choose a new folder)')
    frozen = set(frozen_tensor_names(source))
    weights = source / WEIGHTS_FILE
    with safe_open(str(weights), 'pt') as handle:
        metadata = handle.metadata()
    state = load_file(str(weights))
    rounded = {name for name, tensor in state.items() if tensor.is_floating_point()
               and (config.tensors == 'all' or name in frozen)}
    compacted = {name: tensor.to(COMPACT_DTYPE) if name in rounded else tensor
                 for name, tensor in state.items()}
    shutil.copytree(source, output, symlinks=True, ignore=shutil.ignore_patterns(WEIGHTS_FILE))
    save_file(compacted, str(output / WEIGHTS_FILE), metadata=metadata)
    return {'compacted_tensors': len(rounded),
            'tensors': len(state), 'bytes_before': weights.stat().st_size,
            'bytes_after': (output / WEIGHTS_FILE).stat().st_size}


def _report(config: CompactConfig) -> int:
    result = compact(config)
    print(f"{config.output_dir}: {result['compacted_tensors']} of {result['tensors']} tensors "
          f'({config.tensors}) in bfloat16; {WEIGHTS_FILE} {result["bytes_before"] / 1e6:.1f} MB '
          f'-> {result["bytes_after"] / 1e6:.1f} MB')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point ``vla-adapter-compact-checkpoint``."""
    parser = build_config_parser(CompactConfig, PROG, __doc__.splitlines()[0])
    return run_config_main(parser, CompactConfig, argv, _report)


if __name__ == '__main__':
    sys.exit(main())
