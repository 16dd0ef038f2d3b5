"""Observation assembly: messages -> conversions -> synchroniser -> the policy's observation.

The one path from messages to observations (no rclpy): the inference node feeds it from its
subscriptions, the offline replay evaluation from a bag in recorded order.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_adapter_core.robot_description import Arm, RobotDescription
from vla_adapter_ros.pipeline import conversions
from vla_adapter_ros.pipeline.sync import ApproximateTimeSynchronizer, SyncConfig, SyncedSet


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
