"""training reads robot facts from the core's robot descriptions: it never imports ROS code."""

import pathlib

from import_probe import run_in_fresh_interpreter

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# A fresh interpreter in which vla_adapter_ros and rclpy cannot be imported.
PROBE = """
import importlib, pkgutil, sys
sys.modules['rclpy'] = None
sys.modules['vla_adapter_ros'] = None
import training
names = [m.name for m in pkgutil.walk_packages(training.__path__, 'training.')]
for name in names:
    importlib.import_module(name)
print('imported', len(names) + 1, 'modules without vla_adapter_ros')
"""


def test_training_imports_without_the_ros_package():
    assert 'without vla_adapter_ros' in run_in_fresh_interpreter(PROBE)
