"""Parameters of the MuJoCo ALOHA node (no mujoco, no rclpy: the launch validates them).

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/params/mujoco_sim_config.py.
"""

from dataclasses import dataclass

from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
    robot_rows,
)

MUJOCO_TASKS = ('transfer_cube', 'insertion')
CLOCK_MODES = ('realtime', 'sim')
TAKEOVER_RULES = ('none', 'divergence', 'schedule')  # sim/takeover_rule.py implements them

MUJOCO_SIM_PARAMETERS = ParameterTable((
    *robot_rows('aloha_sim', arms='the two arms',
                note=" Its gripper calibration must be the MuJoCo model's: 'aloha_sim'."),
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
    ParameterSpec('corrective_expert', False, "clock 'sim': the corrective expert plans from "
                  "the true state and its plan is published as the leader arms' joint_states "
                  "(the executor's takeover path, as on the robot)."),
    ParameterSpec('leader_joint_states_topic', 'joint_states',
                  "corrective_expert: each leader's joint_states topic, under its namespace "
                  "(the executor's joint_states_topic)."),
    ParameterSpec('takeover_service', '/chunk_executor/takeover',
                  "corrective_expert: the executor's std_srvs/SetBool takeover service the "
                  'takeover rule calls.'),
    ParameterSpec('takeover_rule', 'divergence', "corrective_expert: when the expert takes "
                  "over: 'divergence' (follower vs plan), 'schedule' (fixed steps) or 'none'.",
                  choices=TAKEOVER_RULES),
    ParameterSpec('takeover_threshold_rad', 0.3, "'divergence': largest arm-joint difference "
                  "between the followers and the expert's plan, rad.", (0.001, 10.0)),
    ParameterSpec('takeover_divergence_steps', 10, "'divergence': steps in a row above the "
                  'threshold before the expert takes over.', (1, 100000)),
    ParameterSpec('takeover_first_step', 25, 'No takeover before this step of an episode '
                  "('schedule': the first takeover).", (0, 100000)),
    ParameterSpec('takeover_every_steps', 0, "'schedule': steps between takeovers (0: once).",
                  (0, 100000)),
    ParameterSpec('operator_steps', 100, 'Steps the expert keeps control after a takeover '
                  'request before it hands back.', (1, 100000)),
    ParameterSpec('max_takeovers', 1, 'Operator segments per episode.', (1, 1000)),
    ParameterSpec('expert_replan_steps', 25, 'While the policy drives, the expert plans again '
                  'from the true state every this many steps (the divergence reference).',
                  (1, 100000)),
    ParameterSpec('autostart', True, 'Start the first episode (seed) at once; false = place '
                  'it (arms at the start pose) and wait for ~/start or ~/reset.'),
))


@dataclass(frozen=True)
@parameter_fields
class MujocoSimConfig(NodeConfig):
    """Validated settings of the MuJoCo ALOHA node (field names = ROS parameter names)."""

    PARAMETERS = MUJOCO_SIM_PARAMETERS

    def __post_init__(self) -> None:
        self.coerce_fields()
        self.load_robot()
        robot = self.robot
        if robot.num_arms != 2 or any(len(arm.joint_names) != 6 for arm in robot.arms):
            MUJOCO_SIM_PARAMETERS['robot_description'].fail(
                self.robot_description, 'the MuJoCo ALOHA needs a description of two 6-joint '
                "arms (e.g. 'aloha_sim')")
        if self.corrective_expert and self.clock != 'sim':
            MUJOCO_SIM_PARAMETERS['corrective_expert'].fail(
                self.corrective_expert, "needs clock 'sim' (the rule counts simulated steps)")
        if self.corrective_expert and self.task != 'transfer_cube':
            MUJOCO_SIM_PARAMETERS['corrective_expert'].fail(
                self.corrective_expert, 'the corrective expert knows transfer_cube only')
        if self.corrective_expert and len(robot.leaders) != 2:
            MUJOCO_SIM_PARAMETERS['corrective_expert'].fail(
                self.corrective_expert, 'the robot description needs two leader arms')
        if (self.takeover_rule == 'schedule'
                and 0 < self.takeover_every_steps <= self.operator_steps):
            MUJOCO_SIM_PARAMETERS['takeover_every_steps'].fail(
                self.takeover_every_steps, 'must exceed operator_steps (segments would overlap)')
