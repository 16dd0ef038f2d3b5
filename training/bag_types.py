"""The rosbags type store that every bag reader and writer of the suite uses.

ROS 2 kilted's message definitions (rosbags' built-in store) plus the Interbotix command
messages the recorder writes, so a bag holding them decodes wherever it is read.
"""

import functools

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

STRING = 'std_msgs/msg/String'
# The recorder's instruction topic: the bag's own record of the instruction (a bare .mcap
# keeps it when metadata.yaml is gone).
INSTRUCTION_TOPIC = '/instruction'
JOINT_GROUP_COMMAND = 'interbotix_xs_msgs/msg/JointGroupCommand'
JOINT_SINGLE_COMMAND = 'interbotix_xs_msgs/msg/JointSingleCommand'
# The Interbotix command definitions (interbotix_xs_msgs), absent from rosbags' stores.
INTERBOTIX_DEFINITIONS = {JOINT_GROUP_COMMAND: 'string name\nfloat32[] cmd',
                          JOINT_SINGLE_COMMAND: 'string name\nfloat32 cmd'}


@functools.cache
def bag_typestore():
    """The kilted type store with the Interbotix commands registered (built once, shared)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    for name, definition in INTERBOTIX_DEFINITIONS.items():
        typestore.register(get_types_from_msg(definition, name))
    return typestore
