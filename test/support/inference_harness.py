"""Shared set-up of the inference-node tests: tiny policies, the node, a probe, fake sensors.

Every pipeline runs over real DDS on loopback: the fake sensors are another process
(fake_sensors.py), the inference node and a probe node live in the test process with a private
rclpy Context. Robots are robot descriptions (vla_adapter_core.robot_description); ALOHA unless
a test says otherwise.
"""

import contextlib
from dataclasses import dataclass, field

from fake_sensors import camera_frame, observed_state
import numpy as np
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_test_utils import SUPPORT_DIR, spin_until, start_python_process, stop_process
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from vla_adapter_core.robot_description import RobotDescription, load_robot_description
from vla_adapter_core.tiny_policies import build_tiny_policy
from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
from vla_adapter_msgs.srv import SetInstruction
from vla_adapter_ros.nodes.inference_node import NODE_NAME, InferenceNode

FAKE_SENSORS = SUPPORT_DIR / 'fake_sensors.py'
ALOHA = load_robot_description('aloha')
CAMERAS = ALOHA.cameras
IMAGE_HW = (48, 64)
DEFAULT_PARAMS = {'image_height': IMAGE_HW[0], 'image_width': IMAGE_HW[1],
                  'instruction': 'pick up the cube', 'status_rate_hz': 5.0}


def tiny_policy_for(robot: RobotDescription, camera_names=None, chunk_size: int = 8,
                    seed: int = 0, layout: bool = True, **options):
    """A tiny VLAPolicy sized for ``robot``; ``layout``: it records the robot's layout.

    ``options`` go to build_tiny_policy (head_kind, statistics, ...).
    """
    policy = build_tiny_policy(action_dim=robot.action_dim, proprio_dim=robot.proprio_dim,
                               chunk_size=chunk_size,
                               camera_names=tuple(camera_names or robot.cameras), seed=seed,
                               **options)
    if layout:
        policy.config.robot_layout = robot.layout()
    return policy


def observation_from_fake_sensors(robot: RobotDescription, instruction: str,
                                  sensor_cameras=None) -> dict:
    """The exact observation the node builds from fake_sensors.py's constant streams.

    ``sensor_cameras``: the cameras the fake sensors publish (their order fixes the frames);
    default the description's.
    """
    proprio = np.concatenate([observed_state(arm, index) for index, arm in enumerate(robot.arms)])
    cameras = sensor_cameras or robot.cameras
    images = {name: camera_frame(i, *IMAGE_HW) for i, name in enumerate(cameras)}
    return {'images': images, 'proprio': proprio.astype(np.float32), 'instruction': instruction}


def expected_joint_angles(policy, robot: RobotDescription, instruction: str,
                          sensor_cameras=None) -> np.ndarray:
    """(chunk, action_dim) joint angles the node must publish for the fake sensors' streams."""
    observation = observation_from_fake_sensors(robot, instruction, sensor_cameras)
    observation['images'] = {name: observation['images'][name]
                             for name in policy.config.camera_names}
    return robot.policy_to_joint_angles(policy.predict_action_chunk(observation))


def statistics_around_the_start_pose(robot: RobotDescription) -> dict:
    """Dataset statistics whose bounds keep every un-normalised action near the start pose."""
    low = np.concatenate([[*np.asarray(arm.start_pose[:-1]) - 0.3, 0.0] for arm in robot.arms])
    high = np.concatenate([[*np.asarray(arm.start_pose[:-1]) + 0.3, 1.0] for arm in robot.arms])

    def feature(lo, hi):
        return {'mean': ((lo + hi) / 2).tolist(), 'std': ((hi - lo) / 4).tolist(),
                'min': lo.tolist(), 'max': hi.tolist(), 'q01': lo.tolist(), 'q99': hi.tolist(),
                'mask': [True] * len(lo)}

    return {'tiny': {'action': feature(low, high), 'proprio': feature(low, high),
                     'num_transitions': 100, 'num_trajectories': 2}}


