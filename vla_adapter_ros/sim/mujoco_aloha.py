"""The simulated ALOHA on MuJoCo (gym-aloha 0.1.5's scene), without rclpy.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/sim/mujoco_aloha.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from dm_control import mujoco
from gym_aloha.constants import ASSETS_DIR, DT
from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask
from gym_aloha.utils import sample_box_pose, sample_insertion_pose
import numpy as np

from vla_adapter_core.robot_description import RobotDescription

# The robot description's camera names -> the model's cameras.
MODEL_CAMERAS = {'cam_high': 'top', 'cam_low': 'angle', 'cam_left_wrist': 'left_wrist',
                 'cam_right_wrist': 'right_wrist', 'cam_front': 'front_close'}
ARM_PREFIXES = ('vx300s_left', 'vx300s_right')
ARM_JOINTS = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate')
QPOS_PER_ARM = 8  # six arm joints + two finger slides
CONTROL_PERIOD_S = DT  # 0.02 s: the task's 50 Hz control step


@dataclass(frozen=True)
class SimTask:
    """One gym-aloha task: its joint-space and mocap scenes, reward and object placement."""

    name: str
    joint_xml: str
    mocap_xml: str
    reward_class: type

    def object_pose(self, seed: int) -> np.ndarray:
        """(7,) cube pose or (14,) peg + socket poses for ``seed`` (gym-aloha's sampler)."""
        if self.name == 'transfer_cube':
            return sample_box_pose(seed)
        return np.concatenate(sample_insertion_pose(seed))


TASKS = {
    'transfer_cube': SimTask('transfer_cube', 'bimanual_viperx_transfer_cube.xml',
                             'bimanual_viperx_end_effector_transfer_cube.xml', TransferCubeTask),
    'insertion': SimTask('insertion', 'bimanual_viperx_insertion.xml',
                         'bimanual_viperx_end_effector_insertion.xml', InsertionTask),
}


def sim_task(name: str) -> SimTask:
    """The task called ``name``; ValueError naming the choices otherwise."""
    if name not in TASKS:
        raise ValueError(f'task={name!r}: must be one of {sorted(TASKS)}')
    return TASKS[name]


def model_camera(camera: str) -> str:
    """The model camera that plays the role of robot camera ``camera``."""
    if camera not in MODEL_CAMERAS:
        raise ValueError(f'camera {camera!r} has no MuJoCo counterpart; known: '
                         f'{sorted(MODEL_CAMERAS)}')
    return MODEL_CAMERAS[camera]


def finger_position(arm, gripper_angle: float) -> float:
    """The first finger's slide (m) for a gripper-joint angle (rad), through the calibration."""
    return float(arm.gripper.finger_from_normalized(arm.gripper.normalize_joint(gripper_angle)))


class _AlohaScene:
    """What both scenes share: the physics, fast rendering, joint read-out, object placement."""

    def __init__(self, xml_name: str, robot: RobotDescription, task: SimTask) -> None:
        if robot.num_arms != 2 or any(len(arm.joint_names) != len(ARM_JOINTS)
                                      for arm in robot.arms):
            raise ValueError(f'robot {robot.name!r}: the MuJoCo ALOHA needs two 6-joint arms')
        self.robot = robot
        self.task = task
        self.physics = mujoco.Physics.from_xml_path(str(ASSETS_DIR / xml_name))
        quality = self.physics.model.vis.quality
        quality.shadowsize = 0  # no shadow maps
        quality.offsamples = 0  # no multisample anti-aliasing in offscreen buffers
        self.substeps = max(1, round(CONTROL_PERIOD_S / self.physics.model.opt.timestep))
        self._reward = task.reward_class()
        self.time_s = 0.0

    def _place(self, arm_angles: np.ndarray, object_pose: np.ndarray) -> None:
        """Reset the physics, then arms (14 joint angles, gripper rad) and objects."""
        self.physics.reset()
        qpos = self.physics.data.qpos
        for index, arm in enumerate(self.robot.arms):
            values = arm_angles[7 * index:7 * index + 7]
            finger = finger_position(arm, values[-1])
            start = QPOS_PER_ARM * index
            qpos[start:start + 6] = values[:6]
            qpos[start + 6:start + 8] = (finger, -finger)
        qpos[2 * QPOS_PER_ARM:2 * QPOS_PER_ARM + len(object_pose)] = object_pose
        self.physics.forward()
        self.time_s = 0.0

    def arm_state(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) of arm ``index`` in driver order and units.

        Order: six arm joints (rad), the gripper joint (rad, from the first finger through the
        calibration), the two fingers (m; the second is mirrored, as the driver reports it).
        """
        arm = self.robot.arms[index]
        start = QPOS_PER_ARM * index
        qpos = self.physics.data.qpos[start:start + QPOS_PER_ARM]
        qvel = self.physics.data.qvel[start:start + QPOS_PER_ARM]
        gripper = arm.gripper
        span = (gripper.joint_open - gripper.joint_closed) / (
            gripper.finger_open - gripper.finger_closed)
        angle = float(gripper.joint_from_normalized(gripper.normalize_finger(qpos[6])))
        positions = np.concatenate([qpos[:6], [angle, qpos[6], qpos[7]]])
        velocities = np.concatenate([qvel[:6], [qvel[6] * span, qvel[6], qvel[7]]])
        return positions, velocities

    def policy_state(self) -> np.ndarray:
        """(14,) arm joints and normalised grippers (0 closed .. 1 open), the policy's units."""
        values = []
        for index, arm in enumerate(self.robot.arms):
            positions, _ = self.arm_state(index)  # (9,): arm joints, gripper, fingers
            joints = len(arm.joint_names)
            values.append(arm.observe(np.append(positions[:joints], positions[joints + 1])))
        return np.concatenate(values)

    def render(self, camera: str, height: int, width: int) -> np.ndarray:
        """(H, W, 3) uint8 frame of robot camera ``camera`` (a contiguous copy)."""
        frame = self.physics.render(height=height, width=width, camera_id=model_camera(camera))
        return np.ascontiguousarray(frame)

    def reward(self) -> int:
        """gym-aloha's staged reward (0..4; 4 = success) for the current contacts."""
        return int(self._reward.get_reward(self.physics))

    def close(self) -> None:
        """Free the physics and its rendering contexts, on the thread that rendered.

        An EGL context is current on the thread that created it; freed later by the garbage
        collector on another thread at exit, it fails (EGL_BAD_DISPLAY) with a traceback.
        """
        self.physics.free()


class MujocoAloha(_AlohaScene):
    """Joint-space ALOHA: the MuJoCo stand-in for two Interbotix follower arms.

    ``commands`` are kept per arm as driver units (six arm joints, gripper joint, rad), clipped
    to the description's limits; :meth:`step` advances one 20 ms control period.
    """

    def __init__(self, robot: RobotDescription, task: str = 'transfer_cube') -> None:
        super().__init__(sim_task(task).joint_xml, robot, sim_task(task))
        self.lower, self.upper = robot.joint_angle_bounds()  # (14,) each, driver units
        self.targets = robot.start_joint_angles()  # (14,)

    def reset(self, seed: int, start_angles: np.ndarray | None = None) -> None:
        """Objects at gym-aloha's pose for ``seed``; arms at ``start_angles`` (default start)."""
        angles = self.robot.start_joint_angles() if start_angles is None else start_angles
        self.targets = np.clip(np.asarray(angles, dtype=np.float64), self.lower, self.upper)
        self._place(self.targets, self.task.object_pose(seed))
        self._apply_targets()

    def command_arm(self, index: int, positions: np.ndarray) -> None:
        """Six arm-joint targets (rad, driver order) for arm ``index``; clipped to the limits."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (len(ARM_JOINTS),) or not np.all(np.isfinite(positions)):
            raise ValueError(f'arm command must be {len(ARM_JOINTS)} finite values, '
                             f'got {positions.tolist()}')
        block = slice(7 * index, 7 * index + 6)
        self.targets[block] = np.clip(positions, self.lower[block], self.upper[block])
        self._apply_targets()

    def command_gripper(self, index: int, angle: float) -> None:
        """Gripper-joint target (rad) for arm ``index``; clipped to the calibrated span."""
        if not np.isfinite(angle):
            raise ValueError(f'gripper command must be finite, got {angle}')
        slot = 7 * index + 6
        self.targets[slot] = float(np.clip(angle, self.lower[slot], self.upper[slot]))
        self._apply_targets()

    def command_policy_action(self, action: np.ndarray) -> None:
        """(14,) policy units (normalised grippers) -> both arms' targets."""
        angles = self.robot.policy_to_joint_angles(np.asarray(action, dtype=np.float64))
        for index in range(self.robot.num_arms):
            self.command_arm(index, angles[7 * index:7 * index + 6])
            self.command_gripper(index, float(angles[7 * index + 6]))

    def _apply_targets(self) -> None:
        ctrl = np.empty(2 * QPOS_PER_ARM)
        for index, arm in enumerate(self.robot.arms):
            values = self.targets[7 * index:7 * index + 7]
            finger = finger_position(arm, values[-1])
            start = QPOS_PER_ARM * index
            ctrl[start:start + 6] = values[:6]
            ctrl[start + 6:start + 8] = (finger, -finger)
        self.physics.set_control(ctrl)

    def step(self) -> int:
        """Advance one control period (20 ms); the reward after it."""
        self.physics.step(self.substeps)
        self.time_s += CONTROL_PERIOD_S
        return self.reward()


class MocapAloha(_AlohaScene):
    """End-effector ALOHA for scripted demonstrations: mocap bodies pull the grippers.

    Arm joints get frictionloss 0 and damping ``arm_damping`` (REFERENCE.md §5: 1.0 keeps the
    demos working and the redundant wrist joints repeatable).
    """

    def __init__(self, robot: RobotDescription, task: str = 'transfer_cube',
                 arm_damping: float = 1.0) -> None:
        super().__init__(sim_task(task).mocap_xml, robot, sim_task(task))
        model = self.physics.model
        for prefix in ARM_PREFIXES:
            for joint in ARM_JOINTS:
                joint_id = model.name2id(f'{prefix}/{joint}', 'joint')
                model.dof_frictionloss[model.jnt_dofadr[joint_id]] = 0.0
                model.dof_damping[model.jnt_dofadr[joint_id]] = arm_damping

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Arms at the description's start pose, objects at ``seed``'s pose, mocap on the grippers.

        Returns the (2, 3) mocap positions and (2, 4) orientations (w, x, y, z) of the start.
        """
        self._place(self.robot.start_joint_angles(), self.task.object_pose(seed))
        positions = np.stack([self.physics.named.data.xpos[f'{prefix}/gripper_link']
                              for prefix in ARM_PREFIXES])
        # The welds hold each gripper at its model-reference (qpos0) pose relative to its
        # mocap body, which is the identity orientation for both arms.
        quaternions = np.tile([1.0, 0.0, 0.0, 0.0], (2, 1))
        self.physics.data.mocap_pos[:] = positions
        self.physics.data.mocap_quat[:] = quaternions
        self.set_grippers(np.ones(2))
        self.physics.forward()
        return positions.copy(), quaternions.copy()

    def object_position(self, body: str = 'box') -> np.ndarray:
        """(3,) position of a scene body (the cube is 'box')."""
        return self.physics.named.data.xpos[body].copy()

    def set_grippers(self, normalized: np.ndarray) -> None:
        """Both grippers' finger targets from normalised openings (0 closed .. 1 open)."""
        ctrl = []
        for arm, value in zip(self.robot.arms, normalized):
            finger = float(arm.gripper.finger_from_normalized(value))
            ctrl += [finger, -finger]
        self.physics.set_control(np.asarray(ctrl))

    def step(self, positions: np.ndarray, quaternions: np.ndarray,
             grippers: np.ndarray) -> int:
        """Move the mocap targets ((2, 3), (2, 4)) and grippers (2,), advance 20 ms; reward."""
        self.physics.data.mocap_pos[:] = positions
        self.physics.data.mocap_quat[:] = quaternions
        self.set_grippers(grippers)
        self.physics.step(self.substeps)
        self.time_s += CONTROL_PERIOD_S
        return self.reward()
