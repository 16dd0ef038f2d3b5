"""The sim-eval side of an episode: an rclpy node that seeds, resets and starts the simulator.

It talks to the running nodes over DDS only (services, parameters, topics): per episode it sets
the simulator's seed, resets it, restarts the executor, waits until the executor holds the start
pose, starts the episode and collects the rewards until ``~/episode_done``.
"""

from __future__ import annotations

import json
from pathlib import Path
import time

import numpy as np

from vla_adapter_ros.pipeline import status

SIM_NODE = 'mujoco_aloha'
RECORDER_NODE = 'episode_recorder'


def eval_node_specs(checkpoint: str, device: str, instruction: str, steps: int,
                    image_hw: tuple[int, int], cpu_threads: int = 0,
                    simulator: dict | None = None, executor: dict | None = None,
                    recorder: dict | None = None) -> list:
    """The specs of ``aloha.launch.py use_sim:=true sim:=mujoco sim_clock:=sim`` (no autostart).

    ``cpu_threads``: the inference node's torch threads; ``simulator`` / ``executor``: further
    parameters of the MuJoCo node / the chunk executor; ``recorder``: with ``record:=true``, the
    episode recorder's parameters (``output_dir`` at least).
    """
    from ament_index_python.packages import get_package_share_directory

    from vla_adapter_ros.bringup.launch_description import PACKAGE, build_node_specs
    arguments = {'checkpoint': checkpoint, 'instruction': instruction, 'device': device,
                 'use_sim': 'true', 'sim': 'mujoco', 'sim_clock': 'sim', 'log_level': 'warn'}
    if recorder is not None:
        arguments.update(record='true', record_dir=str(recorder['output_dir']))
    specs = build_node_specs('dual', arguments, get_package_share_directory(PACKAGE))
    height, width = image_hw
    for spec in specs:
        if spec.name == SIM_NODE:
            spec.parameters.append({'autostart': False, 'episode_steps': steps,
                                    'image_height': height, 'image_width': width,
                                    **(simulator or {})})
        elif spec.name == 'chunk_executor' and executor:
            spec.parameters.append(dict(executor))
        elif spec.name == RECORDER_NODE and recorder:
            spec.parameters.append(dict(recorder))
        elif spec.name == 'vla_inference':
            spec.parameters.append({'image_height': height, 'image_width': width,
                                    'cpu_threads': cpu_threads})
    return specs


