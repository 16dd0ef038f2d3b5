"""Image compressor node: camera Images -> JPEG CompressedImages, on the robot's computer.

    vla-adapter-compress-images --ros-args -p robot_description:=aloha -p jpeg_quality:=80

Per camera: subscribes the raw sensor_msgs/Image topic (sensor-data QoS) and publishes a
sensor_msgs/CompressedImage with the same header on ``<topic>/compressed`` (image_transport's
name and format string), which the inference node on another computer decodes. The conversion
is pipeline/conversions.image_to_compressed; parameters in params/image_compressor_config.py.
A frame that cannot be converted is dropped with a one-line warning naming the camera and the
field; it never ends the node.
"""

import time

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from vla_adapter_ros.nodes.node_main import run_node
from vla_adapter_ros.params.image_compressor_config import (
    IMAGE_COMPRESSOR_PARAMETERS,
    ImageCompressorConfig,
)
from vla_adapter_ros.params.parameters import declare_parameters, parameter_help
from vla_adapter_ros.pipeline.conversions import ConversionError, image_to_compressed

NODE_NAME = 'image_compressor'


class ImageCompressorNode(Node):
    """Raw camera images in, JPEG CompressedImages out; see the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        """Declare the parameters and create one subscription and publisher per camera."""
        super().__init__(node_name, **kwargs)
        self.config = declare_parameters(self, IMAGE_COMPRESSOR_PARAMETERS,
                                         ImageCompressorConfig.from_dict, self._apply)
        self.frames_compressed = 0
        self.frames_refused = 0
        self.encode_s = 0.0  # total time spent converting (benchmarks read it)
        reliability = (ReliabilityPolicy.RELIABLE if self.config.output_reliability == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.config.output_depth,
                                reliability=reliability)
        for name, topic, output in self.config.cameras:
            publisher = self.create_publisher(CompressedImage, output, output_qos)
            self.create_subscription(Image, topic, self._make_callback(name, topic, publisher),
                                     qos_profile_sensor_data)
        self.get_logger().info(
            f'compressing {[topic for _, topic, _ in self.config.cameras]} to JPEG quality '
            f'{self.config.jpeg_quality} on <topic>/compressed')

    def _apply(self, config: ImageCompressorConfig, changed: tuple) -> None:
        self.config = config
        self.get_logger().info(f'jpeg_quality set to {config.jpeg_quality}')

    def _make_callback(self, camera: str, topic: str, publisher):
        source = f'camera {camera} ({topic})'

        def on_image(message: Image) -> None:
            start_s = time.perf_counter()
            try:
                compressed = image_to_compressed(message, self.config.jpeg_quality, source)
            except ConversionError as error:
                self.frames_refused += 1
                self.get_logger().warning(f'frame dropped: {error}', throttle_duration_sec=1.0)
                return
            self.encode_s += time.perf_counter() - start_s
            self.frames_compressed += 1
            publisher.publish(compressed)

        return on_image


def main(args: list[str] | None = None) -> int:
    """Console entry point ``vla-adapter-compress-images``."""
    return run_node(ImageCompressorNode, NODE_NAME, args,
                    help_text=parameter_help(IMAGE_COMPRESSOR_PARAMETERS,
                                             'vla-adapter-compress-images', NODE_NAME,
                                             __doc__.splitlines()[0]))


if __name__ == '__main__':
    raise SystemExit(main())
