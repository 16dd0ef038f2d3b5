"""Configuration of the image compressor node: its parameter table and validated config.

The compressor runs on the robot's computer and turns each camera's sensor_msgs/Image into a
JPEG sensor_msgs/CompressedImage on ``<topic>/compressed`` (image_transport's name), so that the
cameras cross the network to a policy computer in a size the link carries.
"""

from dataclasses import dataclass

from vla_adapter_core.robot_description import RobotDescription, load_robot_description
from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
    robot_rows,
)
from vla_adapter_ros.pipeline.conversions import JPEG_QUALITY_RANGE

COMPRESSED_SUFFIX = '/compressed'  # image_transport's topic of a camera's compressed frames
OUTPUT_RELIABILITIES = ('best_effort', 'reliable')

IMAGE_COMPRESSOR_PARAMETERS = ParameterTable((
    # Only the cameras of the description are read (robot_rows' first row; no arms here).
    robot_rows(note=' Only its cameras and camera topic pattern are used.')[0],
    ParameterSpec('camera_names', (), "Cameras to compress; empty = the description's cameras.",
                  element_type=str),
    ParameterSpec('camera_topics', (), 'sensor_msgs/Image topic of each camera_names entry; '
                  "empty = the description's camera_topic pattern. Each output is "
                  '<topic>/compressed.', element_type=str),
    ParameterSpec('jpeg_quality', 80, 'JPEG quality of the published frames (1-100): lower '
                  'is smaller and faster to send, higher keeps more detail for the policy.',
                  JPEG_QUALITY_RANGE, dynamic=True),
    ParameterSpec('output_reliability', 'best_effort',
                  "QoS of the compressed topics: 'best_effort' (a lost frame is replaced by "
                  "the next; no retransmission queues stale frames on a lossy link) or "
                  "'reliable' (for subscribers that insist on it).",
                  choices=OUTPUT_RELIABILITIES),
    ParameterSpec('output_depth', 1, 'QoS history depth of the compressed topics: only the '
                  'newest frame matters to the policy.', (1, 100)),
))


@dataclass(frozen=True)
@parameter_fields
class ImageCompressorConfig(NodeConfig):
    """Validated settings of the image compressor (field names = ROS parameter names)."""

    PARAMETERS = IMAGE_COMPRESSOR_PARAMETERS

    def __post_init__(self) -> None:
        self.coerce_fields()
        robot = load_robot_description(self.robot_description)
        object.__setattr__(self, '_robot', robot)
        object.__setattr__(self, '_cameras', self._resolve_cameras(robot))

    def _resolve_cameras(self, robot: RobotDescription) -> tuple[tuple[str, str], ...]:
        names = self.camera_names or robot.cameras
        if not names:
            IMAGE_COMPRESSOR_PARAMETERS['camera_names'].fail(
                list(self.camera_names), f'robot {robot.name!r} names no cameras: list them')
        topics = self.camera_topics or tuple(robot.camera_topic.format(camera=name)
                                             for name in names)
        if len(topics) != len(names):
            IMAGE_COMPRESSOR_PARAMETERS['camera_topics'].fail(
                list(self.camera_topics), f'needs one topic per camera {list(names)}')
        for parameter, values in (('camera_names', names), ('camera_topics', topics)):
            if any(not value for value in values) or len(set(values)) != len(values):
                IMAGE_COMPRESSOR_PARAMETERS[parameter].fail(
                    list(values), 'entries must be non-empty and unique')
        compressed = [topic for topic in topics if topic.endswith(COMPRESSED_SUFFIX)]
        if compressed:
            IMAGE_COMPRESSOR_PARAMETERS['camera_topics'].fail(
                compressed, f'must be raw Image topics, not {COMPRESSED_SUFFIX} ones')
        return tuple(zip(names, topics))

    @property
    def cameras(self) -> tuple[tuple[str, str, str], ...]:
        """(camera name, raw Image topic, CompressedImage topic) of every camera."""
        return tuple((name, topic, compressed_topic(topic)) for name, topic in self._cameras)


def compressed_topic(topic: str) -> str:
    """The CompressedImage topic of a raw image topic (image_transport's name)."""
    return f'{topic}{COMPRESSED_SUFFIX}'
