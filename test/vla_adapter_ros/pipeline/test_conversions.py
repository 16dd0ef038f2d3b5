"""Message <-> numpy conversions: images, joint states, trajectories, Interbotix commands."""

import dataclasses
import io
import struct
import warnings

from fake_sensors import png_claiming_size  # noqa: E402
import numpy as np
from PIL import Image as PilImage
import pytest
from sensor_msgs.msg import CompressedImage, Image, JointState

from vla_adapter_core.robot_description import GripperCalibration, load_robot_description
from vla_adapter_ros.pipeline import conversions
from vla_adapter_ros.pipeline.conversions import ConversionError


def _rgb(height=6, width=5, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _padded_image(rgb: np.ndarray, encoding: str, pad: int) -> Image:
    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}[encoding]
    pixels = {'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'mono8': rgb[..., :1]}[encoding]
    height, width = rgb.shape[:2]
    rows = np.zeros((height, width * channels + pad), np.uint8)
    rows[:, :width * channels] = pixels.reshape(height, -1)
    return Image(height=height, width=width, encoding=encoding, step=rows.shape[1],
                 data=rows.tobytes())


def test_rgb8_is_a_zero_copy_view_of_the_message_buffer():
    rgb = _rgb()
    message = conversions.rgb_to_image(rgb, 'rgb8')
    out = conversions.image_to_rgb(message, expected_hw=(6, 5))
    assert out.shape == (6, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(message.data, np.uint8))


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8'])
@pytest.mark.parametrize('pad', [0, 3])
def test_every_encoding_with_and_without_row_padding(encoding, pad):
    rgb = _rgb(seed=pad)
    out = conversions.image_to_rgb(_padded_image(rgb, encoding, pad))
    expected = np.repeat(rgb[..., :1], 3, axis=2) if encoding == 'mono8' else rgb
    np.testing.assert_array_equal(out, expected)
    assert out.flags.c_contiguous or encoding == 'rgb8'


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8'])
def test_rgb_to_image_round_trips(encoding):
    rgb = _rgb(seed=3)
    message = conversions.rgb_to_image(rgb, encoding, frame_id='cam')
    assert message.encoding == encoding and message.header.frame_id == 'cam'
    expected = np.repeat(rgb[..., :1], 3, axis=2) if encoding == 'mono8' else rgb
    np.testing.assert_array_equal(conversions.image_to_rgb(message), expected)


def test_unsupported_encoding_is_named():
    message = conversions.rgb_to_image(_rgb())
    message.encoding = 'yuv422'
    with pytest.raises(ConversionError, match=r"cam_high.*unsupported encoding 'yuv422'"):
        conversions.image_to_rgb(message, source='cam_high')


def test_size_mismatch_and_inconsistent_buffers_are_named():
    message = conversions.rgb_to_image(_rgb(6, 5))
    with pytest.raises(ConversionError, match=r'\(6, 5\) does not match the expected'):
        conversions.image_to_rgb(message, expected_hw=(480, 640))
    short = conversions.rgb_to_image(_rgb(6, 5))
    short.data = bytes(10)
    with pytest.raises(ConversionError, match='data has 10 bytes'):
        conversions.image_to_rgb(short)
    narrow = conversions.rgb_to_image(_rgb(6, 5))
    narrow.step = 4
    with pytest.raises(ConversionError, match='step=4'):
        conversions.image_to_rgb(narrow)
    empty = Image(encoding='rgb8')
    with pytest.raises(ConversionError, match='empty image'):
        conversions.image_to_rgb(empty)
    with pytest.raises(ConversionError, match='uint8'):
        conversions.rgb_to_image(np.zeros((2, 2, 3), np.float32))


def _compressed(rgb: np.ndarray, pil_format: str, fmt: str) -> CompressedImage:
    buffer = io.BytesIO()
    PilImage.fromarray(rgb).save(buffer, format=pil_format)
    return CompressedImage(format=fmt, data=buffer.getvalue())


def test_png_decodes_exactly_and_jpeg_approximately():
    rgb = _rgb(32, 48, seed=4)
    png = conversions.compressed_image_to_rgb(_compressed(rgb, 'PNG', 'png'), (32, 48))
    np.testing.assert_array_equal(png, rgb)
    smooth = np.broadcast_to(np.linspace(0, 255, 48, dtype=np.uint8)[None, :, None],
                             (32, 48, 3)).copy()
    jpeg = conversions.compressed_image_to_rgb(
        _compressed(smooth, 'JPEG', 'rgb8; jpeg compressed bgr8'))
    assert jpeg.shape == (32, 48, 3)
    assert np.abs(jpeg.astype(int) - smooth.astype(int)).mean() < 4.0


def test_bad_compressed_images_are_named():
    rgb = _rgb(8, 8)
    with pytest.raises(ConversionError, match="unsupported compressed format 'tiff'"):
        conversions.compressed_image_to_rgb(_compressed(rgb, 'TIFF', 'tiff'))
    with pytest.raises(ConversionError, match='cannot decode 5 bytes'):
        conversions.compressed_image_to_rgb(CompressedImage(format='jpeg', data=b'12345'))
    with pytest.raises(ConversionError, match="format says 'png' but the data is 'jpeg'"):
        conversions.compressed_image_to_rgb(_compressed(rgb, 'JPEG', 'png'))
    with pytest.raises(ConversionError, match=r'\(8, 8\) does not match'):
        conversions.compressed_image_to_rgb(_compressed(rgb, 'PNG', 'png'), (480, 640))


def _jpeg_claiming_size(rgb: np.ndarray, height: int, width: int) -> bytes:
    """A JPEG of ``rgb`` whose SOF0 header claims (height, width)."""
    data = bytearray(_compressed(rgb, 'JPEG', 'jpeg').data)
    sof = data.index(b'\xff\xc0')  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data)


