"""The recording session's terminal: keys in, one plain-ANSI screen out (no curses, no rclpy).

:class:`Terminal` puts a TTY into cbreak mode (keys arrive one at a time, without Enter) and
restores it on exit; without a TTY (a pipe) it reads the same characters. :func:`screen_lines`
draws the session's state from plain values, so it is tested without a terminal.
"""

from __future__ import annotations

import os
import select
import sys

from vla_adapter_ros.recording.session_logic import SessionMachine

# One character per session key; the help line is drawn from this table.
TERMINAL_KEYS = {' ': 'start_stop', 's': 'start_stop', 'd': 'discard', 'r': 'rerecord',
                 'y': 'success', 'n': 'failure', 'p': 'pause', 'q': 'quit'}
HELP = ('[space/s] start/stop  [y] success  [n] failure  [d] discard last  [r] re-record  '
        '[p] pause  [q] quit')
CLEAR = '\x1b[H\x1b[2J'


class Terminal:
    """Raw key input from stdin and whole-screen output on stdout."""

    def __init__(self, stdin=None, stdout=None) -> None:
        self.stdin, self.stdout = stdin or sys.stdin, stdout or sys.stdout
        self._saved = None

    def __enter__(self) -> Terminal:
        if self.stdin.isatty():
            import termios
            import tty

            self._saved = termios.tcgetattr(self.stdin.fileno())
            tty.setcbreak(self.stdin.fileno())
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stdin.fileno(), termios.TCSADRAIN, self._saved)
        self.stdout.write('\n')
        self.stdout.flush()

    def keys(self, timeout_s: float) -> list[str]:
        """The session keys typed within ``timeout_s`` (unknown characters skipped; EOF quits)."""
        ready, _, _ = select.select([self.stdin], [], [], timeout_s)
        if not ready:
            return []
        text = os.read(self.stdin.fileno(), 64).decode(errors='replace')
        if not text:  # end of input: nobody is left to press keys
            return ['quit']
        return [TERMINAL_KEYS[char] for char in text.lower() if char in TERMINAL_KEYS]

    def draw(self, lines: list[str]) -> None:
        """Replace the screen with ``lines``."""
        self.stdout.write(CLEAR + '\r\n'.join(lines) + '\r\n')
        self.stdout.flush()


def screen_lines(machine: SessionMachine, now: float, rates: dict[str, float],
                 recorder: dict[str, str], free_gb: float | None, triggers: str) -> list[str]:
    """The whole screen: session, episode, recorder counters, topic rates, help."""
    marks = ''.join({True: '+', False: '-', None: '?'}[e.success] for e in machine.episodes)
    lines = [f'vla-adapter-record-session   state: {machine.state.upper()}',
             f'episodes: {len(machine.episodes)} / {machine.target_episodes}   '
             f'outcomes: {marks or "-"}   (+ success, - failure, ? unmarked)']
    if machine.state == 'recording':
        lines.append(f'episode {machine.current}: {machine.elapsed_s(now):5.1f} s of '
                     f'{machine.episode_s:g} s')
    elif machine.state in ('review', 'paused') and machine.countdown_s(now) > 0:
        lines.append(f'reset: next episode in {machine.countdown_s(now):4.1f} s')
    else:
        lines.append('')
    lines.append(f'recorder: queue {recorder.get("queue_depth", "?")}, dropped '
                 f'{recorder.get("dropped_messages", "?")}, write errors '
                 f'{recorder.get("write_errors", "?")}   free disk: '
                 f'{"?" if free_gb is None else f"{free_gb:.1f} GB"}')
    lines.append('topics:')
    lines += [f'  {rate:6.1f} Hz  {topic}' for topic, rate in rates.items()]
    lines += [f'> {machine.message}', f'start also by: {triggers}' if triggers else '', HELP]
    return lines
