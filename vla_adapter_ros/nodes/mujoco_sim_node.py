"""MuJoCo ALOHA node: gym-aloha's bimanual scene behind the real Interbotix driver interface.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/nodes/mujoco_sim_node.py.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from interbotix_xs_msgs.srv import OperatingModes
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Header, Int32, String
from std_srvs.srv import Trigger

from vla_adapter_ros.nodes.driver_interface import create_arm_interface, create_camera_publisher
from vla_adapter_ros.nodes.node_main import run_node
from vla_adapter_ros.params.mujoco_sim_config import MUJOCO_SIM_PARAMETERS, MujocoSimConfig
from vla_adapter_ros.params.parameters import declare_parameters, parameter_help
from vla_adapter_ros.pipeline.conversions import (
    nanoseconds_to_stamp,
    rgb_to_image,
    stamp_to_nanoseconds,
)
from vla_adapter_ros.pipeline.health import PhaseTimes

NODE_NAME = 'mujoco_aloha'
START_TIME_NS = 1_000_000_000  # sim clock of the first step (0 means "no time yet" in ROS)
STEP_NS = 20_000_000
FIRST_STEP_SETTLE_S = 0.1


class MujocoAlohaNode(Node):
    """The MuJoCo ALOHA behind Interbotix topics, with an episode clock of its own."""

    def __init__(self, **kwargs) -> None:
        """Declare parameters, build the scene and the driver interfaces; start the clock."""
        super().__init__(NODE_NAME, **kwargs)
        self.config = declare_parameters(self, MUJOCO_SIM_PARAMETERS, MujocoSimConfig.from_dict,
                                         self._apply_dynamic_parameters)
        config = self.config
        os.environ.setdefault('MUJOCO_GL', 'egl')
        from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha, model_camera
        self.robot = config.robot
        for camera in self.robot.cameras:
            model_camera(camera)  # every camera has a counterpart
        self.scene = MujocoAloha(self.robot, config.task)
        self._lock = threading.Lock()  # the scene
        self._seed = config.seed
        self._episode_seed = config.seed
        self._step = 0
        self._running = False
        self._success = False
        self._sim_time_ns = START_TIME_NS
        self.operating_modes: dict[str, str] = {}
        # Commands received per (arm, kind): the sim clock steps once every arm got both.
        self._commands_seen = [0] * (2 * self.robot.num_arms)
        self._command_event = threading.Condition()
        self._chunk_stamps: set[int] = set()
        self.command_timeouts = 0
        self.operator = None  # the corrective expert and its takeover rule (corrective_expert)
        self._create_interfaces()
        self._stop = threading.Event()
        self.phase_times = PhaseTimes()  # where an episode's wall time goes (sim clock)
        self.context.on_shutdown(self._request_stop)  # a signal: no publishing after it
        if config.clock == 'sim':
            self._thread = threading.Thread(target=self._sim_clock_loop, name='mujoco_sim_clock',
                                            daemon=True)
            self._thread.start()
        else:
            self._thread = None
            self.create_timer(STEP_NS * 1e-9, self._realtime_step)
            self.create_timer(1.0 / config.camera_rate_hz, self._realtime_cameras)
        # Either way the arms stand at the start pose from the first message on, as a robot's
        # do before an episode (the executor's start-up pre-flight check reads its grippers).
        self.reset_episode(start=config.autostart)
        self.get_logger().info(
            f'MuJoCo ALOHA {config.task} ({config.clock} clock), arms '
            f'{list(self.robot.namespaces)}, cameras {list(self.robot.cameras)} at '
            f'{config.image_height}x{config.image_width}')

    # ----------------------------------------------------------------- interfaces
    def _create_interfaces(self) -> None:
        config = self.config
        self._interfaces = [
            create_arm_interface(self, arm,
                                 lambda positions, i=index: self._command_arm(i, positions),
                                 lambda angle, i=index: self._command_gripper(i, angle),
                                 lambda req, res, name=arm.namespace: self._on_modes(name, req,
                                                                                     res))
            for index, arm in enumerate(self.robot.arms)]
        self._state_publishers = [interface.joint_states for interface in self._interfaces]
        self._camera_publishers = [
            (camera, create_camera_publisher(self, topic))
            for camera, topic in zip(self.robot.cameras, self.robot.camera_topics())]
        reliable = QoSProfile(depth=100)
        self._reward_publisher = self.create_publisher(Float64, '~/reward', reliable)
        self._success_publisher = self.create_publisher(Bool, '~/success', reliable)
        self._done_publisher = self.create_publisher(Int32, '~/episode_done', reliable)
        # Where the episode's wall time went (JSON {phase: seconds}), just before episode_done.
        self._timing_publisher = self.create_publisher(String, '~/episode_timing', reliable)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_service(Trigger, '~/start', self._on_start)
        if config.clock == 'sim':
            self._clock_publisher = self.create_publisher(Clock, '/clock', 10)
            if config.chunk_timeout_s > 0:
                self.create_subscription(Header, config.chunk_filed_topic, self._on_chunk_filed,
                                         100)
        if config.corrective_expert:
            self._create_operator()

    def _create_operator(self) -> None:
        """The corrective expert as the leader arms (their joint_states, the takeover client)."""
        from vla_adapter_ros.nodes.sim_operator_interface import SimOperatorInterface
        from vla_adapter_ros.sim.simulated_operator import SimulatedOperator
        from vla_adapter_ros.sim.takeover_rule import rule_config_from
        config = self.config
        self.operator = SimulatedOperator(self.robot, config.task, rule_config_from(config),
                                          config.expert_replan_steps)
        self._operator_interface = SimOperatorInterface(
            self, self.robot, config.leader_joint_states_topic, config.takeover_service,
            config.command_timeout_s)

    def _apply_dynamic_parameters(self, config: MujocoSimConfig, changed: tuple) -> None:
        self.config = config
        if 'seed' in changed:
            self._seed = config.seed

    def _command_arm(self, index: int, positions: np.ndarray) -> None:
        with self._lock:
            self.scene.command_arm(index, positions)
        self._count_command(2 * index)

    def _command_gripper(self, index: int, angle: float) -> None:
        with self._lock:
            self.scene.command_gripper(index, angle)
        self._count_command(2 * index + 1)

    def _count_command(self, slot: int) -> None:
        with self._command_event:
            self._commands_seen[slot] += 1
            self._command_event.notify_all()

    def _on_modes(self, arm: str, request: OperatingModes.Request,
                  response: OperatingModes.Response) -> OperatingModes.Response:
        self.operating_modes[f'{arm}/{request.name}'] = request.mode
        return response

    def _on_chunk_filed(self, message: Header) -> None:
        with self._command_event:
            self._chunk_stamps.add(stamp_to_nanoseconds(message.stamp))
            self._command_event.notify_all()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        seed = self.reset_episode(start=False)
        response.success = True
        response.message = f'seed {seed} placed; ~/start runs the episode'
        return response

    def _on_start(self, request: Trigger.Request, response: Trigger.Response):
        with self._lock:
            if self._running:
                response.success, response.message = False, 'an episode is running'
            elif self._step != 0:
                response.success, response.message = False, 'episode over: ~/reset first'
            else:
                self._running = True
                self.phase_times.reset()
                response.success = True
                response.message = f'episode {self._episode_seed} started'
        return response

    # ----------------------------------------------------------------- episodes
    def reset_episode(self, start: bool = True) -> int:
        """Objects at the ``seed`` parameter's placement, arms at the start pose; step 0.

        ``start``: run at once; otherwise the scene waits (time still passes, the arms hold)
        for ``~/start``.
        """
        with self._lock:
            seed = self._seed
            self.scene.reset(seed)
            self._episode_seed, self._step, self._success = seed, 0, False
            if self.operator is not None:
                self.operator.reset()
            self._running = start
            self.phase_times.reset()
        self.get_logger().info(f'episode: seed {seed}' + ('' if start else ' (placed)'))
        return seed

    def _finish_step(self, reward: int, stamp_ns: int | None) -> None:
        """Publish the step's reward / success; end the episode after its last step."""
        self._success = self._success or reward >= 4
        self._reward_publisher.publish(Float64(data=float(reward)))
        self._success_publisher.publish(Bool(data=self._success))
        self._step += 1
        if self._step >= self.config.episode_steps:
            self._running = False
            self._timing_publisher.publish(String(data=json.dumps(self.phase_times.seconds)))
            self._done_publisher.publish(Int32(data=int(self._episode_seed)))
            self.get_logger().info(f'episode {self._episode_seed} done: success '
                                   f'{self._success}; wall time {self.phase_times.summary()}')

    def _publish_joint_states(self, stamp_ns: int) -> None:
        for index, arm in enumerate(self.robot.arms):
            positions, velocities = self.scene.arm_state(index)
            message = JointState()
            nanoseconds_to_stamp(stamp_ns, message.header.stamp)
            message.name = list(arm.driver_joint_names)
            message.position = positions.tolist()
            message.velocity = velocities.tolist()
            message.effort = [0.0] * len(positions)
            self._state_publishers[index].publish(message)

    def _publish_images(self, stamp_ns: int) -> None:
        height, width = self.config.image_height, self.config.image_width
        for camera, publisher in self._camera_publishers:
            message = rgb_to_image(self.scene.render(camera, height, width),
                                   frame_id=f'{camera}_color_optical_frame')
            nanoseconds_to_stamp(stamp_ns, message.header.stamp)
            publisher.publish(message)

    # ----------------------------------------------------------------- realtime clock
    def _realtime_step(self) -> None:
        stamp_ns = self.get_clock().now().nanoseconds
        with self._lock:
            if self._running:
                reward = self.scene.step()
                self._finish_step(reward, stamp_ns)
            self._publish_joint_states(stamp_ns)

    def _realtime_cameras(self) -> None:
        with self._lock:
            self._publish_images(self.get_clock().now().nanoseconds)

    # ----------------------------------------------------------------- sim clock
    def _sim_clock_loop(self) -> None:
        """Run the lock-step until stopped; the scene (and its EGL contexts) is freed here.

        A publish that fails because a signal already shut the context down ends the loop
        quietly: that is shutdown, not an error.
        """
        try:
            self._lock_step()
        except Exception:  # noqa: BLE001 - only a shut-down context is expected here
            if self.context.ok():
                raise
        finally:
            self._stop.set()
            with self._lock:
                self.scene.close()
                if self.operator is not None:
                    self.operator.close()

    def _lock_step(self) -> None:
        """Lock-step: publish time and sensors, wait for the command (and chunk), step."""
        config = self.config
        idle_period_s = STEP_NS * 1e-9
        while not self._stop.is_set():
            stamp_ns = self._sim_time_ns
            if self._running and self._step == 0:
                # An episode's first step: commands of the paused ticks before it still in
                # flight must not count as this step's.
                self._stop.wait(FIRST_STEP_SETTLE_S)
            phases = self.phase_times
            with phases.measure('sensors'), self._lock:
                running = self._running
                camera_frame = running and self._step % config.camera_every_steps == 0
                with self._command_event:
                    seen = list(self._commands_seen)
                self._publish_joint_states(stamp_ns)
                if camera_frame:
                    self._publish_images(stamp_ns)
                request = self._operator_step(stamp_ns) if running else None
            if request is not None:
                with phases.measure('takeover'):
                    self._request_takeover(request)
            # Sensors (and the last chunk) reach the other nodes before the clock ticks, so
            # the executor's tick at this time sees them, however busy the machine is.
            with phases.measure('settle'):
                self._stop.wait(config.settle_s)
                self._publish_clock(stamp_ns)
            if not running:
                # Between episodes time passes at the wall clock's pace (the executor can
                # start up and restart) while the scene stands still; its commands are
                # awaited as during an episode, so none is in flight when one starts.
                self._wait_for_commands(seen, idle_period_s, warn=False)
                self._sim_time_ns += STEP_NS
                continue
            with phases.measure('commands'):
                self._wait_for_commands(seen, config.command_timeout_s)
            if camera_frame and config.chunk_timeout_s > 0:
                with phases.measure('chunk'):
                    self._wait_for_chunk(stamp_ns)
            with phases.measure('physics'), self._lock:
                if self._running:
                    reward = self.scene.step()
                    self._finish_step(reward, stamp_ns + STEP_NS)
            self._sim_time_ns += STEP_NS

    def _operator_step(self, stamp_ns: int) -> str | None:
        """Publish the expert's plan as the leaders' joint_states; the rule's request."""
        if self.operator is None:
            return None
        planned = self.operator.step(self.scene, self._step)
        self._operator_interface.publish_leaders(planned.leaders, stamp_ns)
        return planned.request

    def _request_takeover(self, request: str) -> None:
        """Ask the executor and wait for its answer, so it switches before this step's tick."""
        self._operator_interface.request(request, self._step)

    def _publish_clock(self, stamp_ns: int) -> None:
        message = Clock()
        nanoseconds_to_stamp(stamp_ns, message.clock)
        self._clock_publisher.publish(message)

    def _wait_for_commands(self, seen: list[int], timeout_s: float, warn: bool = True) -> None:
        deadline = time.monotonic() + timeout_s
        with self._command_event:
            while any(now <= before for now, before in zip(self._commands_seen, seen)):
                remaining = deadline - time.monotonic()
                if self._stop.is_set():
                    return
                if remaining <= 0:
                    if not warn or not self.context.ok():
                        return
                    self.command_timeouts += 1
                    if self._step > 0:  # the first step of an episode may come before any
                        self.get_logger().warning(
                            f'step {self._step}: no commands within '
                            f'{self.config.command_timeout_s} s; stepping on the last ones')
                    return
                self._command_event.wait(remaining)

    def _wait_for_chunk(self, stamp_ns: int) -> bool:
        """Wait until the executor has filed the chunk answering the frame at ``stamp_ns``."""
        deadline = time.monotonic() + self.config.chunk_timeout_s
        with self._command_event:
            while stamp_ns not in self._chunk_stamps:
                remaining = deadline - time.monotonic()
                if self._stop.is_set():
                    return False
                if remaining <= 0:
                    if not self.context.ok():
                        return False
                    self.get_logger().warning(
                        f'no chunk for the frame at {stamp_ns * 1e-9:.2f} s within '
                        f'{self.config.chunk_timeout_s} s; stepping on')
                    return False
                self._command_event.wait(remaining)
            self._chunk_stamps = {stamp for stamp in self._chunk_stamps if stamp > stamp_ns}
        return True

    def _request_stop(self) -> None:
        """Stop the sim-clock thread, waking it from a wait for commands or a chunk.

        Without the wake-up it slept out ``chunk_timeout_s`` (10 s), longer than ``stop``
        waits for it, and then freed the renderer while the process was already exiting.
        """
        self._stop.set()
        with self._command_event:  # re-entrant: safe from a callback that holds it
            self._command_event.notify_all()

    def stop(self) -> None:
        """End the sim-clock thread and free the scene on the thread that rendered (shutdown)."""
        self._request_stop()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        else:  # the real-time clock renders on the executor's (this) thread
            with self._lock:
                self.scene.close()


def main(args: list[str] | None = None) -> int:
    """Entry point `vla-adapter-mujoco-sim` (ROS arguments are accepted)."""
    return run_node(MujocoAlohaNode, NODE_NAME, args if args is not None else sys.argv,
                    on_shutdown=lambda node: node.stop(),
                    help_text=parameter_help(MUJOCO_SIM_PARAMETERS, 'vla-adapter-mujoco-sim',
                                             NODE_NAME, __doc__.splitlines()[0]))


if __name__ == '__main__':
    raise SystemExit(main())
