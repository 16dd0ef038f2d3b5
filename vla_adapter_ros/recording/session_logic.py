"""The recording session's state machine: keys in, recorder actions out (pure, no rclpy).

One operator, alone at the robot, records a session of ``target_episodes`` episodes:

    idle --start--> preflight --passed--> recording --stop / episode_s--> review
      ^                 |failed                                             | countdown reset_s
      +-----------------+-------------------------------------------------- + (auto_start: to
                                                                              preflight again)

- ``idle``: waiting for start (a key, a pedal button, or closing a leader gripper:
  ``gripper`` is the start trigger, honoured in idle only, where no task is under way).
- ``preflight``: the sensors are checked (recording/preflight.py); an episode starts only when
  every check passed, otherwise back to idle with the failures as the message.
- ``recording``: an episode is being written; it stops on the start/stop key or after
  ``episode_s``.
- ``review``: the reset phase: a countdown of ``reset_s`` while the operator resets the scene
  and may mark the last episode a success or failure, discard it or re-record it. When it ends,
  the session is done (target reached), starts the next pre-flight (``auto_start``) or idles.
- ``paused``: from idle or review; the countdown and every trigger stand still until resumed.
- ``done``: quit or the target reached; nothing happens any more.

Keys (:data:`KEYS`): ``start_stop``, ``discard`` (the last kept episode; while recording, the
running one), ``rerecord`` (discard it and record again at once), ``success``, ``failure``,
``pause`` (toggles), ``quit`` (stops a running episode first, keeping it), ``gripper``.
Every call returns the :class:`Effect` list the shell carries out on the recorder; the shell
reports the results back (:meth:`SessionMachine.preflight_done`, ``episode_started``,
``episode_refused``). Times are float seconds of one monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATES = ('idle', 'preflight', 'recording', 'review', 'paused', 'done')
KEYS = ('start_stop', 'discard', 'rerecord', 'success', 'failure', 'pause', 'quit', 'gripper')


@dataclass(frozen=True)
class Effect:
    """One thing the shell must do: 'preflight', 'start', 'stop', 'mark', 'discard', 'quit'."""

    action: str
    value: object = None  # 'mark': the success flag; 'discard': the bag path


@dataclass
class Episode:
    """One recorded episode: its bag and, once marked, its outcome."""

    path: str
    success: bool | None = None


@dataclass
class SessionMachine:
    """The session's state; see the module docstring for the rules."""

    target_episodes: int
    episode_s: float
    reset_s: float
    auto_start: bool = True
    state: str = 'idle'
    episodes: list = field(default_factory=list)  # kept episodes, oldest first
    message: str = 'press start'
    current: str | None = None  # bag of the running episode
    started_at: float = 0.0
    review_ends: float = 0.0
    _paused_from: str = ''
    _paused_left: float = 0.0
    _last_kept: bool = False  # the recorder's last episode is episodes[-1] (it can be marked)
    _current_success: bool | None = None  # a mark given while recording

    # ------------------------------------------------------------------ queries
    def elapsed_s(self, now: float) -> float:
        """Seconds into the running episode (0 when none runs)."""
        return now - self.started_at if self.state == 'recording' else 0.0

    def countdown_s(self, now: float) -> float:
        """Seconds left of the reset phase (frozen while paused)."""
        if self.state == 'review':
            return max(0.0, self.review_ends - now)
        return self._paused_left if self.state == 'paused' else 0.0

    # ------------------------------------------------------------------ inputs
    def press(self, key: str, now: float) -> list[Effect]:
        """A key, pedal button or the gripper trigger; the effects to carry out."""
        if key not in KEYS:
            raise ValueError(f'key={key!r}: must be one of {KEYS}')
        if self.state == 'done':
            return []
        if key == 'quit':
            return self._quit()
        if key in ('success', 'failure'):
            return self._mark(key == 'success')
        handler = getattr(self, f'_{self.state}_{key}', None)
        if handler is None:
            self.message = f'{key} does nothing while {self.state}'
            return []
        return handler(now)

    def tick(self, now: float) -> list[Effect]:
        """Time passing: the episode length and the reset countdown."""
        if self.state == 'recording' and now - self.started_at >= self.episode_s:
            self.message = f'episode reached {self.episode_s:g} s'
            return self._stop(now)
        if self.state == 'review' and now >= self.review_ends:
            if len(self.episodes) >= self.target_episodes:
                self.state, self.message = 'done', f'{len(self.episodes)} episodes recorded'
                return [Effect('quit')]
            if self.auto_start:
                return self._begin_preflight()
            self.state, self.message = 'idle', 'press start'
        return []

    def preflight_done(self, failures: list[str], now: float) -> list[Effect]:
        """The pre-flight check's result: start the episode, or idle naming the failures."""
        if self.state != 'preflight':
            return []
        if failures:
            self.state, self.message = 'idle', 'pre-flight failed: ' + '; '.join(failures)
            return []
        self.message = 'pre-flight passed; starting'
        return [Effect('start')]

    def episode_started(self, path: str, now: float) -> list[Effect]:
        """The recorder started the episode writing ``path`` (stopped again if quit meanwhile)."""
        if self.state != 'preflight':
            return [Effect('stop'), Effect('discard', path)]
        self.state, self.current, self.started_at = 'recording', path, now
        self.message = f'recording {path}'
        return []

    def episode_refused(self, reason: str) -> None:
        """The recorder refused to start (its reason): back to idle."""
        if self.state == 'preflight':
            self.state, self.message = 'idle', f'recorder refused: {reason}'

    # ------------------------------------------------------------------ transitions
    def _begin_preflight(self) -> list[Effect]:
        self.state, self.message = 'preflight', 'checking the sensors'
        return [Effect('preflight')]

    def _keep_current(self) -> None:
        self.episodes.append(Episode(self.current, self._current_success))
        self.current, self._current_success, self._last_kept = None, None, True

    def _stop(self, now: float) -> list[Effect]:
        self._keep_current()
        self.state, self.review_ends = 'review', now + self.reset_s
        return [Effect('stop')]

    def _discard_last(self) -> list[Effect]:
        if not self.episodes:
            self.message = 'no episode to discard'
            return []
        episode = self.episodes.pop()
        self._last_kept = False
        self.message = f'discarded {episode.path}'
        return [Effect('discard', episode.path)]

    def _quit(self) -> list[Effect]:
        effects = [Effect('stop')] if self.state == 'recording' else []
        if self.state == 'recording':
            self._keep_current()
        self.state, self.message = 'done', f'quit with {len(self.episodes)} episodes'
        return [*effects, Effect('quit')]

    def _mark(self, success: bool) -> list[Effect]:
        # The recorder marks its running episode, else its last one: only that one is markable.
        if self.current is None and (self.state == 'preflight' or not self._last_kept):
            self.message = 'no episode to mark (the last one was discarded or none exists)'
            return []
        if self.current is None:
            self.episodes[-1].success = success
        else:
            self._current_success = success
        self.message = f'marked {"success" if success else "failure"}'
        return [Effect('mark', success)]

    def _idle_start_stop(self, now: float) -> list[Effect]:
        return self._begin_preflight()

    _idle_gripper = _idle_start_stop

    def _idle_discard(self, now: float) -> list[Effect]:
        return self._discard_last()

    def _idle_rerecord(self, now: float) -> list[Effect]:
        return [*self._discard_last(), *self._begin_preflight()]

    def _idle_pause(self, now: float) -> list[Effect]:
        self._paused_from, self._paused_left = 'idle', 0.0
        self.state, self.message = 'paused', 'paused: press pause to resume'
        return []

    def _recording_start_stop(self, now: float) -> list[Effect]:
        self.message = f'stopped after {now - self.started_at:.1f} s'
        return self._stop(now)

    def _recording_discard(self, now: float) -> list[Effect]:
        path, self.current, self._last_kept = self.current, None, False
        self._current_success = None
        self.state, self.review_ends = 'review', now + self.reset_s
        self.message = f'discarded {path}'
        return [Effect('stop'), Effect('discard', path)]

    def _recording_rerecord(self, now: float) -> list[Effect]:
        effects = self._recording_discard(now)
        return [*effects, *self._begin_preflight()]

    def _review_start_stop(self, now: float) -> list[Effect]:
        if len(self.episodes) >= self.target_episodes:
            self.state, self.message = 'done', f'{len(self.episodes)} episodes recorded'
            return [Effect('quit')]
        return self._begin_preflight()

    _review_discard = _idle_discard
    _review_rerecord = _idle_rerecord

    def _review_pause(self, now: float) -> list[Effect]:
        self._paused_from, self._paused_left = 'review', max(0.0, self.review_ends - now)
        self.state, self.message = 'paused', 'paused: press pause to resume'
        return []

    _paused_discard = _idle_discard

    def _paused_pause(self, now: float) -> list[Effect]:
        self.state, self.message = self._paused_from, f'resumed {self._paused_from}'
        self.review_ends = now + self._paused_left
        return []


