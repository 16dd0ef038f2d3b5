"""rosbag2 episodes (mcap and sqlite3) written with rosbags: alignment, action sources, errors."""

from episode_writers import RosbagEpisodeWriter
import numpy as np
import pytest

from training.data_config import DatasetConfig
from training.dataset import discover_episodes, load_episodes
from training.episodes import EpisodeError
from training.rosbag_episodes import RosbagAligner, cache_path_for

CAMERAS = ['cam_high', 'cam_left_wrist']
T0 = 1_700_000_000 * 10**9
MS = 1_000_000
ARMS = {'follower_left': 0.0, 'follower_right': 10.0, 'leader_left': 20.0, 'leader_right': 30.0}
OFFSETS_MS = {'follower_left': 3, 'follower_right': 3, 'leader_left': 7, 'leader_right': 7}


def arm_value(arm: str, stamp_ns: int) -> np.ndarray:
    """The 7 joint values an arm reports at ``stamp_ns`` (a distinct ramp per arm)."""
    seconds = (stamp_ns - T0) / 1e9
    return ARMS[arm] + seconds + 0.01 * np.arange(7)


def observed(arm: str, stamp_ns: int) -> np.ndarray:
    """ALOHA proprio of a follower: 6 joints, left_finger (0.05 m) normalised in 0.044..0.0579."""
    values = arm_value(arm, stamp_ns)
    values[6] = (0.05 - 0.0440) / (0.0579 - 0.0440)
    return values


def commanded(arm: str, stamp_ns: int) -> np.ndarray:
    """ALOHA action of a leader: 6 joints, then the gripper angle normalised in -0.0552..0.8298."""
    values = arm_value(arm, stamp_ns)
    values[6] = (values[6] + 0.0552) / (0.8298 + 0.0552)
    return values


def frame_colour(index: int) -> np.ndarray:
    """Camera frame ``index`` is one flat colour encoding the index."""
    return np.array([10 * index % 250, 200 - 5 * index % 200, 40], dtype=np.uint8)


def write_episode(path, storage='mcap', seconds=0.5, skip_camera_frames=(), drop_topic=None,
                  action_array_topic=None, instruction='pick up the cube'):
    """Cameras at 30 Hz, joint_states at 100 Hz, stamps offset so alignment is not trivial."""
    writer = RosbagEpisodeWriter(path, storage=storage, instruction=instruction)
    for index in range(int(seconds * 30) + 1):
        if index in skip_camera_frames:
            continue
        stamp = T0 + round(index * 1e9 / 30)
        for camera in CAMERAS:
            frame = np.broadcast_to(frame_colour(index), (24, 32, 3))
            writer.image(f'/{camera}/camera/color/image_rect_raw', stamp, frame,
                         encoding='bgr8' if camera == 'cam_left_wrist' else 'rgb8')
    for index in range(int(seconds * 100) + 1):
        for arm, offset in OFFSETS_MS.items():
            stamp = T0 + offset * MS + index * 10 * MS
            if f'/{arm}/joint_states' != drop_topic:
                writer.joint_state(f'/{arm}/joint_states', stamp, arm_value(arm, stamp))
        if action_array_topic:
            stamp = T0 + 5 * MS + index * 10 * MS
            action = np.concatenate([arm_value('leader_left', stamp),
                                     arm_value('leader_right', stamp)])
            writer.float_array(action_array_topic, stamp, action)
    writer.close()
    return path


def _config(tmp_path, **overrides):
    values = {'paths': [str(tmp_path / 'bags')], 'camera_names': CAMERAS, 'chunk_size': 5,
              'cache_dir': str(tmp_path / 'cache')}
    values.update(overrides)
    return DatasetConfig(**values)


