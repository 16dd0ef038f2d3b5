"""Pure logic of the inference node (no rclpy, no torch): checks, observation assembly, handoff.

- :func:`check_policy_matches_robot`: a checkpoint whose layout (or, for checkpoints that record
  none, action/proprio dimension) or cameras do not fit the robot is refused at start-up.
- :func:`instruction_check`: the loaded policy's one instruction rule (non-empty, printable,
  prompt within the policy's token limit), used by the parameter, the service and the topic.
- :func:`build_observation`: a synchronised set (arm states + RGB images) -> the policy's
  observation dict (``docs/ARCHITECTURE.md``).
- :func:`validate_action_chunk`: the policy's output must be a finite (T, action_dim) array.
- :class:`ObservationAssembler`: per input stream, message -> conversion (conversions.py) ->
  approximate-time synchroniser (sync.py) -> :class:`Observation`. The one path from messages to
  observations: the inference node feeds it from its subscriptions, the offline replay
  evaluation (replay_eval.py) from a bag, in recorded order.
- :class:`LatestSlot`: the single-slot "newest observation" handoff between the subscription
  callbacks and the inference worker thread; putting overwrites, it never queues.
- :class:`ChunkTiming`: latency record of one published chunk.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import threading
from typing import Any, NamedTuple, Protocol

import numpy as np

from vla_adapter_core.robot_description import Arm, RobotDescription
from vla_adapter_ros import conversions
from vla_adapter_ros.sync import ApproximateTimeSynchronizer, SyncConfig, SyncedSet


class PolicyRunner(Protocol):
    """What the inference node needs from a policy (``vla_adapter_core.VLAPolicy`` fits).

    ``config`` exposes ``camera_names`` (list[str]), ``action_dim``, ``proprio_dim``,
    ``chunk_size`` and ``robot_layout`` (a RobotLayout or None); ``predict_action_chunk(
    observation)`` returns un-normalised actions (chunk_size, action_dim). A policy with a
    ``processor.prompt_builder`` (VLAPolicy) has its instructions checked against its prompt
    limit (see :func:`instruction_check`).
    """

    config: Any

    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        """Observation dict -> (chunk_size, action_dim) actions."""


def check_policy_matches_robot(policy_config: Any, robot: RobotDescription,
                               camera_names: Sequence[str]) -> str:
    """Raise ValueError (naming both sides) if the checkpoint does not fit the robot.

    A checkpoint that records its ``robot_layout`` must match the robot's layout exactly (joint
    name per action / proprio dimension, gripper convention). One that records none (upstream or
    older checkpoints) must at least have ``action_dim == proprio_dim == robot.action_dim``; the
    returned warning ('' otherwise) says that the layout could not be checked. The node must
    provide an image for every camera the checkpoint was trained with.
    """
    warning = ''
    layout = getattr(policy_config, 'robot_layout', None)
    where = f'robot {robot.name!r} ({robot.source})'
    if layout is not None:
        mismatch = layout.mismatch(robot.layout())
        if mismatch:
            raise ValueError(f'checkpoint was trained on another robot layout than {where}: '
                             f'{mismatch}')
    else:
        for field in ('action_dim', 'proprio_dim'):
            value = int(getattr(policy_config, field))
            if value != robot.action_dim:
                raise ValueError(
                    f'checkpoint {field}={value} does not match {where}, which has '
                    f'{robot.action_dim} dims {list(robot.dimension_names())}')
        warning = (f'the checkpoint records no robot layout (upstream or older checkpoint): only '
                   f'its dimension ({robot.action_dim}) was checked against {where}; make sure '
                   f'it was trained on {list(robot.dimension_names())}')
    missing = [name for name in policy_config.camera_names if name not in camera_names]
    if missing:
        raise ValueError(
            f'checkpoint cameras {missing} have no camera topic; camera_names parameter is '
            f'{list(camera_names)}, checkpoint camera_names is {list(policy_config.camera_names)}')
    return warning


def instruction_check(policy: Any) -> Callable[[str], str]:
    """The one instruction rule of ``policy``: text -> cleaned text, or ValueError saying why.

    A VLAPolicy's rule is its prompt builder's ``validate_instruction`` (non-empty, printable,
    prompt token count within ``max_prompt_tokens``; the error gives the count and the limit).
    A policy without a prompt builder gets the policy-independent part only. Any other exception
    of the check becomes a ValueError (a bad instruction never crashes the node).
    """
    builder = getattr(getattr(policy, 'processor', None), 'prompt_builder', None)
    if builder is not None:
        validate = builder.validate_instruction
    else:
        from vla_adapter_core.prompt import check_instruction_text as validate

    def check(text: str) -> str:
        try:
            return validate(text)
        except ValueError:
            raise
        except Exception as error:  # noqa: BLE001 - e.g. a tokenizer error on odd input
            raise ValueError(f'instruction {str(text)[:60]!r} cannot be checked: '
                             f'{type(error).__name__}: {error}') from error

    return check


@dataclass(frozen=True)
class Observation:
    """One synchronised observation ready for the policy.

    stamp_ns: the observation time (the camera time of the synchronised set, which is the
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

    items: ``{camera_name: (H, W, 3) uint8, arm_name: (arm.dim,) state}``; the proprio vector is
    the arm states concatenated in ``arm_names`` order (the description's order, left first).
    """
    images = {name: items[name] for name in camera_names}
    proprio = np.concatenate([np.asarray(items[arm], dtype=np.float32) for arm in arm_names])
    if not np.all(np.isfinite(proprio)):
        raise ValueError(f'proprio contains non-finite values: {proprio.tolist()}')
    return Observation(images=images, proprio=proprio, stamp_ns=int(stamp_ns),
                       last_arrival_s=last_arrival_s)


@dataclass(frozen=True)
class InputStream:
    """One subscribed input: a camera's image topic or an arm's joint-state topic.

    name: the synchroniser stream (camera name or arm namespace); topic: where it arrives;
    source: how errors name it; arm: the arm of a joint-state stream (None for a camera);
    compressed: a CompressedImage topic (its name ends in ``/compressed``).
    """

    name: str
    topic: str
    source: str
    arm: Arm | None = None
    compressed: bool = False


class ObservationAssembler:
    """Messages of the policy's cameras and the robot's arms -> synchronised Observations.

    Pure (no rclpy, no torch): the inference node calls it from its subscription callbacks, the
    replay evaluation with the messages of a bag. Per message: :meth:`convert` checks the stamp
    (set; not more than ``max_future_stamp_s`` ahead of ``now_ns``, when given) and turns the
    message into numpy (RGB image or the arm's policy values), raising ConversionError naming the
    input; :meth:`synchronise` feeds the synchroniser and returns a completed set, and
    :meth:`observation` builds the policy's Observation from it (ValueError on non-finite
    proprio). :meth:`push` does all three. Not thread-safe: the caller serialises the calls.

    camera_topics: (camera name, topic) pairs; only the policy's cameras are used (the others
    are listed in :attr:`unused_cameras`). Joint states arrive on
    ``/<arm namespace>/<joint_states_topic>``.
    """

    def __init__(self, robot: RobotDescription, camera_topics: Sequence[tuple[str, str]],
                 policy_cameras: Sequence[str], sync_config: SyncConfig, *,
                 expected_image_hw: tuple[int, int] | None = None,
                 max_future_stamp_s: float | None = None,
                 joint_states_topic: str = 'joint_states') -> None:
        """Plan the input streams and create the synchroniser (its streams: cameras, arms)."""
        self.robot = robot
        self.policy_cameras = list(policy_cameras)
        self.expected_image_hw = expected_image_hw
        self.max_future_stamp_s = max_future_stamp_s
        self.streams: dict[str, InputStream] = {}
        self.unused_cameras: list[tuple[str, str]] = []
        for camera, topic in camera_topics:
            if camera not in self.policy_cameras:
                self.unused_cameras.append((camera, topic))
                continue
            self.streams[topic] = InputStream(camera, topic, f'camera {camera} ({topic})',
                                              compressed=topic.endswith('/compressed'))
        for arm in robot.arms:
            topic = f'/{arm.namespace}/{joint_states_topic}'
            self.streams[topic] = InputStream(arm.namespace, topic, topic, arm=arm)
        self.sync = ApproximateTimeSynchronizer(sync_config)

    def checked_stamp(self, message, source: str, now_ns: int | None) -> int:
        """The message's header stamp (ns); ConversionError when unset or too far ahead."""
        stamp_ns = conversions.stamp_to_nanoseconds(message.header.stamp)
        if stamp_ns <= 0:
            raise conversions.ConversionError(f'{source}: header.stamp is zero (unset)')
        if now_ns is not None and self.max_future_stamp_s is not None:
            lead_s = (stamp_ns - now_ns) * 1e-9
            if lead_s > self.max_future_stamp_s:
                raise conversions.ConversionError(
                    f'{source}: header.stamp is {lead_s:.1f} s ahead of the node clock '
                    f'(max_future_stamp_s={self.max_future_stamp_s}): the sensor clock '
                    'and this clock disagree')
        return stamp_ns

    def convert(self, stream: InputStream, message, now_ns: int | None) -> tuple[int, Any]:
        """(stamp_ns, value) of one message: an (H, W, 3) RGB image or the arm's (dim,) state.

        Messages are duck-typed: rclpy messages and rosbags' deserialised messages both work.
        """
        stamp_ns = self.checked_stamp(message, stream.source, now_ns)
        if stream.arm is not None:
            return stamp_ns, conversions.arm_state_from_joint_state(message, stream.arm,
                                                                    stream.source)
        if stream.compressed:
            return stamp_ns, conversions.compressed_image_to_rgb(
                message, self.expected_image_hw, stream.source)
        return stamp_ns, conversions.image_to_rgb(message, self.expected_image_hw,
                                                  stream.source)

    def synchronise(self, stream: InputStream, stamp_ns: int, value: Any) -> SyncedSet | None:
        """Feed the synchroniser; the set this message completed, if any."""
        return self.sync.add(stream.name, stamp_ns, value)

    def observation(self, synced: SyncedSet, last_arrival_s: float) -> Observation:
        """The policy's Observation of a synchronised set (ValueError: non-finite proprio)."""
        return build_observation(synced.items, self.policy_cameras, self.robot.namespaces,
                                 synced.stamp_ns, last_arrival_s)

    def push(self, topic: str, message, now_ns: int | None,
             arrival_s: float = 0.0) -> Observation | None:
        """One message of ``topic`` all the way: the Observation it completed, or None.

        Raises KeyError for a topic that is not an input, ValueError (ConversionError) for a
        message that cannot be used.
        """
        stream = self.streams[topic]
        stamp_ns, value = self.convert(stream, message, now_ns)
        synced = self.synchronise(stream, stamp_ns, value)
        return None if synced is None else self.observation(synced, arrival_s)


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
