"""One way for every command-line tool to report a user error: one line, exit code 2.

    parser = argparse.ArgumentParser(prog='vla-adapter-xxx')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    return run_reporting_errors(parser.prog, lambda: work(args), debug=args.debug)

A user error is a problem with what the user gave: a file or directory that is missing or
unreadable, a malformed JSON / YAML / safetensors / HDF5 / rosbag file, an invalid value
(``ValueError``, which the configs, episodes, statistics and checkpoints raise naming the file
and the field). It is printed as ``vla-adapter-xxx: error: <message>`` on one line, and the tool
exits with code 2; ``--debug`` adds the traceback. Anything else (TypeError, KeyError,
RuntimeError, ...) is a bug and ends the program with its traceback as usual.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import sys
import traceback

from safetensors import SafetensorError
import yaml

USER_ERROR_EXIT = 2
# ValueError covers json.JSONDecodeError, UnicodeDecodeError and the EpisodeError of training;
# OSError covers FileNotFoundError, PermissionError and the I/O errors h5py raises.
USER_ERRORS = (ValueError, OSError, SafetensorError, yaml.YAMLError)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug``: show the traceback of a user error too."""
    parser.add_argument('--debug', action='store_true', default=False,
                        help='on an error in the data or a checkpoint, print the traceback '
                             'too (default: the one-line error only)')


def one_line(error: BaseException) -> str:
    """The error's message on one line (whitespace runs collapsed); its type when empty."""
    return ' '.join(str(error).split()) or type(error).__name__


def typed_one_line(error: BaseException) -> str:
    """``ValueError: message`` on one line: the type says what kind of failure it was."""
    return f'{type(error).__name__}: {one_line(error)}'


def run_reporting_errors(prog: str, work: Callable[[], int | None], debug: bool = False) -> int:
    """``work()``'s exit status; a user error is one line on stderr and exit status 2.

    With ``debug`` the traceback is printed before that line. Exceptions that are not user
    errors (see :data:`USER_ERRORS`) propagate unchanged.
    """
    try:
        status = work()
    except USER_ERRORS as error:
        if debug:
            traceback.print_exc(file=sys.stderr)
        print(f'{prog}: error: {one_line(error)}', file=sys.stderr)
        return USER_ERROR_EXIT
    return 0 if status is None else int(status)
