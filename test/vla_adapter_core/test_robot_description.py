"""Robot descriptions: the built-in robots, user files, conversions, layouts and bad files."""

import pathlib

from import_probe import run_in_fresh_interpreter
import numpy as np
import pytest

from vla_adapter_core.config import PolicyConfig
from vla_adapter_core.robot_description import (
    RobotDescriptionError,
    RobotLayout,
    available_robots,
    builtin_robots_dir,
    load_robot_description,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SIX_JOINTS = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate')


def test_builtin_robots_are_the_issue_list_and_live_in_config_robots():
    assert builtin_robots_dir() == REPO_ROOT / 'config' / 'robots'
    assert {'aloha', 'aloha_v1', 'vx300s', 'wx250s', 'wx250'} <= set(available_robots())
    for name in available_robots():
        robot = load_robot_description(name)
        assert robot.action_dim == sum(arm.dim for arm in robot.arms)
        lower, upper = robot.joint_angle_bounds()
        start = robot.start_joint_angles()
        assert np.all(lower < upper) and np.all((start >= lower) & (start <= upper)), name
        assert np.all(robot.max_joint_speed() > 0)


def test_aloha_two_has_followers_leaders_and_the_aloha_gripper():
    aloha = load_robot_description('aloha')
    assert aloha.namespaces == ('follower_left', 'follower_right')
    assert [arm.side for arm in aloha.arms] == ['left', 'right']
    assert [arm.namespace for arm in aloha.leaders] == ['leader_left', 'leader_right']
    assert aloha.arms[0].command_joint_names == (*SIX_JOINTS, 'gripper')
    assert aloha.arms[0].state_joint_names == (*SIX_JOINTS, 'left_finger')
    assert aloha.leaders[0].model.model == 'wx250s' and aloha.arms[0].model.model == 'vx300s'
    assert aloha.control_rate_hz == 50.0 and aloha.cameras[0] == 'cam_high'
    assert aloha.camera_topics()[1] == '/cam_left_wrist/camera/color/image_rect_raw'
    # The start pose is ALOHA's START_ARM_POSE with the gripper open.
    start = aloha.start_joint_angles()
    np.testing.assert_allclose(start[:6], [0.0, -0.96, 1.16, 0.0, -0.3, 0.0])
    assert start[6] == aloha.arms[0].gripper.joint_open


def test_aloha_v1_extends_aloha_with_the_original_names_and_calibration():
    v1, v2 = load_robot_description('aloha_v1'), load_robot_description('aloha')
    assert v1.namespaces == ('puppet_left', 'puppet_right')
    assert [arm.namespace for arm in v1.leaders] == ['master_left', 'master_right']
    assert v1.arms[0].gripper != v2.arms[0].gripper
    assert v1.arms[0].model == v2.arms[0].model  # the same ViperX 300 S model file
    np.testing.assert_allclose(v1.start_joint_angles()[:6], v2.start_joint_angles()[:6])
    # Same joints and sides: a policy trained on one runs on the other.
    assert v1.layout() == v2.layout()


def test_five_joint_wx250_has_no_forearm_roll():
    wx250 = load_robot_description('wx250')
    arm, = wx250.arms
    assert arm.joint_names == ('waist', 'shoulder', 'elbow', 'wrist_angle', 'wrist_rotate')
    assert wx250.action_dim == 6 and arm.namespace == 'wx250'
    assert wx250.layout().action_names == (*arm.joint_names, 'gripper')
    assert arm.driver_joint_names[-2:] == ('left_finger', 'right_finger')


def test_gripper_conversions_round_trip_and_clip_commands():
    aloha = load_robot_description('aloha')
    action = np.tile(np.r_[np.linspace(-0.5, 0.5, 6), 0.25], (3, 2))  # (3, 14)
    angles = aloha.policy_to_joint_angles(action)
    calibration = aloha.arms[1].gripper
    assert angles[0, 13] == pytest.approx(
        calibration.joint_closed + 0.25 * (calibration.joint_open - calibration.joint_closed))
    np.testing.assert_allclose(aloha.joint_angles_to_policy(angles), action)
    action[0, 6] = 1.7  # beyond open: commanded as fully open, never further
    assert aloha.policy_to_joint_angles(action)[0, 6] == pytest.approx(calibration.joint_open)
    arm = aloha.arms[0]
    finger = arm.gripper.finger_from_normalized(0.4)
    observed = arm.observe(np.r_[np.zeros(6), finger])
    assert observed[-1] == pytest.approx(0.4)
    with pytest.raises(ValueError, match='expected 14'):
        aloha.policy_to_joint_angles(np.zeros(7))


def test_namespaces_can_be_renamed_but_not_miscounted():
    aloha = load_robot_description('aloha').with_namespaces(['a', 'b'])
    assert aloha.namespaces == ('a', 'b') and aloha.joint_labels()[0] == 'a/waist'
    for bad in (['a'], ['a', 'a'], ['a', 'b/c']):
        with pytest.raises(RobotDescriptionError, match='namespaces'):
            load_robot_description('aloha').with_namespaces(bad)


MY_ROBOT = """
name: my_arm
cameras: [front]
camera_topic: /{camera}/image_raw
followers:
  model:
    model: my_5dof
    arm_group: all
    joints:
      base: {lower: -2.0, upper: 2.0, max_speed: 1.5}
      lift: {lower: -1.0, upper: 1.0, max_speed: 1.5}
      bend: {lower: -1.0, upper: 1.5, max_speed: 1.5}
      tilt: {lower: -1.5, upper: 1.5, max_speed: 2.0}
      twist: {lower: -3.0, upper: 3.0, max_speed: 2.0}
    gripper: {joint: claw, max_speed: 2.5, finger_joints: [claw_finger], finger_range: [0.0, 0.04]}
  arms:
    - {namespace: my_arm}
  gripper: {joint_open: 1.0, joint_closed: -0.5}
  start_pose: {base: 0.1, lift: 0.2, bend: 0.3, tilt: 0.0, twist: 0.0, gripper: closed}
"""


def test_a_user_file_with_an_inline_arm_model(tmp_path):
    path = tmp_path / 'my_arm.yaml'
    path.write_text(MY_ROBOT)
    robot = load_robot_description(str(path))
    arm, = robot.arms
    assert robot.name == 'my_arm' and robot.source == str(path)
    assert arm.command_joint_names == ('base', 'lift', 'bend', 'tilt', 'twist', 'claw')
    assert arm.state_joint_names[-1] == 'claw_finger' and arm.side == 'left'
    assert arm.gripper.finger_open == 0.04 and arm.gripper.finger_closed == 0.0  # URDF range
    np.testing.assert_allclose(robot.start_joint_angles(), [0.1, 0.2, 0.3, 0.0, 0.0, -0.5])
    np.testing.assert_allclose(robot.max_joint_speed(), [1.5, 1.5, 1.5, 2.0, 2.0, 2.5])
    assert robot.camera_topics() == ('/front/image_raw',)
    assert robot.summary()['arms'][0]['joints'][-1] == 'claw'


@pytest.mark.parametrize('change, match', [
    (('lift: {lower: -1.0, upper: 1.0', 'lift: {lower: 1.0, upper: -1.0'),
     r'joints.lift.lower=1.0: must be below upper'),
    (('max_speed: 1.5}\n      lift', 'max_speed: -1}\n      lift'), r'joints.base.max_speed'),
    (('joint_open: 1.0', 'joint_open: -0.5'), 'joint_open .* must differ'),
    (('bend: 0.3,', 'bend: 9.0,'), r'start_pose.bend=9.0: outside the my_5dof limits'),
    (('gripper: closed', 'gripper: ajar'), r"start_pose.gripper='ajar'"),
    (('twist: 0.0, gripper', 'gripper'), r"lacks joints \['twist'\]"),
    (('{namespace: my_arm}', '{namespace: my/arm}'), r'namespace'),
    (('cameras: [front]', 'cameras: [front, front]'), r'cameras'),
    (('name: my_arm', 'name: my_arm\nwheels: 4'), r"\['wheels'\]: unknown keys"),
    (('base: {lower', 'base: {speed: 1, lower'), r"joints.base=\['speed'\]: unknown keys"),
    (('name: my_arm', 'name: my_arm\ncamera_size: [480]'), r'camera_size=\[480\]'),
    (('name: my_arm', 'name: my_arm\ncamera_rate_hz: 0'), r'camera_rate_hz=0.0: must be > 0'),
    (('name: my_arm', 'name: my_arm\njoint_states_rate_hz: fast'), r'joint_states_rate_hz'),
])
def test_bad_files_name_the_file_field_and_value(tmp_path, change, match):
    path = tmp_path / 'bad.yaml'
    old, new = change
    assert old in MY_ROBOT
    path.write_text(MY_ROBOT.replace(old, new, 1))
    with pytest.raises(RobotDescriptionError, match=match) as error:
        load_robot_description(path)
    assert str(path) in str(error.value)


def test_sensor_facts_are_optional_and_a_file_may_unset_them():
    aloha, sim = load_robot_description('aloha'), load_robot_description('aloha_sim')
    assert (aloha.camera_size, aloha.camera_rate_hz, aloha.joint_states_rate_hz) == (
        (480, 640), 30.0, 100.0)
    assert sim.camera_size is None and sim.camera_rate_hz == 10.0  # null in the extending file
    assert load_robot_description('vx300s').camera_size is None


def test_unknown_names_and_missing_files_list_the_builtin_robots(tmp_path):
    with pytest.raises(RobotDescriptionError, match=r"robot 'ur5'.*built-in: \[.*'aloha'"):
        load_robot_description('ur5')
    with pytest.raises(RobotDescriptionError, match='no such file'):
        load_robot_description(str(tmp_path / 'missing.yaml'))
    (tmp_path / 'list.yaml').write_text('- 1\n')
    with pytest.raises(RobotDescriptionError, match='must hold a mapping'):
        load_robot_description(tmp_path / 'list.yaml')
    (tmp_path / 'loop.yaml').write_text(f'extends: {tmp_path / "loop.yaml"}\n')
    with pytest.raises(RobotDescriptionError, match='nested deeper'):
        load_robot_description(tmp_path / 'loop.yaml')


def test_layouts_compare_and_ride_in_the_policy_config():
    aloha, wx250 = load_robot_description('aloha'), load_robot_description('wx250')
    assert aloha.layout().mismatch(aloha.layout()) == ''
    reason = aloha.layout().mismatch(wx250.layout())
    assert reason.startswith('action_names: checkpoint 14 dims') and 'robot 6 dims' in reason
    assert 'gripper' in aloha.layout('raw').mismatch(aloha.layout())
    layout = wx250.layout()
    assert RobotLayout.from_dict(layout.to_dict()) == layout
    config = PolicyConfig.from_dict(dict(PolicyConfig().to_dict(), robot_layout=None))
    assert config.robot_layout is None
    with pytest.raises(ValueError, match='robot_layout'):
        PolicyConfig(robot_layout=layout)  # 6 names for the default 14-d head
    with pytest.raises(ValueError, match="gripper='open'"):
        RobotLayout(('a',), ('a',), gripper='open')


def test_loading_descriptions_needs_no_torch():
    probe = ('import sys; from vla_adapter_core.robot_description import '
             'load_robot_description as load; load("aloha"); '
             'assert "torch" not in sys.modules, "torch imported"; print("ok")')
    assert 'ok' in run_in_fresh_interpreter(probe, timeout_s=120.0)
