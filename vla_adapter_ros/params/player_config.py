"""Configuration of the bag player: its parameter table and `PlayerConfig`.

Also the rule that keeps commands off the graph: a topic that could command a robot is never
played, even when the bag holds it.
"""

from dataclasses import dataclass

from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
)

COMMAND_TYPES = ('interbotix_xs_msgs/msg/JointGroupCommand',
                 'interbotix_xs_msgs/msg/JointSingleCommand',
                 'interbotix_xs_msgs/msg/JointTrajectoryCommand',
                 'trajectory_msgs/msg/JointTrajectory', 'vla_adapter_msgs/msg/ActionChunk')
NEVER_PLAYED = ('/clock', '/rosout', '/parameter_events')

PLAYER_PARAMETERS = ParameterTable((
    ParameterSpec('bag', '', 'The rosbag2 bag to play: a directory with metadata.yaml, or a '
                  '.mcap / .db3 file.'),
    ParameterSpec('rate', 1.0, 'Playback speed: 1 = the recorded pace, 2 = twice as fast.',
                  (0.01, 100.0)),
    ParameterSpec('publish_clock', True, 'Publish /clock from the bag time; run the other '
                  'nodes with use_sim_time:=true.'),
    ParameterSpec('clock_rate_hz', 100.0, 'Rate of the /clock messages (Hz).', (1.0, 1000.0)),
    ParameterSpec('restamp', False, 'Move every header.stamp to the wall clock of its playback '
                  '(recorded spacing / rate); exclusive with publish_clock.'),
    ParameterSpec('start_delay_s', 1.0, 'Wait this long before the first message (discovery '
                  'of the subscribers); /clock holds the bag start meanwhile.', (0.0, 60.0)),
    ParameterSpec('topics', (), 'Topics to play; empty = every topic of the bag that is not a '
                  'command.', element_type=str),
    ParameterSpec('exit_when_done', True, 'End the node after the last message.'),
))


@dataclass(frozen=True)
@parameter_fields
class PlayerConfig(NodeConfig):
    """Settings of the bag player node (field names = ROS parameter names)."""

    PARAMETERS = PLAYER_PARAMETERS

    def __post_init__(self) -> None:
        self.coerce_fields()
        if not self.bag.strip():
            PLAYER_PARAMETERS['bag'].fail(self.bag, 'name the bag to play')
        if self.restamp and self.publish_clock:
            PLAYER_PARAMETERS['restamp'].fail(self.restamp, 'exclusive with publish_clock '
                                              '(set publish_clock:=false)')
        commands = [topic for topic in self.topics if is_command_topic(topic, '')]
        if commands:
            PLAYER_PARAMETERS['topics'].fail(list(self.topics),
                                             f'{commands} carry commands: never played')


def is_command_topic(topic: str, msgtype: str) -> bool:
    """Whether a topic would command a robot (never played)."""
    return msgtype in COMMAND_TYPES or '/commands/' in f'{topic}/' or topic.endswith(
        '/action_chunk') or topic in NEVER_PLAYED
