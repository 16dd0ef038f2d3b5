"""Soak: the whole pipeline on the simulated ALOHA for minutes; memory, faults and timing.

Starts the nodes `aloha.launch.py use_sim:=true` starts (simulated robot: 3 cameras 640x480 at
30 Hz, both arms; inference node with the demo's tiny policy; chunk executor) as processes, as
`make demo` does, and watches them for --duration_s seconds:
- RSS of every node process (/proc/<pid>/status VmRSS) once per --sample-s; growth between
  --from_s (default minute 2) and the end, in % and MB/min;
- faults: every PolicyStatus FAULT of either node (count and the distinct reasons);
- the executor's own tick error as it publishes it on /diagnostics (last p50 / p99 / missed
  ticks over its 10 s window, and the worst p99 seen), chunks/s and commands/s.

    source scripts/ros_env.sh
    python benchmarks/soak.py [--duration_s 600] [--from_s 120] [--series_csv rss.csv]

Growth is also given for the second half of the run: a plateau shows there as ~0 MB/min, a leak
as the same slope as over the whole run.
"""

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def rss_mb(pid: int) -> float:
    """Resident set size of a process, MB (0 when it is gone)."""
    try:
        for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class DiagnosticsWatch:
    """Keeps the executor's latest /diagnostics values and the worst tick-error p99."""

    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.values: dict[str, str] = {}
        self.worst_p99_ms = 0.0
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_array, 10)

    def _on_array(self, array) -> None:
        for status in array.status:
            if 'chunk executor' not in status.name:
                continue
            self.values = {item.key: item.value for item in status.values}
            if 'tick_error_p99_ms' in self.values:
                self.worst_p99_ms = max(self.worst_p99_ms,
                                        float(self.values['tick_error_p99_ms']))


def growth(samples: list[tuple[float, float]], from_s: float) -> tuple[float, float]:
    """(% growth, MB per minute) of RSS samples (t_s, mb) from from_s to the last sample."""
    kept = [(t, mb) for t, mb in samples if t >= from_s and mb > 0]
    if len(kept) < 2:
        return 0.0, 0.0
    first, last = kept[0][1], kept[-1][1]
    slope = np.polyfit([t for t, _ in kept], [mb for _, mb in kept], 1)[0] * 60.0
    return 100.0 * (last - first) / first, float(slope)


def soak(args: argparse.Namespace) -> int:
    """Run and print the report; 0 when there were no faults and memory stayed flat."""
    from ament_index_python.packages import get_package_prefix, get_package_share_directory
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.bringup.launch_description import PACKAGE, build_node_specs
    from vla_adapter_ros.bringup.node_processes import NodeProcessGroup
    from vla_adapter_ros.tools.showcase import PipelineMonitor, demo_policy

    robot = load_robot_description('aloha')
    work = pathlib.Path(tempfile.mkdtemp(prefix='vla_soak_'))
    demo_policy(robot).save_pretrained(work / 'policy')
    specs = build_node_specs('dual', {
        'checkpoint': str(work / 'policy'), 'device': 'cpu', 'use_sim': 'true',
        'instruction': 'transfer the red cube'}, get_package_share_directory(PACKAGE))
    executables = pathlib.Path(get_package_prefix(PACKAGE)) / 'lib' / PACKAGE
    group = NodeProcessGroup(specs, executables, work / 'logs')
    rclpy.init()
    monitor = PipelineMonitor(list(robot.namespaces))
    diagnostics = DiagnosticsWatch(monitor)
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    samples = {spec.name: [] for spec in specs}
    with group:
        start = time.monotonic()
        next_sample = start
        while time.monotonic() - start < args.duration_s and not group.exited():
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() >= next_sample:
                elapsed = time.monotonic() - start
                for name, process in group.processes.items():
                    samples[name].append((elapsed, rss_mb(process.pid)))
                next_sample += args.sample_s
        elapsed = time.monotonic() - start
        exited = group.exited()
        counts = (monitor.chunks, sum(monitor.commands.values()))
    executor.shutdown()
    monitor.destroy_node()
    rclpy.try_shutdown()
    print(f'soak: {elapsed:.0f} s, aloha sim 3 cameras 640x480 @ 30 Hz, tiny policy; logs in '
          f'{work / "logs"}')
    flat = True
    half = args.from_s + (elapsed - args.from_s) / 2.0
    for name, series in samples.items():
        percent, per_minute = growth(series, args.from_s)
        late_percent, late_per_minute = growth(series, half)
        flat &= percent < 1.0
        print(f'  {name}: RSS {series[-1][1]:.1f} MB; growth from {args.from_s:.0f} s: '
              f'{percent:+.2f} % ({per_minute:+.3f} MB/min); second half (from {half:.0f} s): '
              f'{late_percent:+.2f} % ({late_per_minute:+.3f} MB/min)')
    if args.series_csv:
        with open(args.series_csv, 'w', encoding='utf-8') as handle:
            handle.write('node,t_s,rss_mb\n')
            for name, series in samples.items():
                handle.writelines(f'{name},{t:.1f},{mb:.3f}\n' for t, mb in series)
    reasons = sorted(set(monitor.faults))
    print(f'  faults: {len(monitor.faults)}' + (f' {reasons[:5]}' if reasons else ''))
    values = diagnostics.values
    print(f'  executor tick error (its /diagnostics, last 10 s): p50 '
          f'{values.get("tick_error_p50_ms", "?")} ms, p99 {values.get("tick_error_p99_ms", "?")}'
          f' ms, missed ticks {values.get("missed_ticks", "?")}; worst p99 seen '
          f'{diagnostics.worst_p99_ms:.2f} ms')
    print(f'  chunks/s {counts[0] / elapsed:.1f}, commands/s {counts[1] / elapsed:.1f}'
          + (f'; nodes exited early: {exited}' if exited else ''))
    return 0 if flat and not monitor.faults and not exited else 1


def main() -> int:
    """Parse the options and soak."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration_s', '--duration-s', type=float, default=600.0)
    parser.add_argument('--from_s', '--from-s', type=float, default=120.0,
                        help='RSS growth is measured from this time on (after warm-up)')
    parser.add_argument('--sample_s', '--sample-s', type=float, default=10.0)
    parser.add_argument('--series_csv', '--series-csv', type=pathlib.Path, default=None,
                        help='also write every RSS sample (node, t_s, MB) to this CSV file')
    return soak(parser.parse_args())


if __name__ == '__main__':
    raise SystemExit(main())
