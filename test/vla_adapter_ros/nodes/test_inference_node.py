"""The inference node over real DDS: a real tiny VLAPolicy, fake sensors in another process.

Happy paths (dual- and single-arm, checkpoint loaded by path), services, and the node's fault
paths: each bad input leaves the node running, publishes a FAULT PolicyStatus whose reason names
the field and value, and publishes no chunk.
"""

import pathlib
import re

import numpy as np
import pytest
from rclpy.exceptions import InvalidParameterValueException
from ros_test_utils import SUPPORT_DIR, start_python_process, stop_process
import torch

from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.pipeline import conversions

HERE = pathlib.Path(__file__).resolve().parent
from inference_harness import (  # noqa: E402
    ALOHA,
    CAMERAS,
    expected_joint_angles,
    running_pipeline,
    tiny_policy_for,
)

CHUNK = 8
NO_CHUNK_WINDOW_S = 1.0
WX250 = load_robot_description('wx250')
# 500 characters whose prompt is about 490 tokens: over the policy's max_prompt_tokens=256.
LONG_INSTRUCTION = ('stack the blocks in this order: '
                    + ' '.join(str(n) for n in range(1000, 1200)))[:500]
ALOHA_JOINTS = [arm.command_joint_names for arm in ALOHA.arms]


@pytest.fixture(scope='module')
def dual_policy():
    return tiny_policy_for(ALOHA, chunk_size=CHUNK, head_kind='dual_arm', seed=1)


@pytest.fixture(scope='module')
def wx250_policy():
    """A 5-DOF single-arm policy (6 values per step) using one of the robot's two cameras."""
    return tiny_policy_for(WX250, camera_names=WX250.cameras[:1], chunk_size=CHUNK, seed=2)


@pytest.fixture(scope='module')
def dual_checkpoint(tmp_path_factory, dual_policy):
    directory = tmp_path_factory.mktemp('dual_checkpoint')
    dual_policy.save_pretrained(directory)
    return directory


def _stamp_ns(stamp) -> int:
    return conversions.stamp_to_nanoseconds(stamp)


def _received_angles(chunk, joint_names) -> np.ndarray:
    """(T, action_dim) joint angles of an ActionChunk, arms in left/right field order."""
    parts = [conversions.trajectory_positions(trajectory, names)
             for trajectory, names in zip((chunk.left, chunk.right), joint_names)]
    return np.hstack(parts)


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
    assert chunk.left.joint_names == list(ALOHA_JOINTS[0])
    assert chunk.right.joint_names == list(ALOHA_JOINTS[1])
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
    expected = expected_joint_angles(dual_policy, ALOHA, 'pick up the cube')  # (CHUNK, 14)
    np.testing.assert_allclose(_received_angles(chunk, ALOHA_JOINTS), expected, atol=1e-5)
    left_topic = probe.arm_chunks['left'][-1]
    assert left_topic.joint_names == list(ALOHA_JOINTS[0]) and len(left_topic.points) == CHUNK


def test_five_dof_single_arm_fills_left_only(wx250_policy):
    """wx250 (no forearm_roll): 6 values per step, its own joint names and calibration."""
    with running_pipeline(wx250_policy, ('--robot-description', 'wx250'), robot=WX250,
                          robot_description='wx250', wait_for_fresh_observation=True) as pipeline:
        probe = pipeline.probe
        assert pipeline.spin_until(lambda: len(probe.chunks) >= 3 and probe.arm_chunks['left']), (
            f'no chunks; faults: {sorted(set(probe.faults()))}')
        pipeline.spin_for(0.3)
        timings = list(pipeline.node.timings)
    # wait_for_fresh_observation: every chunk comes from an observation completed after the
    # previous chunk was published.
    assert len(timings) >= 3
    assert all(later.arrival_s > earlier.published_s
               for earlier, later in zip(timings, timings[1:]))
    chunk = probe.chunks[-1]
    names = WX250.arms[0].command_joint_names
    assert chunk.left.joint_names == list(names) and 'forearm_roll' not in names
    assert len(names) == 6 and len(chunk.left.points) == CHUNK
    assert not chunk.right.points and not chunk.right.joint_names
    assert not probe.arm_chunks['right']
    assert [_stamp_ns(p.time_from_start) for p in chunk.left.points] == [
        k * 20_000_000 for k in range(CHUNK)]  # dt 0 = the description's 50 Hz
    expected = expected_joint_angles(wx250_policy, WX250, 'pick up the cube')  # (CHUNK, 6)
    np.testing.assert_allclose(conversions.trajectory_positions(chunk.left, names), expected,
                               atol=1e-5)


def test_compressed_png_cameras_give_the_same_chunks(dual_policy):
    topics = [f'/{c}/camera/color/image_rect_raw/compressed' for c in CAMERAS]
    with running_pipeline(dual_policy, ('--compressed',), camera_topics=topics) as pipeline:
        assert pipeline.spin_until(lambda: len(pipeline.probe.chunks) >= 2)
    chunk = pipeline.probe.chunks[-1]
    np.testing.assert_allclose(_received_angles(chunk, ALOHA_JOINTS),
                               expected_joint_angles(dual_policy, ALOHA, 'pick up the cube'),
                               atol=1e-5)


