"""The replay metrics by hand, the executed view's executor simulation, the assembler alone."""

import numpy as np
import pytest

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.params.executor_config import ExecutorConfig
from vla_adapter_ros.pipeline.conversions import ConversionError, rgb_to_image
from vla_adapter_ros.pipeline.observation import ObservationAssembler
from vla_adapter_ros.pipeline.sync import SyncConfig
from vla_adapter_ros.replay.replay_metrics import (
    ArrivingChunk,
    chunk_metrics,
    latency_summary,
    simulate_executor,
    stream_metrics,
    zero_order_hold,
)

WX250S = load_robot_description('wx250s')


def test_chunk_metrics_by_hand():
    predicted = np.zeros((2, 3, 2))
    recorded = np.zeros((2, 3, 2))
    recorded[0, :, 0] = [1.0, 2.0, 3.0]  # chunk 0, dim 0
    recorded[1, :, 1] = [0.9, 0.9, 0.9]  # chunk 1, the gripper dim: open vs predicted closed
    mask = np.array([[True, True, True], [True, True, False]])
    metrics = chunk_metrics(predicted, recorded, mask, gripper_dims=[1],
                            predicted_bins=np.zeros((2, 3, 2)), recorded_bins=recorded > 0.5)
    # 5 valid steps x 2 dims: dim 0 errors 1+2+3 (+0+0), dim 1 errors 0.9+0.9 (+0+0+0).
    assert metrics['samples'] == 5
    assert metrics['l1_per_dim'] == pytest.approx([6 / 5, 1.8 / 5])
    assert metrics['l1'] == pytest.approx((6 + 1.8) / 10)
    assert metrics['l1_by_step'] == pytest.approx([(1 + 0.9) / 4, (2 + 0.9) / 4, 3 / 2])
    assert metrics['l1_step0'] == pytest.approx(1.9 / 4)
    assert metrics['gripper_agreement'] == pytest.approx(3 / 5)
    assert metrics['bin_accuracy'] == pytest.approx((10 - 5) / 10)


def test_stream_and_latency_summaries():
    metrics = stream_metrics(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.5, 1.0],
                                                                           [1.0, 1.0]]), [1])
    assert metrics['l1'] == pytest.approx(1.5 / 4) and metrics['gripper_agreement'] == 0.5
    assert latency_summary([0.01, 0.02, 0.03])['p50_ms'] == pytest.approx(20.0)
    assert latency_summary([])['p50_ms'] is None
    grid = np.array([10, 20, 30])
    np.testing.assert_array_equal(zero_order_hold(grid, np.arange(3)[:, None], np.array(
        [5, 10, 19, 20, 35]))[:, 0], [0, 0, 0, 1, 2])


def test_simulated_executor_follows_a_chunk_at_the_speed_limit():
    config = ExecutorConfig(robot_description='wx250s', rate_hz=50.0, speed_scale=1.0)
    start = WX250S.start_joint_angles()
    target = start.copy()
    target[0] += 0.5  # the waist 0.5 rad away: more than one tick's step
    offsets = np.arange(50) * 0.02
    chunk = ArrivingChunk(10.0, 10.05, offsets, np.repeat(target[None], 50, axis=0))
    stream = simulate_executor([chunk], config, start, 10.0, 11.5)
    assert stream.holding[:2].all() and not stream.holding[3:49].any()
    step = config.safety_config().max_step[0]
    moving = np.diff(stream.commands[:, 0])
    assert moving.max() <= step + 1e-12 and stream.commands[49, 0] == pytest.approx(
        min(target[0], start[0] + step * 47), abs=1e-9)
    assert stream.holding[-1] and stream.rejected == 0  # after the chunk: hold
    wild = ArrivingChunk(10.0, 10.05, offsets, np.full((50, WX250S.action_dim), 9.0))
    rejected = simulate_executor([wild], config, start, 10.0, 10.5)
    assert rejected.rejected == 1 and rejected.holding.all()
    np.testing.assert_allclose(rejected.commands, np.repeat(start[None], len(rejected.tick_s),
                                                            axis=0))


def test_assembler_converts_synchronises_and_checks_stamps():
    arm = WX250S.arms[0]
    camera = WX250S.cameras[0]
    topic = WX250S.camera_topic.format(camera=camera)
    assembler = ObservationAssembler(
        WX250S, [(camera, topic), ('unused', '/unused/image')], [camera],
        SyncConfig((camera, arm.namespace)), max_future_stamp_s=0.5)
    assert assembler.unused_cameras == [('unused', '/unused/image')]
    from sensor_msgs.msg import JointState

    state = JointState(name=list(arm.driver_joint_names),
                       position=[0.1] * (arm.dim - 1) + [0.5, 0.03, -0.03])
    state.header.stamp.sec = 100
    image = rgb_to_image(np.zeros((4, 6, 3), np.uint8))
    image.header.stamp.sec = 100
    assert assembler.push(f'/{arm.namespace}/joint_states', state, 100 * 10**9) is None
    observation = assembler.push(topic, image, 100 * 10**9, arrival_s=1.5)
    assert observation.stamp_ns == 100 * 10**9 and observation.last_arrival_s == 1.5
    assert observation.images[camera].shape == (4, 6, 3)
    assert observation.proprio.shape == (WX250S.proprio_dim,)
    image.header.stamp.sec = 200
    with pytest.raises(ConversionError, match='ahead of the node clock'):
        assembler.push(topic, image, 100 * 10**9)
    with pytest.raises(KeyError):
        assembler.push('/nowhere', image, None)
