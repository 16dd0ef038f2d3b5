"""Configuration of the chunk executor: one validated dataclass = the node's ROS parameters.

Every field of `ExecutorConfig` is a ROS parameter of the executor node with the same name; the
node declares each with a descriptor built from `PARAMETER_DOCS` / `PARAMETER_RANGES` (pure data,
so the launch description and the YAML files can be checked against it without rclpy). Integer
values are accepted for float parameters (`rate_hz:=50`); any other type mismatch raises a
ValueError naming the parameter.

Per-joint lists (max_joint_speed, lower_limits, upper_limits, start_pose) hold 7 values, in the
order waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, gripper (joint angle,
rad), applied to every arm; start_pose, lower_limits and upper_limits may also hold 7 values per
arm ([left 7, right 7] in dual mode). Defaults are the ViperX 300 S limits and ALOHA's gripper
calibration from robot_model.
"""

from dataclasses import asdict, dataclass, fields
import math

import numpy as np

from vla_adapter_ros.chunk_schedule import BLEND_MODES, ScheduleConfig
from vla_adapter_ros.robot_model import JOINTS_PER_ARM, ArmLimits
from vla_adapter_ros.safety import SafetyConfig

ARM_MODES = ('dual', 'single')
OUTPUT_MODES = ('interbotix', 'joint_trajectory', 'float64_array')
_DEFAULT_LOWER, _DEFAULT_UPPER = ArmLimits().joint_angle_bounds()
# ALOHA's start pose of the arm joints; the gripper starts fully open (calibrated joint angle).
DEFAULT_START_POSE = (0.0, -0.96, 1.16, 0.0, -0.3, 0.0, float(_DEFAULT_UPPER[-1]))


