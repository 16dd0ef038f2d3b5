"""Configuration of the chunk executor: one parameter table, one validated dataclass.

Every field of `ExecutorConfig` is a ROS parameter of the executor node with the same name,
declared from `EXECUTOR_PARAMETERS` (vla_adapter_ros/params/parameters.py: type, description,
range, read-only or dynamic). The robot's facts (arms, joint order, position and speed limits,
gripper
calibration, start pose) come from its robot description (`robot_description`: a built-in name
such as 'aloha' or a YAML path; vla_adapter_core.robot_description) and are never repeated
here. Dynamic parameters (blend_mode, ensemble_k, crossfade_s, speed_scale) apply on
`ros2 param set`; the rest are read-only.
"""

from dataclasses import dataclass

import numpy as np

from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
    robot_rows,
)
from vla_adapter_ros.pipeline.chunk_schedule import BLEND_MODES, ScheduleConfig
from vla_adapter_ros.pipeline.executor_logic import ExecutorTimings
from vla_adapter_ros.pipeline.safety import SafetyConfig
from vla_adapter_ros.pipeline.takeover import TakeoverConfig

OUTPUT_MODES = ('interbotix', 'joint_trajectory', 'float64_array')
# A shorter window holds too few frames of a 30 Hz camera for a rate (PreflightConfig's floor).
MIN_PREFLIGHT_WINDOW_S = 0.1

EXECUTOR_PARAMETERS = ParameterTable((
    ParameterSpec('rate_hz', 50.0, 'Command rate (Hz) of the streamed joint targets.',
                  (1.0, 1000.0)),
    *robot_rows(),
    ParameterSpec('output_mode', 'interbotix',
                  "'interbotix' (JointGroupCommand for the arm group + JointSingleCommand for "
                  "the gripper), 'joint_trajectory' or 'float64_array' (ros2_control).",
                  choices=OUTPUT_MODES),
    ParameterSpec('chunk_topic', 'action_chunk', 'vla_adapter_msgs/ActionChunk input topic.'),
    ParameterSpec('status_topic', 'executor_status',
                  'vla_adapter_msgs/PolicyStatus output topic of the executor.'),
    ParameterSpec('estop_topic', 'estop', 'std_msgs/Bool topic; true latches the e-stop (reset '
                  'only through the ~/reset_estop service).'),
    ParameterSpec('joint_states_topic', 'joint_states',
                  'sensor_msgs/JointState topic below each robot namespace.'),
    ParameterSpec('joint_trajectory_topic', 'arm_controller/joint_trajectory',
                  "Topic below each robot namespace for output_mode 'joint_trajectory'."),
    ParameterSpec('float64_array_topic', 'forward_position_controller/commands',
                  "Topic below each robot namespace for output_mode 'float64_array'."),
    ParameterSpec('blend_mode', 'ensemble',
                  "'ensemble' (temporal ensembling of overlapping chunks) or 'switch' (newest "
                  'chunk from the step matching now, with a cross-fade).', choices=BLEND_MODES,
                  dynamic=True),
    ParameterSpec('ensemble_k', 0.01, 'Ensemble weight exp(-k*i), i=0 the oldest chunk: k>0 '
                  'favours older chunks (ACT: 0.01), k<0 newer ones, 0 averages.',
                  (-10.0, 10.0), dynamic=True),
    ParameterSpec('crossfade_s', 0.1, "Cross-fade duration (s) of blend_mode 'switch'.",
                  (0.0, 5.0), dynamic=True),
    ParameterSpec('speed_scale', 0.9, "Fraction of the robot description's joint speed limits "
                  'the command may use; the step per tick never exceeds '
                  'speed_scale * max_speed / rate_hz.', (0.01, 1.0), dynamic=True),
    ParameterSpec('max_chunk_steps', 200, 'Longest accepted chunk (steps per arm). Longer chunks '
                  'are rejected by their serialized size before they are decoded, so a huge '
                  'message never delays a tick.', (2, 10000)),
    ParameterSpec('limit_margin', 0.05, 'Chunk targets outside the joint limits by at most this '
                  '(rad) are clamped; beyond it the chunk is rejected.', (0.0, 0.5)),
    ParameterSpec('stale_chunk_s', 1.0, 'Hold when no valid chunk arrived for this long (s).',
                  (0.01, 60.0)),
    ParameterSpec('stale_observation_s', 0.5,
                  'Hold and fault when an arm sent no joint_states for this long (s).',
                  (0.01, 60.0)),
    ParameterSpec('max_future_stamp_s', 0.5, 'Reject chunks stamped more than this (s) in the '
                  'future (clock jump).', (0.001, 60.0)),
    ParameterSpec('clock_jump_s', 0.5, 'Fault and drop all chunks when ROS time and the '
                  'monotonic clock disagree by more than this (s) over one tick, or ROS time '
                  'goes backwards.', (0.001, 60.0)),
    ParameterSpec('startup_speed', 0.5, 'Largest joint speed (rad/s) of the start-up ramp to '
                  "the description's start pose.", (0.01, 3.0)),
    ParameterSpec('set_gripper_mode', True, "Call each driver's set_operating_modes service for "
                  "the gripper before the ramp (output_mode 'interbotix' only)."),
    ParameterSpec('gripper_operating_mode', 'current_based_position',
                  'Gripper operating mode requested from the driver.'),
    ParameterSpec('service_timeout_s', 10.0,
                  'Fault when set_operating_modes does not answer within this (s).',
                  (0.1, 600.0)),
    ParameterSpec('status_rate_hz', 10.0, 'PolicyStatus publishing rate (Hz).', (0.1, 100.0)),
    ParameterSpec('takeover_topic', 'takeover', 'std_msgs/Bool topic (a pedal or a key): true '
                  "hands the followers to the description's leader arms, false back to the "
                  'policy (the same as the ~/takeover service).'),
    ParameterSpec('control_source_topic', 'control_source',
                  "std_msgs/String topic (latched) naming who commands: 'policy', 'handover', "
                  "'operator' or 'hold'; the recorder stores it."),
    ParameterSpec('leader_stale_s', 0.25, 'Refuse or abort a takeover when a leader arm sent '
                  'no valid joint_states for this long (s); the arms then hold.', (0.01, 60.0)),
    ParameterSpec('takeover_speed', 0.5, "Largest joint speed (rad/s) of the move to the "
                  "leaders' pose when the operator takes over.", (0.01, 3.0)),
    ParameterSpec('takeover_tolerance', 0.02, "The handover ends and the followers follow the "
                  "leaders once every joint is this close (rad) to the leaders' pose.",
                  (0.001, 0.5)),
    ParameterSpec('handback_crossfade_s', 0.5, 'Back to the policy, its first chunk cross-fades '
                  "from the operator's pose over this long (s).", (0.0, 10.0)),
    ParameterSpec('preflight_window_s', 1.0, 'Start-up pre-flight check of the inputs (s of '
                  'listening per try; 0 = off): until one window passes, the arms hold their '
                  "measured pose and the status is FAULT naming what failed. It holds the "
                  "cameras of preflight_camera_topics and every arm's joint_states to the robot "
                  'description (rates, image size, joint names, gripper calibration, clock).',
                  (0.0, 30.0)),
    ParameterSpec('preflight_camera_topics', (), 'sensor_msgs/Image topics of the cameras the '
                  "pre-flight check listens to (the launch passes the policy's; empty = none: "
                  'joint_states only).', element_type=str),
    ParameterSpec('realtime_priority', 0, 'SCHED_FIFO priority (1-99) of the thread that ticks '
                  'and publishes; 0 = normal scheduling. Needs root or an rtprio limit (e.g. '
                  'limits.conf); without it the node warns and runs normally.', (0, 99)),
))