def _assert_token_limit_refusal(reason: str) -> None:
    """A refusal by the policy's prompt limit gives the token count and the limit."""
    match = re.search(r'the prompt has (\d+) tokens, more than .*max_prompt_tokens=256', reason)
    assert match and int(match.group(1)) > 256, reason


def test_instruction_service_topic_and_pause_start(dual_policy):
    with running_pipeline(dual_policy, instruction='') as pipeline:
        probe = pipeline.probe
        pipeline.wait_for_fault('no instruction')
        assert not probe.chunks
        empty = pipeline.set_instruction('   ')
        assert not empty.success and 'empty' in empty.message
        # 500 characters: refused by the policy's token limit, not accepted and failing later.
        assert len(LONG_INSTRUCTION) == 500
        oversized = pipeline.set_instruction(LONG_INSTRUCTION)
        assert not oversized.success
        _assert_token_limit_refusal(oversized.message)
        control = pipeline.set_instruction('go\x07now')
        assert not control.success and 'control characters' in control.message
        pipeline.spin_for(0.3)
        assert not probe.chunks, 'a refused instruction must not start inference'
        assert pipeline.node.get_parameter('instruction').value == ''
        good = pipeline.set_instruction('  fold the towel ')
        assert good.success, good.message
        assert "'fold the towel'" in good.message
        # One door: the service set the parameter (ros2 param get shows it).
        assert pipeline.node.get_parameter('instruction').value == '  fold the towel '
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
        # The instruction topic applies the same rule: empty and too long are ignored.
        publisher = probe.node.create_publisher(type(_string('')), 'instruction', 10)
        assert pipeline.spin_until(lambda: publisher.get_subscription_count() > 0)
        publisher.publish(_string(''))
        publisher.publish(_string(LONG_INSTRUCTION))
        pipeline.spin_for(0.5)
        assert pipeline.node.get_parameter('instruction').value == '  fold the towel '
        publisher.publish(_string('open the drawer'))
        assert pipeline.spin_until(lambda: probe.chunks[-1].instruction == 'open the drawer')
        assert {c.instruction for c in probe.chunks} == {'fold the towel', 'open the drawer'}


def test_set_parameters_service_applies_dynamic_parameters_and_refuses_the_rest(dual_policy):
    """ros2 param set over DDS: the node's SetParameters service."""
    with running_pipeline(dual_policy) as pipeline:
        probe, node = pipeline.probe, pipeline.node
        assert pipeline.spin_until(lambda: bool(probe.chunks))
        [result] = pipeline.set_parameters(instruction='stack the cups')
        assert result.successful, result.reason
        count = len(probe.chunks)
        assert pipeline.spin_until(lambda: len(probe.chunks) > count
                                   and probe.chunks[-1].instruction == 'stack the cups')
        [refused] = pipeline.set_parameters(instruction=LONG_INSTRUCTION)
        assert not refused.successful
        _assert_token_limit_refusal(refused.reason)
        [empty] = pipeline.set_parameters(instruction='')
        assert not empty.successful and 'empty' in empty.reason
        [wrong_type] = pipeline.set_parameters(instruction=3)
        assert not wrong_type.successful and 'must be of type str' in wrong_type.reason
        assert node.get_parameter('instruction').value == 'stack the cups'
        count = len(probe.chunks)
        assert pipeline.spin_until(lambda: len(probe.chunks) > count + 1)
        assert probe.chunks[-1].instruction == 'stack the cups'
        # Read-only parameters are refused with the reason; the value is unchanged.
        [read_only] = pipeline.set_parameters(dt=0.05)
        assert not read_only.successful and 'read-only' in read_only.reason, read_only.reason
        assert node.get_parameter('dt').value == 0.0 and node.settings.step_s == 0.02
        [robot] = pipeline.set_parameters(robot_description='wx250')
        assert not robot.successful and 'read-only' in robot.reason
        # status_rate_hz restarts the status timer at the new rate.
        [out_of_range] = pipeline.set_parameters(status_rate_hz=1000.0)
        assert not out_of_range.successful
        [faster] = pipeline.set_parameters(status_rate_hz=25.0)
        assert faster.successful, faster.reason
        pipeline.spin_for(0.2)
        before = len(probe.statuses)
        pipeline.spin_for(1.0)
        assert len(probe.statuses) - before >= 12, 'status rate did not rise from 5 Hz'
        [back_to_back] = pipeline.set_parameters(wait_for_fresh_observation=False)
        assert back_to_back.successful and node.settings.wait_for_fresh_observation is False
        count = len(probe.chunks)
        assert pipeline.spin_until(lambda: len(probe.chunks) > count)


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
    nan_policy = tiny_policy_for(ALOHA, chunk_size=CHUNK, head_kind='dual_arm', seed=1)
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
    broken = tiny_policy_for(ALOHA, chunk_size=CHUNK, head_kind='dual_arm', seed=3)
    broken.model.to(torch.float64)  # the processor still feeds float32: torch raises
    with pytest.raises(ValueError, match='policy warm-up failed: RuntimeError'):
        with running_pipeline(broken, sensor_args=None):
            pass
    with running_pipeline(broken, warmup_runs=0) as pipeline:
        reason = pipeline.wait_for_fault('policy raised RuntimeError')
        pipeline.spin_for(NO_CHUNK_WINDOW_S)
        assert not pipeline.probe.chunks
        assert pipeline.node._worker.is_alive(), reason


