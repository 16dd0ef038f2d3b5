"""The inference node's pure logic: settings, policy checks, instructions, observations."""

import dataclasses
import threading
import time

import numpy as np
import pytest

from vla_adapter_core.prompt import PromptBuilder, load_tokenizer
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir
from vla_adapter_ros.params.inference_config import (
    INFERENCE_PARAMETERS,
    InferenceConfig,
)
from vla_adapter_ros.pipeline.inference_handoff import ChunkTiming, LatestSlot
from vla_adapter_ros.pipeline.observation import build_observation
from vla_adapter_ros.pipeline.policy_checks import (
    check_policy_matches_robot,
    instruction_check,
    validate_action_chunk,
)

CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']
ALOHA = load_robot_description('aloha')
WX250 = load_robot_description('wx250')


def test_parameter_table_and_settings_dataclass_agree():
    assert INFERENCE_PARAMETERS.names == tuple(
        field.name for field in dataclasses.fields(InferenceConfig))
    assert all(len(spec.description) > 15 for spec in INFERENCE_PARAMETERS.specs)
    assert set(INFERENCE_PARAMETERS.dynamic_names) == {
        'instruction', 'status_rate_hz', 'wait_for_fresh_observation'}
    settings = InferenceConfig.from_dict({})
    assert settings.to_dict() == {name: list(value) if isinstance(value, tuple) else value
                                  for name, value in INFERENCE_PARAMETERS.defaults().items()}
    assert settings.expected_image_hw == (480, 640)
    assert InferenceConfig.from_dict({'image_width': 0}).expected_image_hw is None
    # Robot facts come from the description: arms, cameras and their topics, control period.
    assert settings.robot.namespaces == ('follower_left', 'follower_right')
    assert settings.cameras == tuple(zip(ALOHA.cameras, ALOHA.camera_topics()))
    assert settings.step_s == pytest.approx(0.02)
    assert InferenceConfig.from_dict({'dt': 0.1}).step_s == 0.1


def test_settings_override_the_description_where_given(tmp_path):
    single = InferenceConfig.from_dict({'robot_description': 'wx250', 'robot_names': ['arm_a'],
                                   'camera_names': ['cam_top']})
    assert single.robot.namespaces == ('arm_a',) and single.robot.action_dim == 6
    assert single.cameras == (('cam_top', '/cam_top/camera/color/image_rect_raw'),)
    topics = InferenceConfig.from_dict({'camera_topics': ['/a', '/b', '/c/compressed']})
    assert topics.resolved_camera_names == ALOHA.cameras
    assert topics.cameras[2] == ('cam_right_wrist', '/c/compressed')
    by_path = InferenceConfig.from_dict({'robot_description': ALOHA.source})
    assert by_path.robot.layout() == ALOHA.layout()


@pytest.mark.parametrize(('values', 'message'), [
    ({'robot_names': ['a/b', 'c']}, 'without /'),
    ({'robot_names': ['only_one']}, 'needs 2 distinct names'),
    ({'robot_description': 'ur5'}, r"robot 'ur5': no such file"),
    ({'camera_topics': ['/a', '/a', '/b']}, 'parameter camera_topics=.*unique'),
    ({'camera_topics': ['/a']}, 'needs one topic per camera'),
    ({'camera_names': ['a', 'a', 'b']}, 'parameter camera_names=.*unique'),
    ({'image_height': -1}, 'image_height=-1'),
    ({'sync_queue_size': 0}, 'sync_queue_size=0'),
    ({'sync_slop_s': -0.01}, 'sync_slop_s=-0.01'),
    ({'max_observation_age_s': float('nan')}, 'max_observation_age_s=nan'),
    ({'status_rate_hz': 0.0}, 'status_rate_hz=0.0'),
    ({'joint_states_topic': '/abs'}, 'relative name'),
    ({'dtype': 'int8'}, "dtype='int8'"),
    ({'warmup_runs': -1}, 'warmup_runs=-1'),
    ({'instruction': 5}, 'instruction=5: must be of type str'),
    ({'num_arms': 2}, r"unknown parameters \['num_arms'\]"),
    ({'gripper_joint_open': 1.0}, r"unknown parameters \['gripper_joint_open'\]"),
])
def test_bad_settings_name_the_parameter(values, message):
    with pytest.raises(ValueError, match=message):
        InferenceConfig.from_dict(values)


def test_policy_robot_compatibility_by_layout():
    dual = build_tiny_config(action_dim=14, proprio_dim=14, camera_names=CAMERAS,
                             head_kind='dual_arm')
    dual.robot_layout = ALOHA.layout()
    assert check_policy_matches_robot(dual, ALOHA, CAMERAS + ['cam_low']) == ''
    with pytest.raises(ValueError) as refused:
        check_policy_matches_robot(dual, WX250, CAMERAS)
    message = str(refused.value)
    assert "another robot layout than robot 'wx250'" in message
    assert 'action_names: checkpoint 14 dims' in message and 'vs robot 6 dims' in message
    # Same sizes, other joints: a vx300s checkpoint (7-d) on a wx250s arm (7-d) is refused too.
    vx300s, wx250s = (load_robot_description(name) for name in ('vx300s', 'wx250s'))
    single = build_tiny_config(action_dim=7, proprio_dim=7, camera_names=['cam_high'])
    single.robot_layout = vx300s.layout(gripper='raw')
    assert vx300s.layout() != single.robot_layout
    with pytest.raises(ValueError, match="gripper: checkpoint 'raw' vs robot 'normalized'"):
        check_policy_matches_robot(single, wx250s, ['cam_high'])
    # Another namespace is the same layout: a checkpoint is not tied to driver names.
    renamed = ALOHA.with_namespaces(['puppet_left', 'puppet_right'])
    assert check_policy_matches_robot(dual, renamed, CAMERAS) == ''


