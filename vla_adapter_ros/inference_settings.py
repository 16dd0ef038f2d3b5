"""Parameters of the inference node: one table (name, default, description) and one dataclass.

``INFERENCE_PARAMETERS`` is the single list of ROS parameters the node declares; the YAML files in
``config/`` and the launch description are tested against it. :class:`InferenceSettings`
validates the values in ``__post_init__`` (ValueError naming the parameter and the value).
"""

from dataclasses import dataclass
import math
from typing import Any

from vla_adapter_ros.robot_model import GripperCalibration

DEFAULT_CAMERA_NAMES = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
DEFAULT_ROBOT_NAMES = ('follower_left', 'follower_right')
SENSOR_QOS_RELIABILITIES = ('best_effort', 'reliable')


def camera_topic(camera_name: str) -> str:
    """The RealSense colour topic of an ALOHA camera."""
    return f'/{camera_name}/camera/color/image_rect_raw'


_CALIBRATION = GripperCalibration()

# (name, default, description); the order is the order of the YAML files.
INFERENCE_PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    ('checkpoint', '', 'Policy checkpoint directory (written by VLAPolicy.save_pretrained).'),
    ('device', 'cpu', "Torch device for the policy, e.g. 'cuda' or 'cpu'."),
    ('dtype', 'auto', "Policy dtype: 'auto' (bf16 where supported), 'bfloat16' or 'float32'."),
    ('instruction', '', 'Initial language instruction; empty = wait for set_instruction.'),
    ('max_instruction_length', 512, 'Longest accepted instruction, characters.'),
    ('num_arms', 2, '2 = dual-arm ALOHA (14-d actions), 1 = single arm (7-d actions).'),
    ('robot_names', list(DEFAULT_ROBOT_NAMES),
     'Interbotix robot names (driver namespaces), left arm first; one per arm.'),
    ('joint_states_topic', 'joint_states',
     'Joint-state topic inside each robot namespace: /<robot_name>/<joint_states_topic>.'),
    ('camera_topics', [camera_topic(name) for name in DEFAULT_CAMERA_NAMES],
     'Image topics (sensor_msgs/Image; CompressedImage when the topic ends in /compressed).'),
    ('camera_names', list(DEFAULT_CAMERA_NAMES),
     'Checkpoint camera name each camera_topics entry maps to (same length).'),
    ('image_height', 480, 'Expected image height in pixels; 0 accepts any height.'),
    ('image_width', 640, 'Expected image width in pixels; 0 accepts any width.'),
    ('sync_queue_size', 10, 'Messages kept per input stream by the approximate-time sync.'),
    ('sync_slop_s', 0.05, 'Largest stamp spread inside one synchronised observation, s.'),
    ('max_observation_age_s', 0.5,
     'Observations (and streams) older than this against the node clock are stale, s.'),
    ('sensor_qos_reliability', 'best_effort',
     "QoS reliability of camera and joint-state subscriptions: 'best_effort' or 'reliable'."),
    ('sensor_qos_depth', 5, 'QoS history depth of camera and joint-state subscriptions.'),
    ('dt', 0.02, 'Time between chunk steps (time_from_start = k * dt), s.'),
    ('gripper_finger_open', _CALIBRATION.finger_open,
     'left_finger position (m) when the gripper is fully open (normalised 1).'),
    ('gripper_finger_closed', _CALIBRATION.finger_closed,
     'left_finger position (m) when the gripper is fully closed (normalised 0).'),
    ('gripper_joint_open', _CALIBRATION.joint_open,
     'gripper joint angle (rad) commanded for fully open.'),
    ('gripper_joint_closed', _CALIBRATION.joint_closed,
     'gripper joint angle (rad) commanded for fully closed.'),
    ('status_rate_hz', 2.0, 'Rate of periodic PolicyStatus messages, Hz.'),
    ('autostart', True, 'Start inferring at once; false = wait for the start service.'),
    ('wait_for_fresh_observation', True,
     'true (default): drop observations that arrived during the last inference and wait for '
     'the next one (each chunk starts from an observation that waited for nothing: lowest '
     'observation-to-chunk latency); false: infer again at once on the newest, already '
     'waiting observation (more chunks per second when the model is slower than the cameras).'),
    ('warmup_runs', 1,
     'Predictions on a blank observation at start-up, so that the first real chunk is not '
     'late (lazy CUDA/allocator initialisation); 0 disables.'),
)