class _GraphLikePolicy(VLAPolicy):
    """The tiny policy claiming CUDA graphs' warm-up need (compile, record, replay)."""

    warmup_calls = 3

    def __init__(self, policy: VLAPolicy) -> None:
        super().__init__(policy.model, policy.tokenizer, policy.statistics, device='cpu',
                         dtype='float32')
        self.calls = 0

    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        self.calls += 1
        return super().predict_action_chunk(observation)


@pytest.mark.parametrize('warmup_runs, calls', [(0, 0), (1, 3), (5, 5)])
def test_start_up_warm_up_covers_the_policys_need(dual_policy, warmup_runs, calls):
    policy = _GraphLikePolicy(dual_policy)
    with running_pipeline(policy, sensor_args=None, warmup_runs=warmup_runs):
        assert policy.calls == calls


def test_checkpoint_of_another_robot_layout_is_refused_naming_both_sides(dual_policy):
    """A 14-d ALOHA checkpoint on the 5-DOF wx250: the node is not built (no DDS traffic)."""
    with pytest.raises(ValueError) as refused:
        with running_pipeline(dual_policy, sensor_args=None, robot_description='wx250',
                              camera_names=list(CAMERAS)):
            pass
    message = str(refused.value)
    assert "robot 'wx250'" in message and 'wx250.yaml' in message
    assert 'action_names: checkpoint 14 dims' in message and 'vs robot 6 dims' in message
    assert "'left/forearm_roll'" in message and "'wrist_rotate', 'gripper']" in message


def test_checkpoint_without_layout_is_checked_by_dimension_and_cameras():
    legacy = tiny_policy_for(WX250, camera_names=['cam_high'], chunk_size=CHUNK, seed=5,
                             layout=False)
    with pytest.raises(ValueError, match=r"checkpoint action_dim=6 does not match robot 'aloha'"
                                         r'.*14 dims'):
        with running_pipeline(legacy, sensor_args=None):
            pass
    with pytest.raises(ValueError, match=r"checkpoint cameras \['cam_high'\] have no camera"):
        with running_pipeline(legacy, sensor_args=None, robot=WX250, robot_description='wx250',
                              camera_names=['cam_wrist']):
            pass
    with running_pipeline(legacy, sensor_args=None, robot=WX250,
                          robot_description='wx250') as pipeline:
        assert pipeline.node.robot.action_dim == 6  # accepted, with a warning in the log


def test_too_long_start_up_instruction_is_refused(dual_policy):
    with pytest.raises(ValueError, match='parameter instruction: .*max_prompt_tokens=256'):
        with running_pipeline(dual_policy, sensor_args=None, instruction=LONG_INSTRUCTION):
            pass


def test_entry_point_exits_with_a_clear_error_for_a_mismatched_checkpoint(tmp_path,
                                                                          wx250_policy):
    wx250_policy.save_pretrained(tmp_path)
    process = start_python_process(SUPPORT_DIR / 'run_node.py', 'vla-adapter-inference',
                                   '--ros-args', '-p', f'checkpoint:={tmp_path}', '-p',
                                   'device:=cpu')
    try:
        process.wait(timeout=120)
    finally:
        output = stop_process(process)
    assert process.returncode == 1, output
    assert "cannot start: checkpoint was trained on another robot layout than robot 'aloha'" in (
        output)
    assert 'action_names: checkpoint 6 dims' in output and 'vs robot 14 dims' in output
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
    ({'camera_names': ['cam_high'], 'camera_topics': ['/a', '/b']}, 'parameter camera_topics='),
    ({'sensor_qos_reliability': 'sometimes'}, "sensor_qos_reliability='sometimes'"),
    ({'robot_names': ['a', 'a']}, 'needs 2 distinct names'),
    ({'robot_names': ['follower_left']}, 'needs 2 distinct names'),
    ({'robot_description': 'ur5'}, r"robot 'ur5': no such file .*built-in: \["),
    ({'dt': -0.01}, 'dt out of range'),  # rclpy checks the descriptor's range itself
])
def test_bad_parameters_are_refused_at_start_up(dual_policy, params, message):
    with pytest.raises((ValueError, InvalidParameterValueException), match=message):
        with running_pipeline(dual_policy, sensor_args=None, **params):
            pass
