"""The action-head registry: head kind (``ActionHeadConfig.kind``) -> head class.

Each head class registers itself with :func:`register_head`; :func:`head_class` is the one door
through which the config validation and ``build_action_head`` look a kind up, so an unknown kind
is an error everywhere, never a silently different head.
"""

from __future__ import annotations

from collections.abc import Callable

_HEADS: dict[str, type] = {}


def register_head(kind: str) -> Callable[[type], type]:
    """Class decorator: make ``kind`` build the decorated head class."""
    def register(cls: type) -> type:
        if kind in _HEADS and _HEADS[kind] is not cls:
            raise ValueError(f'action head kind {kind!r} is already registered to '
                             f'{_HEADS[kind].__name__}')
        _HEADS[kind] = cls
        return cls
    return register


def head_kinds() -> tuple[str, ...]:
    """The registered kinds, sorted."""
    return tuple(sorted(_HEADS))


def head_class(kind: str) -> type:
    """The head class of ``kind``; a ValueError naming the kind and the known ones otherwise."""
    try:
        return _HEADS[kind]
    except (KeyError, TypeError):
        raise ValueError(f'unknown action head kind {kind!r}; known kinds: '
                         f'{list(head_kinds())}') from None
