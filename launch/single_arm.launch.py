"""One Interbotix arm (default a ViperX 300 S) driven by a single-arm VLA policy.

    ros2 launch vla_adapter_ros single_arm.launch.py checkpoint:=DIR instruction:="pick up"
    ros2 launch vla_adapter_ros single_arm.launch.py checkpoint:=DIR robot:=wx250s
    ros2 launch vla_adapter_ros single_arm.launch.py checkpoint:=DIR use_sim:=true device:=cpu
    ros2 launch vla_adapter_ros single_arm.launch.py checkpoint:=DIR robot_description:=my.yaml

The robot comes from its description (`robot`, default 'vx300s', or `robot_description`). Every
argument is documented in `ros2 launch vla_adapter_ros single_arm.launch.py -s`. The node list
and parameters come from vla_adapter_ros.bringup.launch_description.build_node_specs (tested); this
file only wraps vla_adapter_ros.bringup.launch_actions (every node is critical: one that exits ends
the launch
with its reason).
"""

from vla_adapter_ros.bringup.launch_actions import launch_description


def generate_launch_description():
    return launch_description('single')
