"""Child process: synthetic cameras and joint states of a robot description over DDS.

For the robot description ``--robot-description`` (default aloha) publishes one sensor_msgs/Image
stream per camera on the description's camera topic (``/<cam>/camera/color/image_rect_raw`` for
ALOHA) and one sensor_msgs/JointState stream per arm on ``/<namespace>/joint_states``
(sensor-data QoS), stamped with the ROS clock. ``--cameras`` / ``--robots`` override the camera
names and arm namespaces ('' = none). Images are fixed per camera (``camera_frame``) and joint
positions are constant (``joint_positions``), so a test can rebuild the exact observation. Joint
names are published in reverse driver order to prove that consumers look them up by name.

With --compressed the cameras publish lossless PNG sensor_msgs/CompressedImage on
``.../image_rect_raw/compressed`` instead. --stamp-offset-s shifts every stamp (e.g. 3600: an hour
ahead of the clock).

Fault injection (one at a time) for the fault-path tests:
  --fault encoding|size|stale|missing  on camera --fault-camera
  --fault bomb                         with --compressed: camera --fault-camera sends, for
                                       --fault-s seconds, a small PNG whose header claims
                                       20000x20000 pixels, then good frames
  --fault nan|unknown                  on robot --fault-robot
Runs until terminated (SIGTERM) or --duration seconds pass; prints 'sensors ready'.
"""

import argparse
import io
import pathlib
import struct
import sys
import time
import zlib

import numpy as np
from PIL import Image as PilImage
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState

from vla_adapter_core.robot_description import Arm, load_robot_description

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ros_test_utils import run_child_node  # noqa: E402

STALE_OFFSET_NS = 2_000_000_000
BOMB_SIDE = 20000  # the side a --fault bomb header claims


def camera_frame(camera_index: int, height: int, width: int) -> np.ndarray:
    """The fixed (H, W, 3) uint8 frame of camera ``camera_index``."""
    return np.random.default_rng(100 + camera_index).integers(
        0, 256, (height, width, 3), dtype=np.uint8)


def joint_positions(arm: Arm, arm_index: int) -> dict:
    """Constant positions {joint name: value} of arm ``arm_index`` (every driver joint).

    Arm joint k (1-based) sits at +-0.1 k rad (sign by arm), the gripper joint at 1.0 rad and the
    fingers at a quarter (first arm) or half (second arm) of the calibrated opening.
    """
    gripper = arm.gripper
    finger = float(gripper.finger_from_normalized(0.25 * (1 + arm_index)))
    joints = 0.1 * np.arange(1, len(arm.joint_names) + 1) * (1 if arm_index == 0 else -1)
    fingers = [finger * (-1) ** k for k in range(len(arm.model.finger_joints))]
    values = [*joints.tolist(), 1.0, *fingers]
    return dict(zip(arm.driver_joint_names, values))


def png_claiming_size(rgb: np.ndarray, height: int, width: int) -> bytes:
    """A PNG of ``rgb`` whose IHDR header claims (height, width): a decompression bomb's header.

    The IHDR chunk follows the 8-byte signature: length (4), 'IHDR' (4), width (4), height (4),
    then 5 bytes of depth, colour type etc. and its CRC over type + data.
    """
    buffer = io.BytesIO()
    PilImage.fromarray(rgb).save(buffer, format='PNG')
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack('>II', width, height)
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def observed_state(arm: Arm, arm_index: int) -> np.ndarray:
    """The policy values (arm.dim,) an observer builds from ``joint_positions``."""
    positions = joint_positions(arm, arm_index)
    return arm.observe(np.array([positions[name] for name in arm.state_joint_names]))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--robot-description', default='aloha', help='built-in name or YAML')
    parser.add_argument('--cameras', default=None,
                        help="comma-separated camera names (default: the description's)")
    parser.add_argument('--robots', default=None,
                        help="comma-separated arm namespaces (default: the description's; '' = "
                             'no joint states)')
    parser.add_argument('--height', type=int, default=48)
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--camera-rate', type=float, default=20.0)
    parser.add_argument('--joint-rate', type=float, default=50.0)
    parser.add_argument('--fault', default='',
                        choices=['', 'encoding', 'size', 'stale', 'missing', 'nan', 'unknown',
                                 'bomb'])
    parser.add_argument('--fault-s', type=float, default=2.0,
                        help='how long a --fault bomb lasts before good frames follow (s)')
    parser.add_argument('--stamp-offset-s', type=float, default=0.0,
                        help='added to every stamp (s)')
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


def _joint_message(args, arm: Arm, index: int) -> JointState:
    positions = joint_positions(arm, index)
    if arm.namespace == args.fault_robot and args.fault == 'nan':
        positions['elbow'] = float('nan')
    if arm.namespace == args.fault_robot and args.fault == 'unknown':
        positions['wrist_yaw'] = positions.pop('wrist_rotate')
    names = list(positions)[::-1]
    return JointState(name=names, position=[positions[name] for name in names])


def main() -> None:
    args = _parse_args()
    rclpy.init()
    node = rclpy.create_node('fake_aloha_sensors')
    robot = load_robot_description(args.robot_description)
    cameras = (robot.cameras if args.cameras is None
               else [name for name in args.cameras.split(',') if name])
    arms = robot.arms
    if args.robots is not None:
        namespaces = [name for name in args.robots.split(',') if name]
        arms = robot.with_namespaces(namespaces).arms if namespaces else ()
    image_streams, bombs = [], {}
    for index, camera in enumerate(cameras):
        if camera == args.fault_camera and args.fault == 'missing':
            continue
        topic = robot.camera_topic.format(camera=camera)
        if args.compressed:
            publisher = node.create_publisher(CompressedImage, f'{topic}/compressed',
                                              qos_profile_sensor_data)
            message = _compressed_message(args, camera, index)
            if camera == args.fault_camera and args.fault == 'bomb':
                bombs[id(message)] = (bytes(message.data), png_claiming_size(
                    camera_frame(index, args.height, args.width), BOMB_SIDE, BOMB_SIDE))
        else:
            publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
            message = _image_message(args, camera, index)
        offset = STALE_OFFSET_NS if (camera == args.fault_camera and args.fault == 'stale') else 0
        image_streams.append((publisher, message, offset))
    joint_streams = [
        (node.create_publisher(JointState, f'/{arm.namespace}/joint_states',
                               qos_profile_sensor_data), _joint_message(args, arm, index))
        for index, arm in enumerate(arms)]

    offset_ns = round(args.stamp_offset_s * 1e9)
    bomb_until = time.monotonic() + args.fault_s

    def publish_images() -> None:
        if not rclpy.ok():
            return
        now_ns = node.get_clock().now().nanoseconds + offset_ns
        for publisher, message, offset in image_streams:
            if id(message) in bombs:
                good, bomb = bombs[id(message)]
                message.data = bomb if time.monotonic() < bomb_until else good
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(
                now_ns - offset, 1_000_000_000)
            publisher.publish(message)

    def publish_joints() -> None:
        if not rclpy.ok():
            return
        now_ns = node.get_clock().now().nanoseconds + offset_ns
        for publisher, message in joint_streams:
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(
                now_ns, 1_000_000_000)
            publisher.publish(message)

    node.create_timer(1.0 / args.camera_rate, publish_images)
    node.create_timer(1.0 / args.joint_rate, publish_joints)
    print('sensors ready', flush=True)
    run_child_node(node, time.monotonic() + args.duration)


if __name__ == '__main__':
    main()