def test_policy_robot_compatibility_without_layout():
    legacy = build_tiny_config(action_dim=14, proprio_dim=14, camera_names=CAMERAS)
    assert legacy.robot_layout is None
    warning = check_policy_matches_robot(legacy, ALOHA, CAMERAS)
    assert 'records no robot layout' in warning and "'right/gripper'" in warning
    with pytest.raises(ValueError, match=r"action_dim=14 does not match robot 'wx250'.*6 dims"):
        check_policy_matches_robot(legacy, WX250, CAMERAS)
    proprio_mismatch = build_tiny_config(action_dim=14, proprio_dim=8, camera_names=CAMERAS)
    with pytest.raises(ValueError, match=r"proprio_dim=8 does not match robot 'aloha'"):
        check_policy_matches_robot(proprio_mismatch, ALOHA, CAMERAS)
    with pytest.raises(ValueError, match=r"checkpoint cameras \['cam_right_wrist'\]"):
        check_policy_matches_robot(legacy, ALOHA, CAMERAS[:2])


class _PolicyWithPrompt:
    """Just enough of a VLAPolicy for instruction_check: ``processor.prompt_builder``."""

    def __init__(self, max_tokens: int) -> None:
        builder = PromptBuilder(load_tokenizer(default_tokenizer_dir()), max_tokens=max_tokens)
        self.processor = type('Processor', (), {'prompt_builder': builder})()


def test_instruction_check_is_the_policy_prompt_rule():
    check = instruction_check(_PolicyWithPrompt(max_tokens=32))
    assert check('  fold the towel\n') == 'fold the towel'
    for bad, message in (('', 'is empty'), (' \t\n', 'is empty'),
                         ('go\x00now', 'control characters'),
                         ('put ' + '7' * 40, r'the prompt has \d+ tokens, more than the '
                          r"policy's limit max_prompt_tokens=32")):
        with pytest.raises(ValueError, match=message):
            check(bad)
    with pytest.raises(ValueError, match='must be a string'):
        check(None)
    # A policy without a prompt builder gets the text rule only.
    plain = instruction_check(object())
    assert plain(' x ' * 300) == (' x ' * 300).strip() and len(plain('a' * 5000)) == 5000
    with pytest.raises(ValueError, match='is empty'):
        plain('  ')


def test_build_observation_orders_arms_and_cameras():
    left, right = np.arange(6, dtype=float), -np.arange(6, dtype=float)  # 5-DOF arms
    images = {name: np.full((2, 2, 3), i, np.uint8) for i, name in enumerate(CAMERAS)}
    items = {'follower_right': right, 'follower_left': left, **images}
    observation = build_observation(items, CAMERAS[::-1], ['follower_left', 'follower_right'],
                                    123, 4.5)
    assert list(observation.images) == CAMERAS[::-1]
    np.testing.assert_array_equal(observation.proprio, np.concatenate([left, right]))
    assert observation.proprio.dtype == np.float32 and observation.stamp_ns == 123
    policy_input = observation.as_policy_input('go')
    assert policy_input['instruction'] == 'go' and policy_input['images'] is observation.images
    items['follower_left'] = np.full(6, np.inf)
    with pytest.raises(ValueError, match='non-finite'):
        build_observation(items, CAMERAS, ['follower_left', 'follower_right'], 1, 0.0)


def test_action_chunk_validation_names_the_bad_value():
    good = validate_action_chunk(np.zeros((4, 14), np.float32), 14)
    assert good.dtype == np.float64 and good.shape == (4, 14)
    chunk = np.zeros((4, 14))
    chunk[2, 5] = np.nan
    with pytest.raises(ValueError, match='1 non-finite values, first at step 2 dim 5: nan'):
        validate_action_chunk(chunk, 14)
    for bad in (np.zeros((4, 7)), np.zeros(14), np.zeros((0, 14))):
        with pytest.raises(ValueError, match='is not'):
            validate_action_chunk(bad, 14)
    with pytest.raises(ValueError, match='not numeric'):
        validate_action_chunk('abc', 14)


def test_latest_slot_keeps_only_the_newest_item():
    slot = LatestSlot()
    assert slot.take(timeout_s=0.01) is None
    for item in range(5):
        slot.put(item)
    assert slot.take(timeout_s=0.01) == 4 and slot.overwritten == 4
    assert slot.take(timeout_s=0.01) is None
    slot.put('x')
    slot.clear()
    assert slot.take(timeout_s=0.01) is None and slot.overwritten == 5
    received = []
    taker = threading.Thread(target=lambda: received.append(slot.take(timeout_s=10.0)))
    taker.start()
    slot.put('wake')
    taker.join(timeout=10.0)
    assert received == ['wake']
    closer = threading.Thread(target=lambda: received.append(slot.take(timeout_s=30.0)))
    closer.start()
    time.sleep(0.05)
    slot.close()
    closer.join(timeout=10.0)
    assert not closer.is_alive() and received[-1] is None and slot.closed


def test_chunk_timing_splits_the_overhead():
    idle = ChunkTiming(arrival_s=10.0, worker_free_s=9.0, model_start_s=10.001, model_s=0.05,
                       published_s=10.052)
    assert idle.overhead_s == pytest.approx(0.002) and idle.busy_wait_s == 0.0
    busy = ChunkTiming(arrival_s=10.0, worker_free_s=10.02, model_start_s=10.021, model_s=0.05,
                       published_s=10.072)
    assert busy.overhead_s == pytest.approx(0.022)
    assert busy.busy_wait_s == pytest.approx(0.02)
    assert busy.pipeline_overhead_s == pytest.approx(0.002)
