"""Parameters of the MuJoCo ALOHA node (no mujoco, no rclpy: the launch validates them).

Two clocks:
- ``clock: realtime``: the physics advances every 20 ms of wall time, cameras at
  ``camera_rate_hz``; the node is a drop-in for the real robot (use_sim_time false).
- ``clock: sim``: the node owns time. It publishes /clock and advances one 20 ms control step
  only when the chunk executor has commanded the previous one (``command_timeout_s`` bounds the
  wait) and, after each camera frame (every ``camera_every_steps`` steps), only once the
  executor reports (``chunk_filed_topic``) that it filed the chunk the inference node made from
  that frame (``chunk_timeout_s``). Every node runs with use_sim_time, so inference latency
  costs no simulated time and the same seed gives the same episode (``settle_s`` lets a step's
  sensors reach the other processes before its clock tick).
  ``~/reset`` places an episode, ``~/start`` runs it; it pauses after ``episode_steps`` (time goes
  on at the wall clock's pace while paused, the scene stands still).
"""

from dataclasses import dataclass

from vla_adapter_ros.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_defaults,
)

MUJOCO_TASKS = ('transfer_cube', 'insertion')
CLOCK_MODES = ('realtime', 'sim')

MUJOCO_SIM_PARAMETERS = ParameterTable((
    ParameterSpec('robot_description', 'aloha_sim',
                  'Robot description of the simulated ALOHA (its gripper calibration must be '
                  "the MuJoCo model's: the built-in 'aloha_sim').", ),
    ParameterSpec('robot_names', (), 'Driver namespaces of the two arms (left first); empty = '
                  "the description's.", element_type=str),
    ParameterSpec('task', 'transfer_cube', 'gym-aloha task.', choices=MUJOCO_TASKS),
    ParameterSpec('seed', 0, 'Object placement of the next ~/reset (gym-aloha sampler seed).',
                  (0, 2 ** 31 - 1), dynamic=True),
    ParameterSpec('clock', 'realtime', "'realtime' (50 Hz wall clock) or 'sim' (publish "
                  '/clock, lock-step with the executor and inference; for evaluation).',
                  choices=CLOCK_MODES),
    ParameterSpec('image_height', 96, 'Camera image height, pixels.', (16, 2048)),
    ParameterSpec('image_width', 128, 'Camera image width, pixels.', (16, 2048)),
    ParameterSpec('camera_rate_hz', 10.0, "Camera frame rate of clock 'realtime', Hz.",
                  (0.1, 50.0)),
    ParameterSpec('camera_every_steps', 5, "Camera frame every this many control steps with "
                  "clock 'sim' (5 = 10 Hz of simulated time).", (1, 1000)),
    ParameterSpec('episode_steps', 400, 'Control steps (20 ms) of one episode.', (1, 100000)),
    ParameterSpec('command_timeout_s', 2.0, "clock 'sim': longest wall-clock wait for the "
                  "executor's commands of a step, s (then the step runs on the last ones).",
                  (0.001, 60.0)),
    ParameterSpec('chunk_timeout_s', 10.0, "clock 'sim': longest wall-clock wait for the chunk "
                  'answering a camera frame, s; 0 = do not wait for chunks.', (0.0, 600.0)),
    ParameterSpec('settle_s', 0.005, "clock 'sim': wall-clock pause between publishing a "
                  "step's sensors and its /clock, s (delivery before the executor's tick).",
                  (0.0, 1.0)),
    ParameterSpec('chunk_filed_topic', '/chunk_executor/chunk_filed',
                  "clock 'sim': the executor's report that it filed a chunk (std_msgs/Header, "
                  'stamp = the observation time).'),
    ParameterSpec('autostart', True, 'Start the first episode (seed) at once; false = wait '
                  'for ~/reset.'),
))


@dataclass(frozen=True)
@parameter_defaults
class MujocoSimConfig(NodeConfig):
    """Validated settings of the MuJoCo ALOHA node (field names = ROS parameter names)."""

    PARAMETERS = MUJOCO_SIM_PARAMETERS

    robot_description: str
    robot_names: tuple[str, ...]
    task: str
    seed: int
    clock: str
    image_height: int
    image_width: int
    camera_rate_hz: float
    camera_every_steps: int
    episode_steps: int
    command_timeout_s: float
    chunk_timeout_s: float
    settle_s: float
    chunk_filed_topic: str
    autostart: bool

    def __post_init__(self) -> None:
        self.coerce_fields()
        self.load_robot()
        robot = self.robot
        if robot.num_arms != 2 or any(len(arm.joint_names) != 6 for arm in robot.arms):
            MUJOCO_SIM_PARAMETERS['robot_description'].fail(
                self.robot_description, 'the MuJoCo ALOHA needs a description of two 6-joint '
                "arms (e.g. 'aloha_sim')")