@pytest.mark.parametrize(('height', 'width'), [(20000, 20000), (9000, 9000), (480, 640)])
def test_a_header_claiming_a_huge_or_wrong_size_is_refused_before_decoding(height, width):
    """Every failure is a ConversionError naming the source, whatever the header claims.

    20000x20000 is over Pillow's own limit (its DecompressionBombError, raised while reading the
    header), 9000x9000 passes Pillow's limit but not ours, 480x640 is plausible: decoding the
    8x8 payload then fails as truncated (PNG) or ends in grey rows (JPEG).
    """
    rgb = _rgb(8, 8)
    png = CompressedImage(format='png', data=png_claiming_size(rgb, height, width))
    jpeg = CompressedImage(format='jpeg', data=_jpeg_claiming_size(rgb, height, width))
    pixels = height * width
    bomb = r'cannot decode \d+ bytes .*DecompressionBombError: Image size \(400000000 pixels\)'
    for message in (png, jpeg):
        with pytest.raises(ConversionError, match=bomb if pixels > 2 * PilImage.MAX_IMAGE_PIXELS
                           else rf'camera x: .*\({height}, {width}\) does not match .*\(8, 8\)'):
            conversions.compressed_image_to_rgb(message, (8, 8), 'camera x')
        if pixels > 2 * PilImage.MAX_IMAGE_PIXELS:
            expected = bomb
        elif pixels > conversions.MAX_COMPRESSED_IMAGE_PIXELS:
            expected = rf'\({height}, {width}\) is {pixels} pixels, more than'
        elif message is png:
            expected = r"cannot decode \d+ bytes as format 'png': OSError: .*truncated"
        else:  # libjpeg ends a short stream with grey rows: a frame of the claimed size
            assert conversions.compressed_image_to_rgb(message).shape == (height, width, 3)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', PilImage.DecompressionBombWarning)
            with pytest.raises(ConversionError, match=expected):
                conversions.compressed_image_to_rgb(message, None, 'camera x')


