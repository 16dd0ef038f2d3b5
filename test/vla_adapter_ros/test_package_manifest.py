"""package.xml names every ROS package and system Python library the nodes and launch files use.

A robot workspace installs dependencies with rosdep from package.xml: an import without an
exec_depend works here (pip wheels) and fails there (e.g. ament_index_python in the launch files).
"""

import ast
import pathlib
import xml.etree.ElementTree as ElementTree

REPO = pathlib.Path(__file__).resolve().parents[2]
ROS_PACKAGES = {'rclpy', 'launch', 'launch_ros', 'ament_index_python'}
ROSDEP_KEYS = {'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'PIL': 'python3-pil',
               'matplotlib': 'python3-matplotlib'}
OWN = {'vla_adapter_ros', 'vla_adapter_core', 'vla_adapter_msgs', 'training'}


def imported_top_level_names(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split('.')[0])
    return names


def is_ros_package(name: str) -> bool:
    return name in ROS_PACKAGES or name.endswith(('_msgs', '_srvs', '_interfaces'))


def test_every_used_ros_package_and_system_library_is_an_exec_depend():
    sources = [*(REPO / 'vla_adapter_ros').rglob('*.py'), *(REPO / 'launch').glob('*.py')]
    names = imported_top_level_names(sources)
    manifest = ElementTree.parse(REPO / 'package.xml').getroot()
    declared = {element.text for element in manifest.iter('exec_depend')}
    needed = {name for name in names if is_ros_package(name) and name not in OWN}
    needed |= {key for name, key in ROSDEP_KEYS.items() if name in names}
    needed.add('vla_adapter_msgs')
    assert {'ament_index_python', 'diagnostic_msgs', 'rclpy'} <= needed  # the check sees them
    assert sorted(needed - declared) == []
