"""Child process: one of the package's executables, run as its console script would run it.

    run_node.py vla-adapter-inference --ros-args ...

The entry point comes from launch_description.ENTRY_POINTS (the setup.py console_scripts); the
repository root goes first on sys.path so that vla_adapter_core is importable from the source
tree; the rest of the command line reaches rclpy unchanged.
"""

import importlib
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from vla_adapter_ros.bringup.launch_description import ENTRY_POINTS  # noqa: E402

if __name__ == '__main__':
    executable = sys.argv.pop(1)
    module_name, function_name = ENTRY_POINTS[executable].split(':')
    entry_point = getattr(importlib.import_module(module_name), function_name)
    sys.argv[0] = executable
    raise SystemExit(entry_point())