@dataclass(frozen=True)
class ExecutorConfig:
    """Settings of the chunk executor node (field names = ROS parameter names)."""

    rate_hz: float = 50.0
    robot_names: tuple[str, ...] = ('follower_left', 'follower_right')
    arm_mode: str = 'dual'
    output_mode: str = 'interbotix'
    chunk_topic: str = 'action_chunk'
    status_topic: str = 'executor_status'
    estop_topic: str = 'estop'
    joint_states_topic: str = 'joint_states'
    joint_trajectory_topic: str = 'arm_controller/joint_trajectory'
    float64_array_topic: str = 'forward_position_controller/commands'
    blend_mode: str = 'ensemble'
    ensemble_k: float = 0.01
    crossfade_s: float = 0.1
    max_joint_speed: tuple[float, ...] = (3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 6.0)
    lower_limits: tuple[float, ...] = tuple(float(v) for v in _DEFAULT_LOWER)
    upper_limits: tuple[float, ...] = tuple(float(v) for v in _DEFAULT_UPPER)
    limit_margin: float = 0.05
    stale_chunk_s: float = 1.0
    stale_observation_s: float = 0.5
    max_future_stamp_s: float = 0.5
    clock_jump_s: float = 0.5
    start_pose: tuple[float, ...] = DEFAULT_START_POSE
    startup_speed: float = 0.5
    set_gripper_mode: bool = True
    gripper_operating_mode: str = 'current_based_position'
    service_timeout_s: float = 10.0
    status_rate_hz: float = 10.0
    realtime_priority: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.realtime_priority <= 99:
            raise ValueError(
                f'realtime_priority must be within [0, 99], got {self.realtime_priority}')
        for name, ranges in PARAMETER_RANGES.items():
            value = getattr(self, name)
            low, high = ranges
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f'{name} must be within [{low}, {high}], got {value}')
        for name, choices in (('arm_mode', ARM_MODES), ('output_mode', OUTPUT_MODES),
                              ('blend_mode', BLEND_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f'{name} must be one of {choices}, got {getattr(self, name)!r}')
        if len(self.robot_names) < self.num_arms or any(not n for n in self.robot_names):
            raise ValueError(f'robot_names must name {self.num_arms} robot(s) for arm_mode '
                             f'{self.arm_mode!r}, got {list(self.robot_names)}')
        if len(set(self.robot_names[:self.num_arms])) != self.num_arms:
            raise ValueError(f'robot_names must be distinct, got {list(self.robot_names)}')
        if len(self.max_joint_speed) != JOINTS_PER_ARM:
            raise ValueError(f'max_joint_speed must hold {JOINTS_PER_ARM} values, got '
                             f'{len(self.max_joint_speed)}: {list(self.max_joint_speed)}')
        for name in ('lower_limits', 'upper_limits', 'start_pose'):
            self.per_arm(name)  # raises on a wrong length
        for name in ('chunk_topic', 'status_topic', 'estop_topic', 'joint_states_topic',
                     'joint_trajectory_topic', 'float64_array_topic', 'gripper_operating_mode'):
            if not getattr(self, name):
                raise ValueError(f'{name} must not be empty')
        self.safety_config()  # validates limits and speeds
        start = np.concatenate([self.per_arm('start_pose')[arm] for arm in range(self.num_arms)])
        lower, upper = self.stacked_limits()
        outside = np.flatnonzero((start < lower) | (start > upper))
        if outside.size:
            raise ValueError(f'start_pose must lie within the limits; outside at joint indices '
                             f'{outside.tolist()}: {start[outside].tolist()}')

    @property
    def num_arms(self) -> int:
        """1 in single-arm mode, 2 in dual-arm mode."""
        return 2 if self.arm_mode == 'dual' else 1

    @property
    def tick_s(self) -> float:
        """Executor period (s)."""
        return 1.0 / self.rate_hz

    @property
    def arm_robot_names(self) -> tuple[str, ...]:
        """The robot names in use: [left, right] (dual) or [the arm] (single)."""
        return tuple(self.robot_names[:self.num_arms])

    def per_arm(self, name: str) -> list[np.ndarray]:
        """A 7-per-arm list field split per arm: num_arms arrays of (7,)."""
        values = np.asarray(getattr(self, name), dtype=np.float64)
        if values.size == JOINTS_PER_ARM:
            return [values.copy() for _ in range(self.num_arms)]
        if values.size == JOINTS_PER_ARM * self.num_arms:
            return list(values.reshape(self.num_arms, JOINTS_PER_ARM))
        raise ValueError(f'{name} must hold {JOINTS_PER_ARM} values (every arm) or '
                         f'{JOINTS_PER_ARM * self.num_arms} (7 per arm), got {values.size}')

    def stacked_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) over all arms, each (7 * num_arms,)."""
        return (np.concatenate(self.per_arm('lower_limits')),
                np.concatenate(self.per_arm('upper_limits')))

    def safety_config(self) -> SafetyConfig:
        """The safety layer's settings for the stacked (7 * num_arms) joint vector."""
        lower, upper = self.stacked_limits()
        return SafetyConfig(
            lower=tuple(lower.tolist()), upper=tuple(upper.tolist()),
            max_joint_speed=tuple(self.max_joint_speed) * self.num_arms, tick_s=self.tick_s,
            limit_margin=self.limit_margin, stale_chunk_s=self.stale_chunk_s,
            stale_observation_s=self.stale_observation_s,
            max_future_stamp_s=self.max_future_stamp_s, clock_jump_s=self.clock_jump_s)

    def schedule_config(self) -> ScheduleConfig:
        """The scheduler's settings."""
        return ScheduleConfig(blend_mode=self.blend_mode, ensemble_k=self.ensemble_k,
                              crossfade_s=self.crossfade_s)

    def to_dict(self) -> dict:
        """Plain values (lists for tuples), as ROS parameters or YAML hold them."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> 'ExecutorConfig':
        """Build from parameter values; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown executor parameters: {unknown}')
        defaults = cls()
        converted = {name: _coerce(name, value, getattr(defaults, name))
                     for name, value in values.items()}
        return cls(**converted)


def _coerce(name: str, value, default):
    """Return value in the type of default; ints are accepted for floats (YAML `50`)."""
    def scalar(item, kind):
        if kind is float and isinstance(item, (int, float, np.integer, np.floating)) and (
                not isinstance(item, bool)):
            return float(item)
        if isinstance(item, kind) and not (kind is not bool and isinstance(item, bool)):
            return item
        raise ValueError(f'{name} must be of type {kind.__name__}, got {item!r}')

    if isinstance(default, tuple):
        if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
            raise ValueError(f'{name} must be a list, got {value!r}')
        return tuple(scalar(item, type(default[0])) for item in value)
    return scalar(value, type(default))


