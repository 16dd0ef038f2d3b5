"""The inference node's pure logic: settings, policy checks, observations, outputs, handoff."""

import threading
import time

import numpy as np
import pytest

from vla_adapter_core.testing import build_tiny_config
from vla_adapter_ros.inference_settings import (
    INFERENCE_PARAMETERS,
    InferenceSettings,
    settings_from_values,
)
from vla_adapter_ros.observation import (
    ChunkTiming,
    LatestSlot,
    build_observation,
    check_policy_matches_robot,
    validate_action_chunk,
    validate_instruction,
)

CAMERAS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist']


def test_parameter_table_and_settings_dataclass_agree():
    names = [name for name, _, _ in INFERENCE_PARAMETERS]
    assert names == list(InferenceSettings.__dataclass_fields__)
    assert all(len(description) > 15 for _, _, description in INFERENCE_PARAMETERS)
    settings = settings_from_values({})
    assert settings.expected_image_hw == (480, 640)
    assert settings_from_values({'image_width': 0}).expected_image_hw is None
    assert settings.gripper_calibration == (0.0579, 0.044, 1.6214, 0.6197)


@pytest.mark.parametrize(('values', 'message'), [
    ({'num_arms': 0}, 'num_arms=0'),
    ({'num_arms': 1}, 'parameter robot_names='),
    ({'robot_names': ['a/b', 'c']}, 'without /'),
    ({'camera_topics': ['/a', '/a', '/b']}, 'topics must be unique'),
    ({'camera_names': ['a', 'a', 'b']}, 'names must be unique'),
    ({'image_height': -1}, 'image_height=-1'),
    ({'sync_queue_size': 0}, 'sync_queue_size=0'),
    ({'sync_slop_s': -0.01}, 'sync_slop_s=-0.01'),
    ({'max_observation_age_s': float('nan')}, 'max_observation_age_s=nan'),
    ({'status_rate_hz': 0.0}, 'status_rate_hz=0.0'),
    ({'joint_states_topic': '/abs'}, 'relative name'),
    ({'instruction': 'z' * 20, 'max_instruction_length': 10}, 'longer than'),
    ({'gripper_finger_open': 0.044}, 'finger_open'),
    ({'warmup_runs': -1}, 'warmup_runs=-1'),
    ({'colour': 'red'}, r"unknown inference parameters \['colour'\]"),
])
def test_bad_settings_name_the_parameter(values, message):
    with pytest.raises(ValueError, match=message):
        settings_from_values(values)


def test_policy_robot_compatibility():
    dual = build_tiny_config(action_dim=14, proprio_dim=14, camera_names=CAMERAS,
                             head_kind='dual_arm')
    check_policy_matches_robot(dual, 2, CAMERAS + ['cam_low'])
    with pytest.raises(ValueError, match='action_dim=14 does not match the single-arm robot'):
        check_policy_matches_robot(dual, 1, CAMERAS)
    proprio_mismatch = build_tiny_config(action_dim=14, proprio_dim=8, camera_names=CAMERAS)
    with pytest.raises(ValueError, match='proprio_dim=8 does not match the dual-arm robot'):
        check_policy_matches_robot(proprio_mismatch, 2, CAMERAS)
    with pytest.raises(ValueError, match=r"checkpoint cameras \['cam_right_wrist'\]"):
        check_policy_matches_robot(dual, 2, CAMERAS[:2])


def test_instruction_validation():
    assert validate_instruction('  fold the towel\n') == 'fold the towel'
    assert validate_instruction('ü' * 512) == 'ü' * 512
    for bad, message in (('', 'is empty'), (' \t\n', 'is empty'),
                         ('a' * 513, '513 characters'), ('go\x00now', 'control characters')):
        with pytest.raises(ValueError, match=message):
            validate_instruction(bad)
    with pytest.raises(ValueError, match='must be a string'):
        validate_instruction(None)


def test_build_observation_orders_arms_and_cameras():
    left, right = np.arange(7, dtype=float), -np.arange(7, dtype=float)
    images = {name: np.full((2, 2, 3), i, np.uint8) for i, name in enumerate(CAMERAS)}
    items = {'follower_right': right, 'follower_left': left, **images}
    observation = build_observation(items, CAMERAS[::-1], ['follower_left', 'follower_right'],
                                    123, 4.5)
    assert list(observation.images) == CAMERAS[::-1]
    np.testing.assert_array_equal(observation.proprio, np.concatenate([left, right]))
    assert observation.proprio.dtype == np.float32 and observation.stamp_ns == 123
    policy_input = observation.as_policy_input('go')
    assert policy_input['instruction'] == 'go' and policy_input['images'] is observation.images
    items['follower_left'] = np.full(7, np.inf)
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
