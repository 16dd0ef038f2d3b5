"""`vla-adapter-record-session`: a whole recording session in one terminal, for one operator.

Drives a running episode recorder (``vla-adapter-record``, or ``record:=true`` of the launch)
through its services: ``<recorder>/start_episode``, ``stop_episode`` and ``set_success``. The
session's rules are recording/session_logic.py's state machine; before every episode the
pre-flight check (recording/preflight.py, collected by tools/preflight_probe.py) must pass.
Starts come from the keyboard, a ``sensor_msgs/Joy`` button (a foot pedal; ``joy_buttons``) or
a leader gripper closing (``leader_gripper_start``). A discarded episode's bag is deleted once
the recorder has closed it. The screen shows the episode number, elapsed time, the reset
countdown, per-topic rates, the recorder's queue and drops and the free disk where the
recorder writes (its ``output_dir`` parameter, asked from the recorder itself).
SIGINT (Ctrl-C) and SIGTERM end the session as ``q`` does: a running episode is stopped and
kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
from pathlib import Path
import queue
import shutil
import signal
import threading
import time

import yaml

from training.config_cli import build_config_parser, option, require_option, run_config_main
from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.recording.bag_format import EPISODE_METADATA_NAME
from vla_adapter_ros.recording.preflight import PreflightConfig
from vla_adapter_ros.recording.session_logic import (
    GripperTrigger,
    JoyButtons,
    SessionMachine,
    parse_button_map,
)
from vla_adapter_ros.tools.preflight_probe import PreflightProbe
from vla_adapter_ros.tools.session_screen import Terminal, screen_lines

PROG = 'vla-adapter-record-session'
SERVICE_TIMEOUT_S = 10.0
SCREEN_PERIOD_S = 0.2


@dataclass(frozen=True)
class RecordSessionConfig:
    """What `vla-adapter-record-session` runs (the fields are its command line)."""

    robot: str = option('aloha', path='file_or_name',
                        help="robot description (the recorder's): a built-in name or a YAML file")
    recorder: str = option('/episode_recorder', help="the recorder node's name (its services "
                                                     'live below it)')
    episodes: int = option(50, help='episodes to record in this session')
    episode_s: float = option(30.0, help='length of one episode (s)')
    # ALOHA's operators need 10-20 s to put the objects back and return the leaders.
    reset_s: float = option(15.0, help='reset phase between episodes: a countdown (s)')
    auto_start: bool = option(True, help='start the next episode when the countdown ends (else '
                                         'wait for start)')
    leader_gripper_start: bool = option(True, help='closing a leader gripper starts an episode '
                                                   '(while idle)')
    joy_topic: str = option('/joy', help='sensor_msgs/Joy topic of a foot pedal or gamepad')
    # A three-button USB foot pedal: left starts/stops, middle marks success, right re-records.
    joy_buttons: list[str] = option(factory=lambda: ['start_stop=0', 'success=1', 'rerecord=2'],
                                    help='KEY=BUTTON pairs mapping Joy buttons to session keys')
    preflight: PreflightConfig = field(default_factory=PreflightConfig)

    def __post_init__(self) -> None:
        require_option(self.episodes >= 1, 'episodes', self.episodes, 'must be >= 1')
        require_option(self.episode_s > 0, 'episode_s', self.episode_s, 'must be > 0')
        require_option(self.reset_s >= 0, 'reset_s', self.reset_s, 'must be >= 0')
        require_option(self.recorder.startswith('/'), 'recorder', self.recorder,
                       'must be an absolute node name')
        parse_button_map(self.joy_buttons)
        load_robot_description(self.robot)


class SessionShell:
    """The rclpy side: a node spun in a thread; events reach the main loop through a queue."""

    def __init__(self, config: RecordSessionConfig) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.config = config
        self.robot = load_robot_description(config.robot)
        self.events: queue.Queue = queue.Queue()
        self.recorder_status: dict[str, str] = {}
        from rclpy.signals import SignalHandlerOptions

        # The session ends on signals itself (as the quit key): rclpy must not end the context.
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('record_session')
        self._output_dir: Path | None = None
        self._next_ask = 0.0  # when to ask the recorder for its output_dir again
        self.probe = PreflightProbe(self.node, self.robot, config.preflight)
        self._clients = {name: self._client(name) for name in
                         ('start_episode', 'stop_episode', 'set_success', 'get_parameters')}
        self._subscribe()
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _client(self, name: str):
        from rcl_interfaces.srv import GetParameters
        from std_srvs.srv import SetBool, Trigger

        kind = {'set_success': SetBool, 'get_parameters': GetParameters}.get(name, Trigger)
        return self.node.create_client(kind, f'{self.config.recorder}/{name}')

    def _subscribe(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import JointState, Joy

        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self._joy = JoyButtons(parse_button_map(self.config.joy_buttons))
        self.node.create_subscription(Joy, self.config.joy_topic, self._on_joy, 10)
        if self.config.leader_gripper_start:
            for arm in self.robot.leaders:
                self.node.create_subscription(
                    JointState, f'/{arm.namespace}/joint_states',
                    functools.partial(self._on_leader, arm, GripperTrigger()),
                    qos_profile_sensor_data)

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except RuntimeError:  # the context ending while spin waits, at shutdown
            if self.executor.context.ok():
                raise

    def _on_joy(self, message) -> None:
        for key in self._joy.update(message.buttons):
            self.events.put(key)

    def _on_diagnostics(self, message) -> None:
        for status in message.status:
            if status.name.startswith(self.config.recorder.rsplit('/', 1)[-1] + ':'):
                self.recorder_status = {value.key: value.value for value in status.values}

    def _on_leader(self, arm, trigger: GripperTrigger, message) -> None:
        positions = dict(zip(message.name, message.position))
        angle = positions.get(arm.model.gripper_joint)
        if angle is not None and trigger.update(float(arm.gripper.normalize_joint(angle))):
            self.events.put('gripper')

    @staticmethod
    def _result(future, timeout_s: float):
        """The future's result once done (the executor thread completes it), else None."""
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        return future.result() if done.wait(timeout_s) else None

    def call(self, name: str, value: bool | None = None) -> tuple[bool, str]:
        """Call a recorder service; (success, message), (False, why) when it does not answer."""
        client = self._clients[name]
        if not client.wait_for_service(timeout_sec=2.0):
            return False, f'{client.srv_name} is not available (is the recorder running?)'
        request = client.srv_type.Request()
        if value is not None:
            request.data = value
        response = self._result(client.call_async(request), SERVICE_TIMEOUT_S)
        if response is None:
            return False, f'{client.srv_name} did not answer in {SERVICE_TIMEOUT_S:g} s'
        return response.success, response.message

    def recorder_output_dir(self) -> Path | None:
        """The recorder's ``output_dir`` parameter (asked every 5 s until it answers)."""
        if self._output_dir is None and time.monotonic() >= self._next_ask:
            self._next_ask = time.monotonic() + 5.0
            client = self._clients['get_parameters']
            if client.wait_for_service(timeout_sec=0.2):
                request = client.srv_type.Request(names=['output_dir'])
                response = self._result(client.call_async(request), 2.0)
                if response is not None and response.values and response.values[0].string_value:
                    self._output_dir = Path(response.values[0].string_value).expanduser()
        return self._output_dir

    def free_gb(self) -> float | None:
        """Free space where the recorder writes (its nearest existing folder)."""
        path = self.recorder_output_dir()
        if path is None:
            return None
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            return shutil.disk_usage(path).free / 1e9
        except OSError:
            return None

    def close(self) -> None:
        """Stop spinning and end rclpy."""
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()
        self._spinner.join(timeout=5.0)


