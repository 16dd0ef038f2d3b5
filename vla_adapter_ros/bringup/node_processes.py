"""Start the nodes of a launch description as plain processes (no `launch` package needed).

`ros2 launch` turns :class:`~vla_adapter_ros.bringup.launch_description.NodeSpec` entries into
`launch_ros` Node actions. Where launch is not installed (pip-installed ROS, CI) the demo and the
end-to-end tests start the very same specs with this module: one process per node, running the
installed console script with the command line `ros2 launch` would give it
(`launch_description.ros_command_line`).
"""

import os
import pathlib
import signal
import subprocess
import time

from vla_adapter_ros.bringup.launch_description import NodeSpec, ros_command_line


class NodeProcessGroup:
    """The processes of a list of NodeSpecs; stops them all (SIGINT, then SIGKILL) on exit."""

    def __init__(self, specs: list[NodeSpec], executable_dir: pathlib.Path,
                 log_dir: pathlib.Path | None = None) -> None:
        self.specs = list(specs)
        self.executable_dir = pathlib.Path(executable_dir)
        self.log_dir = pathlib.Path(log_dir) if log_dir else None
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs = []

    def command(self, spec: NodeSpec) -> list[str]:
        """The command line that runs ``spec`` (the installed console script)."""
        executable = self.executable_dir / spec.executable
        if not executable.exists():
            raise FileNotFoundError(
                f'executable {spec.executable!r} not found in {self.executable_dir} '
                '(run `make setup` to build the package)')
        return [str(executable), *ros_command_line(spec)]

    def start(self) -> None:
        """Start every node."""
        for spec in self.specs:
            output = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                output = open(self.log_dir / f'{spec.name}.log', 'w')  # noqa: SIM115
                self._logs.append(output)
            self.processes[spec.name] = subprocess.Popen(
                self.command(spec), stdout=output, stderr=subprocess.STDOUT,
                env=dict(os.environ), start_new_session=True)

    def exited(self) -> dict[str, int]:
        """Nodes that have exited already, with their exit codes."""
        return {name: process.returncode for name, process in self.processes.items()
                if process.poll() is not None}

    def stop(self, timeout_s: float = 10.0) -> dict[str, int]:
        """Interrupt every node (as Ctrl-C would), wait, kill stragglers; return exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        for log in self._logs:
            log.close()
        self._logs = []
        return {name: process.returncode for name, process in self.processes.items()}

    def __enter__(self) -> 'NodeProcessGroup':
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
