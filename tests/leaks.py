"""Walk everything reachable from an exception and find where a secret shows.

An exception can carry a secret far from its message: in an attribute, in ``args``, in
its ``__cause__`` or ``__context__`` (aiohttp's errors hold the request's headers, with
the Authorization header), or in an object one of those holds. ``leaks`` follows all of
these, recursively with a visited set, and reports every reachable object whose
``repr`` or ``str`` shows one of the needles.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Any

# Objects that are not data: their reprs and contents are not what an exception holds.
_OPAQUE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.TracebackType,
)
_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None))
_MAX_OBJECTS = 20_000


def _children(obj: object) -> Iterator[object]:
    if isinstance(obj, BaseException):
        yield obj.args
        yield obj.__cause__
        yield obj.__context__
        yield from getattr(obj, "__notes__", ())
        if isinstance(obj, BaseExceptionGroup):
            yield from obj.exceptions
    if isinstance(obj, Mapping):
        for key, value in list(obj.items()):
            yield key
            yield value
    elif isinstance(obj, list | tuple | set | frozenset):
        yield from obj
    try:
        attributes = vars(obj)
    except TypeError:
        attributes = {}
    yield from list(attributes.values())
    for slot in _slots(type(obj)):
        try:
            yield getattr(obj, slot)
        except AttributeError:
            continue


def _slots(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots: Any = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for slot in slots:
            if slot not in ("__dict__", "__weakref__"):
                yield slot


def _texts(obj: object) -> Iterator[str]:
    for show in (repr, str):
        try:
            yield show(obj)
        except Exception as exc:  # a broken repr is not a leak, but say so
            yield f"<{show.__name__} failed: {type(exc).__name__}>"


def walk(root: object) -> Iterator[tuple[str, object]]:
    """Yield (path, object) for every object reachable from ``root``, each once."""
    seen: set[int] = set()
    stack: list[tuple[str, object]] = [("exc", root)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        assert len(seen) < _MAX_OBJECTS, "the object graph is unexpectedly large"
        yield path, obj
        if isinstance(obj, _ATOMS):
            continue
        stack.extend((f"{path}>{type(child).__name__}", child) for child in _children(obj))


def leaks(root: object, *needles: str) -> list[str]:
    """Return where (path: text) any needle shows in a reachable object's repr or str."""
    found = []
    for path, obj in walk(root):
        for text in _texts(obj):
            for needle in needles:
                if needle in text:
                    found.append(f"{path}: {needle!r} in {text[:200]!r}")
    return found


def chain(exc: BaseException) -> list[BaseException]:
    """Every exception reachable through ``__cause__`` and ``__context__``."""
    return [obj for _, obj in walk(exc) if isinstance(obj, BaseException)]