def _latest(stamps, time):
    return max(stamp for stamp in stamps if stamp <= time)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_is_aligned_at_50_hz(tmp_path, storage):
    write_episode(tmp_path / 'bags' / 'episode_0', storage=storage)
    config = _config(tmp_path)
    assert discover_episodes(config) == [(tmp_path / 'bags' / 'episode_0', 'rosbag2')]
    [episode] = load_episodes(config)
    assert episode.instruction == 'pick up the cube'
    start = T0 + 7 * MS  # the latest first message (the leaders)
    end = T0 + 500 * MS  # the earliest last message (the cameras' frame 15)
    grid = [start + k * 20 * MS for k in range(int((end - start) / (20 * MS)) + 1)]
    assert len(episode) == len(grid) == 25
    follower_stamps = [T0 + 3 * MS + i * 10 * MS for i in range(51)]
    leader_stamps = [T0 + 7 * MS + i * 10 * MS for i in range(51)]
    camera_stamps = [T0 + round(i * 1e9 / 30) for i in range(16)]
    for step, time in enumerate(grid):
        follower = _latest(follower_stamps, time)
        expected = np.concatenate([observed('follower_left', follower),
                                   observed('follower_right', follower)])
        np.testing.assert_allclose(episode.proprio[step], expected, atol=1e-5)
        leader = _latest(leader_stamps, time)
        expected = np.concatenate([commanded('leader_left', leader),
                                   commanded('leader_right', leader)])
        np.testing.assert_allclose(episode.actions[step], expected, atol=1e-5)
        frame_index = camera_stamps.index(_latest(camera_stamps, time))
        images = episode.read_images(step)
        for camera in CAMERAS:  # rgb8 and bgr8 both come back as RGB
            assert images[camera].shape == (24, 32, 3)
            error = np.abs(images[camera].astype(int) - frame_colour(frame_index)).max()
            assert error <= 3, (step, camera)


def test_alignment_rate_is_configurable_and_cached(tmp_path):
    write_episode(tmp_path / 'bags' / 'episode_0')
    config = _config(tmp_path, rate_hz=25.0)
    [episode] = load_episodes(config)
    assert len(episode) == 13  # 7 ms .. 487 ms every 40 ms
    cache = cache_path_for(tmp_path / 'bags' / 'episode_0', config)
    assert cache.is_file()
    modified = cache.stat().st_mtime_ns
    load_episodes(config)
    assert cache.stat().st_mtime_ns == modified
    assert cache_path_for(tmp_path / 'bags' / 'episode_0', _config(tmp_path)) != cache


