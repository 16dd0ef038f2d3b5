"""Child process: synthetic ALOHA cameras and joint states over DDS (tests and benchmarks).

Publishes one sensor_msgs/Image stream per camera on ``/<cam>/camera/color/image_rect_raw`` and
one sensor_msgs/JointState stream per robot on ``/<robot>/joint_states`` (sensor-data QoS),
stamped with the ROS clock. Images are fixed per camera (``camera_frame``) and joint positions
are constant (``joint_positions``), so a test can rebuild the exact observation. Joint names are
published in reverse order to prove that consumers look them up by name.

With --compressed the cameras publish lossless PNG sensor_msgs/CompressedImage on
``.../image_rect_raw/compressed`` instead.

Fault injection (one at a time) for the fault-path tests:
  --fault encoding|size|stale|missing  on camera --fault-camera
  --fault nan|unknown                  on robot --fault-robot
Runs until terminated (SIGTERM) or --duration seconds pass; prints 'sensors ready'.
"""

import argparse
import io
import pathlib
import sys
import time

import numpy as np
from PIL import Image as PilImage
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState

from vla_adapter_ros.robot_model import ARM_JOINT_NAMES, GripperCalibration

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from ros_test_utils import spin_child_until  # noqa: E402

JOINT_NAMES = [*ARM_JOINT_NAMES, 'gripper', 'left_finger', 'right_finger']
STALE_OFFSET_NS = 2_000_000_000


def camera_frame(camera_index: int, height: int, width: int) -> np.ndarray:
    """The fixed (H, W, 3) uint8 frame of camera ``camera_index``."""
    return np.random.default_rng(100 + camera_index).integers(
        0, 256, (height, width, 3), dtype=np.uint8)


def joint_positions(robot_index: int) -> np.ndarray:
    """Constant positions of robot ``robot_index`` in JOINT_NAMES order (9 values)."""
    calibration = GripperCalibration()
    finger = calibration.finger_closed + 0.25 * (1 + robot_index) * (
        calibration.finger_open - calibration.finger_closed)
    arm = 0.1 * np.arange(1, 7) * (1 if robot_index == 0 else -1)
    return np.array([*arm, 1.0, finger, -finger])


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--cameras', default='cam_high,cam_left_wrist,cam_right_wrist')
    parser.add_argument('--robots', default='follower_left,follower_right')
    parser.add_argument('--height', type=int, default=48)
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--camera-rate', type=float, default=20.0)
    parser.add_argument('--joint-rate', type=float, default=50.0)
    parser.add_argument('--fault', default='',
                        choices=['', 'encoding', 'size', 'stale', 'missing', 'nan', 'unknown'])
    parser.add_argument('--fault-camera', default='cam_left_wrist')
    parser.add_argument('--fault-robot', default='follower_right')
    parser.add_argument('--compressed', action='store_true')
    parser.add_argument('--duration', type=float, default=60.0)
    return parser.parse_args()


def _image_message(args, camera: str, index: int) -> Image:
    height, width = args.height, args.width
    faulty = camera == args.fault_camera
    if faulty and args.fault == 'size':
        height, width = height // 2, width // 2
    frame = camera_frame(index, height, width)
    message = Image(height=height, width=width, encoding='rgb8', step=width * 3)
    if faulty and args.fault == 'encoding':
        message.encoding = 'yuv422'
    message.header.frame_id = camera
    message.data = frame.tobytes()
    return message


def _compressed_message(args, camera: str, index: int) -> CompressedImage:
    buffer = io.BytesIO()
    PilImage.fromarray(camera_frame(index, args.height, args.width)).save(buffer, format='PNG')
    message = CompressedImage(format='png')
    message.header.frame_id = camera
    message.data = buffer.getvalue()
    return message


def _joint_message(args, robot: str, index: int) -> JointState:
    names = list(JOINT_NAMES)
    positions = joint_positions(index)
    if robot == args.fault_robot and args.fault == 'nan':
        positions[JOINT_NAMES.index('elbow')] = np.nan
    if robot == args.fault_robot and args.fault == 'unknown':
        names[JOINT_NAMES.index('wrist_rotate')] = 'wrist_yaw'
    return JointState(name=names[::-1], position=positions[::-1].tolist())


def main() -> None:
    args = _parse_args()
    rclpy.init()
    node = rclpy.create_node('fake_aloha_sensors')
    cameras = [name for name in args.cameras.split(',') if name]
    robots = [name for name in args.robots.split(',') if name]
    image_streams = []
    for index, camera in enumerate(cameras):
        if camera == args.fault_camera and args.fault == 'missing':
            continue
        topic = f'/{camera}/camera/color/image_rect_raw'
        if args.compressed:
            publisher = node.create_publisher(CompressedImage, f'{topic}/compressed',
                                              qos_profile_sensor_data)
            message = _compressed_message(args, camera, index)
        else:
            publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
            message = _image_message(args, camera, index)
        offset = STALE_OFFSET_NS if (camera == args.fault_camera and args.fault == 'stale') else 0
        image_streams.append((publisher, message, offset))
    joint_streams = [
        (node.create_publisher(JointState, f'/{robot}/joint_states', qos_profile_sensor_data),
         _joint_message(args, robot, index))
        for index, robot in enumerate(robots)]

    def publish_images() -> None:
        if not rclpy.ok():
            return
        now_ns = node.get_clock().now().nanoseconds
        for publisher, message, offset in image_streams:
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(
                now_ns - offset, 1_000_000_000)
            publisher.publish(message)

    def publish_joints() -> None:
        if not rclpy.ok():
            return
        stamp = node.get_clock().now().to_msg()
        for publisher, message in joint_streams:
            message.header.stamp = stamp
            publisher.publish(message)

    node.create_timer(1.0 / args.camera_rate, publish_images)
    node.create_timer(1.0 / args.joint_rate, publish_joints)
    print('sensors ready', flush=True)
    deadline = time.monotonic() + args.duration
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_child_until(executor, deadline)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
