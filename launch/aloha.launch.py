"""Dual-arm ALOHA: a VLA policy driving both Interbotix follower arms.

    ros2 launch vla_adapter_ros aloha.launch.py checkpoint:=DIR instruction:="fold the towel"
    ros2 launch vla_adapter_ros aloha.launch.py checkpoint:=DIR use_sim:=true device:=cpu
    ros2 launch vla_adapter_ros aloha.launch.py checkpoint:=DIR robot:=aloha_v1
    ros2 launch vla_adapter_ros aloha.launch.py checkpoint:=DIR robot_description:=/path/my.yaml

The robot comes from its description (`robot`, default 'aloha', or `robot_description`). Every
argument is documented in `ros2 launch vla_adapter_ros aloha.launch.py --show-args`. The node
list and parameters come from vla_adapter_ros.bringup.launch_description.build_node_specs (tested);
this file only wraps vla_adapter_ros.bringup.launch_actions (every node is critical: one that
exits ends the launch with its reason).
"""

from vla_adapter_ros.bringup.launch_actions import launch_description


def generate_launch_description():
    return launch_description('dual')