# Numeric parameters: inclusive (min, max), also used for the ROS parameter descriptors.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    'rate_hz': (1.0, 1000.0),
    'ensemble_k': (-10.0, 10.0),
    'crossfade_s': (0.0, 5.0),
    'limit_margin': (0.0, 0.5),
    'stale_chunk_s': (0.01, 60.0),
    'stale_observation_s': (0.01, 60.0),
    'max_future_stamp_s': (0.001, 60.0),
    'clock_jump_s': (0.001, 60.0),
    'startup_speed': (0.01, 3.0),
    'service_timeout_s': (0.1, 600.0),
    'status_rate_hz': (0.1, 100.0),
}

PARAMETER_DOCS: dict[str, str] = {
    'rate_hz': 'Command rate (Hz) of the streamed joint targets.',
    'robot_names': 'Interbotix robot names = driver namespaces, [left, right] (dual) or '
                   '[arm] (single; the ActionChunk left trajectory drives it).',
    'arm_mode': "'dual' (14-d chunks: left + right) or 'single' (7-d: left only).",
    'output_mode': "'interbotix' (JointGroupCommand 'arm' + JointSingleCommand 'gripper'), "
                   "'joint_trajectory' or 'float64_array' (ros2_control).",
    'chunk_topic': 'vla_adapter_msgs/ActionChunk input topic.',
    'status_topic': 'vla_adapter_msgs/PolicyStatus output topic of the executor.',
    'estop_topic': 'std_msgs/Bool topic; true latches the e-stop (reset only through the '
                   '~/reset_estop service).',
    'joint_states_topic': 'sensor_msgs/JointState topic below each robot namespace.',
    'joint_trajectory_topic': "Topic below each robot namespace for output_mode "
                              "'joint_trajectory'.",
    'float64_array_topic': "Topic below each robot namespace for output_mode 'float64_array'.",
    'blend_mode': "'ensemble' (temporal ensembling of overlapping chunks) or 'switch' "
                  '(newest chunk from the step matching now, with a cross-fade).',
    'ensemble_k': 'Ensemble weight exp(-k*i), i=0 the oldest chunk: k>0 favours older chunks '
                  '(ACT: 0.01), k<0 newer ones, 0 averages.',
    'crossfade_s': "Cross-fade duration (s) of blend_mode 'switch'.",
    'max_joint_speed': 'Largest commanded speed per joint (rad/s), 7 values (6 joints + '
                       'gripper); the step per tick never exceeds speed / rate_hz.',
    'lower_limits': 'Lower joint position limits (rad), 7 values or 7 per arm.',
    'upper_limits': 'Upper joint position limits (rad), 7 values or 7 per arm.',
    'limit_margin': 'Chunk targets outside the limits by at most this (rad) are clamped; '
                    'beyond it the chunk is rejected.',
    'stale_chunk_s': 'Hold when no valid chunk arrived for this long (s).',
    'stale_observation_s': 'Hold and fault when an arm sent no joint_states for this long (s).',
    'max_future_stamp_s': 'Reject chunks stamped more than this (s) in the future (clock '
                          'jump).',
    'clock_jump_s': 'Fault and drop all chunks when ROS time and the monotonic clock disagree '
                    'by more than this (s) over one tick, or ROS time goes backwards.',
    'start_pose': 'Pose (rad) the arms ramp to before chunks are accepted, 7 values or 7 per '
                  'arm.',
    'startup_speed': 'Largest joint speed (rad/s) of the start-up ramp.',
    'set_gripper_mode': "Call each driver's set_operating_modes service for the gripper before "
                        "the ramp (output_mode 'interbotix' only).",
    'gripper_operating_mode': 'Gripper operating mode requested from the driver.',
    'service_timeout_s': 'Fault when set_operating_modes does not answer within this (s).',
    'status_rate_hz': 'PolicyStatus publishing rate (Hz).',
    'realtime_priority': 'SCHED_FIFO priority (1-99) of the thread that ticks and publishes; '
                         '0 = normal scheduling. Needs root or an rtprio limit (e.g. '
                         'limits.conf); without it the node warns and runs normally. Keeps the '
                         '50 Hz stream on time while inference loads the CPU.',
}