def parse_button_map(entries: list[str]) -> dict[int, str]:
    """``['start_stop=0', 'discard=1']`` -> {button index: key}; ValueError names the entry."""
    mapping = {}
    for entry in entries:
        key, _, button = str(entry).partition('=')
        if key.strip() not in KEYS or key.strip() == 'gripper' or not button.strip().isdigit():
            raise ValueError(f'--joy_buttons {entry!r}: expected KEY=BUTTON with KEY one of '
                             f'{[k for k in KEYS if k != "gripper"]} and BUTTON an index >= 0')
        if int(button) in mapping:
            raise ValueError(f'--joy_buttons {entry!r}: button {int(button)} is already '
                             f'{mapping[int(button)]!r}')
        mapping[int(button)] = key.strip()
    return mapping


class JoyButtons:
    """sensor_msgs/Joy buttons -> the session keys of the buttons just pressed (0 -> 1)."""

    def __init__(self, mapping: dict[int, str]) -> None:
        self.mapping = dict(mapping)
        self._previous: list[int] = []

    def update(self, buttons) -> list[str]:
        """The keys whose button went down since the last message."""
        buttons = [int(value) for value in buttons]
        previous = self._previous + [0] * (len(buttons) - len(self._previous))
        self._previous = buttons
        return [key for index, key in sorted(self.mapping.items())
                if index < len(buttons) and buttons[index] and not previous[index]]


class GripperTrigger:
    """ACT's start trigger: a leader gripper closing (normalised 1 open .. 0 closed).

    Fires once when a reading drops below ``closed_below`` after having been above
    ``open_above`` (the hysteresis keeps a gripper hovering at the threshold from firing twice).
    """

    def __init__(self, closed_below: float = 0.2, open_above: float = 0.5) -> None:
        if not 0.0 <= closed_below < open_above <= 1.0:
            raise ValueError(f'gripper trigger closed_below={closed_below}, open_above='
                             f'{open_above}: need 0 <= closed_below < open_above <= 1')
        self.closed_below, self.open_above = closed_below, open_above
        self._armed = False

    def update(self, opening: float) -> bool:
        """One reading; True when it is the closing that fires the trigger."""
        if opening > self.open_above:
            self._armed = True
        elif opening < self.closed_below and self._armed:
            self._armed = False
            return True
        return False
