"""``conforms(obj, Proto)``: ``isinstance`` against a runtime-checkable protocol, cached by type.

``isinstance`` with a ``@runtime_checkable`` protocol looks up every member of the protocol
on the object each time (~30 us for the store's protocols): paid per test server where a
listener or a reader asks what its store can do. The store classes do not change their
members after they are made, so the answer is the same for every instance of a class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard, TypeVar

__all__ = ["conforms"]

T = TypeVar("T")

_known: dict[tuple[type, object], bool] = {}


def conforms(obj: object, proto: Callable[..., T]) -> TypeGuard[T]:
    """``isinstance(obj, proto)``, computed once per (class of ``obj``, ``proto``).

    ``proto`` is typed as a callable so that mypy takes a protocol class (it refuses an
    abstract class where ``type[T]`` is expected)."""
    key = (type(obj), proto)
    found = _known.get(key)
    if found is None:
        if not isinstance(proto, type):
            raise TypeError(f"conforms() needs a class, not {proto!r}")
        found = _known[key] = isinstance(obj, proto)
    return found
