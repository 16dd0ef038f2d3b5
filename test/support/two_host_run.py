"""One run of the split deployment over an emulated link: the test's and the benchmark's harness.

The robot side (``aloha.launch.py role:=robot use_sim:=true``: kinematic ALOHA, executor, image
compressor) runs in one network namespace, the policy side (``role:=policy``: the inference node
with a tiny policy on the CPU) in the other, both from build_node_specs, as ros2 launch would
start them, with the two-host Fast DDS profile (config/fastdds_two_hosts.xml) and the other
namespace's veth address as the static peer. A probe per side (two_host_probe.py) records what
crosses the link. Timeline: wait until the executor runs on the policy's chunks, settle, then
the optional outage (every packet dropped both ways) and the optional too-late chunk, then
observe the recovery. :func:`summarise` turns the records into the reported numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

from netns_link import LinkProfile, TwoHostLink
import numpy as np
import yaml

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.bringup.launch_arguments import load_parameter_file
from vla_adapter_ros.bringup.launch_description import build_node_specs, ros_command_line

SUPPORT_DIR = pathlib.Path(__file__).resolve().parent
REPO = SUPPORT_DIR.parents[1]
PROFILE_XML = REPO / 'config' / 'fastdds_two_hosts.xml'
ROBOT = 'aloha'
RUNNING_MARK = 'EXECUTOR RUNNING'
LINKED_MARK = 'POLICY PROBE LINKED'  # the policy-side probe has discovered the robot side


@dataclass(frozen=True)
class RunPlan:
    """What one run does; times in seconds."""

    profile: LinkProfile
    compress_images: bool = True
    jpeg_quality: int = 80
    image_hw: tuple[int, int] = (120, 160)
    camera_rate_hz: float = 15.0
    settle_s: float = 4.0  # running on the shaped link before the outage
    outage_s: float = 2.0  # 0 = no outage
    after_s: float = 6.0  # observed after the outage (recovery)
    late_chunk: bool = True  # publish one chunk 3 s old across the link after the recovery
    start_timeout_s: float = 150.0


def write_node_config(folder: pathlib.Path, plan: RunPlan) -> pathlib.Path:
    """The package's aloha.yaml with the run's image size, rates and a CPU policy."""
    sections = load_parameter_file(REPO / 'config' / 'aloha.yaml')
    height, width = plan.image_hw
    sections['simulated_robot'].update(image_height=height, image_width=width,
                                       camera_rate_hz=plan.camera_rate_hz)
    sections['vla_inference'].update(image_height=height, image_width=width, device='cpu',
                                     dtype='float32', cpu_threads=1)
    sections['chunk_executor'].update(realtime_priority=0)  # a shared test machine
    sections['image_compressor'].update(jpeg_quality=plan.jpeg_quality)
    path = folder / 'two_hosts.yaml'
    path.write_text(yaml.safe_dump({node: {'ros__parameters': values}
                                    for node, values in sections.items()}))
    return path


def side_specs(checkpoint: pathlib.Path, config: pathlib.Path, plan: RunPlan) -> dict:
    """The NodeSpecs of both roles, from the one launch description."""
    common = {'config_file': str(config), 'compress_images': str(plan.compress_images).lower(),
              'instruction': 'hand over the cube'}
    robot = build_node_specs('dual', {**common, 'role': 'robot', 'use_sim': 'true'}, REPO)
    policy = build_node_specs('dual', {**common, 'role': 'policy',
                                       'checkpoint': str(checkpoint), 'device': 'cpu',
                                       'dtype': 'float32'}, REPO)
    return {'robot': robot, 'policy': policy}


class SideProcesses:
    """The processes of one side, started inside its namespace; logs in ``folder``."""

    def __init__(self, link: TwoHostLink, side: str, folder: pathlib.Path) -> None:
        self.link, self.side, self.folder = link, side, folder
        self.env = {**os.environ, 'PYTHONUNBUFFERED': '1',
                    'FASTDDS_DEFAULT_PROFILES_FILE': str(PROFILE_XML),
                    'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                    'ROS_STATIC_PEERS': link.peer(side)}
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs = []

    def start(self, name: str, command: list[str], capture: bool = False) -> subprocess.Popen:
        log = open(self.folder / f'{self.side}_{name}.log', 'w')  # noqa: SIM115
        self._logs.append(log)
        process = subprocess.Popen(self.link.exec_command(self.side, command), env=self.env,
                                   stdout=subprocess.PIPE if capture else log,
                                   stderr=subprocess.STDOUT, text=True)
        self.processes[name] = process
        return process

    def start_node(self, spec) -> None:
        self.start(spec.name, [sys.executable, str(SUPPORT_DIR / 'run_node.py'),
                               spec.executable, *ros_command_line(spec)])

    def stop(self, timeout_s: float = 15.0) -> dict[str, int]:
        """SIGINT every process (as Ctrl-C), wait, kill stragglers; return the exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5.0)
        for log in self._logs:
            log.close()
        return {name: process.returncode for name, process in self.processes.items()}

    def logs(self) -> dict[str, str]:
        return {path.name: path.read_text() for path in self.folder.glob(f'{self.side}_*.log')}