ALOHA_ARM = load_robot_description('aloha').arms[0]
WX250_ARM = load_robot_description('wx250').arms[0]


def _joint_state(names, positions) -> JointState:
    return JointState(name=list(names), position=[float(p) for p in positions])


def test_joint_positions_are_looked_up_by_name_not_index():
    names = list(ALOHA_ARM.driver_joint_names)
    values = np.arange(len(names), dtype=float) / 10
    order = np.random.default_rng(0).permutation(len(names))
    message = _joint_state([names[i] for i in order], values[order])
    out = conversions.joint_positions_by_name(message, ['elbow', 'waist', 'left_finger'])
    np.testing.assert_allclose(out, [0.2, 0.0, 0.7])


def test_unknown_missing_and_nan_joints_are_named():
    with pytest.raises(ConversionError, match=r"joints \['waist'\] not found.*'wrist_yaw'"):
        conversions.joint_positions_by_name(_joint_state(['wrist_yaw'], [0.0]), ['waist'])
    with pytest.raises(ConversionError, match=r"non-finite joint positions \[\('elbow', nan\)\]"):
        conversions.joint_positions_by_name(
            _joint_state(['waist', 'elbow'], [0.0, np.nan]), ['waist', 'elbow'])
    with pytest.raises(ConversionError, match='2 names but 1 positions'):
        conversions.joint_positions_by_name(
            JointState(name=['waist', 'elbow'], position=[0.0]), ['waist'])
    with pytest.raises(ConversionError, match='duplicate joint names'):
        conversions.joint_positions_by_name(_joint_state(['waist', 'waist'], [0, 1]), ['waist'])


def test_arm_state_normalises_the_gripper_in_finger_space():
    calibration = ALOHA_ARM.gripper
    names = list(ALOHA_ARM.driver_joint_names)
    for finger, expected in ((calibration.finger_open, 1.0), (calibration.finger_closed, 0.0)):
        positions = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0, finger, -finger]
        state = conversions.arm_state_from_joint_state(_joint_state(names, positions), ALOHA_ARM)
        np.testing.assert_allclose(state, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, expected])
    custom = dataclasses.replace(ALOHA_ARM, gripper=GripperCalibration(
        finger_open=0.1, finger_closed=0.0, joint_open=1.0, joint_closed=0.0))
    state = conversions.arm_state_from_joint_state(
        _joint_state(names, [0] * 7 + [0.025, 0.0]), custom)
    assert state[-1] == pytest.approx(0.25)


def test_five_joint_arm_state_has_no_forearm_roll():
    names = list(WX250_ARM.driver_joint_names)
    assert 'forearm_roll' not in names and len(names) == 8
    finger = WX250_ARM.gripper.finger_open
    state = conversions.arm_state_from_joint_state(
        _joint_state(names, [0.1, 0.2, 0.3, 0.4, 0.5, 1.0, finger, -finger]), WX250_ARM)
    np.testing.assert_allclose(state, [0.1, 0.2, 0.3, 0.4, 0.5, 1.0])
    with pytest.raises(ConversionError, match=r"joints \['left_finger'\] not found"):
        conversions.arm_state_from_joint_state(_joint_state(names[:6], [0.0] * 6), WX250_ARM)


