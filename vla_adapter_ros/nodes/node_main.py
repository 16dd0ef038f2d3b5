"""The one `main()` body every node shares: init, build, spin single-threaded, shut down cleanly.

A node whose parameters fail validation (ValueError naming the parameter) is not started: the
reason is logged as fatal and the process exits with status 1. SIGINT/SIGTERM end the spin
quietly; further signals during the clean-up (Ctrl-C twice, or `ros2 launch` without a terminal,
which signals the nodes twice) are ignored, so the clean-up finishes and the exit status is 0.
The single-threaded executor is deliberate: rclpy's MultiThreadedExecutor stalled 50 Hz ticks
by tens of milliseconds on a loaded 2-core machine (benchmarks/executor_timing.py); long work
(inference) runs in the nodes' own threads instead.
"""

from collections.abc import Callable, Sequence
import ctypes
import ctypes.util
import signal
import sys

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

# glibc's mallopt parameter for the size above which malloc maps memory of its own.
M_MMAP_THRESHOLD = -3
# The longest the spin waits without looking at the context: a signal's wake-up of the executor
# can be lost (seen once in about five SIGINTs to the sim-clock simulator), and an idle node
# would then wait forever with its context already shut down.
SPIN_WAKE_S = 0.5
LARGE_BUFFER_BYTES = 1 << 20


def return_large_buffers_to_the_os() -> bool:
    """Make every allocation of 1 MiB or more its own mapping, unmapped when freed.

    glibc raises its mmap threshold to the size of the largest block freed so far (up to
    32 MiB): after one 16 MB message, later ones come from the heap, which keeps the memory
    (RSS) after they are freed. A fixed threshold hands large buffers back at once. False
    where the C library is not glibc (nothing changes there).
    """
    name = ctypes.util.find_library('c')
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES))


def shutdown_logger(node: Node):
    """A logger for the clean-up after spinning that never fails to publish.

    The node's logger while its context lives; after a signal has shut the context down, one
    outside rosout (the rosout publisher is gone with the context, logging there fails).
    """
    if node.context.ok():
        return node.get_logger()
    return rclpy.logging.get_logger(f'{node.get_name()}.shutdown')


def asks_for_help(argv: Sequence[str]) -> bool:
    """Whether ``-h`` / ``--help`` comes before any ROS arguments (argv[0] is the program)."""
    own = list(argv[1:])
    if '--ros-args' in own:
        own = own[:own.index('--ros-args')]
    return any(item in ('-h', '--help') for item in own)


def run_node(make_node: Callable[[], Node], node_name: str, args: list[str] | None = None,
             on_shutdown: Callable[[Node], None] | None = None, help_text: str = '') -> int:
    """Run ``make_node()`` until shutdown; return the process exit status.

    ``args`` None: the process's command line. ``-h`` / ``--help`` prints ``help_text`` and
    returns 0 without starting ROS.
    """
    if help_text and asks_for_help(sys.argv if args is None else args):
        print(help_text, end='')
        return 0
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
        while rclpy.ok():  # executor.spin(), with a bounded wait (SPIN_WAKE_S)
            executor.spin_once(timeout_sec=SPIN_WAKE_S)
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