def _watch(process: subprocess.Popen, log_path: pathlib.Path, mark: str,
           seen: threading.Event) -> None:
    """Copy the probe's output to its log; set ``seen`` on its mark."""
    with open(log_path, 'a') as log:
        for line in process.stdout:
            log.write(line)
            if mark in line:
                seen.set()


def _start_probe(sides: dict, side: str, folder: pathlib.Path, mark: str,
                 arguments: list[str]) -> threading.Event:
    """One side's probe (two_host_probe.py); the event set when it prints ``mark``."""
    process = sides[side].start('probe', [
        sys.executable, str(SUPPORT_DIR / 'two_host_probe.py'), side, '--seconds', '900',
        '--out', str(folder / f'{side}.json'), '--mark', mark, *arguments], capture=True)
    seen = threading.Event()
    threading.Thread(target=_watch, args=(process, folder / f'{side}_probe.log', mark, seen),
                     daemon=True).start()
    return seen


def run_two_hosts(folder: pathlib.Path, checkpoint: pathlib.Path, plan: RunPlan) -> dict:
    """One run; returns {'robot': record, 'policy': record, 'events': {...}, 'logs': {...}}."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = side_specs(checkpoint, write_node_config(folder, plan), plan)
    robot = load_robot_description(ROBOT)
    events: dict = {}
    with TwoHostLink(delay_line=plan.profile.needs_netem) as link:
        link.shape(plan.profile)
        sides = {side: SideProcesses(link, side, folder) for side in ('robot', 'policy')}
        trigger = folder / 'late_chunk_now'
        try:
            for side in ('robot', 'policy'):
                for spec in specs[side]:
                    sides[side].start_node(spec)
            running = _start_probe(sides, 'robot', folder, RUNNING_MARK, [])
            linked = _start_probe(sides, 'policy', folder, LINKED_MARK, [
                '--cameras', ','.join(robot.cameras), '--late_chunk_file', str(trigger),
                *([] if plan.compress_images else ['--raw_images'])])
            # Both: the executor runs on the policy's chunks, and the policy-side probe sees
            # the cameras and the executor (its discovery can trail the nodes' on a busy host).
            deadline = time.monotonic() + plan.start_timeout_s
            events['running'] = running.wait(plan.start_timeout_s)
            events['probe_linked'] = linked.wait(max(0.0, deadline - time.monotonic()))
            if events['running'] and events['probe_linked']:
                _timeline(link, plan, events, trigger)
        finally:
            # The policy first: the robot side then ends holding, with nothing left to fault on.
            exits = {side: sides[side].stop() for side in ('policy', 'robot')}
            logs = {**sides['robot'].logs(), **sides['policy'].logs()}
    records = {side: json.loads((folder / f'{side}.json').read_text())
               if (folder / f'{side}.json').exists() else {} for side in ('robot', 'policy')}
    return {**records, 'events': events, 'exits': exits, 'logs': logs, 'plan': plan}


def _timeline(link: TwoHostLink, plan: RunPlan, events: dict, trigger: pathlib.Path) -> None:
    events['settle_start'] = time.monotonic()
    time.sleep(plan.settle_s)
    if plan.outage_s > 0:
        link.outage(True)
        events['outage_start'] = time.monotonic()
        time.sleep(plan.outage_s)
        link.outage(False)
        events['outage_end'] = time.monotonic()
    time.sleep(plan.after_s / 2)
    if plan.late_chunk:
        trigger.write_text('now')
        events['late_chunk'] = time.monotonic()
    time.sleep(plan.after_s / 2)
    events['end'] = time.monotonic()


def percentiles_ms(values_s) -> tuple[float, float]:
    """(p50, p99) in ms of seconds; (nan, nan) when empty."""
    if len(values_s) == 0:
        return float('nan'), float('nan')
    values = np.asarray(values_s, dtype=np.float64) * 1e3
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


LATE_SEQUENCE = 999999  # the probe's too-late chunk (two_host_probe.py)


def _window(times, start: float, end: float) -> int:
    return sum(1 for t in times if start <= t < end)


def _limit_violations(commands: list, robot, max_steps: list) -> tuple[int, int]:
    """(commands outside the joint limits, steps larger than the speed limit allows)."""
    outside = jumps = 0
    previous: dict = {}
    for time_s, arm_index, kind, values in commands:
        arm = robot.arms[arm_index]
        lower, upper = arm.joint_angle_bounds()  # (dim,) rad: arm joints then gripper
        part = slice(0, arm.dim - 1) if kind == 'group' else slice(arm.dim - 1, arm.dim)
        values = np.asarray(values, dtype=np.float64)
        outside += int(np.any(values < lower[part] - 1e-9) or np.any(values > upper[part] + 1e-9))
        key = (arm_index, kind)
        if key in previous:
            last_s, last = previous[key]
            ticks = max(1.0, round((time_s - last_s) * 50.0))
            allowed = max_steps[arm_index][part] * ticks + 1e-6
            jumps += int(np.any(np.abs(values - last) > allowed))
        previous[key] = (time_s, values)
    return outside, jumps


def summarise(result: dict) -> dict:
    """The reported numbers of one run (see README "Policy on another computer")."""
    robot = load_robot_description(ROBOT)
    executor = load_parameter_file(REPO / 'config' / 'aloha.yaml')['chunk_executor']
    record, policy, events = result['robot'], result['policy'], result['events']
    start = events.get('settle_start', record.get('started', 0.0))
    end = events.get('end', record.get('ended', start))
    steady_end = events.get('outage_start', end)
    chunks = [c for c in record.get('chunks', []) if c[3] != LATE_SEQUENCE and c[0] >= start]
    # The age on arrival in steady running (before the outage); after it, the chunks that were
    # in flight arrive late once (counted apart).
    steady = [(now - stamp) * 1e-9 for t, now, stamp, _, _ in chunks if t < steady_end]
    age_p50, age_p99 = percentiles_ms(steady)
    late_after = sum(1 for t, now, stamp, _, duration in chunks
                     if t >= steady_end and (now - stamp) * 1e-9 > duration)
    image_rates = [_window(times, start, steady_end) / max(steady_end - start, 1e-9)
                   for times in policy.get('images', {}).values()]
    diagnostics = [values for t, values in record.get('diagnostics', []) if t >= start]
    tick_p50 = [float(v['tick_error_p50_ms']) for v in diagnostics if 'tick_error_p50_ms' in v]
    tick_p99 = [float(v['tick_error_p99_ms']) for v in diagnostics if 'tick_error_p99_ms' in v]
    statuses = [s for s in record.get('statuses', []) if s[0] >= start]
    faults, previous = [], None  # each hold or fault once, by its reason's first part
    for _, state, reason in statuses:
        holding = state in (PolicyStatus.STATE_FAULT, PolicyStatus.STATE_HOLDING)
        kind = re.sub(r'chunk \d+ rejected', 'chunk rejected', reason.split(':')[0]) if (
            holding and reason) else None
        if kind and kind != previous:
            faults.append(kind)
        previous = kind
    scale, rate = float(executor['speed_scale']), float(executor['rate_hz'])
    max_steps = [arm.max_joint_speed() * scale / rate for arm in robot.arms]
    outside, jumps = _limit_violations(
        [c for c in record.get('commands', []) if c[0] >= start], robot, max_steps)
    summary = {'chunk_age_p50_ms': age_p50, 'chunk_age_p99_ms': age_p99,
               'chunks': len(chunks), 'late_chunks_after_outage': late_after,
               'images_per_s': float(np.mean(image_rates)) if image_rates else 0.0,
               'tick_error_p50_ms': float(np.median(tick_p50)) if tick_p50 else float('nan'),
               'tick_error_p99_ms': max(tick_p99) if tick_p99 else float('nan'),
               'faults': faults, 'commands': len(record.get('commands', [])),
               'commands_out_of_limits': outside, 'jumps': jumps}
    summary.update(_outage_summary(record, events))
    late_stamp = policy.get('late_chunk_stamp_ns', 0)
    summary['late_chunk_outcomes'] = [outcome for _, stamp, outcome in record.get('filed', [])
                                      if late_stamp and stamp == late_stamp]
    return summary


def _outage_summary(record: dict, events: dict) -> dict:
    """Hold during the outage (its reason) and the time to RUNNING again after it."""
    if 'outage_start' not in events:
        return {}
    begin, end = events['outage_start'], events['outage_end']
    during = [reason for t, state, reason in record.get('statuses', []) if begin <= t <= end + 0.3]
    after = [t for t, state, _ in record.get('statuses', [])
             if t > end and state == PolicyStatus.STATE_RUNNING]
    accepted_after = [t for t, _, outcome in record.get('filed', []) if t > end and
                      outcome == 'accepted']
    return {'outage_reasons': sorted({reason.split(':')[0] for reason in during if reason}),
            'recovered_after_s': (after[0] - end) if after else float('nan'),
            'accepted_after_outage': len(accepted_after)}
