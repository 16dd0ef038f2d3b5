"""The rooms of vla_adapter_ros keep their import rules (every import counts, at any depth).

- pipeline/, params/, recording/, replay/, sim/, bringup/ and view/ never reach rclpy, directly or
  through another module of the package;
- no module outside nodes/ imports a node module;
- each room imports only the rooms below it (ROOM_IMPORTS);
- no two modules import each other, through any chain.
The checker is tested on a package made here with one violation of each kind.
"""

import pathlib
import textwrap

from import_graph import ImportGraph, room_of
import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / 'vla_adapter_ros'
RCLPY_FREE = ('pipeline', 'params', 'recording', 'replay', 'sim', 'bringup', 'view')
# What each room may import from the package (besides itself). '' = the package's __init__.
ROOM_IMPORTS = {
    '': set(),
    'pipeline': {''},
    'params': {'', 'pipeline'},
    'recording': {'', 'pipeline', 'params'},
    'sim': {'', 'pipeline', 'params'},
    'replay': {'', 'pipeline', 'params', 'recording', 'view'},
    'bringup': {'', 'pipeline', 'params'},
    'view': {'', 'pipeline'},
    'nodes': {'', 'pipeline', 'params', 'recording', 'sim', 'bringup', 'view'},
    'tools': {'', 'pipeline', 'params', 'recording', 'replay', 'sim', 'bringup', 'view'},
}


def violations(graph: ImportGraph) -> list[str]:
    """Every broken rule, one line each (empty when the package keeps them all)."""
    found = []
    for module in sorted(graph.internal):
        room = room_of(module)
        if room not in ROOM_IMPORTS:
            found.append(f'{module}: room {room!r} has no import rule')
            continue
        if room in RCLPY_FREE:
            chain = graph.reaches(module, 'rclpy')
            if chain:
                found.append(f'{module} reaches rclpy: {" -> ".join(chain)} -> rclpy')
        for target in sorted(graph.internal[module]):
            target_room = room_of(target)
            if target_room == 'nodes' and room != 'nodes':
                found.append(f'{module} imports the node module {target}')
            elif target_room != room and target_room not in ROOM_IMPORTS[room]:
                found.append(f'{module} ({room}) imports {target} ({target_room})')
    found.extend(f'import cycle: {" <-> ".join(group)}' for group in graph.cycles())
    return found


def test_the_package_keeps_its_rooms():
    graph = ImportGraph.of_package(PACKAGE)
    assert len(graph.internal) > 40  # the whole package was read
    assert violations(graph) == []


def test_every_room_is_a_package_with_its_rule_in_the_docstring():
    rooms = sorted(path.parent.name for path in PACKAGE.glob('*/__init__.py'))
    assert rooms == sorted(room for room in ROOM_IMPORTS if room)
    for room in RCLPY_FREE:
        assert 'never rclpy' in (PACKAGE / room / '__init__.py').read_text()


def _write(root: pathlib.Path, relative: str, text: str = '') -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture()
def broken_package(tmp_path):
    root = tmp_path / 'vla_adapter_ros'
    for room in ('', 'pipeline/', 'params/', 'nodes/', 'replay/', 'sim/'):
        _write(root, f'{room}__init__.py')
    # rclpy through a chain, hidden in a function: pipeline.a -> pipeline.b -> rclpy.
    _write(root, 'pipeline/a.py', 'def f():\n    from vla_adapter_ros.pipeline import b\n')
    _write(root, 'pipeline/b.py', 'def g():\n    import rclpy.node\n')
    # A room importing a node module, and an upward import (params -> replay).
    _write(root, 'replay/r.py', 'from vla_adapter_ros.nodes.n import X\n')
    _write(root, 'nodes/n.py', 'import rclpy\nX = 1\n')
    _write(root, 'params/p.py', 'from vla_adapter_ros.replay import r\n')
    # A cycle through function-level and relative imports.
    _write(root, 'sim/c1.py', 'def h():\n    from . import c2\n')
    _write(root, 'sim/c2.py', 'from vla_adapter_ros.sim.c1 import h\n')
    return ImportGraph.of_package(root)


def test_the_checker_finds_each_kind_of_violation(broken_package):
    found = violations(broken_package)
    assert ('vla_adapter_ros.pipeline.a reaches rclpy: vla_adapter_ros.pipeline.a -> '
            'vla_adapter_ros.pipeline.b -> rclpy') in found
    assert 'vla_adapter_ros.replay.r imports the node module vla_adapter_ros.nodes.n' in found
    assert ('vla_adapter_ros.params.p (params) imports vla_adapter_ros.replay.r (replay)'
            in found)
    assert 'import cycle: vla_adapter_ros.sim.c1 <-> vla_adapter_ros.sim.c2' in found
    # nodes may import rclpy; replay reaches it only through the node module it imports.
    assert not any(line.startswith('vla_adapter_ros.nodes.n') for line in found)
