"""Configuration of the kinematic simulated robot node: its parameter table and config."""

from dataclasses import dataclass

from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
    robot_rows,
)

SIM_ROBOT_PARAMETERS = ParameterTable((
    *robot_rows(arms='the simulated arms'),
    ParameterSpec('camera_names', (), "Cameras to publish (on the description's camera_topic); "
                  "empty = the description's cameras.", element_type=str),
    ParameterSpec('image_height', 480, 'Camera image height, pixels.', (16, 4096)),
    ParameterSpec('image_width', 640, 'Camera image width, pixels.', (16, 4096)),
    ParameterSpec('camera_rate_hz', 30.0, 'Camera frame rate, Hz.', (0.1, 1000.0)),
    ParameterSpec('joint_state_rate_hz', 100.0, 'joint_states rate (and simulation step), Hz.',
                  (1.0, 1000.0)),
    ParameterSpec('tracking_time_constant_s', 0.05,
                  'First-order lag of the joints behind the commands, s.', (0.001, 10.0)),
))


@dataclass(frozen=True)
@parameter_fields
class SimRobotConfig(NodeConfig):
    """Validated settings of the simulated robot (field names = ROS parameter names)."""

    PARAMETERS = SIM_ROBOT_PARAMETERS

    def __post_init__(self) -> None:
        self.coerce_fields()
        if any(not name or '/' in name for name in self.camera_names) or len(
                set(self.camera_names)) != len(self.camera_names):
            SIM_ROBOT_PARAMETERS['camera_names'].fail(
                list(self.camera_names), 'must be distinct names without /')
        self.load_robot()

    @property
    def cameras(self) -> tuple[str, ...]:
        """Cameras to publish: camera_names, or the description's when empty."""
        return self.camera_names or self.robot.cameras

    def camera_topics(self) -> tuple[str, ...]:
        """The image topic of every published camera (the description's topic template)."""
        return tuple(self.robot.camera_topic.format(camera=name) for name in self.cameras)