def test_recorded_action_topic(tmp_path):
    write_episode(tmp_path / 'bags' / 'episode_0', action_array_topic='/policy/action')
    config = _config(tmp_path, action_source='topic', action_topic='/policy/action',
                     timestamp_source='header')
    [episode] = load_episodes(config)
    # The action topic has no header: it is aligned on bag time (stamps offset by 5 ms).
    step = 3
    time = T0 + 7 * MS + step * 20 * MS
    stamp = T0 + 5 * MS + ((time - T0 - 5 * MS) // (10 * MS)) * 10 * MS
    expected = np.concatenate([arm_value('leader_left', stamp), arm_value('leader_right', stamp)])
    np.testing.assert_allclose(episode.actions[step], expected, atol=1e-5)


def write_description(path, text):
    """A robot description written only for a test (no code change needed for a robot)."""
    path.write_text(text)
    return str(path)


def test_single_arm_bag_with_raw_grippers(tmp_path):
    write_episode(tmp_path / 'bags' / 'episode_0')
    robot = write_description(tmp_path / 'right_arm.yaml', """
extends: aloha
name: aloha_right_arm
followers:
  arms: [{namespace: follower_right, side: right}]
leaders:
  arms: [{namespace: leader_right, side: right}]
""")
    config = _config(tmp_path, robot=robot, camera_names=['cam_high'], gripper_mode='raw')
    assert (config.proprio_dim, config.action_dim) == (7, 7)
    [episode] = load_episodes(config)
    assert episode.proprio.shape[1] == 7 and episode.actions.shape[1] == 7
    stamp = T0 + 7 * MS
    np.testing.assert_allclose(episode.actions[0], arm_value('leader_right', stamp), atol=1e-5)
    np.testing.assert_allclose(episode.proprio[0], arm_value('follower_right', stamp - 4 * MS),
                               atol=1e-5)


def test_missing_topic_is_named(tmp_path):
    write_episode(tmp_path / 'bags' / 'episode_0', drop_topic='/leader_right/joint_states')
    with pytest.raises(EpisodeError, match=r'episode_0: /leader_right/joint_states: topic '
                                           r'missing from the bag'):
        load_episodes(_config(tmp_path))


def test_missing_camera_is_named(tmp_path):
    write_episode(tmp_path / 'bags' / 'episode_0')
    config = _config(tmp_path, camera_names=['cam_high', 'cam_low'])
    with pytest.raises(EpisodeError, match=r'/cam_low/camera/color/image_rect_raw \(nor '
                                           r'\S+/compressed\): topic missing'):
        load_episodes(config)


def test_gap_in_a_camera_stream_is_an_error(tmp_path):
    write_episode(tmp_path / 'bags' / 'episode_0', skip_camera_frames=range(4, 12))
    with pytest.raises(EpisodeError, match=r'/cam_high/camera/color/image_rect_raw: no message '
                                           r'for 0\.2\d\d s'):
        load_episodes(_config(tmp_path))


def test_episode_shorter_than_one_step(tmp_path):
    writer = RosbagEpisodeWriter(tmp_path / 'bags' / 'episode_0', instruction='x')
    writer.image('/cam_high/camera/color/image_rect_raw', T0 + 50 * MS,
                 np.zeros((8, 8, 3), np.uint8))
    for arm in ARMS:
        writer.joint_state(f'/{arm}/joint_states', T0, arm_value(arm, T0))
    writer.close()
    with pytest.raises(EpisodeError, match=r'episode_0: topics: the topics do not overlap'):
        load_episodes(_config(tmp_path, camera_names=['cam_high']))


def test_joint_names_are_checked(tmp_path):
    write_episode(tmp_path / 'bags' / 'episode_0')
    limits = '{lower: -3.0, upper: 3.0, max_speed: 3.0}'
    joints = ', '.join(f'{name}: {limits}' for name in ('waist', 'shoulder', 'elbow',
                                                        'forearm_roll', 'wrist_angle',
                                                        'wrist_rotate'))
    robot = write_description(tmp_path / 'renamed.yaml', f"""
extends: aloha
leaders:
  model:
    joints: {{{joints}}}
    gripper: {{joint: gripper_joint, max_speed: 3.0, finger_joints: [left_finger, right_finger],
              finger_range: [0.015, 0.037]}}
""")
    with pytest.raises(EpisodeError, match=r"/leader_left/joint_states: joint_states lack "
                                           r"joints \['gripper_joint'\]"):
        load_episodes(_config(tmp_path, robot=robot))


def test_bags_need_the_robot_sizes_and_leaders(tmp_path):
    with pytest.raises(ValueError, match=r"proprio_dim=\(8, 7\): rosbag episodes of robot "
                                         r"'aloha' have proprio_dim=14"):
        _config(tmp_path, proprio_dim=8, action_dim=7).check_rosbag_robot()
    with pytest.raises(ValueError, match=r"action_source='leader_joint_states': robot 'wx250s' "
                                         r'has no leader arms'):
        _config(tmp_path, robot='wx250s').check_rosbag_robot()


def test_cache_key_follows_the_description_file(tmp_path):
    write_episode(tmp_path / 'bags' / 'episode_0')
    path = tmp_path / 'robot.yaml'
    robot = write_description(path, 'extends: aloha\n')
    before = cache_path_for(tmp_path / 'bags' / 'episode_0', _config(tmp_path, robot=robot))
    assert before == cache_path_for(tmp_path / 'bags' / 'episode_0',
                                    _config(tmp_path, robot=robot))
    assert before != cache_path_for(tmp_path / 'bags' / 'episode_0', _config(tmp_path))


def test_compressed_image_topics(tmp_path):
    writer = RosbagEpisodeWriter(tmp_path / 'bags' / 'episode_0', storage='sqlite3',
                                 instruction='wave')
    for index in range(6):
        stamp = T0 + index * 20 * MS
        frame = np.broadcast_to(frame_colour(index), (16, 16, 3)).copy()
        writer.compressed_image('/cam_high/camera/color/image_rect_raw/compressed', stamp, frame)
        for arm in ARMS:
            writer.joint_state(f'/{arm}/joint_states', stamp, arm_value(arm, stamp))
    writer.close()
    config = _config(tmp_path, camera_names=['cam_high'],
                     camera_topic_template='/{camera}/camera/color/image_rect_raw/compressed')
    [episode] = load_episodes(config)
    assert len(episode) == 6
    image = episode.read_images(4)['cam_high']
    assert np.abs(image.astype(int) - frame_colour(4)).max() <= 4


def _aligned(bag, tmp_path):
    aligner = RosbagAligner(bag, _config(tmp_path))
    reader = aligner.open_reader()
    try:
        return aligner.align_states(reader)
    finally:
        reader.close()


def test_without_metadata_the_instruction_comes_from_the_instruction_topic(tmp_path):
    path = tmp_path / 'bags' / 'episode_0'
    writer = RosbagEpisodeWriter(path, instruction=None)
    writer.string('/instruction', T0, 'first words')
    writer.string('/instruction', T0 + 100 * MS, 'fold the towel')  # the last one wins
    writer.close()
    write_episode(tmp_path / 'bags' / 'full')  # the streams, for a second bag
    bare = tmp_path / 'bare.mcap'
    _copy_streams_with_instruction(tmp_path / 'bags' / 'full', bare)
    assert _aligned(bare, tmp_path).instruction == 'fold the towel'
    with_metadata = write_episode(tmp_path / 'bags' / 'named', instruction='from metadata')
    assert _aligned(with_metadata, tmp_path).instruction == 'from metadata'


def _copy_streams_with_instruction(source, target):
    """A bare .mcap (no metadata.yaml): the streams of ``source`` plus an instruction topic."""
    from rosbags.rosbag2 import Reader

    folder = target.with_suffix('')
    writer = RosbagEpisodeWriter(folder, instruction=None)
    with Reader(source) as reader:
        for connection, bag_time, raw in reader.messages():
            writer.writer.write(writer._connection(connection.topic, connection.msgtype),
                                bag_time, raw)
    writer.string('/instruction', T0 + 50 * MS, 'pick it up')
    writer.string('/instruction', T0 + 60 * MS, 'fold the towel')
    writer.close()
    [mcap] = folder.glob('*.mcap')
    mcap.rename(target)


# Where a zeroed 200 kB region lands decides what rosbags does: skip the chunk silently (the
# counts catch it) or raise something unrelated (reported as a damaged bag, in one line).
DAMAGE = {0.2: r'/cam_high/camera/color/image_rect_raw: damaged: 59 messages read of the 60 '
               r'the bag records',
          0.6: r'/cam_high/camera/color/image_rect_raw: damaged: 56 messages read of the 60 ',
          0.4: r'bag: damaged, cannot be read \(Python int too large'}


@pytest.mark.parametrize('fraction', sorted(DAMAGE))
def test_a_damaged_region_is_refused_in_one_line(tmp_path, fraction):
    path = tmp_path / 'bags' / 'episode_0'
    writer = RosbagEpisodeWriter(path, instruction='pick')
    rng = np.random.default_rng(0)
    for index in range(60):  # 60 noisy 200x200 frames: several MCAP chunks
        stamp = T0 + round(index * 1e9 / 30)
        for camera in CAMERAS:
            writer.image(f'/{camera}/camera/color/image_rect_raw', stamp,
                         rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    for index in range(201):
        for arm, offset in OFFSETS_MS.items():
            stamp = T0 + offset * MS + index * 10 * MS
            writer.joint_state(f'/{arm}/joint_states', stamp, arm_value(arm, stamp))
    writer.close()
    [mcap] = path.glob('*.mcap')
    data = bytearray(mcap.read_bytes())
    start = int(len(data) * fraction)
    data[start:start + 200_000] = bytes(200_000)  # a zeroed 200 kB region
    mcap.write_bytes(bytes(data))
    config = _config(tmp_path, max_gap_s=5.0)  # the gap check alone would not see it
    with pytest.raises(EpisodeError, match=rf'episode_0: {DAMAGE[fraction]}'):
        load_episodes(config)
