"""The only place where ROS messages become numpy arrays and back (no torch, no rclpy nodes).

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/pipeline/conversions.py.
"""

from collections.abc import Sequence
import importlib
import io

from builtin_interfaces.msg import Duration
import numpy as np
from sensor_msgs.msg import CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_adapter_core.robot_description import Arm
from vla_adapter_msgs.msg import ActionChunk

# Channels per pixel of every supported raw encoding.
SUPPORTED_ENCODINGS: dict[str, int] = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}
SUPPORTED_COMPRESSED_FORMATS: tuple[str, ...] = ('jpeg', 'png')
PIL_FORMATS = ('JPEG', 'PNG')  # the only decoders Pillow may try on a CompressedImage
# Largest compressed frame decoded (8K UHD) when the node accepts any image size.
MAX_COMPRESSED_IMAGE_PIXELS = 7680 * 4320
# JPEG qualities the encoder accepts: Pillow's own range (above 95 it only grows the file).
JPEG_QUALITY_RANGE = (1, 100)
NANOSECONDS_PER_SECOND = 1_000_000_000


class ConversionError(ValueError):
    """A message that cannot be converted; the text names the field and the offending value."""


def stamp_to_nanoseconds(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * NANOSECONDS_PER_SECOND + int(stamp.nanosec)


def nanoseconds_to_stamp(nanoseconds: int, stamp) -> None:
    """Write integer nanoseconds into a builtin_interfaces/Time (in place)."""
    stamp.sec, stamp.nanosec = divmod(int(nanoseconds), NANOSECONDS_PER_SECOND)


def seconds_to_duration(seconds: float) -> Duration:
    """Float seconds (>= 0) -> builtin_interfaces/Duration, rounded to the nanosecond."""
    sec, nanosec = divmod(round(seconds * NANOSECONDS_PER_SECOND), NANOSECONDS_PER_SECOND)
    return Duration(sec=int(sec), nanosec=int(nanosec))


def _check_size(source: str, height: int, width: int,
                expected_hw: tuple[int, int] | None) -> None:
    if expected_hw is not None and (height, width) != tuple(expected_hw):
        raise ConversionError(
            f'{source}: image size (height, width)=({height}, {width}) does not match the '
            f'expected {tuple(expected_hw)}')


def image_to_rgb(message: Image, expected_hw: tuple[int, int] | None = None,
                 source: str = 'image') -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB.

    Zero-copy (a view of ``message.data``) for rgb8; bgr8 and mono8 are copied once.
    ``expected_hw`` (height, width), when given, must match. ``source`` names the input in errors.
    """
    encoding = message.encoding.lower()
    if encoding not in SUPPORTED_ENCODINGS:
        raise ConversionError(
            f'{source}: unsupported encoding {message.encoding!r}; supported: '
            f'{sorted(SUPPORTED_ENCODINGS)}')
    height, width, step = int(message.height), int(message.width), int(message.step)
    if height <= 0 or width <= 0:
        raise ConversionError(f'{source}: empty image, height={height} width={width}')
    _check_size(source, height, width, expected_hw)
    channels = SUPPORTED_ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise ConversionError(
            f'{source}: step={step} is smaller than width*channels={row_bytes}')
    buffer = np.frombuffer(message.data, dtype=np.uint8)  # (len,) view, no copy
    if buffer.size != step * height:
        raise ConversionError(
            f'{source}: data has {buffer.size} bytes, expected step*height={step * height}')
    rows = buffer.reshape(height, step)[:, :row_bytes]  # (H, W*C) view, padding dropped
    pixels = rows.reshape(height, width, channels)  # (H, W, C) view
    if encoding == 'rgb8':
        return pixels
    if encoding == 'bgr8':
        return np.ascontiguousarray(pixels[..., ::-1])  # (H, W, 3) RGB copy
    return np.repeat(pixels, 3, axis=2)  # mono8 -> (H, W, 3) grey RGB


def _compressed_kind(fmt: str) -> str | None:
    lowered = fmt.lower()
    if 'jpeg' in lowered or 'jpg' in lowered:
        return 'jpeg'
    if 'png' in lowered:
        return 'png'
    return None


def _check_header(source: str, picture, kind: str, fmt: str,
                  expected_hw: tuple[int, int] | None) -> None:
    """Refuse a compressed image from its header alone, before any pixel is decoded."""
    decoded_kind = (picture.format or '').lower()
    if decoded_kind != kind:
        raise ConversionError(f'{source}: format says {fmt!r} but the data is {decoded_kind!r}')
    width, height = picture.size
    _check_size(source, height, width, expected_hw)
    if height * width > MAX_COMPRESSED_IMAGE_PIXELS:
        raise ConversionError(
            f'{source}: header size (height, width)=({height}, {width}) is {height * width} '
            f'pixels, more than the {MAX_COMPRESSED_IMAGE_PIXELS} decoded for any camera')


def compressed_image_to_rgb(message: CompressedImage,
                            expected_hw: tuple[int, int] | None = None,
                            source: str = 'compressed image') -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png) -> (H, W, 3) uint8 RGB (decoded with Pillow).

    The header is checked before decoding: its size must be ``expected_hw`` (when given) and at
    most ``MAX_COMPRESSED_IMAGE_PIXELS``, so a header claiming a huge image allocates nothing.
    Every decoder error (Pillow's DecompressionBombError included) is a ConversionError.
    """
    kind = _compressed_kind(message.format)
    if kind is None:
        raise ConversionError(
            f'{source}: unsupported compressed format {message.format!r}; supported: '
            f'{list(SUPPORTED_COMPRESSED_FORMATS)}')
    from PIL import Image as PilImage  # imported on first use: raw-image users never pay for it

    data = bytes(message.data)
    try:
        # open() reads the header only; decoding happens in convert().
        with PilImage.open(io.BytesIO(data), formats=PIL_FORMATS) as picture:
            _check_header(source, picture, kind, message.format, expected_hw)
            rgb = np.array(picture.convert('RGB'), dtype=np.uint8)  # (H, W, 3), writable
    except ConversionError:
        raise
    except Exception as error:  # noqa: BLE001 - a decoder fed arbitrary bytes may raise anything
        raise ConversionError(
            f'{source}: cannot decode {len(data)} bytes as format {message.format!r}: '
            f'{type(error).__name__}: {error}') from error
    return rgb


def jpeg_format(encoding: str) -> str:
    """The CompressedImage ``format`` of a JPEG made from an ``encoding`` image.

    image_transport's convention (compressed_image_transport writes the same), so its republish
    tools and ours read each other's messages.
    """
    return f'{encoding}; jpeg compressed bgr8'


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes at ``quality`` (1..100), encoded with Pillow."""
    low, high = JPEG_QUALITY_RANGE
    if isinstance(quality, bool) or not isinstance(quality, int) or not low <= quality <= high:
        raise ConversionError(f'jpeg quality={quality!r} must be an integer in [{low}, {high}]')
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(
            f'rgb must be uint8 (H, W, 3), got dtype={rgb.dtype} shape={rgb.shape}')
    from PIL import Image as PilImage  # imported on first use: raw-image users never pay for it

    buffer = io.BytesIO()
    PilImage.fromarray(rgb).save(buffer, format='JPEG', quality=quality)
    return buffer.getvalue()


def image_to_compressed(message: Image, quality: int, source: str = 'image') -> CompressedImage:
    """sensor_msgs/Image -> sensor_msgs/CompressedImage (JPEG at ``quality``), same header.

    Any size is accepted; a bad encoding, size or data length is a ConversionError naming
    ``source`` and the field (:func:`image_to_rgb`).
    """
    rgb = image_to_rgb(message, None, source)  # (H, W, 3) view for rgb8
    compressed = CompressedImage(format=jpeg_format(message.encoding.lower()))
    compressed.header = message.header
    compressed.data = encode_jpeg(rgb, quality)  # bytes: rclpy copies them without a loop
    return compressed


def rgb_to_image(rgb: np.ndarray, encoding: str = 'rgb8', frame_id: str = '') -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image in ``encoding`` (rgb8, bgr8 or mono8 = channel 0).

    The data field is filled with bytes (assigning an ndarray is ~1000x slower in rclpy).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(
            f'rgb must be uint8 (H, W, 3), got dtype={rgb.dtype} shape={rgb.shape}')
    if encoding == 'rgb8':
        pixels = rgb
    elif encoding == 'bgr8':
        pixels = rgb[..., ::-1]
    elif encoding == 'mono8':
        pixels = rgb[..., :1]
    else:
        raise ConversionError(f'encoding={encoding!r} is not one of {sorted(SUPPORTED_ENCODINGS)}')
    message = Image(encoding=encoding, height=rgb.shape[0], width=rgb.shape[1],
                    step=rgb.shape[1] * pixels.shape[2], is_bigendian=0)
    message.header.frame_id = frame_id
    message.data = np.ascontiguousarray(pixels).tobytes()
    return message


def joint_positions_by_name(message: JointState, names: Sequence[str],
                            source: str = 'joint_states') -> np.ndarray:
    """Positions of ``names`` (in that order) from a JointState, looked up by name.

    Raises ConversionError for name/position length mismatches, duplicate names, missing joints
    (listing the names the message does carry) and non-finite positions (naming the joint).
    """
    message_names = list(message.name)
    positions = np.asarray(message.position, dtype=np.float64)  # (n,)
    if positions.shape[0] != len(message_names):
        raise ConversionError(
            f'{source}: {len(message_names)} names but {positions.shape[0]} positions')
    index = {name: i for i, name in enumerate(message_names)}
    if len(index) != len(message_names):
        raise ConversionError(f'{source}: duplicate joint names in {message_names}')
    missing = [name for name in names if name not in index]
    if missing:
        raise ConversionError(
            f'{source}: joints {missing} not found; the message has names {message_names}')
    values = positions[[index[name] for name in names]]  # (len(names),)
    bad = [(name, float(value)) for name, value in zip(names, values) if not np.isfinite(value)]
    if bad:
        raise ConversionError(f'{source}: non-finite joint positions {bad}')
    return values


def arm_state_from_joint_state(message: JointState, arm: Arm,
                               source: str = 'joint_states') -> np.ndarray:
    """One arm's policy values, (arm.dim,): joint angles (rad), gripper normalised (finger)."""
    return arm.observe(joint_positions_by_name(message, arm.state_joint_names, source))


def arm_trajectory(joint_angles: np.ndarray, joint_names: Sequence[str], dt: float,
                   stamp=None, frame_id: str = '') -> JointTrajectory:
    """(T, J) joint angles -> JointTrajectory; point k has ``time_from_start = k * dt``.

    ``stamp`` (builtin_interfaces/Time), when given, becomes ``header.stamp``.
    """
    joint_angles = np.asarray(joint_angles, dtype=np.float64)
    if joint_angles.ndim != 2 or joint_angles.shape[1] != len(joint_names):
        raise ConversionError(
            f'joint_angles shape {joint_angles.shape} does not match (T, {len(joint_names)}) for '
            f'joint_names {list(joint_names)}')
    if not dt > 0:
        raise ConversionError(f'dt={dt} must be positive')
    if not np.all(np.isfinite(joint_angles)):
        raise ConversionError('joint_angles contain non-finite values')
    trajectory = JointTrajectory(joint_names=list(joint_names))
    trajectory.header.frame_id = frame_id
    if stamp is not None:
        trajectory.header.stamp = stamp
    trajectory.points = [
        JointTrajectoryPoint(positions=row, time_from_start=seconds_to_duration(k * dt))
        for k, row in enumerate(joint_angles.tolist())]  # one tolist(): ~30 % faster
    return trajectory


def trajectory_offsets_s(trajectory: JointTrajectory) -> np.ndarray:
    """time_from_start of every point of a JointTrajectory, (T,) float seconds."""
    return np.array([point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
                     for point in trajectory.points], dtype=np.float64)


def trajectory_positions(trajectory: JointTrajectory, joint_names: Sequence[str]) -> np.ndarray:
    """JointTrajectory -> (T, len(joint_names)) positions, columns looked up by joint name."""
    index = {name: i for i, name in enumerate(trajectory.joint_names)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise ConversionError(
            f'trajectory lacks joints {missing}; it has {list(trajectory.joint_names)}')
    columns = [index[name] for name in joint_names]
    rows = [np.asarray(point.positions, dtype=np.float64) for point in trajectory.points]
    if any(row.shape[0] != len(trajectory.joint_names) for row in rows):
        raise ConversionError('trajectory point positions do not match joint_names length')
    if not rows:
        return np.zeros((0, len(joint_names)))
    return np.stack(rows)[:, columns]  # (T, J)


def joint_group_command(group_name: str, positions: Sequence[float]):
    """interbotix_xs_msgs/JointGroupCommand for one arm's group (e.g. 'arm': 6 joint angles)."""
    from interbotix_xs_msgs.msg import JointGroupCommand

    values = np.asarray(positions, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ConversionError(f'JointGroupCommand {group_name!r}: non-finite cmd {values}')
    return JointGroupCommand(name=group_name, cmd=[float(v) for v in values])


def joint_single_command(joint_name: str, position: float):
    """interbotix_xs_msgs/JointSingleCommand (e.g. 'gripper' in radians)."""
    from interbotix_xs_msgs.msg import JointSingleCommand

    if not np.isfinite(position):
        raise ConversionError(f'JointSingleCommand {joint_name!r}: non-finite cmd {position}')
    return JointSingleCommand(name=joint_name, cmd=float(position))


def action_chunk_message(stamp_ns: int, robot, angles: np.ndarray, step_s: float,
                         frame_id: str) -> tuple[ActionChunk, list[JointTrajectory]]:
    """The ActionChunk of ``angles`` (T, action_dim) rad, and its per-arm trajectories.

    Stamped at the observation time ``stamp_ns``; left is the first arm of the description.
    """
    chunk = ActionChunk()
    nanoseconds_to_stamp(stamp_ns, chunk.header.stamp)
    chunk.header.frame_id = frame_id
    trajectories = [arm_trajectory(part, arm.command_joint_names, step_s, chunk.header.stamp)
                    for arm, part in zip(robot.arms, robot.split(angles))]
    chunk.left = trajectories[0]
    if len(trajectories) > 1:
        chunk.right = trajectories[1]
    return chunk, trajectories


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> its Python message class; ValueError naming the package."""
    package, _, name = type_name.split('/')
    try:
        return getattr(importlib.import_module(f'{package}.msg'), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f'message type {type_name} is not available ({error}); install or '
                         f'source the {package} package') from None