@dataclass(frozen=True)
class InferenceSettings:
    """Validated values of :data:`INFERENCE_PARAMETERS` (same names)."""

    checkpoint: str
    device: str
    dtype: str
    instruction: str
    max_instruction_length: int
    num_arms: int
    robot_names: tuple
    joint_states_topic: str
    camera_topics: tuple
    camera_names: tuple
    image_height: int
    image_width: int
    sync_queue_size: int
    sync_slop_s: float
    max_observation_age_s: float
    sensor_qos_reliability: str
    sensor_qos_depth: int
    dt: float
    gripper_finger_open: float
    gripper_finger_closed: float
    gripper_joint_open: float
    gripper_joint_closed: float
    status_rate_hz: float
    autostart: bool
    wait_for_fresh_observation: bool
    warmup_runs: int

    def __post_init__(self) -> None:
        for name in ('robot_names', 'camera_topics', 'camera_names'):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        if self.num_arms not in (1, 2):
            _fail('num_arms', self.num_arms, 'must be 1 or 2')
        if len(self.robot_names) != self.num_arms or len(set(self.robot_names)) != self.num_arms:
            _fail('robot_names', list(self.robot_names),
                  f'needs {self.num_arms} unique names (num_arms={self.num_arms})')
        if any(not name or '/' in name for name in self.robot_names):
            _fail('robot_names', list(self.robot_names), 'names must be non-empty, without /')
        if not self.camera_topics or len(self.camera_topics) != len(self.camera_names):
            _fail('camera_topics', list(self.camera_topics),
                  f'needs one topic per camera_names entry {list(self.camera_names)}')
        if len(set(self.camera_names)) != len(self.camera_names):
            _fail('camera_names', list(self.camera_names), 'names must be unique')
        if len(set(self.camera_topics)) != len(self.camera_topics):
            _fail('camera_topics', list(self.camera_topics), 'topics must be unique')
        for name in ('max_instruction_length', 'sync_queue_size', 'sensor_qos_depth'):
            if getattr(self, name) < 1:
                _fail(name, getattr(self, name), 'must be >= 1')
        if self.warmup_runs < 0:
            _fail('warmup_runs', self.warmup_runs, 'must be >= 0')
        for name in ('image_height', 'image_width'):
            if getattr(self, name) < 0:
                _fail(name, getattr(self, name), 'must be >= 0 (0 accepts any size)')
        for name in ('max_observation_age_s', 'dt', 'status_rate_hz'):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                _fail(name, getattr(self, name), 'must be a positive number')
        if not math.isfinite(self.sync_slop_s) or self.sync_slop_s < 0:
            _fail('sync_slop_s', self.sync_slop_s, 'must be >= 0')
        if self.sensor_qos_reliability not in SENSOR_QOS_RELIABILITIES:
            _fail('sensor_qos_reliability', self.sensor_qos_reliability,
                  f'must be one of {SENSOR_QOS_RELIABILITIES}')
        if not self.joint_states_topic or self.joint_states_topic.startswith('/'):
            _fail('joint_states_topic', self.joint_states_topic,
                  'must be a non-empty relative name')
        if len(self.instruction) > self.max_instruction_length:
            _fail('instruction', self.instruction[:40] + '...',
                  f'is longer than max_instruction_length={self.max_instruction_length}')
        try:
            GripperCalibration(*self.gripper_calibration)
        except ValueError as error:
            _fail('gripper_*', self.gripper_calibration, str(error))

    @property
    def gripper_calibration(self) -> tuple[float, float, float, float]:
        """(finger_open, finger_closed, joint_open, joint_closed) for GripperCalibration."""
        return (self.gripper_finger_open, self.gripper_finger_closed, self.gripper_joint_open,
                self.gripper_joint_closed)

    @property
    def expected_image_hw(self) -> tuple[int, int] | None:
        """(height, width) every image must have, or None when either is 0 (any size)."""
        if self.image_height == 0 or self.image_width == 0:
            return None
        return (self.image_height, self.image_width)


def _fail(name: str, value: Any, reason: str) -> None:
    raise ValueError(f'parameter {name}={value!r}: {reason}')


def settings_from_values(values: dict) -> InferenceSettings:
    """Defaults of INFERENCE_PARAMETERS updated with ``values``; unknown names raise ValueError."""
    defaults = {name: default for name, default, _ in INFERENCE_PARAMETERS}
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ValueError(f'unknown inference parameters {unknown}')
    return InferenceSettings(**{**defaults, **values})


def declare_settings(node) -> InferenceSettings:
    """Declare every inference parameter on ``node`` (with its description) and validate."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for name, default, description in INFERENCE_PARAMETERS:
        node.declare_parameter(name, default, ParameterDescriptor(description=description))
        values[name] = node.get_parameter(name).value
    return InferenceSettings(**values)

