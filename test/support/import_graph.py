"""The import graph of a Python package, read from its source (every import, at any depth).

Used by the import-boundary test: which rooms import which, who reaches rclpy (directly or
through other modules of the package), and which modules import each other in a cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
import pathlib


@dataclass
class ImportGraph:
    """Modules of one package: their internal imports and the external top-level names."""

    package: str
    internal: dict[str, set[str]] = field(default_factory=dict)  # module -> modules it imports
    external: dict[str, set[str]] = field(default_factory=dict)  # module -> top-level names

    @classmethod
    def of_package(cls, root: pathlib.Path) -> ImportGraph:
        """Read every ``*.py`` below ``root`` (the package directory)."""
        graph = cls(root.name)
        modules = {_module_name(root, path): path for path in root.rglob('*.py')}
        for name, path in modules.items():
            graph.internal[name], graph.external[name] = set(), set()
            for imported in _imports(path, name, is_package=path.name == '__init__.py'):
                if imported.split('.')[0] != graph.package:
                    graph.external[name].add(imported.split('.')[0])
                    continue
                target = imported if imported in modules else imported.rsplit('.', 1)[0]
                if target in modules and target != name:
                    graph.internal[name].add(target)
        return graph

    def reaches(self, module: str, external_name: str) -> list[str] | None:
        """The chain of modules from ``module`` to one importing ``external_name``, or None."""
        paths, seen = [[module]], {module}
        while paths:
            path = paths.pop(0)
            if external_name in self.external[path[-1]]:
                return path
            for nxt in sorted(self.internal[path[-1]] - seen):
                seen.add(nxt)
                paths.append([*path, nxt])
        return None

    def cycles(self) -> list[list[str]]:
        """Every group of modules that import each other (strongly connected, 2 or more)."""
        index, low, stack, on_stack, groups = {}, {}, [], set(), []

        def visit(node: str) -> None:
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
            for nxt in self.internal[node]:
                if nxt not in index:
                    visit(nxt)
                    low[node] = min(low[node], low[nxt])
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

        for node in sorted(self.internal):
            if node not in index:
                visit(node)
        return groups


def room_of(module: str) -> str:
    """'vla_adapter_ros.pipeline.sync' -> 'pipeline'; the package's own modules -> ''."""
    parts = module.split('.')
    return parts[1] if len(parts) > 2 else ''


def _module_name(root: pathlib.Path, path: pathlib.Path) -> str:
    relative = path.relative_to(root.parent).with_suffix('')
    parts = list(relative.parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _imports(path: pathlib.Path, module: str, is_package: bool) -> set[str]:
    """Absolute names of everything ``path`` imports, function-level imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = module.split('.')
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = '.'.join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f'{base}.{alias.name}' for alias in node.names)
    return found
