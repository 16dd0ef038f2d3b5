"""The rosbags type store that every bag reader and writer of the suite uses.

ROS 2 kilted's message definitions (rosbags' built-in store) plus the Interbotix command
messages and the policy's ActionChunk the recorder writes, so a bag holding them decodes
wherever it is read.
"""

import functools

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

STRING = 'std_msgs/msg/String'
# The recorder's instruction topic: the bag's own record of the instruction (a bare .mcap
# keeps it when metadata.yaml is gone).
INSTRUCTION_TOPIC = '/instruction'
# The chunk executor's control source (std_msgs/String: 'policy', 'handover', 'operator',
# 'hold') as the recorder stores it; training picks the operator's corrections from it.
CONTROL_SOURCE_TOPIC = '/control_source'
# Two of its values that training reads (the executor's vocabulary is
# vla_adapter_ros/pipeline/status.py CONTROL_*, which training may not import; a test holds
# them equal).
CONTROL_POLICY = 'policy'
CONTROL_OPERATOR = 'operator'
ACTION_CHUNK = 'vla_adapter_msgs/msg/ActionChunk'
# vla_adapter_msgs/ActionChunk without its comments (a test holds it to the .msg file).
ACTION_CHUNK_DEFINITION = ('std_msgs/Header header\ntrajectory_msgs/JointTrajectory left\n'
                           'trajectory_msgs/JointTrajectory right\nstring instruction\n'
                           'float32 inference_ms\nuint64 sequence')
JOINT_GROUP_COMMAND = 'interbotix_xs_msgs/msg/JointGroupCommand'
JOINT_SINGLE_COMMAND = 'interbotix_xs_msgs/msg/JointSingleCommand'
# The Interbotix command definitions (interbotix_xs_msgs), absent from rosbags' stores.
INTERBOTIX_DEFINITIONS = {JOINT_GROUP_COMMAND: 'string name\nfloat32[] cmd',
                          JOINT_SINGLE_COMMAND: 'string name\nfloat32 cmd'}


@functools.cache
def bag_typestore():
    """The kilted type store with the Interbotix commands registered (built once, shared)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    for name, definition in {**INTERBOTIX_DEFINITIONS,
                             ACTION_CHUNK: ACTION_CHUNK_DEFINITION}.items():
        typestore.register(get_types_from_msg(definition, name))
    return typestore