def discard_bag(path: str, timeout_s: float = 10.0) -> str:
    """Delete a closed episode bag (waits for the recorder to close it); what happened."""
    bag = Path(path)
    sidecar = bag / EPISODE_METADATA_NAME
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if (yaml.safe_load(sidecar.read_text(encoding='utf-8')) or {}).get('complete'):
                break
        except (OSError, yaml.YAMLError):
            pass
        time.sleep(0.1)
    else:
        return f'kept {path}: the recorder did not close it within {timeout_s:g} s'
    shutil.rmtree(bag)
    return f'deleted {path}'


class Session:
    """The main loop: keys and ROS events into the state machine, its effects onto the recorder."""

    def __init__(self, config: RecordSessionConfig, shell: SessionShell,
                 terminal: Terminal) -> None:
        self.config, self.shell, self.terminal = config, shell, terminal
        self.machine = SessionMachine(config.episodes, config.episode_s, config.reset_s,
                                      config.auto_start)
        self.rates: dict[str, float] = {}
        self._window_ends = time.monotonic() + config.preflight.window_s
        self._preflight_pending = False

    def run(self) -> list:
        """Until quit or the target; the kept episodes."""
        self.shell.probe.begin()
        while self.machine.state != 'done':
            keys = self.terminal.keys(SCREEN_PERIOD_S)
            while not self.shell.events.empty():
                keys.append(self.shell.events.get_nowait())
            for key in keys:
                self.apply(self.machine.press(key, time.monotonic()))
            self.apply(self.machine.tick(time.monotonic()))
            self._window()
            self.draw()
        self.draw()
        return self.machine.episodes

    def _window(self) -> None:
        """Each pre-flight window: refresh the rates; answer a pending pre-flight."""
        now = time.monotonic()
        if now < self._window_ends:
            return
        self.rates = self.shell.probe.rates_hz()
        failures = [str(failure) for failure in self.shell.probe.failures()]
        if self._preflight_pending:
            self._preflight_pending = False
            self.apply(self.machine.preflight_done(failures, now))
        self.shell.probe.begin()
        self._window_ends = now + self.config.preflight.window_s

    def apply(self, effects: list) -> None:
        """Carry out the state machine's effects, in order."""
        for effect in effects:
            if effect.action == 'preflight':  # a fresh window decides
                self.shell.probe.begin()
                self._preflight_pending = True
                self._window_ends = time.monotonic() + self.config.preflight.window_s
            elif effect.action == 'start':
                ok, message = self.shell.call('start_episode')
                if ok:
                    self.apply(self.machine.episode_started(message, time.monotonic()))
                else:
                    self.machine.episode_refused(message)
            elif effect.action in ('stop', 'mark'):
                name = 'stop_episode' if effect.action == 'stop' else 'set_success'
                ok, message = self.shell.call(name, effect.value)
                if not ok:
                    self.machine.message = f'{name} failed: {message}'
            elif effect.action == 'discard':
                self.machine.message = discard_bag(effect.value)

    def draw(self) -> None:
        """Redraw the screen."""
        triggers = ', '.join(filter(None, [
            'a leader gripper closing' if self.config.leader_gripper_start and
            self.shell.robot.leaders else '', f'Joy buttons on {self.config.joy_topic}']))
        self.terminal.draw(screen_lines(self.machine, time.monotonic(), self.rates,
                                        self.shell.recorder_status, self.shell.free_gb(),
                                        triggers))


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _record(config: RecordSessionConfig) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)  # as Ctrl-C: quit, keeping a running episode
    shell = SessionShell(config)
    try:
        with Terminal() as terminal:
            session = Session(config, shell, terminal)
            try:
                session.run()
            except KeyboardInterrupt:
                for number in (signal.SIGINT, signal.SIGTERM):  # a second signal: no traceback
                    signal.signal(number, signal.SIG_IGN)
                session.apply(session.machine.press('quit', time.monotonic()))
    finally:
        shell.close()
    episodes = session.machine.episodes
    print(f'{PROG}: {len(episodes)} episodes kept')
    for episode in episodes:
        outcome = {True: 'success', False: 'failure', None: 'unmarked'}[episode.success]
        print(f'  {episode.path}  {outcome}')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point ``vla-adapter-record-session``."""
    parser = build_config_parser(RecordSessionConfig, PROG, __doc__.splitlines()[0])
    return run_config_main(parser, RecordSessionConfig, argv, _record)


if __name__ == '__main__':
    raise SystemExit(main())
