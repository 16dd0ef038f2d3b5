"""Child process of the DDP test: one rank of a 2-process gloo run of ``training.finetune.train``.

Lives in its own module so ``torch.multiprocessing.spawn`` can import it in the children.
"""

from pathlib import Path

from safetensors.torch import save_file
import torch
import torch.distributed as dist

from training.finetune import DistributedContext, train
from training.train_config import TrainConfig
from training.train_state import resumable_tensors


def run_rank(rank: int, world_size: int, init_file: str, config: dict, out_dir: str) -> None:
    """Train as ``rank`` and write this rank's trainable tensors to ``rank<r>.safetensors``."""
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        result = train(TrainConfig.from_dict(config),
                       DistributedContext(rank=rank, world_size=world_size, local_rank=0))
        save_file(resumable_tensors(result.model), str(Path(out_dir) / f'rank{rank}.safetensors'))
    finally:
        dist.destroy_process_group()
