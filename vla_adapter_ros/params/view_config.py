"""Configuration of the live view node (`vla-adapter-view`): one parameter table, one config.

The view only listens: it subscribes with best-effort QoS (matching any publisher) and never
publishes, so it cannot change what the robot does. It writes a Rerun recording (``output``,
open it with ``rerun FILE``) or streams to a Rerun viewer already running on this machine
(``connect``); it opens no port of its own.
"""

from dataclasses import dataclass
from urllib.parse import urlparse

from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
    robot_rows,
)

LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '::1')

VIEW_PARAMETERS = ParameterTable((
    *robot_rows(arms='the follower arms'),
    ParameterSpec('output', 'vla_adapter_view.rrd', 'Rerun recording written (.rrd); '
                  "'' when streaming to a viewer (connect)."),
    ParameterSpec('connect', '', 'Stream to a Rerun viewer on this machine instead of a file, '
                  "e.g. 'rerun+http://127.0.0.1:9876/proxy' (start it with `rerun`); only "
                  'loopback addresses.'),
    ParameterSpec('chunk_topic', 'action_chunk', 'vla_adapter_msgs/ActionChunk of the policy.'),
    ParameterSpec('executor_status_topic', 'executor_status',
                  "The chunk executor's vla_adapter_msgs/PolicyStatus."),
    ParameterSpec('policy_status_topic', 'policy_status',
                  "The inference node's vla_adapter_msgs/PolicyStatus."),
    ParameterSpec('joint_states_topic', 'joint_states',
                  'sensor_msgs/JointState topic below each arm namespace.'),
    ParameterSpec('leaders', True, "Also show the description's leader arms."),
    ParameterSpec('commands', True, "Also show the executor's commands (commands/joint_group "
                  'and commands/joint_single; needs interbotix_xs_msgs).'),
    ParameterSpec('camera_every', 1, 'Log every n-th frame of each camera (a 640x480 frame is '
                  '0.9 MB in the recording).', (1, 1000)),
    ParameterSpec('plan_slots', 5, 'Predicted chunks kept visible side by side (chunk k is '
                  'drawn in slot k mod plan_slots).', (1, 100)),
))


@dataclass(frozen=True)
@parameter_fields
class ViewConfig(NodeConfig):
    """Settings of the live view node (field names = ROS parameter names)."""

    PARAMETERS = VIEW_PARAMETERS

    def __post_init__(self) -> None:
        self.coerce_fields()
        if bool(self.output.strip()) == bool(self.connect.strip()):
            VIEW_PARAMETERS['output'].fail(self.output, f'give either output or connect '
                                           f'(connect={self.connect!r})')
        if self.connect.strip():
            host = urlparse(self.connect).hostname
            if host not in LOOPBACK_HOSTS:
                VIEW_PARAMETERS['connect'].fail(self.connect, f'host {host!r} is not this '
                                                f'machine ({", ".join(LOOPBACK_HOSTS)})')
        for name in ('chunk_topic', 'executor_status_topic', 'policy_status_topic',
                     'joint_states_topic'):
            if not getattr(self, name).strip():
                VIEW_PARAMETERS[name].fail(getattr(self, name), 'must not be empty')
        self.load_robot()
