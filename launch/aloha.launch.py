"""Dual-arm ALOHA: a VLA policy driving both Interbotix follower arms.

    ros2 launch vla_adapter_ros aloha.launch.py checkpoint:=DIR instruction:="fold the towel"
    ros2 launch vla_adapter_ros aloha.launch.py checkpoint:=DIR use_sim:=true device:=cpu
    ros2 launch vla_adapter_ros aloha.launch.py checkpoint:=DIR robot:=aloha_v1
    ros2 launch vla_adapter_ros aloha.launch.py checkpoint:=DIR robot_description:=/path/my.yaml

The robot comes from its description (`robot`, default 'aloha', or `robot_description`). Every
argument is documented in `ros2 launch vla_adapter_ros aloha.launch.py --show-args`. The node
list and parameters come from vla_adapter_ros.launch_description.build_node_specs (tested);
this file only turns them into launch actions.
"""

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from vla_adapter_ros.launch_description import PACKAGE, ROBOT_ARGUMENTS, build_node_specs

MODE = 'dual'


def _launch_nodes(context, *args, **kwargs):
    values = {argument.name: LaunchConfiguration(argument.name).perform(context)
              for argument in ROBOT_ARGUMENTS[MODE]}
    specs = build_node_specs(MODE, values, get_package_share_directory(PACKAGE))
    return [Node(package=spec.package, executable=spec.executable, name=spec.name,
                 parameters=spec.parameters, remappings=spec.remappings,
                 arguments=spec.arguments, output=spec.output)
            for spec in specs]


def generate_launch_description():
    declarations = []
    for argument in ROBOT_ARGUMENTS[MODE]:
        if argument.default is None:
            declarations.append(DeclareLaunchArgument(
                argument.name, description=argument.description))
        else:
            declarations.append(DeclareLaunchArgument(
                argument.name, default_value=argument.default,
                description=argument.description))
    return LaunchDescription([*declarations, OpaqueFunction(function=_launch_nodes)])
