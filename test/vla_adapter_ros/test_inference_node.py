"""The inference node over real DDS: a real tiny VLAPolicy, fake sensors in another process.

Happy paths (dual- and single-arm, checkpoint loaded by path), services, and the node's fault
paths: each bad input leaves the node running, publishes a FAULT PolicyStatus whose reason names
the field and value, and publishes no chunk.
"""

import pathlib
import sys

import numpy as np
import pytest
from ros_test_utils import start_python_process, stop_process
import torch

from vla_adapter_core.testing import build_tiny_policy
from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros import conversions
from vla_adapter_ros.robot_model import GripperCalibration, policy_to_joint_angles

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from inference_harness import CAMERAS, observation_from_fake_sensors, running_pipeline  # noqa: E402

CHUNK = 8
NO_CHUNK_WINDOW_S = 1.0


@pytest.fixture(scope='module')
def dual_policy():
    return build_tiny_policy(action_dim=14, proprio_dim=14, chunk_size=CHUNK,
                             camera_names=CAMERAS, head_kind='dual_arm', seed=1)


@pytest.fixture(scope='module')
def single_policy():
    return build_tiny_policy(action_dim=7, proprio_dim=7, chunk_size=CHUNK,
                             camera_names=CAMERAS[:2], seed=2)


@pytest.fixture(scope='module')
def dual_checkpoint(tmp_path_factory, dual_policy):
    directory = tmp_path_factory.mktemp('dual_checkpoint')
    dual_policy.save_pretrained(directory)
    return directory


def _stamp_ns(stamp) -> int:
    return conversions.stamp_to_nanoseconds(stamp)


def _expected_angles(policy, num_arms: int, instruction: str) -> np.ndarray:
    observation = observation_from_fake_sensors(num_arms, instruction)
    observation['images'] = {name: observation['images'][name]
                             for name in policy.config.camera_names}
    actions = policy.predict_action_chunk(observation)
    return policy_to_joint_angles(actions, [GripperCalibration()] * num_arms)


def test_dual_arm_chunks_from_a_checkpoint_loaded_by_path(dual_checkpoint, dual_policy):
    with running_pipeline(None, checkpoint=str(dual_checkpoint), dtype='float32') as pipeline:
        probe = pipeline.probe
        assert pipeline.spin_until(lambda: len(probe.chunks) >= 3 and probe.arm_chunks[
            'right']), f'no chunks; statuses: {[s.fault_reason for s in probe.statuses]}'
        assert pipeline.spin_until(lambda: any(
            s.state == PolicyStatus.STATE_RUNNING and s.observation_rate_hz > 0
            and s.last_inference_ms > 0 for s in probe.statuses))
        timings = list(pipeline.node.timings)
    assert len(timings) >= len(probe.chunks)
    for timing in timings:
        assert timing.arrival_s <= timing.model_start_s
        assert timing.model_s > 0
        assert timing.model_start_s + timing.model_s <= timing.published_s
    chunk = probe.chunks[-1]
    names = conversions.arm_joint_names()
    assert chunk.left.joint_names == names and chunk.right.joint_names == names
    assert [c.sequence for c in probe.chunks] == list(range(len(probe.chunks)))
    assert chunk.instruction == 'pick up the cube' and chunk.inference_ms > 0
    assert chunk.header.frame_id == 'vla_adapter_policy'
    for trajectory in (chunk.left, chunk.right):
        assert len(trajectory.points) == CHUNK
        assert [_stamp_ns(p.time_from_start) for p in trajectory.points] == [
            k * 20_000_000 for k in range(CHUNK)]
        assert trajectory.header.stamp == chunk.header.stamp
    # The chunk is stamped with the observation time: a stamp the sensors really published.
    stamps = [(c.header.stamp.sec, c.header.stamp.nanosec) for c in probe.chunks]
    assert set(stamps) <= probe.sensor_stamps
    assert stamps == sorted(stamps)
    # The values are exactly the policy's output for the fake sensors' observation.
    expected = _expected_angles(dual_policy, 2, 'pick up the cube')  # (CHUNK, 14)
    received = np.hstack([conversions.trajectory_positions(chunk.left, names),
                          conversions.trajectory_positions(chunk.right, names)])
    np.testing.assert_allclose(received, expected, atol=1e-5)
    left_topic = probe.arm_chunks['left'][-1]
    assert left_topic.joint_names == names and len(left_topic.points) == CHUNK


