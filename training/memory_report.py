"""What holds a training step's memory, and whether the step changed what it should.

Memory: weights, gradients, optimiser state and activations. Change: per-tensor checksums
before and after the step (:func:`step_check`).

The parts are measured on the live objects (bytes of their tensors), so they mean the same on a
CPU and a GPU; the activations are the tensors autograd keeps for the backward pass, counted by a
``saved_tensors_hooks`` meter. The process peak comes from the CUDA allocator or, on the CPU,
from the kernel's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``). The
same parts can be computed from parameter counts alone (:func:`computed_memory`), which is how a
setting that does not fit this machine is still judged.
"""

from __future__ import annotations

from collections.abc import Iterable
import math
import resource

import torch

GIB = 2 ** 30
# Bytes of optimiser state per trainable weight: AdamW keeps two fp32 moments; bitsandbytes'
# 8-bit AdamW two uint8 moments (plus one fp32 scale per block of weights, under 2 %).
OPTIMIZER_STATE_BYTES = {'adamw': 8, 'adamw_fused': 8, 'adamw_8bit': 2}
MOVING_GRADIENT = 1e-6  # 100 x AdamW's eps: a gradient this large moves its weight by ~lr
PROC_STATUS = '/proc/self/status'
PROC_CLEAR_REFS = '/proc/self/clear_refs'


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the given tensors' elements."""
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def parameter_bytes(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Bytes of ``model``'s parameters (only those that require gradients when asked)."""
    return tensor_bytes(param for param in model.parameters()
                        if param.requires_grad or not trainable_only)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimiser's per-parameter state (moments, step counters)."""
    return tensor_bytes(value for state in optimizer.state.values() for value in state.values()
                        if isinstance(value, torch.Tensor))


class SavedTensorMeter:
    """Counts the bytes autograd saves for the backward pass inside a ``with`` block.

    Each storage is counted once (views share it); parameters' own storages are not counted
    (they are the weights). Tensors kept by a checkpointed region count as that region's saved
    inputs only, which is what checkpointing keeps.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.excluded = {param.untyped_storage().data_ptr() for param in model.parameters()}
        self.storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    @property
    def bytes(self) -> int:
        """Bytes of the distinct storages saved so far."""
        return sum(self.storages.values())

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in self.excluded and pointer != 0:
            self.storages[pointer] = storage.nbytes()
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._hooks.__exit__(*exc_info)


def computed_memory(total_params: int, trainable_params: int, optimizer: str,
                    weight_bytes: int = 4) -> dict[str, int]:
    """Bytes of weights, gradients and optimiser state from parameter counts (fp32 weights)."""
    parts = {'weights': total_params * weight_bytes,
             'gradients': trainable_params * weight_bytes,
             'optimizer_state': trainable_params * OPTIMIZER_STATE_BYTES[optimizer]}
    parts['total'] = sum(parts.values())
    return parts


def _proc_status_kib(field: str) -> int | None:
    try:
        with open(PROC_STATUS, encoding='ascii') as handle:
            for line in handle:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak(device: torch.device) -> None:
    """Start a new peak: the CUDA allocator's, or the CPU process's peak resident set."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open(PROC_CLEAR_REFS, 'w', encoding='ascii') as handle:
            handle.write('5')  # resets VmHWM to the current resident set (Linux >= 4.0)
    except OSError:
        pass  # then the peak is the process's since its start (getrusage)


def peak_memory(device: torch.device) -> dict[str, int]:
    """Peak bytes since :func:`reset_peak`: CUDA allocated / reserved, or CPU resident set."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        return {'peak_allocated': torch.cuda.max_memory_allocated(device),
                'peak_reserved': torch.cuda.max_memory_reserved(device)}
    peak_kib = _proc_status_kib('VmHWM')
    if peak_kib is None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {'peak_rss': peak_kib * 1024}


def available_memory(device: torch.device) -> int:
    """Bytes a run could use: the GPU's total, or the CPU's ``MemAvailable``."""
    if device.type == 'cuda':
        return torch.cuda.get_device_properties(device).total_memory
    try:
        with open('/proc/meminfo', encoding='ascii') as handle:
            for line in handle:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def checksums(model: torch.nn.Module) -> dict[str, float]:
    """A float64 sum per parameter (a changed tensor changes its sum)."""
    with torch.no_grad():
        return {name: float(torch.sum(param, dtype=torch.float64))
                for name, param in model.named_parameters()}


def step_check(model, before: dict, after: dict, gradients: dict, loss: float) -> dict:
    """The first step's correctness: loss finite, trained tensors changed, frozen ones not.

    A tensor must change when its largest gradient value exceeds ``MOVING_GRADIENT``: AdamW's
    first update is then at least 0.99 x lr per such value. Smaller gradients (a zero-initialised
    factor upstream of them) may leave it unchanged; they are counted, not failed.
    """
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    changed = {name for name in before if before[name] != after[name]}
    moving = {name for name, largest in gradients.items() if largest > MOVING_GRADIENT}
    still = sorted(moving - changed)
    return {'loss': loss, 'loss_finite': math.isfinite(loss),
            'trainable_tensors': len(trainable),
            'with_gradient': sum(largest > 0 for largest in gradients.values()),
            'moving_gradient': len(moving), 'changed_with_gradient': len(changed & moving),
            'unchanged_with_gradient': [(name, gradients[name]) for name in still[:5]],
            'frozen_changed': sorted(changed - trainable)[:5],
            'ok': math.isfinite(loss) and not still and not changed - trainable}


def gradient_recorder(model: torch.nn.Module, record: dict):
    """A step pre-hook noting gradient bytes and each gradient's largest absolute value."""
    names = {id(param): name for name, param in model.named_parameters()}

    def hook(optimizer, *_):
        grads = [param for group in optimizer.param_groups for param in group['params']
                 if param.grad is not None]
        record['gradients'] = sum(p.grad.numel() * p.grad.element_size() for p in grads)
        record['largest'] = {names[id(p)]: float(p.grad.abs().max()) for p in grads}
    return hook
