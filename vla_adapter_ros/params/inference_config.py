"""Configuration of the inference node: one parameter table, one validated dataclass.

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/params/inference_config.py.
"""

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
    robot_rows,
)

SENSOR_QOS_RELIABILITIES = ('best_effort', 'reliable')
DTYPES = ('auto', 'float32', 'bfloat16', 'float16')
MAX_IMAGE_SIDE = 16384

INFERENCE_PARAMETERS = ParameterTable((
    ParameterSpec('checkpoint', '', 'Policy checkpoint: a directory written by '
                  'VLAPolicy.save_pretrained or vla-adapter-train, an upstream VLA-Adapter run, '
                  "or a Hugging Face Hub repo id (e.g. 'VLA-Adapter/LIBERO-Spatial-Pro')."),
    ParameterSpec('device', 'cpu', "Torch device of the policy, e.g. 'cuda' or 'cpu'."),
    ParameterSpec('cpu_threads', 0, "torch CPU threads of the policy; 0 = torch's default (one "
                  'per core). On a CPU shared with a simulator or other nodes, 1 avoids the '
                  'stalls of threads waiting for busy cores.', (0, 256)),
    ParameterSpec('dtype', 'auto', "Policy dtype: 'auto' (bf16 where supported), 'float32', "
                  "'bfloat16' or 'float16'.", choices=DTYPES),
    ParameterSpec('compile', 'none', "torch.compile of the policy: 'none' (eager), 'default' "
                  "(inductor; CUDA graphs on CUDA) or 'max' (max-autotune); checked by "
                  'vla_adapter_core InferenceConfig when the policy loads. The warm-up runs '
                  'compile it before the first real chunk.'),
    ParameterSpec('instruction', '', 'Language instruction. Empty at start-up = wait for the '
                  'set_instruction service, the instruction topic or ros2 param set. Checked '
                  "against the loaded policy's prompt limit (token count).", dynamic=True),
    *robot_rows(),
    ParameterSpec('joint_states_topic', 'joint_states',
                  'Joint-state topic inside each robot namespace: /<robot_name>/<topic>.'),
    ParameterSpec('camera_topics', (), 'Image topic of each camera_names entry (sensor_msgs/'
                  'Image; CompressedImage when the topic ends in /compressed); empty = the '
                  "description's camera_topic pattern for each camera.", element_type=str),
    ParameterSpec('camera_names', (), "Camera names (as the checkpoint knows them); empty = the "
                  "description's cameras.", element_type=str),
    ParameterSpec('image_height', 480, 'Expected image height in pixels; 0 accepts any height.',
                  (0, MAX_IMAGE_SIDE)),
    ParameterSpec('image_width', 640, 'Expected image width in pixels; 0 accepts any width.',
                  (0, MAX_IMAGE_SIDE)),
    ParameterSpec('sync_queue_size', 200, 'Hard cap on the messages kept per input stream by '
                  'the approximate-time sync, which keeps max_observation_age_s + sync_slop_s of '
                  'each stream by stamp: at least the fastest rate times that (200: 100 Hz for '
                  '2 s).', (1, 10000)),
    ParameterSpec('sync_slop_s', 0.05,
                  'Largest stamp spread inside one synchronised observation (s).', (0.0, 10.0)),
    ParameterSpec('max_observation_age_s', 0.5, 'Observations (and streams) older than this '
                  'against the node clock are stale (s).', (0.001, 60.0)),
    ParameterSpec('max_future_stamp_s', 0.5, 'Messages stamped more than this (s) ahead of the '
                  "node clock are rejected as a fault (the sensors' clock is off), as the "
                  'chunk executor rejects such chunks.', (0.001, 60.0)),
    ParameterSpec('sensor_qos_reliability', 'best_effort', 'QoS reliability of the camera and '
                  "joint-state subscriptions: 'best_effort' or 'reliable'.",
                  choices=SENSOR_QOS_RELIABILITIES),
    ParameterSpec('sensor_qos_depth', 5,
                  'QoS history depth of the camera and joint-state subscriptions.', (1, 1000)),
    ParameterSpec('dt', 0.0, 'Time between chunk steps (time_from_start = k * dt, s); 0 = the '
                  "description's control period (1 / control_rate_hz).", (0.0, 10.0)),
    ParameterSpec('status_rate_hz', 2.0, 'Rate of the periodic PolicyStatus messages (Hz).',
                  (0.1, 100.0), dynamic=True),
    ParameterSpec('autostart', True, 'Start inferring at once; false = wait for the start '
                  'service.'),
    ParameterSpec('wait_for_fresh_observation', True,
                  'true: drop observations that arrived during the last inference and wait for '
                  'the next one (lowest observation-to-chunk latency); false: infer again at '
                  'once on the newest, already waiting observation (more chunks per second when '
                  'the model is slower than the cameras).', dynamic=True),
    ParameterSpec('warmup_runs', 1, 'Predictions on a blank observation at start-up, so that '
                  'the first real chunk is not late (lazy CUDA/allocator initialisation); at '
                  'least 3 when the policy is compiled on CUDA (compile, record and replay its '
                  'CUDA graph); 0 disables.', (0, 100)),
))