def test_single_arm_mode_fills_left_only(single_policy):
    params = {'num_arms': 1, 'robot_names': ['follower_left'],
              'camera_topics': [f'/{c}/camera/color/image_rect_raw' for c in CAMERAS[:2]],
              'camera_names': list(CAMERAS[:2])}
    with running_pipeline(single_policy, ('--robots', 'follower_left'),
                          wait_for_fresh_observation=True, **params) as pipeline:
        probe = pipeline.probe
        assert pipeline.spin_until(lambda: len(probe.chunks) >= 3 and probe.arm_chunks['left'])
        pipeline.spin_for(0.3)
        timings = list(pipeline.node.timings)
    # wait_for_fresh_observation: every chunk comes from an observation completed after the
    # previous chunk was published.
    assert len(timings) >= 3
    assert all(later.arrival_s > earlier.published_s
               for earlier, later in zip(timings, timings[1:]))
    chunk = probe.chunks[-1]
    assert len(chunk.left.points) == CHUNK and not chunk.right.points
    assert not chunk.right.joint_names and not probe.arm_chunks['right']
    names = conversions.arm_joint_names()
    expected = _expected_angles(single_policy, 1, 'pick up the cube')
    np.testing.assert_allclose(conversions.trajectory_positions(chunk.left, names), expected,
                               atol=1e-5)


def test_compressed_png_cameras_give_the_same_chunks(dual_policy):
    topics = [f'/{c}/camera/color/image_rect_raw/compressed' for c in CAMERAS]
    with running_pipeline(dual_policy, ('--compressed',), camera_topics=topics) as pipeline:
        assert pipeline.spin_until(lambda: len(pipeline.probe.chunks) >= 2)
    chunk = pipeline.probe.chunks[-1]
    names = conversions.arm_joint_names()
    received = np.hstack([conversions.trajectory_positions(chunk.left, names),
                          conversions.trajectory_positions(chunk.right, names)])
    np.testing.assert_allclose(received, _expected_angles(dual_policy, 2, 'pick up the cube'),
                               atol=1e-5)


def test_instruction_service_topic_and_pause_start(dual_policy):
    with running_pipeline(dual_policy, instruction='') as pipeline:
        probe = pipeline.probe
        pipeline.wait_for_fault('no instruction')
        assert not probe.chunks
        empty = pipeline.set_instruction('   ')
        assert not empty.success and 'empty' in empty.message
        oversized = pipeline.set_instruction('x' * 513)
        assert not oversized.success and '513 characters' in oversized.message
        assert 'max_instruction_length=512' in oversized.message
        assert not probe.chunks, 'a refused instruction must not start inference'
        good = pipeline.set_instruction('  fold the towel ')
        assert good.success, good.message
        assert pipeline.spin_until(lambda: bool(probe.chunks))
        assert probe.chunks[-1].instruction == 'fold the towel'
        assert pipeline.trigger('pause').success
        assert pipeline.spin_until(lambda: probe.statuses[-1].state == PolicyStatus.STATE_PAUSED)
        pipeline.spin_for(0.3)
        count = len(probe.chunks)
        pipeline.spin_for(NO_CHUNK_WINDOW_S)
        assert len(probe.chunks) == count, 'chunks published while paused'
        assert pipeline.trigger('start').success
        assert pipeline.spin_until(lambda: len(probe.chunks) > count)
        # The node's instruction topic applies valid text and ignores empty text.
        publisher = probe.node.create_publisher(type(_string('')), 'instruction', 10)
        assert pipeline.spin_until(lambda: publisher.get_subscription_count() > 0)
        publisher.publish(_string(''))
        publisher.publish(_string('open the drawer'))
        assert pipeline.spin_until(lambda: probe.chunks[-1].instruction == 'open the drawer')


def _string(text: str):
    from std_msgs.msg import String

    return String(data=text)


@pytest.mark.parametrize(('sensor_args', 'fragments'), [
    (('--fault', 'encoding'), ('camera cam_left_wrist', "unsupported encoding 'yuv422'")),
    (('--fault', 'size'), ('camera cam_left_wrist', '(24, 32) does not match the expected '
                           '(48, 64)')),
    (('--fault', 'missing', '--fault-camera', 'cam_right_wrist'),
     ("no message received yet from ['cam_right_wrist']",)),
    (('--fault', 'nan'), ('/follower_right/joint_states', "('elbow', nan)")),
    (('--fault', 'unknown'), ('/follower_right/joint_states', "joints ['wrist_rotate'] not found",
                              'wrist_yaw')),
    (('--fault', 'stale', '--fault-camera', 'cam_high'), ('stale input', 'cam_high 2.')),
], ids=['wrong_encoding', 'wrong_image_size', 'missing_camera', 'nan_joint_state',
        'unknown_joint_names', 'stale_images'])
def test_bad_sensor_input_is_a_fault_and_never_a_chunk(dual_policy, sensor_args, fragments):
    with running_pipeline(dual_policy, sensor_args) as pipeline:
        pipeline.wait_for_fault(*fragments)
        pipeline.spin_for(NO_CHUNK_WINDOW_S)
        assert not pipeline.probe.chunks, 'a chunk was published from a bad input'
        assert not pipeline.probe.arm_chunks['left']
        assert pipeline.node.context.ok()


