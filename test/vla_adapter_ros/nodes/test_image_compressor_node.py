"""The image compressor node over real DDS: raw frames in, decodable JPEG frames out."""

import subprocess
import sys

import numpy as np
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_test_utils import spin_until, stop_process
from sensor_msgs.msg import CompressedImage, Image

from vla_adapter_ros.pipeline.conversions import compressed_image_to_rgb, rgb_to_image

CAMERA_TOPIC = '/cam_test/image_raw'


def _start_compressor(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, '-m', 'vla_adapter_ros.nodes.image_compressor_node', '--ros-args',
         '-p', 'camera_names:=[cam_test]', '-p', f'camera_topics:=[{CAMERA_TOPIC}]', *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _frame(height=48, width=64) -> np.ndarray:
    """An RGB gradient with a little seeded texture (what the JPEG quality changes)."""
    rows = np.linspace(20, 230, height, dtype=np.float32)[:, None]
    cols = np.linspace(20, 230, width, dtype=np.float32)[None, :]
    smooth = np.stack([rows + 0 * cols, 0 * rows + cols, (rows + cols) / 2], axis=2)
    texture = np.random.default_rng(3).normal(0.0, 4.0, smooth.shape)
    return np.clip(smooth + texture, 0, 255).astype(np.uint8)


def test_frames_are_compressed_with_their_header_and_bad_frames_never_end_the_node(ros_probe):
    node, executor = ros_probe
    process = _start_compressor('-p', 'jpeg_quality:=90')
    received: list[CompressedImage] = []
    node.create_subscription(CompressedImage, f'{CAMERA_TOPIC}/compressed', received.append,
                             qos_profile_sensor_data)
    publisher = node.create_publisher(Image, CAMERA_TOPIC, 10)
    rgb = _frame()
    try:
        def publish_until(predicate, message, timeout_s=30.0) -> bool:
            def published_and_true() -> bool:
                publisher.publish(message)
                return predicate()
            return spin_until(executor, published_and_true, timeout_s)

        good = rgb_to_image(rgb, frame_id='cam_test_optical_frame')
        good.header.stamp.sec, good.header.stamp.nanosec = 1234, 5678
        assert publish_until(lambda: len(received) >= 2, good), stop_process(process)
        frame = received[-1]
        assert frame.format == 'rgb8; jpeg compressed bgr8'
        assert (frame.header.stamp.sec, frame.header.stamp.nanosec) == (1234, 5678)
        assert frame.header.frame_id == 'cam_test_optical_frame'
        decoded = compressed_image_to_rgb(frame, (48, 64))
        assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 4.0
        assert len(frame.data) < rgb.nbytes / 4

        # A frame whose data does not match its size: dropped with a warning, the node lives.
        broken = rgb_to_image(rgb)
        broken.data = bytes(10)
        for _ in range(5):
            publisher.publish(broken)
            executor.spin_once(timeout_sec=0.05)
        # Lower quality at run time: the frames shrink.
        client = node.create_client(SetParameters, '/image_compressor/set_parameters')
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(SetParameters.Request(parameters=[
            Parameter('jpeg_quality', value=10).to_parameter_msg()]))
        assert spin_until(executor, future.done, 10.0) and future.result().results[0].successful
        refused = client.call_async(SetParameters.Request(parameters=[
            Parameter('jpeg_quality', value=0).to_parameter_msg()]))
        assert spin_until(executor, refused.done, 10.0)
        assert not refused.result().results[0].successful
        assert 'jpeg_quality' in refused.result().results[0].reason
        large = len(frame.data)
        assert publish_until(lambda: len(received[-1].data) < large * 0.7, good), (
            len(received[-1].data), large)
        assert process.poll() is None
    finally:
        output = stop_process(process)
    assert 'frame dropped: camera cam_test (/cam_test/image_raw): data has 10 bytes' in output
    assert 'Traceback' not in output, output


def test_a_bad_parameter_ends_the_node_in_one_line():
    process = _start_compressor('-p', 'jpeg_quality:=101')
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 1
    assert 'cannot start:' in output and 'jpeg_quality' in output and '101' in output
    assert len(output.strip().splitlines()) == 1, output
    assert 'Traceback' not in output