@dataclass(frozen=True)
@parameter_fields
class ExecutorConfig(NodeConfig):
    """Settings of the chunk executor node (field names = ROS parameter names)."""

    PARAMETERS = EXECUTOR_PARAMETERS

    def __post_init__(self) -> None:
        self.coerce_fields()
        for name in ('chunk_topic', 'status_topic', 'estop_topic', 'joint_states_topic',
                     'takeover_topic', 'control_source_topic',
                     'joint_trajectory_topic', 'float64_array_topic', 'gripper_operating_mode'):
            if not getattr(self, name):
                EXECUTOR_PARAMETERS[name].fail(getattr(self, name), 'must not be empty')
        if 0.0 < self.preflight_window_s < MIN_PREFLIGHT_WINDOW_S:
            EXECUTOR_PARAMETERS['preflight_window_s'].fail(
                self.preflight_window_s, f'must be 0 (off) or at least {MIN_PREFLIGHT_WINDOW_S}')
        self.load_robot()
        self.safety_config()  # validates limits and speeds

    @property
    def num_arms(self) -> int:
        """Arms driven (from the description)."""
        return self.robot.num_arms

    @property
    def tick_s(self) -> float:
        """Executor period (s)."""
        return 1.0 / self.rate_hz

    @property
    def arm_robot_names(self) -> tuple[str, ...]:
        """Driver namespaces of the arms, in description order."""
        return self.robot.namespaces

    def start_pose(self) -> np.ndarray:
        """The start pose as joint angles over all arms, (J,) rad."""
        return self.robot.start_joint_angles()

    def safety_config(self) -> SafetyConfig:
        """The safety layer's settings for the stacked joint vector of all arms."""
        lower, upper = self.robot.joint_angle_bounds()
        speed = self.robot.max_joint_speed() * self.speed_scale
        return SafetyConfig(
            lower=tuple(lower.tolist()), upper=tuple(upper.tolist()),
            max_joint_speed=tuple(speed.tolist()), tick_s=self.tick_s,
            limit_margin=self.limit_margin, stale_chunk_s=self.stale_chunk_s,
            stale_observation_s=self.stale_observation_s,
            max_future_stamp_s=self.max_future_stamp_s, clock_jump_s=self.clock_jump_s)

    def schedule_config(self) -> ScheduleConfig:
        """The scheduler's settings."""
        return ScheduleConfig(blend_mode=self.blend_mode, ensemble_k=self.ensemble_k,
                              crossfade_s=self.crossfade_s)

    def takeover_config(self) -> TakeoverConfig:
        """The takeover's settings."""
        return TakeoverConfig(leader_stale_s=self.leader_stale_s, ramp_speed=self.takeover_speed,
                              tolerance=self.takeover_tolerance,
                              handback_s=self.handback_crossfade_s)

    def state_machine_timings(self) -> ExecutorTimings:
        """The state machine's timing settings."""
        return ExecutorTimings(
            tick_s=self.tick_s, startup_speed=self.startup_speed,
            service_timeout_s=self.service_timeout_s, stale_chunk_s=self.stale_chunk_s,
            stale_observation_s=self.stale_observation_s, clock_jump_s=self.clock_jump_s)