def test_nan_policy_output_is_a_fault_and_recovers(dual_policy):
    nan_policy = build_tiny_policy(action_dim=14, proprio_dim=14, chunk_size=CHUNK,
                                   camera_names=CAMERAS, head_kind='dual_arm', seed=1)
    final_layer = [p for n, p in nan_policy.model.named_parameters() if 'action_head' in n][-1]
    with torch.no_grad():
        saved = final_layer.detach().clone()
        final_layer.fill_(float('nan'))
    with running_pipeline(nan_policy) as pipeline:
        pipeline.wait_for_fault('policy output has', 'non-finite values', 'step 0')
        pipeline.spin_for(NO_CHUNK_WINDOW_S)
        assert not pipeline.probe.chunks
        with torch.no_grad():
            final_layer.copy_(saved)
        assert pipeline.spin_until(lambda: bool(pipeline.probe.chunks))
        assert pipeline.spin_until(
            lambda: pipeline.probe.statuses[-1].state == PolicyStatus.STATE_RUNNING)


def test_policy_exception_is_a_fault_not_a_crash():
    broken = build_tiny_policy(action_dim=14, proprio_dim=14, chunk_size=CHUNK,
                               camera_names=CAMERAS, head_kind='dual_arm', seed=3)
    broken.model.to(torch.float64)  # the processor still feeds float32: torch raises
    with pytest.raises(ValueError, match='policy warm-up failed: RuntimeError'):
        with running_pipeline(broken, sensor_args=None):
            pass
    with running_pipeline(broken, warmup_runs=0) as pipeline:
        reason = pipeline.wait_for_fault('policy raised RuntimeError')
        pipeline.spin_for(NO_CHUNK_WINDOW_S)
        assert not pipeline.probe.chunks
        assert pipeline.node._worker.is_alive(), reason


def test_checkpoint_with_the_wrong_action_dimension_is_refused_at_start_up(single_policy):
    with pytest.raises(ValueError, match=r'action_dim=7 does not match the dual-arm robot'):
        with running_pipeline(single_policy, sensor_args=None):
            pass
    with pytest.raises(ValueError, match=r"checkpoint cameras \['cam_left_wrist'\] have no"):
        with running_pipeline(single_policy, sensor_args=None, num_arms=1,
                              robot_names=['follower_left'],
                              camera_topics=['/cam_high/camera/color/image_rect_raw'],
                              camera_names=['cam_high']):
            pass


def test_entry_point_exits_with_a_clear_error_for_a_mismatched_checkpoint(tmp_path,
                                                                          single_policy):
    single_policy.save_pretrained(tmp_path)
    process = start_python_process(HERE / 'run_node.py', 'vla-adapter-inference', '--ros-args',
                                   '-p', f'checkpoint:={tmp_path}', '-p', 'num_arms:=2')
    try:
        process.wait(timeout=120)
    finally:
        output = stop_process(process)
    assert process.returncode == 1, output
    assert 'cannot start: checkpoint action_dim=7 does not match the dual-arm robot' in output
    assert 'Traceback' not in output


def test_sensor_qos_is_configurable(dual_policy):
    from rclpy.qos import ReliabilityPolicy

    with running_pipeline(dual_policy, sensor_args=None, sensor_qos_reliability='reliable',
                          sensor_qos_depth=3) as pipeline:
        sensors = [s for s in pipeline.node.subscriptions if s.topic_name.startswith(
            ('/cam_', '/follower_'))]
        assert len(sensors) == 5
        assert {s.qos_profile.reliability for s in sensors} == {ReliabilityPolicy.RELIABLE}
        assert {s.qos_profile.depth for s in sensors} == {3}
    with running_pipeline(dual_policy, sensor_args=None) as pipeline:
        sensors = [s for s in pipeline.node.subscriptions if s.topic_name.startswith('/cam_')]
        assert {s.qos_profile.reliability for s in sensors} == {ReliabilityPolicy.BEST_EFFORT}
        assert pipeline.node.dropped_observations == 0


@pytest.mark.parametrize(('params', 'message'), [
    ({'num_arms': 3}, 'parameter num_arms=3'),
    ({'camera_names': ['cam_high']}, 'parameter camera_topics='),
    ({'sensor_qos_reliability': 'sometimes'}, "sensor_qos_reliability='sometimes'"),
    ({'robot_names': ['a', 'a']}, 'parameter robot_names='),
    ({'dt': 0.0}, 'parameter dt=0.0'),
])
def test_bad_parameters_are_refused_at_start_up(dual_policy, params, message):
    with pytest.raises(ValueError, match=message):
        with running_pipeline(dual_policy, sensor_args=None, **params):
            pass
