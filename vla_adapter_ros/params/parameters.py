"""One declarative pattern for the ROS parameters of every node (pure data; rclpy on use only).

Design notes: docs/ARCHITECTURE.md, "Module notes", vla_adapter_ros/params/parameters.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import inspect
import math
import textwrap
from typing import Any, ClassVar

from vla_adapter_core.robot_description import (
    RobotDescription,
    available_robots,
    load_robot_description,
)


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """One ROS parameter: default (its type is the parameter's type) and the rules for values.

    ``value_range``: inclusive (low, high) for numbers. ``choices``: allowed strings.
    ``dynamic``: may change at run time (``ros2 param set``); otherwise read-only.
    ``element_type``: element type of a list parameter whose default is empty.
    """

    name: str
    default: Any
    description: str
    value_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    dynamic: bool = False
    element_type: type | None = None

    def __post_init__(self) -> None:
        if isinstance(self.default, list):
            object.__setattr__(self, 'default', tuple(self.default))
        if self.value_range is not None and not self.value_range[0] <= self.value_range[1]:
            raise ValueError(f'{self.name}: value_range {self.value_range} is empty')
        if self.choices is not None and self.default not in self.choices:
            raise ValueError(f'{self.name}: default {self.default!r} not in {self.choices}')

    @property
    def is_list(self) -> bool:
        """Whether the parameter holds a list."""
        return isinstance(self.default, tuple)

    @property
    def annotation(self) -> Any:
        """The type of a config field holding this parameter (tuples for lists)."""
        return tuple[self.scalar_type, ...] if self.is_list else self.scalar_type

    @property
    def scalar_type(self) -> type:
        """Type of the value (of each element for lists)."""
        if not self.is_list:
            return type(self.default)
        if self.element_type is not None:
            return self.element_type
        if not self.default:
            raise ValueError(f'{self.name}: an empty list default needs element_type')
        return type(self.default[0])

    def coerce(self, value: Any) -> Any:
        """``value`` in this parameter's type, checked against range and choices."""
        if self.is_list:
            if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
                self.fail(value, 'must be a list')
            result = tuple(self._coerce_scalar(item) for item in value)
        else:
            result = self._coerce_scalar(value)
        return result

    def _coerce_scalar(self, value: Any) -> Any:
        kind = self.scalar_type
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.fail(value, f'must be of type {kind.__name__}')
        if self.value_range is not None:
            low, high = self.value_range
            if not (math.isfinite(value) and low <= value <= high):
                self.fail(value, f'must be within [{low}, {high}]')
        if self.choices is not None and value not in self.choices:
            self.fail(value, f'must be one of {list(self.choices)}')
        return value

    def fail(self, value: Any, reason: str) -> None:
        """Raise the ValueError every parameter problem uses."""
        raise ValueError(f'parameter {self.name}={value!r}: {reason}')

    def ros_default(self) -> Any:
        """The default as rclpy wants it (lists, not tuples)."""
        return list(self.default) if self.is_list else self.default


class ParameterTable:
    """The ordered parameters of one node."""

    def __init__(self, specs: Sequence[ParameterSpec]) -> None:
        """Index the specs by name (names must be unique)."""
        self.specs = tuple(specs)
        self._by_name = {spec.name: spec for spec in self.specs}
        if len(self._by_name) != len(self.specs):
            raise ValueError('parameter names must be unique')

    def __getitem__(self, name: str) -> ParameterSpec:
        """The spec called ``name``."""
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        """Whether ``name`` is declared."""
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in declaration order."""
        return tuple(self._by_name)

    @property
    def dynamic_names(self) -> tuple[str, ...]:
        """Names of the parameters that may change at run time."""
        return tuple(spec.name for spec in self.specs if spec.dynamic)

    def defaults(self) -> dict:
        """{name: default}."""
        return {spec.name: spec.default for spec in self.specs}

    def resolve(self, values: Mapping[str, Any]) -> dict:
        """Defaults updated with ``values``, each coerced; unknown names raise ValueError."""
        unknown = sorted(set(values) - set(self._by_name))
        if unknown:
            raise ValueError(f'unknown parameters {unknown}; known: {list(self.names)}')
        resolved = self.defaults()
        for name, value in values.items():
            resolved[name] = self._by_name[name].coerce(value)
        return resolved


def robot_rows(default: str = 'aloha', arms: str = 'the arms',
               note: str = '') -> tuple[ParameterSpec, ParameterSpec]:
    """The two rows every node on a robot has: ``robot_description`` and ``robot_names``.

    The built-in names listed in the description come from the description files on disk.
    """
    names = ', '.join(repr(name) for name in available_robots())
    return (
        ParameterSpec('robot_description', default,
                      f'Robot description: a built-in name ({names}) or the path of a '
                      f'description YAML.{note}'),
        ParameterSpec('robot_names', (), f'Driver namespaces of {arms}, in the description '
                      "order (left first); empty = the description's.", element_type=str),
    )


def parameter_fields(cls: type) -> type:
    """Class decorator, applied under ``@dataclass``: the fields are the rows of ``PARAMETERS``.

    The parameter table is the one home of each parameter (name, type, default, range,
    description); the config class adds validation and derived properties only. A class that
    annotates fields itself is refused (ValueError when the module loads): they would be a
    second home.
    """
    own = list(inspect.get_annotations(cls))
    if own:
        raise ValueError(f'{cls.__name__}: fields come from its PARAMETERS table; remove the '
                         f'annotations {own}')
    cls.__annotations__ = {spec.name: spec.annotation for spec in cls.PARAMETERS.specs}
    for spec in cls.PARAMETERS.specs:
        setattr(cls, spec.name, spec.default)
    return cls


class NodeConfig:
    """Base of a node's frozen config dataclass whose fields are the parameters of ``PARAMETERS``.

    Declare it as ``@dataclass(frozen=True)`` over ``@parameter_fields``: the fields, their
    types and defaults come from the table.

    A subclass's ``__post_init__`` calls :meth:`coerce_fields` first (every field typed and
    range-checked through its spec) and, for a node on a robot, :meth:`load_robot`
    (``robot_description`` with ``robot_names`` overriding the namespaces; ``robot`` then holds
    it). ``from_dict`` / ``to_dict`` convert from and to parameter values.
    """

    PARAMETERS: ClassVar[ParameterTable]

    def coerce_fields(self) -> None:
        """Every field in its parameter's type, checked against its range and choices."""
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name,
                               self.PARAMETERS[field.name].coerce(getattr(self, field.name)))

    def load_robot(self) -> RobotDescription:
        """Load ``robot_description`` (namespaces from ``robot_names`` when given) as ``robot``."""
        robot = load_robot_description(self.robot_description)
        if self.robot_names:
            robot = robot.with_namespaces(self.robot_names)
        object.__setattr__(self, '_robot', robot)
        return robot

    @property
    def robot(self) -> RobotDescription:
        """The robot description in use (namespaces overridden by robot_names)."""
        return self._robot

    def to_dict(self) -> dict:
        """Plain values (lists for tuples), as ROS parameters or YAML hold them."""
        return {field.name: (list(value) if isinstance(value, tuple) else value)
                for field in dataclasses.fields(self)
                for value in (getattr(self, field.name),)}

    @classmethod
    def from_dict(cls, values: dict):
        """Build from parameter values; unknown names and bad values raise ValueError."""
        return cls(**cls.PARAMETERS.resolve(values))


