"""vla_adapter_core is pure PyTorch: importing it (every module) never imports rclpy."""

import pathlib

from import_probe import run_in_fresh_interpreter

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter where `import rclpy` raises ImportError, as on a machine without ROS.
PROBE = """
import importlib, pkgutil, sys
sys.modules['rclpy'] = None
import vla_adapter_core
names = [m.name for m in pkgutil.walk_packages(vla_adapter_core.__path__, 'vla_adapter_core.')]
for name in names:
    importlib.import_module(name)
leaked = sorted(name for name, module in sys.modules.items()
                if module is not None and name.split('.')[0] in ('rclpy', 'rosidl_runtime_py'))
assert not leaked, leaked
print('imported', len(names) + 1, 'modules without rclpy')
"""


def test_core_imports_without_rclpy():
    assert 'without rclpy' in run_in_fresh_interpreter(PROBE)


def test_no_core_source_mentions_rclpy():
    offenders = [str(path.relative_to(REPO_ROOT))
                 for path in (REPO_ROOT / 'vla_adapter_core').rglob('*.py')
                 if 'import rclpy' in path.read_text() or 'from rclpy' in path.read_text()]
    assert offenders == []