class EpisodeDriver:
    """An rclpy node that runs episodes on the simulator and collects what happened."""

    def __init__(self, robot, exited=lambda: {}, record: bool = False,
                 rerun_dir: Path | None = None) -> None:
        """``exited()``: the node processes that have ended (name -> exit code).

        ``record``: the episode recorder records each episode (one bag each); ``rerun_dir``:
        write each episode's Rerun recording there (tools/episode_rerun.py).
        """
        from rcl_interfaces.srv import SetParameters
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter
        from rclpy.qos import (
            DurabilityPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64, Int32, String
        from std_srvs.srv import Trigger

        from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
        self.exited = exited
        # With a recording, on the simulator's clock: unstamped messages get the sim time.
        self.node = Node('vla_sim_eval', parameter_overrides=[] if rerun_dir is None else [
            Parameter('use_sim_time', Parameter.Type.BOOL, True)])
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=1000)
        self.rewards: list[float] = []
        self.done_seed: int | None = None
        self.inference_ms: list[float] = []
        self.frames: list[np.ndarray] = []
        self.capture = False
        self.faults: list[str] = []
        self.control_sources: list[str] = []  # the executor's control_source topic, in order
        self.node.create_subscription(
            String, 'control_source', lambda msg: self.control_sources.append(msg.data),
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        node = self.node
        node.create_subscription(Float64, f'/{SIM_NODE}/reward',
                                 lambda msg: self.rewards.append(msg.data), reliable)
        node.create_subscription(Int32, f'/{SIM_NODE}/episode_done', self._on_done, reliable)
        self.phase_seconds: dict = {}  # the simulator's wall-time profile of the last episode
        node.create_subscription(
            String, f'/{SIM_NODE}/episode_timing',
            lambda msg: setattr(self, 'phase_seconds', json.loads(msg.data)), reliable)
        node.create_subscription(ActionChunk, 'action_chunk',
                                 lambda msg: self.inference_ms.append(msg.inference_ms), 100)
        node.create_subscription(Image, robot.camera_topic.format(camera=robot.cameras[0]),
                                 self._on_image, qos_profile_sensor_data)
        node.create_subscription(PolicyStatus, 'executor_status', self._on_status, 10)
        self.policy_state = None
        node.create_subscription(PolicyStatus, 'policy_status',
                                 lambda msg: setattr(self, 'policy_state', msg.state), 10)
        self._starting = PolicyStatus.STATE_STARTING
        self.robot = robot
        self.joint_states: list = [None] * robot.num_arms
        for index, arm in enumerate(robot.arms):
            node.create_subscription(
                JointState, f'/{arm.namespace}/joint_states',
                lambda msg, i=index: self.joint_states.__setitem__(i, msg),
                qos_profile_sensor_data)
        self._seed_client = node.create_client(SetParameters, f'/{SIM_NODE}/set_parameters')
        self._reset_client = node.create_client(Trigger, f'/{SIM_NODE}/reset')
        self._restart_client = node.create_client(Trigger, '/chunk_executor/restart')
        self._fault_state = PolicyStatus.STATE_FAULT
        self._holding = PolicyStatus.STATE_HOLDING
        self.executor_state = None
        self._start_client = node.create_client(Trigger, f'/{SIM_NODE}/start')
        self._record_clients = (
            (node.create_client(Trigger, f'/{RECORDER_NODE}/start_episode'),
             node.create_client(Trigger, f'/{RECORDER_NODE}/stop_episode')) if record else None)
        self.rerun = None
        if rerun_dir is not None:
            from vla_adapter_ros.tools.episode_rerun import EpisodeRerun
            self.rerun = EpisodeRerun(node, robot, rerun_dir, f'/{SIM_NODE}/reward')

    def _on_done(self, message) -> None:
        self.done_seed = message.data

    def _on_image(self, message) -> None:
        if self.capture:
            from vla_adapter_ros.pipeline.conversions import image_to_rgb
            self.frames.append(image_to_rgb(message))

    def _on_status(self, message) -> None:
        self.executor_state = (message.state, message.fault_reason)
        if message.state == self._fault_state and message.fault_reason:
            self.faults.append(message.fault_reason)

    def spin_until(self, predicate, timeout_s: float, what: str) -> None:
        """Spin until ``predicate()``; TimeoutError naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            ended = self.exited()
            if ended:
                raise RuntimeError(f'nodes exited while waiting for {what}: {ended}')
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out after {timeout_s:.0f} s waiting for {what}')
            self.executor.spin_once(timeout_sec=0.05)

    def _call(self, client, request, what: str, timeout_s: float = 60.0):
        self.spin_until(client.service_is_ready, timeout_s, f'the {what} service')
        future = client.call_async(request)
        self.spin_until(future.done, timeout_s, f'the {what} reply')
        return future.result()

    def wait_for_policy(self, timeout_s: float) -> None:
        """Until the inference node has loaded (and warmed up) its policy."""
        self.spin_until(lambda: self.policy_state not in (None, self._starting), timeout_s,
                        'the inference node to load the policy')

    def run_episode(self, seed: int, steps: int, timeout_s: float,
                    capture: bool) -> list[float]:
        """One episode of ``steps`` on ``seed``; its per-step rewards."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters
        from std_srvs.srv import Trigger
        value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=int(seed))
        result = self._call(self._seed_client, SetParameters.Request(
            parameters=[Parameter(name='seed', value=value)]), 'simulator set_parameters')
        if not result.results[0].successful:
            raise RuntimeError(f'simulator refused seed {seed}: {result.results[0].reason}')
        self.rewards, self.done_seed = [], None
        self.capture, self.frames = capture, []
        self._call(self._reset_client, Trigger.Request(), 'simulator reset')
        restart = self._call(self._restart_client, Trigger.Request(), 'executor restart')
        if not restart.success:
            raise RuntimeError(f'executor restart refused: {restart.message}')
        # Start only once the executor holds the start pose and waits for chunks, so every
        # episode begins from the same executor state.
        self.executor_state = None
        waiting = (self._holding, status.WAITING_FOR_FIRST_CHUNK)
        self.spin_until(lambda: self.executor_state == waiting, 60.0,
                        'the executor to hold the start pose')
        self._record(0, 'start_episode')
        if self.rerun is not None:
            self.rerun.begin(seed)
        started = self._call(self._start_client, Trigger.Request(), 'simulator start')
        if not started.success:
            raise RuntimeError(f'simulator did not start: {started.message}')
        self.spin_until(lambda: self.done_seed == seed, timeout_s, f'episode {seed} to end')
        self._record(1, 'stop_episode')
        self.spin_until(lambda: len(self.rewards) >= steps, 10.0, f'episode {seed} rewards')
        settle = time.monotonic() + 0.2  # joint_states of the paused, final pose
        self.spin_until(lambda: time.monotonic() > settle, 1.0, 'the final joint_states')
        self.capture = False
        if self.rerun is not None:
            self.rerun.end()
        return list(self.rewards)

    def _record(self, which: int, what: str) -> None:
        """Start (0) or stop (1) the recorder's episode, when recording."""
        from std_srvs.srv import Trigger
        if self._record_clients is None:
            return
        reply = self._call(self._record_clients[which], Trigger.Request(), f'recorder {what}')
        if not reply.success:
            raise RuntimeError(f'recorder {what} refused: {reply.message}')

    def arm_positions(self) -> list[float]:
        """The latest joint_states of every arm in policy units (the end of an episode)."""
        from vla_adapter_ros.pipeline.conversions import arm_state_from_joint_state
        values = [arm_state_from_joint_state(message, arm)
                  for message, arm in zip(self.joint_states, self.robot.arms)]
        return np.round(np.concatenate(values), 6).tolist()

    def close(self) -> None:
        """Close an open recording, destroy the node."""
        if self.rerun is not None:
            self.rerun.end()
        self.executor.shutdown()
        self.node.destroy_node()