@dataclass
class Probe:
    """A node that records everything the inference node publishes and calls its services."""

    node: object
    chunks: list = field(default_factory=list)
    statuses: list = field(default_factory=list)
    arm_chunks: dict = field(default_factory=lambda: {'left': [], 'right': []})
    sensor_stamps: set = field(default_factory=set)

    @classmethod
    def create(cls, context, robot: RobotDescription = ALOHA) -> 'Probe':
        probe = cls(rclpy.create_node('inference_probe', context=context))
        probe.node.create_subscription(ActionChunk, 'action_chunk', probe.chunks.append, 50)
        probe.node.create_subscription(PolicyStatus, 'policy_status', probe.statuses.append, 50)
        for side, received in probe.arm_chunks.items():
            probe.node.create_subscription(JointTrajectory, f'action_chunk/{side}',
                                           received.append, 50)
        topics = [(f'/{robot.namespaces[0]}/joint_states', JointState)]
        if robot.cameras:
            topics.append((robot.camera_topics()[0], Image))
        for topic, message_type in topics:
            probe.node.create_subscription(
                message_type, topic,
                lambda m: probe.sensor_stamps.add((m.header.stamp.sec, m.header.stamp.nanosec)),
                qos_profile_sensor_data)
        return probe

    def faults(self) -> list[str]:
        return [s.fault_reason for s in self.statuses if s.state == PolicyStatus.STATE_FAULT]


@dataclass
class Pipeline:
    node: InferenceNode
    probe: Probe
    executor: SingleThreadedExecutor

    def spin_until(self, predicate, timeout_s: float = 20.0) -> bool:
        return spin_until(self.executor, predicate, timeout_s)

    def spin_for(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def call(self, service_type, name: str, request):
        client = self.probe.node.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=10.0), f'service {name} not available'
        future = client.call_async(request)
        assert self.spin_until(future.done, 10.0), f'no answer from {name}'
        return future.result()

    def set_instruction(self, text: str):
        return self.call(SetInstruction, 'set_instruction', SetInstruction.Request(
            instruction=text))

    def set_parameters(self, **values) -> list:
        """``ros2 param set`` over DDS: the node's SetParameters service; one result per value."""
        request = SetParameters.Request(parameters=[
            Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        return self.call(SetParameters, f'/{NODE_NAME}/set_parameters', request).results

    def trigger(self, name: str):
        return self.call(Trigger, name, Trigger.Request())

    def wait_for_fault(self, *fragments: str, timeout_s: float = 20.0) -> str:
        """Spin until a FAULT status contains every fragment; return its reason."""
        def matching():
            return [r for r in self.probe.faults() if all(f in r for f in fragments)]
        assert self.spin_until(lambda: bool(matching()), timeout_s), (
            f'no fault containing {fragments}; faults seen: {sorted(set(self.probe.faults()))}')
        return matching()[0]


@contextlib.contextmanager
def running_pipeline(policy=None, sensor_args: tuple | None = (), robot=ALOHA, **params):
    """Inference node (+ probe) in this process, fake sensors in a child process.

    ``sensor_args=None``: no sensors. ``robot``: the description the probe listens to (the node
    gets its own from the ``robot_description`` parameter).
    """
    context = rclpy.Context()
    rclpy.init(context=context)
    node = probe = executor = sensors = None
    output = ''
    try:
        values = {**DEFAULT_PARAMS, **params}
        node = InferenceNode(
            policy, context=context, use_global_arguments=False,
            parameter_overrides=[Parameter(name, value=v) for name, v in values.items()])
        probe = Probe.create(context, robot)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(probe.node)
        if sensor_args is not None:
            sensors = start_python_process(FAKE_SENSORS, *sensor_args)
        yield Pipeline(node, probe, executor)
    finally:
        if sensors is not None:
            output = stop_process(sensors)
            assert 'Traceback' not in output, output
        if executor is not None:
            executor.shutdown()
        if probe is not None:
            probe.node.destroy_node()
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=context)
