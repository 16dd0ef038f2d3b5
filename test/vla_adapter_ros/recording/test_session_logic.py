"""The recording session's state machine: every key in every state, and time passing."""

import pytest

from vla_adapter_ros.recording.session_logic import (
    KEYS,
    STATES,
    Effect,
    GripperTrigger,
    JoyButtons,
    SessionMachine,
    parse_button_map,
)


def machine_in(state: str) -> SessionMachine:
    """A session of 3 episodes (10 s, 5 s reset) with bag_0 kept, driven into ``state``."""
    machine = SessionMachine(target_episodes=3, episode_s=10.0, reset_s=5.0, auto_start=False)
    assert machine.press('start_stop', 0.0) == [Effect('preflight')]
    assert machine.preflight_done([], 0.5) == [Effect('start')]
    assert machine.episode_started('bag_0', 1.0) == []
    assert machine.press('start_stop', 2.0) == [Effect('stop')]  # review until 7
    if state == 'review':
        return machine
    if state == 'paused':
        machine.press('pause', 3.0)  # 4 s of countdown left
        return machine
    if state == 'done':
        machine.press('quit', 3.0)
        return machine
    assert machine.tick(7.0) == [] and machine.state == 'idle'
    if state in ('preflight', 'recording'):
        machine.press('start_stop', 8.0)
    if state == 'recording':
        machine.preflight_done([], 8.5)
        machine.episode_started('bag_1', 9.0)
    assert machine.state == state
    return machine


# (state, key) -> (state after, effects); every key of KEYS in every state of STATES.
PREFLIGHT, START, STOP, QUIT = (Effect('preflight'), Effect('start'), Effect('stop'),
                                Effect('quit'))
DISCARD_0, DISCARD_1 = Effect('discard', 'bag_0'), Effect('discard', 'bag_1')
YES, NO = Effect('mark', True), Effect('mark', False)
TABLE = {
    'idle': {'start_stop': ('preflight', [PREFLIGHT]), 'discard': ('idle', [DISCARD_0]),
             'rerecord': ('preflight', [DISCARD_0, PREFLIGHT]), 'success': ('idle', [YES]),
             'failure': ('idle', [NO]), 'pause': ('paused', []), 'quit': ('done', [QUIT]),
             'gripper': ('preflight', [PREFLIGHT])},
    'preflight': {'start_stop': ('preflight', []), 'discard': ('preflight', []),
                  'rerecord': ('preflight', []), 'success': ('preflight', []),
                  'failure': ('preflight', []), 'pause': ('preflight', []),
                  'quit': ('done', [QUIT]), 'gripper': ('preflight', [])},
    'recording': {'start_stop': ('review', [STOP]), 'discard': ('review', [STOP, DISCARD_1]),
                  'rerecord': ('preflight', [STOP, DISCARD_1, PREFLIGHT]),
                  'success': ('recording', [YES]), 'failure': ('recording', [NO]),
                  'pause': ('recording', []), 'quit': ('done', [STOP, QUIT]),
                  'gripper': ('recording', [])},
    'review': {'start_stop': ('preflight', [PREFLIGHT]), 'discard': ('review', [DISCARD_0]),
               'rerecord': ('preflight', [DISCARD_0, PREFLIGHT]), 'success': ('review', [YES]),
               'failure': ('review', [NO]), 'pause': ('paused', []), 'quit': ('done', [QUIT]),
               'gripper': ('review', [])},
    'paused': {'start_stop': ('paused', []), 'discard': ('paused', [DISCARD_0]),
               'rerecord': ('paused', []), 'success': ('paused', [YES]),
               'failure': ('paused', [NO]), 'pause': ('review', []), 'quit': ('done', [QUIT]),
               'gripper': ('paused', [])},
    'done': dict.fromkeys(KEYS, ('done', [])),
}


def test_the_table_covers_every_key_in_every_state():
    assert set(TABLE) == set(STATES)
    assert all(set(row) == set(KEYS) for row in TABLE.values())


@pytest.mark.parametrize('state, key', [(state, key) for state in STATES for key in KEYS])
def test_every_key_in_every_state(state, key):
    machine = machine_in(state)
    before = len(machine.episodes)
    expected_state, expected_effects = TABLE[state][key]
    assert machine.press(key, 9.5) == expected_effects
    assert machine.state == expected_state
    if key == 'quit' and state == 'recording':
        assert [e.path for e in machine.episodes] == ['bag_0', 'bag_1']  # kept, not lost
    elif any(effect.action == 'discard' for effect in expected_effects) and state != 'recording':
        assert len(machine.episodes) == before - 1
    if expected_effects == [] and state not in ('done',) and key not in ('pause', 'quit'):
        assert 'does nothing' in machine.message or 'no episode' in machine.message


