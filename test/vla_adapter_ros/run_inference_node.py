"""Child process: the inference node's console entry point, run exactly as `ros2 run` would.

The repository root goes first on sys.path so that vla_adapter_core is importable from the
source tree; the remaining command line (``--ros-args ...``) reaches rclpy unchanged.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from vla_adapter_ros.inference_node import main  # noqa: E402

if __name__ == '__main__':
    raise SystemExit(main())