def _constraint(spec: ParameterSpec) -> str:
    if spec.value_range is not None:
        return f', {spec.value_range[0]:g}..{spec.value_range[1]:g}'
    if spec.choices is not None:
        return f', one of {list(spec.choices)}'
    return ''


def parameter_help(table: ParameterTable, executable: str, node_name: str, purpose: str) -> str:
    """The ``--help`` text of a node executable: its purpose and every parameter of ``table``."""
    lines = [f'usage: {executable} [-h] [--ros-args -p NAME:=VALUE ... | --params-file FILE]',
             '', purpose, '',
             f'parameters (node {node_name}; a YAML file holds them under '
             f'{node_name}: ros__parameters):']
    for spec in table.specs:
        kind = (f'list of {spec.scalar_type.__name__}' if spec.is_list
                else spec.scalar_type.__name__)
        changes = 'dynamic' if spec.dynamic else 'read-only'
        lines.append(f'  {spec.name} ({kind}, default {spec.ros_default()!r}'
                     f'{_constraint(spec)}; {changes})')
        lines += textwrap.wrap(spec.description, width=94, initial_indent=' ' * 6,
                               subsequent_indent=' ' * 6)
    return '\n'.join(lines) + '\n'


def _descriptor(spec: ParameterSpec):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    suffix = ' (dynamic: ros2 param set applies it)' if spec.dynamic else (
        ' (read-only: set at start-up)')
    descriptor = ParameterDescriptor(description=spec.description + suffix,
                                     read_only=not spec.dynamic, dynamic_typing=True)
    if spec.value_range is not None and not spec.is_list:
        low, high = spec.value_range
        if spec.scalar_type is int:
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high),
                                                     step=1)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(low), to_value=float(high), step=0.0)]
    if spec.choices is not None:
        descriptor.additional_constraints = f'one of {list(spec.choices)}'
    return descriptor


def declare_parameters(node, table: ParameterTable, build: Callable[[dict], Any],
                       apply: Callable[[Any, tuple[str, ...]], None] | None = None) -> Any:
    """Declare ``table`` on ``node``; return ``build(values)`` of the start-up values.

    ``build`` turns resolved values into the node's validated config (ValueError naming the
    parameter on a bad value). When any parameter is dynamic, a set-parameters callback builds
    the config with the new values and, when that succeeds, calls ``apply(config, changed)``;
    a ValueError refuses the change with its text as the reason.
    """
    values = {}
    for spec in table.specs:
        # dynamic_typing: the table coerces (an int for a float, any list for an empty default).
        parameter = node.declare_parameter(spec.name, spec.ros_default(), _descriptor(spec))
        values[spec.name] = parameter.value
    current = {'values': table.resolve(values)}
    config = build(current['values'])
    if not table.dynamic_names:
        return config

    def on_set(parameters) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        proposed = dict(current['values'])
        try:
            for parameter in parameters:
                if parameter.name not in table:
                    raise ValueError(f'unknown parameter {parameter.name!r}')
                proposed[parameter.name] = table[parameter.name].coerce(parameter.value)
            new_config = build(proposed)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        changed = tuple(name for name in table.names
                        if proposed[name] != current['values'][name])
        current['values'] = proposed
        if apply is not None and changed:
            apply(new_config, changed)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return config
