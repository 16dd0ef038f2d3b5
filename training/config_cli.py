"""Command lines derived from config dataclasses: each setting is written once, in its dataclass.

A field's flag, type, default, choices and help text come from the dataclass; :func:`option`
puts the help text (and choices, aliases) in the field's metadata. The fields of a nested config
dataclass (``TrainConfig.data``) join the same command line under their own names, in an argument
group named after the field. ``bool`` fields get ``--name`` / ``--no_name``.

``--config FILE`` (YAML or JSON, nested like ``to_dict()``, e.g. a run's saved
``train_config.json``) supplies values; flags given on the command line override the file; an
unknown key in the file is a one-line error (exit code 2), as is an invalid value. A relative
path in the file (a field declared with ``option(path=...)``) is relative to the file's own
folder, so the file works from any directory; on the command line it is relative to the current
directory, as usual.

Every such parser also has ``--debug`` (a flag of the tool, not a config field):
:func:`run_config_main` reports an error in the data or a checkpoint on one line with exit code
2, and ``--debug`` adds the traceback (``vla_adapter_core.cli_errors``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
import dataclasses
import difflib
import os
from pathlib import Path
import re
import types
import typing
from typing import Any

import yaml

from vla_adapter_core.cli_errors import add_debug_flag, one_line, run_reporting_errors

CONFIG_DEST = '_config_file'
NO_PREFIX = '--no_'
# option(path=...): 'file' is a local file or directory; 'file_or_name' may also be a name
# (a built-in robot, a Hugging Face Hub repo id), taken as a path only where that path exists;
# 'file_or_repo_id' is a path unless it has a repo id's shape (owner/name) and does not exist.
PATH_KINDS = ('file', 'file_or_name', 'file_or_repo_id')
REPO_ID = re.compile(r'^[A-Za-z0-9][\w.-]*/[\w.-]+$')  # a Hugging Face Hub repo id


def looks_like_repo_id(text: str, folder: Path | None = None) -> bool:
    """``owner/name`` that is not an existing path (relative to ``folder`` when given)."""
    return bool(REPO_ID.match(text)) and not (Path(folder or '.') / text).exists()


def require_option(condition: bool, name: str, value: Any, why: str) -> None:
    """ValueError ``--name value: why`` unless ``condition`` (a tool config's check)."""
    if not condition:
        raise ValueError(f'--{name} {value}: {why}')


def option(default: Any = dataclasses.MISSING, *, help: str,
           factory: Any = dataclasses.MISSING, choices: Sequence | None = None,
           flag: str | None = None, aliases: Sequence[str] = (),
           const_flags: dict[str, Any] | None = None, required: bool = False,
           metavar: str | None = None, path: str | None = None) -> Any:
    """A dataclass field with its command-line description.

    Args:
        default: the default value (or ``factory`` for a mutable one); neither: required.
        help: the help text of the flag (every flag has one).
        choices: the allowed values.
        flag: the flag name when it differs from the field name (without ``--``).
        aliases: further option strings of the same flag (e.g. an older spelling).
        const_flags: extra flags that set a constant, e.g. ``{'--use_dual_arm': 'dual_arm'}``;
            they and the flag exclude one another on a command line.
        required: the command line (or ``--config`` file) must give it, despite the default.
        metavar: the placeholder in the usage text.
        path: the value names a file or directory (see :data:`PATH_KINDS`): relative values in
            a ``--config`` file are resolved against the file's folder.
    """
    if path is not None and path not in PATH_KINDS:
        raise TypeError(f'option(path={path!r}): expected one of {PATH_KINDS}')
    metadata = {'help': help, 'choices': tuple(choices) if choices else None, 'flag': flag,
                'aliases': tuple(aliases), 'const_flags': dict(const_flags or {}),
                'required': required, 'metavar': metavar, 'path': path}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class FieldOption:
    """One leaf field of a (possibly nested) config dataclass, as a command-line option."""

    path: tuple[str, ...]  # from the root config, e.g. ('data', 'paths')
    field: dataclasses.Field
    value_type: type  # the element type for lists
    is_list: bool

    @property
    def dest(self) -> str:
        """The argparse destination: the dotted path."""
        return '.'.join(self.path)

    @property
    def flag(self) -> str:
        """The option string, e.g. ``--camera_names``."""
        return '--' + (self.field.metadata.get('flag') or self.field.name)

    @property
    def required(self) -> bool:
        """True when the command line or the file must give a value."""
        return bool(self.field.metadata.get('required')) or (
            self.field.default is dataclasses.MISSING
            and self.field.default_factory is dataclasses.MISSING)

    def default(self) -> Any:
        """The dataclass default (None for a required field)."""
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return None if self.field.default is dataclasses.MISSING else self.field.default


def nested_config_class(annotation: Any) -> type | None:
    """The dataclass of a nested config field's annotation, else None."""
    return annotation if dataclasses.is_dataclass(annotation) else None


def _leaf_type(annotation: Any) -> tuple[type, bool]:
    """(element type, is a list) of ``int``, ``str | None``, ``list[str]`` and the like."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f'unsupported config field type {annotation!r}')
        annotation = members[0]
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def field_options(cls: type, prefix: tuple[str, ...] = ()) -> Iterator[FieldOption]:
    """Every leaf field of ``cls`` (nested config dataclasses expanded), in definition order."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        nested = nested_config_class(hints[item.name])
        if nested is not None:
            yield from field_options(nested, prefix + (item.name,))
            continue
        if 'help' not in item.metadata:
            raise TypeError(f'{cls.__name__}.{item.name} has no help text: define it with '
                            'training.config_cli.option()')
        value_type, is_list = _leaf_type(hints[item.name])
        yield FieldOption(prefix + (item.name,), item, value_type, is_list)


class BooleanFlag(argparse.Action):
    """``--name`` sets True, ``--no_name`` sets False (upstream's underscore style)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string: str | None = None) -> None:
        """Store whether the positive spelling was given."""
        setattr(namespace, self.dest, not str(option_string).startswith(NO_PREFIX))


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ' '.join(map(str, value)) or '(none)'
    return str(value)


def _add_option(group, item: FieldOption) -> None:
    meta = item.field.metadata
    text = meta['help']
    if item.required:
        text += ' (required)'
    elif not (item.default() is None and 'None:' in text):  # the help says what None means
        text += f' (default: {_shown(item.default())})'
    text = text.replace('%', '%%')  # argparse %-formats help texts
    names = [item.flag, *meta['aliases']]
    if meta['const_flags']:
        group = group.add_mutually_exclusive_group()
    if item.value_type is bool and not item.is_list:
        negative = NO_PREFIX + item.flag[2:]
        group.add_argument(*names, negative, dest=item.dest, action=BooleanFlag,
                           default=argparse.SUPPRESS, help=f'{text}; {negative} turns it off')
    else:
        choices = meta['choices']
        metavar = meta['metavar'] or (None if choices else item.field.name.upper())
        group.add_argument(*names, dest=item.dest, type=item.value_type,
                           nargs='+' if item.is_list else None, choices=choices,
                           metavar=metavar, default=argparse.SUPPRESS, help=text)
    for flag, value in meta['const_flags'].items():
        group.add_argument(flag, dest=item.dest, action='store_const', const=value,
                           default=argparse.SUPPRESS, help=f'same as {item.flag} {value}')


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """``--config FILE`` plus one flag per leaf field of ``cls`` (groups: ``title``, nested)."""
    parser.add_argument('--config', dest=CONFIG_DEST, metavar='FILE', default=None,
                        help='YAML or JSON file of settings, nested like the train_config.json '
                             'saved with every run and checkpoint; flags override it')
    groups: dict[tuple[str, ...], Any] = {}
    seen: dict[str, str] = {}
    for item in field_options(cls):
        for name in (item.flag, *item.field.metadata['aliases'],
                     *item.field.metadata['const_flags']):
            if name in seen:
                raise TypeError(f'{cls.__name__}: flag {name} of {item.dest} is already used '
                                f'by {seen[name]}')
            seen[name] = item.dest
        parent = item.path[:-1]
        if parent not in groups:
            groups[parent] = parser.add_argument_group('.'.join(parent) or title)
        _add_option(groups[parent], item)


def build_config_parser(cls: type, prog: str, description: str,
                        title: str = 'options') -> argparse.ArgumentParser:
    """An argument parser for ``cls`` (see :func:`add_config_arguments`) with ``--debug``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_arguments(parser, cls, title)
    add_debug_flag(parser)
    return parser


class ConfigFileError(ValueError):
    """A ``--config`` file that cannot be used (the message is one line)."""


def _check_keys(cls: type, values: dict, prefix: str, source: str) -> dict:
    """``values`` checked against ``cls``'s fields (recursively); list fields accept a scalar."""
    hints = typing.get_type_hints(cls)
    known = {item.name: item for item in dataclasses.fields(cls)}
    checked = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ''
            raise ConfigFileError(f"{source}: unknown key '{prefix}{key}'{hint}")
        nested = nested_config_class(hints[key])
        if nested is not None:
            if not isinstance(value, dict):
                raise ConfigFileError(f'{source}: {prefix}{key!r} must be a mapping of '
                                      f'{nested.__name__} settings')
            value = _check_keys(nested, value, f'{prefix}{key}.', source)
        elif _leaf_type(hints[key])[1] and isinstance(value, (str, int, float)):
            value = [value]
        checked[key] = value
    return checked


def _resolved(value: Any, folder: Path, kind: str) -> Any:
    """``value`` (a string or a list of them) with relative paths made absolute in ``folder``."""
    if isinstance(value, list):
        return [_resolved(item, folder, kind) for item in value]
    if not isinstance(value, str) or not value or Path(value).is_absolute():
        return value
    candidate = folder / value
    if kind == 'file_or_name' and not candidate.exists():
        return value  # a name (robot, Hub repo id), or a path that is not there either way
    if kind == 'file_or_repo_id' and looks_like_repo_id(value, folder):
        return value
    return os.path.normpath(candidate)


def resolve_file_paths(cls: type, values: dict, folder: Path) -> dict:
    """Checked ``values`` of a config file with its path fields resolved against ``folder``."""
    hints = typing.get_type_hints(cls)
    fields = {item.name: item for item in dataclasses.fields(cls)}
    resolved = {}
    for key, value in values.items():
        nested = nested_config_class(hints[key])
        kind = fields[key].metadata.get('path')
        if nested is not None and isinstance(value, dict):
            value = resolve_file_paths(nested, value, folder)
        elif kind is not None:
            value = _resolved(value, folder, kind)
        resolved[key] = value
    return resolved


def read_config_file(path: str | Path, cls: type) -> dict:
    """The nested settings of a YAML / JSON file, keys checked against ``cls``.

    Relative values of path fields are resolved against the file's folder (absolute results).
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
    except OSError as error:
        raise ConfigFileError(f'--config {path}: cannot read it ({error.strerror})') from None
    except yaml.YAMLError as error:
        detail = one_line(error)
        raise ConfigFileError(f'--config {path}: not valid YAML/JSON ({detail})') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f'--config {path}: expected a mapping of settings, got '
                              f'{type(data).__name__}')
    checked = _check_keys(cls, data, '', f'--config {path}')
    return resolve_file_paths(cls, checked, Path(path).absolute().parent)


def _build(cls: type, values: dict) -> Any:
    """Instantiate ``cls`` (and its nested config dataclasses) from nested ``values``."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for item in dataclasses.fields(cls):
        nested = nested_config_class(hints[item.name])
        if nested is not None and (item.name in values or item.default_factory
                                   is dataclasses.MISSING):
            kwargs[item.name] = _build(nested, values.get(item.name, {}))
        elif item.name in values:
            kwargs[item.name] = values[item.name]
    return cls(**kwargs)


def _lookup(values: dict, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return False
        values = values[key]
    return True


def config_from_args(parser: argparse.ArgumentParser, cls: type,
                     args: argparse.Namespace) -> Any:
    """The ``cls`` instance of parsed arguments: defaults < ``--config`` file < flags.

    A problem (unknown file key, missing required setting, invalid value) ends the program
    through ``parser.error``: one line and exit code 2.
    """
    options = {item.dest: item for item in field_options(cls)}
    try:
        config_file = getattr(args, CONFIG_DEST, None)
        values = read_config_file(config_file, cls) if config_file else {}
    except ConfigFileError as error:
        parser.error(str(error))
    for dest, value in vars(args).items():
        if dest not in options:
            continue
        target = values
        for key in options[dest].path[:-1]:
            target = target.setdefault(key, {})
        target[options[dest].path[-1]] = value
    missing = [item.flag for item in options.values()
               if item.required and not _lookup(values, item.path)]
    if missing:
        parser.error(f'the following arguments are required: {", ".join(missing)}')
    try:
        return _build(cls, values)
    except (TypeError, ValueError) as error:  # one line, no usage text: the value is the problem
        parser.exit(2, f'{parser.prog}: error: {one_line(error)}\n')


def parse_config(parser: argparse.ArgumentParser, cls: type,
                 argv: Sequence[str] | None) -> Any:
    """Parse ``argv`` (None: the process's arguments, read by argparse) into a ``cls``."""
    return config_from_args(parser, cls, parser.parse_args(argv))


def run_config_main(parser: argparse.ArgumentParser, cls: type, argv: Sequence[str] | None,
                    work: Callable[[Any], int | None]) -> int:
    """A CLI's exit status: ``work(config)`` on the parsed ``cls``, user errors on one line.

    A user error (a missing or malformed file, an invalid value: see
    ``vla_adapter_core.cli_errors``) prints ``<prog>: error: <message>`` and returns 2;
    ``--debug`` prints the traceback first.
    """
    try:
        args = parser.parse_args(argv)
        config = config_from_args(parser, cls, args)
    except SystemExit as exit_:  # argparse's own exit (--help: 0, a usage error: 2)
        return int(exit_.code or 0)
    return run_reporting_errors(parser.prog, lambda: work(config),
                                debug=getattr(args, 'debug', False))
