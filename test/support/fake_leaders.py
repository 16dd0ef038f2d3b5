"""Leader arms for takeover tests: joint_states of a description's leaders, over real DDS.

`FakeLeaders` publishes, from a node the caller spins, every leader arm's joint_states at
``rate_hz`` with the driver's joint names (arm joints, gripper angle, fingers), holding a pose
given in FOLLOWER joint angles (mapped back through both gripper calibrations, so the executor's
mapping should return it). ``paused`` stops publishing; ``nan_joint`` sends NaN for one joint.
"""

import threading

import numpy as np
from sensor_msgs.msg import JointState

from vla_adapter_core.robot_description import RobotDescription


def leader_angles(robot: RobotDescription, follower_pose: np.ndarray) -> list[np.ndarray]:
    """Per leader arm, its command-joint angles (rad) whose follower mapping is the pose."""
    angles = []
    for arm, part in enumerate(robot.arm_slices()):
        normalized = robot.arms[arm].action_from_joint_angles(follower_pose[part])
        angles.append(robot.leaders[arm].joint_angles_from_action(normalized))
    return angles


class FakeLeaders:
    """Publishes the leaders' joint_states on ``node`` (spun by the caller)."""

    def __init__(self, node, robot: RobotDescription, follower_pose: np.ndarray,
                 rate_hz: float = 50.0, paused: bool = False) -> None:
        self.robot = robot
        self._lock = threading.Lock()
        self._pose = np.asarray(follower_pose, dtype=np.float64).copy()
        self.paused = paused
        self.nan_joint = ''
        self._publishers = [node.create_publisher(JointState, f'{arm.namespace}/joint_states',
                                                  10) for arm in robot.leaders]
        self._node = node
        self._timer = node.create_timer(1.0 / rate_hz, self._publish)

    @property
    def pose(self) -> np.ndarray:
        """The follower pose the leaders stand for, (J,) rad."""
        with self._lock:
            return self._pose.copy()

    @pose.setter
    def pose(self, value: np.ndarray) -> None:
        with self._lock:
            self._pose = np.asarray(value, dtype=np.float64).copy()

    def _publish(self) -> None:
        if self.paused:
            return
        stamp = self._node.get_clock().now().to_msg()
        for arm, publisher, angles in zip(self.robot.leaders, self._publishers,
                                          leader_angles(self.robot, self.pose)):
            fingers = [float(np.mean(arm.model.finger_range))] * len(arm.model.finger_joints)
            positions = [float(value) for value in angles] + fingers
            names = list(arm.driver_joint_names)
            if self.nan_joint in names:
                positions[names.index(self.nan_joint)] = float('nan')
            message = JointState(name=names, position=positions)
            message.header.stamp = stamp
            publisher.publish(message)

    def stop(self) -> None:
        """No more messages after this returns."""
        self.paused = True
        self._timer.cancel()
