"""The shared error reporting of the command-line tools: user errors one line, bugs traceback."""

import argparse
import json

import pytest
from safetensors import SafetensorError
import yaml

from vla_adapter_core.cli_errors import add_debug_flag, run_reporting_errors


@pytest.mark.parametrize('error', [
    ValueError('data.json: action.min[3] = nan: not finite'),
    FileNotFoundError(2, 'No such file or directory', 'data.json'),
    json.JSONDecodeError('Expecting value', 'x', 0),
    SafetensorError('Error while deserializing header'),
    yaml.YAMLError('mapping values are not allowed here'),
])
def test_user_errors_are_one_line_and_exit_code_2(capsys, error):
    def work():
        raise error

    assert run_reporting_errors('vla-adapter-x', work) == 2
    captured = capsys.readouterr()
    assert captured.err.count('\n') == 1 and captured.out == ''
    assert captured.err.startswith('vla-adapter-x: error: ') and str(error).split()[0] in (
        captured.err)
    assert run_reporting_errors('vla-adapter-x', work, debug=True) == 2
    assert capsys.readouterr().err.startswith('Traceback (most recent call last):')


def test_multi_line_messages_are_joined_and_statuses_pass_through(capsys):
    def work():
        raise ValueError('first line\n  second line')

    assert run_reporting_errors('tool', work) == 2
    assert capsys.readouterr().err == 'tool: error: first line second line\n'
    assert run_reporting_errors('tool', lambda: None) == 0
    assert run_reporting_errors('tool', lambda: 3) == 3


@pytest.mark.parametrize('bug', [KeyError('x'), TypeError('x'), RuntimeError('x'),
                                 IndexError('x')])
def test_bugs_keep_their_traceback(bug):
    def work():
        raise bug

    with pytest.raises(type(bug)):
        run_reporting_errors('tool', work)


def test_debug_flag():
    parser = argparse.ArgumentParser()
    add_debug_flag(parser)
    assert parser.parse_args([]).debug is False
    assert parser.parse_args(['--debug']).debug is True
