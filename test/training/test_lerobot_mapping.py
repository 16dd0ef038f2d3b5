"""The shipped LeRobot feature mappings and the mapping file's validation (no datasets needed)."""

import numpy as np
import pytest

from training.lerobot_mapping import (
    VectorMapping,
    bind_vector,
    default_mapping_name,
    dimension_names,
    flat_names,
    load_feature_mapping,
)
from vla_adapter_core.robot_description import load_robot_description


def test_shipped_mappings_name_the_hub_features():
    aloha = load_feature_mapping('aloha')
    assert aloha.robot == 'aloha' and default_mapping_name('aloha') == 'aloha'
    assert aloha.cameras == {camera: f'observation.images.{camera}' for camera in
                             ('cam_high', 'cam_low', 'cam_left_wrist', 'cam_right_wrist')}
    gym = load_feature_mapping('gym_aloha')
    assert default_mapping_name('aloha_sim') == 'gym_aloha'
    assert gym.cameras['cam_high'] == 'observation.images.top'
    names = dimension_names(aloha.state.names, load_robot_description('aloha'))
    assert names[:7] == ['left_waist', 'left_shoulder', 'left_elbow', 'left_forearm_roll',
                         'left_wrist_angle', 'left_wrist_rotate', 'left_gripper']
    assert names[13] == 'right_gripper' and len(names) == 14
    with pytest.raises(ValueError, match=r"no shipped LeRobot feature mapping for robot 'wx250'"):
        default_mapping_name('wx250')


def test_names_forms_the_hub_uses():
    assert flat_names({'motors': ['a', 'b']}) == ['a', 'b']
    assert flat_names([['a', 'b']]) == ['a', 'b']
    assert flat_names(['a', 'b']) == ['a', 'b']
    assert flat_names(None) is None and flat_names({'x': ['a'], 'y': ['b']}) is None


@pytest.mark.parametrize('kwargs, message', [
    ({'feature': '', 'names': '{joint}', 'gripper': 'normalized'}, r"feature=''"),
    ({'feature': 'action', 'names': '{arm}', 'gripper': 'normalized'}, r"names='\{arm\}'"),
    ({'feature': 'action', 'names': '{joint}', 'gripper': 'percent'}, r"gripper='percent'"),
    ({'feature': 'action', 'names': '{joint}', 'gripper': (1.0, 1.0)}, r'gripper=\(1.0, 1.0\)'),
])
def test_vector_mapping_validates_each_field(kwargs, message):
    with pytest.raises(ValueError, match=r'VectorMapping\.' + message):
        VectorMapping(**kwargs)


def test_joint_units_use_the_follower_calibration_and_invert_exactly():
    robot = load_robot_description('aloha')
    features = {'action': {'dtype': 'float64', 'shape': [14], 'names': None}}
    bound = bind_vector(VectorMapping('action', '{side}_{joint}', 'joint'), features, robot, 'x')
    raw = np.zeros((1, 14))
    raw[0, [6, 13]] = 1.6214, 0.6197  # config/robots/aloha.yaml: joint open / closed (rad)
    ours = bound.to_ours(raw)
    np.testing.assert_allclose(ours[0, [6, 13]], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(bound.to_dataset(ours), raw, atol=1e-6)
