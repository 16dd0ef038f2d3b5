"""Pure logic of the inference node (no rclpy, no torch): checks, observation assembly, handoff.

- :func:`check_policy_matches_robot`: a checkpoint whose action/proprio dimension or cameras do
  not fit the robot is refused at start-up with a clear error.
- :func:`validate_instruction`: empty or oversized instructions are refused.
- :func:`build_observation`: a synchronised set (arm states + RGB images) -> the policy's
  observation dict (``docs/ARCHITECTURE.md``).
- :func:`validate_action_chunk`: the policy's output must be a finite (T, action_dim) array.
- :class:`LatestSlot`: the single-slot "newest observation" handoff between the subscription
  callbacks and the inference worker thread; putting overwrites, it never queues.
- :class:`ChunkTiming`: latency record of one published chunk.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import threading
from typing import Any, NamedTuple, Protocol

import numpy as np

from vla_adapter_ros.robot_model import JOINTS_PER_ARM

DEFAULT_MAX_INSTRUCTION_LENGTH = 512


class PolicyRunner(Protocol):
    """What the inference node needs from a policy (``vla_adapter_core.VLAPolicy`` fits).

    ``config`` exposes ``camera_names`` (list[str]), ``action_dim``, ``proprio_dim`` and
    ``chunk_size``; ``predict_action_chunk(observation)`` returns un-normalised actions
    (chunk_size, action_dim).
    """

    config: Any

    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        """Observation dict -> (chunk_size, action_dim) actions."""


def check_policy_matches_robot(policy_config: Any, num_arms: int,
                               camera_names: Sequence[str]) -> None:
    """Raise ValueError (naming the field and values) if the checkpoint does not fit the robot.

    The robot needs ``action_dim == proprio_dim == 7 * num_arms``, and the node must provide an
    image for every camera the checkpoint was trained with.
    """
    expected = JOINTS_PER_ARM * num_arms
    mode = 'dual-arm' if num_arms == 2 else 'single-arm'
    action_dim = int(policy_config.action_dim)
    if action_dim != expected:
        raise ValueError(
            f'checkpoint action_dim={action_dim} does not match the {mode} robot, which needs '
            f'action_dim={expected} ({num_arms} x {JOINTS_PER_ARM} joints)')
    proprio_dim = int(policy_config.proprio_dim)
    if proprio_dim != expected:
        raise ValueError(
            f'checkpoint proprio_dim={proprio_dim} does not match the {mode} robot, which '
            f'provides {expected} values ({num_arms} x {JOINTS_PER_ARM} joints)')
    missing = [name for name in policy_config.camera_names if name not in camera_names]
    if missing:
        raise ValueError(
            f'checkpoint cameras {missing} have no camera topic; camera_names parameter is '
            f'{list(camera_names)}, checkpoint camera_names is {list(policy_config.camera_names)}')


def validate_instruction(text: str, max_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH) -> str:
    """Return the stripped instruction; raise ValueError if empty or longer than max_length."""
    if not isinstance(text, str):
        raise ValueError(f'instruction must be a string, got {type(text).__name__}')
    stripped = text.strip()
    if not stripped:
        raise ValueError(f'instruction={text!r} is empty')
    if len(stripped) > max_length:
        raise ValueError(
            f'instruction has {len(stripped)} characters, more than max_instruction_length='
            f'{max_length} (starts {stripped[:40]!r})')
    if any(not char.isprintable() for char in stripped):
        raise ValueError(f'instruction={stripped[:80]!r} contains control characters')
    return stripped


@dataclass(frozen=True)
class Observation:
    """One synchronised observation ready for the policy.

    stamp_ns: the observation time (the newest stamp of the synchronised set, which is the
        stamp published on the ActionChunk). last_arrival_s: time.perf_counter() when the message
        that completed the set arrived (for latency measurements).
    """

    images: dict
    proprio: np.ndarray
    stamp_ns: int
    last_arrival_s: float

    def as_policy_input(self, instruction: str) -> dict:
        """The observation dict of docs/ARCHITECTURE.md."""
        return {'images': self.images, 'proprio': self.proprio, 'instruction': instruction}


def build_observation(items: Mapping[str, Any], camera_names: Sequence[str],
                      arm_names: Sequence[str], stamp_ns: int,
                      last_arrival_s: float) -> Observation:
    """Synchronised items -> Observation.

    items: ``{camera_name: (H, W, 3) uint8, arm_name: (7,) state}``; the proprio vector is the
    arm states concatenated in ``arm_names`` order (left first).
    """
    images = {name: items[name] for name in camera_names}
    proprio = np.concatenate([np.asarray(items[arm], dtype=np.float32) for arm in arm_names])
    if not np.all(np.isfinite(proprio)):
        raise ValueError(f'proprio contains non-finite values: {proprio.tolist()}')
    return Observation(images=images, proprio=proprio, stamp_ns=int(stamp_ns),
                       last_arrival_s=last_arrival_s)


def validate_action_chunk(chunk: Any, action_dim: int) -> np.ndarray:
    """The policy output as float64 (T, action_dim); ValueError on wrong shape or non-finite."""
    try:
        actions = np.asarray(chunk, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f'policy output of type {type(chunk).__name__} is not numeric: '
                         f'{error}') from error
    if actions.ndim != 2 or actions.shape[1] != action_dim or actions.shape[0] == 0:
        raise ValueError(
            f'policy output shape {actions.shape} is not (chunk_size > 0, action_dim='
            f'{action_dim})')
    bad = np.argwhere(~np.isfinite(actions))  # (n_bad, 2) [step, dim]
    if bad.size:
        step, dim = (int(v) for v in bad[0])
        raise ValueError(
            f'policy output has {len(bad)} non-finite values, first at step {step} dim {dim}: '
            f'{actions[step, dim]}')
    return actions


class ChunkTiming(NamedTuple):
    """Timing of one published chunk (time.perf_counter() seconds).

    arrival_s: the message that completed the observation arrived; worker_free_s: the worker
    finished its previous job and was free; model_start_s / model_s: the policy call;
    published_s: the chunk and its per-arm trajectories were published.
    """

    arrival_s: float
    worker_free_s: float
    model_start_s: float
    model_s: float
    published_s: float

    @property
    def overhead_s(self) -> float:
        """Last input's arrival to publication, minus the model's own time."""
        return self.published_s - self.arrival_s - self.model_s

    @property
    def busy_wait_s(self) -> float:
        """Part of the overhead spent waiting for the worker to finish the previous chunk."""
        return max(0.0, min(self.worker_free_s, self.model_start_s) - self.arrival_s)

    @property
    def pipeline_overhead_s(self) -> float:
        """Overhead of our own code: overhead minus the wait for a busy worker."""
        return self.overhead_s - self.busy_wait_s


class LatestSlot:
    """A thread-safe single-slot buffer: ``put`` overwrites, ``take`` waits for a new item.

    The observation handed to the worker is therefore always the newest one; older ones are
    dropped (counted in ``overwritten``), never queued.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._closed = False
        self.overwritten = 0

    def put(self, item: Any) -> None:
        """Store ``item``, replacing any item not yet taken, and wake the taker."""
        with self._condition:
            if self._has_item:
                self.overwritten += 1
            self._item, self._has_item = item, True
            self._condition.notify()

    def take(self, timeout_s: float | None = None) -> Any:
        """Wait up to ``timeout_s`` for an item; return it (clearing the slot) or None."""
        with self._condition:
            self._condition.wait_for(lambda: self._has_item or self._closed, timeout=timeout_s)
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def clear(self) -> None:
        """Drop the item not yet taken, if any (counted in ``overwritten``)."""
        with self._condition:
            if self._has_item:
                self.overwritten += 1
            self._item, self._has_item = None, False

    def close(self) -> None:
        """Wake any waiting taker for good (shutdown)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed
