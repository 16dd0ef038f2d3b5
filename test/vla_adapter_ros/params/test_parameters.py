"""The declarative parameter pattern: coercion, ranges, choices, and the torch-free executor."""

import dataclasses
import pathlib

from import_probe import run_in_fresh_interpreter
import pytest

from vla_adapter_ros.params.executor_config import ExecutorConfig
from vla_adapter_ros.params.inference_config import InferenceConfig
from vla_adapter_ros.params.parameters import (
    NodeConfig,
    ParameterSpec,
    ParameterTable,
    parameter_fields,
)
from vla_adapter_ros.params.player_config import PlayerConfig

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]

TABLE = ParameterTable((
    ParameterSpec('rate_hz', 50.0, 'rate', (1.0, 100.0)),
    ParameterSpec('mode', 'a', 'mode', choices=('a', 'b'), dynamic=True),
    ParameterSpec('names', (), 'names', element_type=str),
    ParameterSpec('count', 3, 'count', (0, 10)),
    ParameterSpec('enabled', True, 'flag'),
))


def test_resolve_fills_defaults_and_coerces_ints_for_floats():
    values = TABLE.resolve({'rate_hz': 20, 'names': ['x', 'y']})
    assert values == {'rate_hz': 20.0, 'mode': 'a', 'names': ('x', 'y'), 'count': 3,
                      'enabled': True}
    assert isinstance(values['rate_hz'], float)
    assert TABLE.dynamic_names == ('mode',) and 'mode' in TABLE and 'other' not in TABLE


@pytest.mark.parametrize('values, match', [
    ({'rate_hz': 0.5}, r'parameter rate_hz=0.5: must be within \[1.0, 100.0\]'),
    ({'rate_hz': float('nan')}, 'rate_hz'),
    ({'rate_hz': 'fast'}, "rate_hz='fast': must be of type float"),
    ({'mode': 'c'}, r"mode='c': must be one of \['a', 'b'\]"),
    ({'names': 'x'}, "names='x': must be a list"),
    ({'names': [1]}, 'names=1: must be of type str'),
    ({'count': 2.5}, 'count=2.5: must be of type int'),
    ({'count': True}, 'count=True: must be of type int'),
    ({'enabled': 1}, 'enabled=1: must be of type bool'),
    ({'unknown': 1}, r"unknown parameters \['unknown'\]"),
])
def test_bad_values_name_the_parameter(values, match):
    with pytest.raises(ValueError, match=match):
        TABLE.resolve(values)


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match='value_range'):
        ParameterSpec('x', 1.0, 'x', (2.0, 1.0))
    with pytest.raises(ValueError, match='not in'):
        ParameterSpec('x', 'c', 'x', choices=('a',))
    with pytest.raises(ValueError, match='unique'):
        ParameterTable((ParameterSpec('x', 1, 'x'), ParameterSpec('x', 2, 'x')))
    with pytest.raises(ValueError, match='element_type'):
        ParameterSpec('x', (), 'x').coerce(['a'])


def test_the_executor_node_imports_neither_torch_nor_transformers():
    probe = ('import sys; import vla_adapter_ros.nodes.executor_node; '
             'heavy = [m for m in ("torch", "transformers", "timm") if m in sys.modules]; '
             'assert not heavy, heavy; print("ok")')
    assert 'ok' in run_in_fresh_interpreter(probe, timeout_s=120.0)


def test_config_defaults_come_from_the_parameter_table():
    for config in (InferenceConfig, ExecutorConfig, PlayerConfig):
        defaults = {field.name: field.default for field in dataclasses.fields(config)}
        assert defaults == config.PARAMETERS.defaults()


def test_config_fields_are_the_table_rows_and_a_second_home_is_refused():
    table = ParameterTable((ParameterSpec('rate_hz', 50.0, 'Rate of something, Hz.'),
                            ParameterSpec('names', (), 'Names.', element_type=str)))

    @dataclasses.dataclass(frozen=True)
    @parameter_fields
    class Derived(NodeConfig):
        PARAMETERS = table

    fields = {field.name: (field.type, field.default) for field in dataclasses.fields(Derived)}
    assert fields == {'rate_hz': (float, 50.0), 'names': (tuple[str, ...], ())}
    assert Derived().to_dict() == {'rate_hz': 50.0, 'names': []}

    class Annotated(NodeConfig):
        PARAMETERS = table
        burst: int

    with pytest.raises(ValueError, match=r"Annotated: fields come from its PARAMETERS table; "
                                         r"remove the annotations \['burst'\]"):
        parameter_fields(Annotated)
