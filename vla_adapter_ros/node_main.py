"""The one `main()` body every node shares: init, build, spin single-threaded, shut down cleanly.

A node whose parameters fail validation (ValueError naming the parameter) is not started: the
reason is logged as fatal and the process exits with status 1. SIGINT/SIGTERM end the spin
quietly; further signals during the clean-up (Ctrl-C twice, or `ros2 launch` without a terminal,
which signals the nodes twice) are ignored, so the clean-up finishes and the exit status is 0.
The single-threaded executor is deliberate: rclpy's MultiThreadedExecutor stalled 50 Hz ticks
by tens of milliseconds on a loaded 2-core machine (benchmarks/executor_timing.py); long work
(inference) runs in the nodes' own threads instead.
"""

from collections.abc import Callable
import signal

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], node_name: str, args: list[str] | None = None,
             on_shutdown: Callable[[Node], None] | None = None) -> int:
    """Run ``make_node()`` until shutdown; return the process exit status."""
    # rclpy's own handlers (installed by init) end the spin on SIGINT / SIGTERM and then call the
    # handler that was there before: ignoring the signals at Python level first means no
    # KeyboardInterrupt can surface mid-clean-up when a second signal arrives.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    rclpy.init(args=args)
    executor = SingleThreadedExecutor()  # before the node: a signal during start-up ends quietly
    try:
        node = make_node()
    except (ValueError, ParameterException) as error:  # a bad parameter: one line, no traceback
        rclpy.logging.get_logger(node_name).fatal(f'cannot start: {error}')
        executor.shutdown()
        rclpy.try_shutdown()
        return 1
    except RuntimeError:
        if rclpy.ok():
            raise
        executor.shutdown()  # SIGINT / SIGTERM while the node was being built
        rclpy.try_shutdown()
        return 0
    try:
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # A signal that shuts the context down while spin waits surfaces as an RCLError.
        if rclpy.ok():
            raise
    finally:
        if on_shutdown is not None:
            on_shutdown(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