def test_arm_trajectory_times_names_and_round_trip():
    angles = np.random.default_rng(1).normal(size=(25, 7))
    names = list(ALOHA_ARM.command_joint_names)
    stamp = JointState().header.stamp
    conversions.nanoseconds_to_stamp(1_700_000_000_123_456_789, stamp)
    trajectory = conversions.arm_trajectory(angles, names, 0.02, stamp)
    assert trajectory.joint_names == names
    assert conversions.stamp_to_nanoseconds(trajectory.header.stamp) == 1_700_000_000_123_456_789
    times = [p.time_from_start.sec * 10**9 + p.time_from_start.nanosec
             for p in trajectory.points]
    assert times == [k * 20_000_000 for k in range(25)]
    np.testing.assert_allclose(conversions.trajectory_positions(trajectory, names), angles)
    reordered = conversions.trajectory_positions(trajectory, ['gripper', 'waist'])
    np.testing.assert_allclose(reordered, angles[:, [6, 0]])
    assert conversions.seconds_to_duration(1.5).sec == 1
    assert conversions.seconds_to_duration(1.5).nanosec == 500_000_000


def test_arm_trajectory_rejects_bad_chunks():
    names = list(ALOHA_ARM.command_joint_names)
    with pytest.raises(ConversionError, match=r'shape \(3, 6\)'):
        conversions.arm_trajectory(np.zeros((3, 6)), names, 0.02)
    with pytest.raises(ConversionError, match='non-finite'):
        conversions.arm_trajectory(np.full((3, 7), np.nan), names, 0.02)
    with pytest.raises(ConversionError, match='dt=0'):
        conversions.arm_trajectory(np.zeros((3, 7)), names, 0)
    trajectory = conversions.arm_trajectory(np.zeros((2, 7)), names, 0.02)
    with pytest.raises(ConversionError, match=r"lacks joints \['wrist_yaw'\]"):
        conversions.trajectory_positions(trajectory, ['wrist_yaw'])


def test_interbotix_commands():
    left = np.arange(14, dtype=float).reshape(2, 7)
    group = conversions.joint_group_command('arm', left[0, :6])
    assert group.name == 'arm' and list(group.cmd) == pytest.approx(list(range(6)))
    single = conversions.joint_single_command('gripper', 1.25)
    assert single.name == 'gripper' and single.cmd == pytest.approx(1.25)
    with pytest.raises(ConversionError, match="'arm'"):
        conversions.joint_group_command('arm', [0.0, np.nan])
    with pytest.raises(ConversionError, match="'gripper'"):
        conversions.joint_single_command('gripper', np.inf)


def test_images_become_jpeg_compressed_images_with_their_header():
    smooth = np.broadcast_to(np.linspace(0, 255, 48, dtype=np.uint8)[None, :, None],
                             (32, 48, 3)).copy()
    for encoding in ('rgb8', 'bgr8'):
        image = conversions.rgb_to_image(smooth, encoding, frame_id='cam')
        image.header.stamp.sec = 7
        compressed = conversions.image_to_compressed(image, 90)
        assert compressed.format == f'{encoding}; jpeg compressed bgr8'
        assert compressed.header.frame_id == 'cam' and compressed.header.stamp.sec == 7
        decoded = conversions.compressed_image_to_rgb(compressed, (32, 48))
        assert np.abs(decoded.astype(int) - smooth.astype(int)).mean() < 4.0
    small = conversions.encode_jpeg(_rgb(64, 64, seed=1), 10)
    large = conversions.encode_jpeg(_rgb(64, 64, seed=1), 95)
    assert len(small) < len(large)


@pytest.mark.parametrize(('quality', 'message'), [
    (0, r'jpeg quality=0 must be an integer in \[1, 100\]'),
    (101, 'quality=101'), (True, 'quality=True'), (50.0, 'quality=50.0')])
def test_bad_jpeg_qualities_are_named(quality, message):
    with pytest.raises(ConversionError, match=message):
        conversions.encode_jpeg(_rgb(), quality)


def test_bad_images_are_not_compressed():
    with pytest.raises(ConversionError, match='uint8'):
        conversions.encode_jpeg(np.zeros((4, 4, 3), np.float32), 80)
    broken = conversions.rgb_to_image(_rgb())
    broken.data = bytes(3)
    with pytest.raises(ConversionError, match='cam: data has 3 bytes'):
        conversions.image_to_compressed(broken, 80, 'cam')
