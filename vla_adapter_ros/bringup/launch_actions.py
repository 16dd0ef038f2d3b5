"""The launch actions of both launch files (imports launch / launch_ros; used by launch/ only).

Everything decided about the nodes lives in launch_description.py (plain, tested Python); this
module turns its NodeSpecs into launch_ros Node actions and makes every node critical: when any
node exits (a bad parameter, no CUDA device, a crash), the launch shuts down with a one-line
reason naming the node and its exit code, instead of leaving the others running and
`ros2 launch` waiting forever.
"""

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from vla_adapter_ros.bringup.launch_arguments import ROBOT_ARGUMENTS
from vla_adapter_ros.bringup.launch_description import PACKAGE, build_node_specs, exit_reason


def _shutdown_when_it_exits(node: Node, name: str) -> RegisterEventHandler:
    def on_exit(event, context):
        return [EmitEvent(event=Shutdown(reason=exit_reason(name, event.returncode)))]
    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))


def _launch_nodes(context, mode: str):
    values = {argument.name: LaunchConfiguration(argument.name).perform(context)
              for argument in ROBOT_ARGUMENTS[mode]}
    specs = build_node_specs(mode, values, get_package_share_directory(PACKAGE))
    actions = []
    for spec in specs:
        node = Node(package=spec.package, executable=spec.executable, name=spec.name,
                    parameters=spec.parameters, remappings=spec.remappings,
                    arguments=spec.arguments, output=spec.output, namespace=spec.namespace)
        actions += [node, _shutdown_when_it_exits(node, spec.name)]
    return actions


def launch_description(mode: str) -> LaunchDescription:
    """Every argument of ``mode`` declared with its description, then the nodes."""
    declarations = []
    for argument in ROBOT_ARGUMENTS[mode]:
        if argument.default is None:
            declarations.append(DeclareLaunchArgument(
                argument.name, description=argument.description))
        else:
            declarations.append(DeclareLaunchArgument(
                argument.name, default_value=argument.default,
                description=argument.description))
    return LaunchDescription([*declarations,
                              OpaqueFunction(function=_launch_nodes, args=[mode])])