@dataclass(frozen=True)
@parameter_fields
class InferenceConfig(NodeConfig):
    """Settings of the inference node (field names = ROS parameter names)."""

    PARAMETERS = INFERENCE_PARAMETERS

    def __post_init__(self) -> None:
        self.coerce_fields()
        if not self.device:
            INFERENCE_PARAMETERS['device'].fail(self.device, 'must not be empty')
        if not self.joint_states_topic or self.joint_states_topic.startswith('/'):
            INFERENCE_PARAMETERS['joint_states_topic'].fail(
                self.joint_states_topic, 'must be a non-empty relative name')
        object.__setattr__(self, '_cameras', self._resolve_cameras(self.load_robot()))

    def _resolve_cameras(self, robot: RobotDescription) -> tuple[tuple[str, str], ...]:
        """(camera name, topic) pairs: the parameters, the description's where they are empty."""
        names = self.camera_names or robot.cameras
        if not names:
            INFERENCE_PARAMETERS['camera_names'].fail(
                list(self.camera_names), f'robot {robot.name!r} names no cameras: list them')
        topics = self.camera_topics or tuple(robot.camera_topic.format(camera=name)
                                             for name in names)
        if len(topics) != len(names):
            INFERENCE_PARAMETERS['camera_topics'].fail(
                list(self.camera_topics), f'needs one topic per camera {list(names)}')
        for parameter, values in (('camera_names', names), ('camera_topics', topics)):
            if any(not value for value in values) or len(set(values)) != len(values):
                INFERENCE_PARAMETERS[parameter].fail(list(values),
                                                     'entries must be non-empty and unique')
        return tuple(zip(names, topics))

    @property
    def cameras(self) -> tuple[tuple[str, str], ...]:
        """(camera name, image topic) of every camera the node may subscribe."""
        return self._cameras

    @property
    def resolved_camera_names(self) -> tuple[str, ...]:
        """The camera names in use (the description's when camera_names is empty)."""
        return tuple(name for name, _ in self._cameras)

    @property
    def step_s(self) -> float:
        """Time between chunk steps (s): dt, or the description's control period."""
        return self.dt if self.dt > 0 else 1.0 / self.robot.control_rate_hz

    @property
    def expected_image_hw(self) -> tuple[int, int] | None:
        """(height, width) every image must have, or None when either is 0 (any size)."""
        if self.image_height == 0 or self.image_width == 0:
            return None
        return (self.image_height, self.image_width)

    def with_checked_instruction(self, check: Callable[[str], str]) -> 'InferenceConfig':
        """These settings with ``instruction`` passed through ``check`` (the policy's rule).

        ``check`` returns the cleaned text or raises ValueError; the error is re-raised naming
        the parameter.
        """
        try:
            instruction = check(self.instruction)
        except ValueError as error:
            raise ValueError(f'parameter instruction: {error}') from error
        return dataclasses.replace(self, instruction=instruction)