def test_a_mark_while_recording_stays_with_that_episode():
    machine = machine_in('recording')
    machine.press('success', 9.5)
    machine.press('start_stop', 10.0)
    assert [(e.path, e.success) for e in machine.episodes] == [('bag_0', None), ('bag_1', True)]
    machine = machine_in('recording')
    machine.press('failure', 9.5)
    machine.press('rerecord', 10.0)  # discarded with its mark; the next one starts unmarked
    machine.preflight_done([], 11.0)
    machine.episode_started('bag_2', 11.0)
    machine.press('quit', 12.0)
    assert [(e.path, e.success) for e in machine.episodes] == [('bag_0', None), ('bag_2', None)]


def test_marks_land_on_the_kept_episode_and_not_after_a_discard():
    machine = machine_in('review')
    machine.press('failure', 3.0)
    assert machine.episodes[-1].success is False
    machine.press('discard', 3.5)
    assert machine.press('success', 4.0) == [] and 'no episode to mark' in machine.message


def test_the_episode_stops_at_its_length_and_the_countdown_starts_the_next():
    machine = SessionMachine(target_episodes=2, episode_s=10.0, reset_s=5.0, auto_start=True)
    machine.press('gripper', 0.0)
    machine.preflight_done([], 0.0)
    machine.episode_started('bag_0', 1.0)
    assert machine.tick(10.9) == [] and machine.elapsed_s(10.9) == pytest.approx(9.9)
    assert machine.tick(11.0) == [STOP] and machine.state == 'review'
    assert machine.countdown_s(13.0) == pytest.approx(3.0)
    assert machine.tick(15.9) == []
    assert machine.tick(16.0) == [PREFLIGHT] and machine.state == 'preflight'  # auto_start
    machine.preflight_done([], 16.0)
    machine.episode_started('bag_1', 16.5)
    machine.press('start_stop', 20.0)
    assert machine.tick(25.0) == [QUIT] and machine.state == 'done'  # the target reached
    assert machine.message == '2 episodes recorded'


def test_pause_freezes_the_countdown():
    machine = machine_in('paused')  # paused at 3.0 with 4 s left
    assert machine.tick(100.0) == [] and machine.countdown_s(100.0) == pytest.approx(4.0)
    machine.press('pause', 100.0)
    assert machine.state == 'review' and machine.tick(103.9) == []
    assert machine.tick(104.0) == [] and machine.state == 'idle'  # auto_start off


def test_a_failed_preflight_or_a_refusal_idles_with_the_reason():
    machine = SessionMachine(target_episodes=1, episode_s=1.0, reset_s=1.0)
    machine.press('start_stop', 0.0)
    assert machine.preflight_done(['/cam_high/image: silent: no message in 1.0 s'], 1.0) == []
    assert (machine.state, machine.message) == (
        'idle', 'pre-flight failed: /cam_high/image: silent: no message in 1.0 s')
    machine.press('start_stop', 2.0)
    machine.preflight_done([], 3.0)
    machine.episode_refused('no instruction')
    assert (machine.state, machine.message) == ('idle', 'recorder refused: no instruction')


def test_an_episode_that_starts_after_quit_is_stopped_and_discarded():
    machine = SessionMachine(target_episodes=1, episode_s=1.0, reset_s=1.0)
    machine.press('start_stop', 0.0)
    machine.preflight_done([], 0.0)
    machine.press('quit', 0.1)
    assert machine.episode_started('bag_x', 0.2) == [STOP, Effect('discard', 'bag_x')]


def test_an_unknown_key_names_itself():
    with pytest.raises(ValueError, match=r"key='jump': must be one of"):
        SessionMachine(target_episodes=1, episode_s=1.0, reset_s=1.0).press('jump', 0.0)


def test_joy_buttons_fire_on_the_press_only():
    joy = JoyButtons(parse_button_map(['start_stop=0', 'discard=2']))
    assert joy.update([1, 0]) == ['start_stop']
    assert joy.update([1, 0, 1]) == ['discard']  # held start_stop does not repeat
    assert joy.update([0, 1, 1]) == []  # button 1 is not mapped
    assert joy.update([1, 0, 0]) == ['start_stop']


@pytest.mark.parametrize('entries, match', [
    (['jump=0'], r"--joy_buttons 'jump=0': expected KEY=BUTTON"),
    (['start_stop=x'], r"--joy_buttons 'start_stop=x'"),
    (['gripper=1'], r"--joy_buttons 'gripper=1'"),
    (['quit=1', 'pause=1'], r"--joy_buttons 'pause=1': button 1 is already 'quit'"),
])
def test_bad_button_maps_name_the_entry(entries, match):
    with pytest.raises(ValueError, match=match):
        parse_button_map(entries)


def test_the_gripper_trigger_needs_an_open_gripper_before_each_close():
    trigger = GripperTrigger(closed_below=0.2, open_above=0.5)
    assert [trigger.update(value) for value in (0.1, 0.6, 0.3, 0.1, 0.05, 0.4, 0.9, 0.15)] == [
        False, False, False, True, False, False, False, True]
    with pytest.raises(ValueError, match='closed_below=0.6'):
        GripperTrigger(closed_below=0.6, open_above=0.5)
