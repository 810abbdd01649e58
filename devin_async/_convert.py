"""The one cattrs converter: wire JSON <-> models. Nothing else knows JSON shapes.

Hooks enforce JSON types strictly (a number is never silently turned into a string),
keep enum values open, and omit unset request fields. Every failure to structure is
reported as ``ResponseValidationError``; no cattrs exception leaves this module.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar, get_args, get_origin

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn

from ._errors import ResponseValidationError
from ._models import CreateSessionRequest, Page, PullRequest, Session, SessionSecret

__all__ = ["dumps_create_request", "structure", "structure_session", "structure_session_page"]

T = TypeVar("T")

_SNIPPET = 200

_converter = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)


def _strict(kind: type[Any], name: str) -> Callable[[object, object], Any]:
    def hook(value: object, _: object) -> Any:
        # bool is a subclass of int; JSON true is never a count or a timestamp.
        if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
            return value
        raise TypeError(f"expected {name}, got {type(value).__name__}")

    return hook


_converter.register_structure_hook(str, _strict(str, "string"))
_converter.register_structure_hook(int, _strict(int, "integer"))
_converter.register_structure_hook(float, _strict(int | float, "number"))  # type: ignore[arg-type]
_converter.register_structure_hook(bool, _strict(bool, "boolean"))


def _open_enum_of(tp: object) -> type[StrEnum] | None:
    """Return E when ``tp`` is ``E | str`` or ``E | str | None`` for a StrEnum E."""
    if not isinstance(tp, types.UnionType):
        return None
    args = get_args(tp)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, StrEnum)]
    return enums[0] if len(enums) == 1 and str in args else None


def _open_enum_hook(tp: Any) -> Callable[[object, object], Any]:
    enum = _open_enum_of(tp)
    assert enum is not None
    members = enum._value2member_map_
    nullable = type(None) in get_args(tp)

    def hook(value: object, _: object) -> Any:
        if type(value) is str:
            return members.get(value, value)
        if value is None and nullable:
            return None
        raise TypeError(f"expected a {enum.__name__} string, got {type(value).__name__}")

    return hook


_converter.register_structure_hook_factory(
    lambda tp: _open_enum_of(tp) is not None, _open_enum_hook
)


def _is_array(tp: object) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _array_hook(tp: Any) -> Callable[[object, object], Any]:
    item = get_args(tp)[0]
    structure_item = _converter.get_structure_hook(item)

    def hook(value: object, _: object) -> Any:
        # Only a JSON array: cattrs would turn "abc" into ("a", "b", "c").
        if type(value) is not list:
            raise TypeError(f"expected an array, got {type(value).__name__}")
        return tuple([structure_item(v, item) for v in value])

    return hook


_converter.register_structure_hook_factory(_is_array, _array_hook)

for _cls in (PullRequest, Session):
    _converter.register_structure_hook(_cls, make_dict_structure_fn(_cls, _converter))
# Generic aliases are registered by predicate: cattrs cannot resolve hints on them directly.
_SESSION_PAGE = Page[Session]
_converter.register_structure_hook_func(
    lambda tp: tp == _SESSION_PAGE, make_dict_structure_fn(_SESSION_PAGE, _converter)
)

# Unset request fields are omitted, never sent as null; secrets always carry all keys.
_converter.register_unstructure_hook(
    CreateSessionRequest,
    make_dict_unstructure_fn(
        CreateSessionRequest,
        _converter,
        _cattrs_omit_if_default=True,
    ),
)
_converter.register_unstructure_hook(
    SessionSecret, make_dict_unstructure_fn(SessionSecret, _converter)
)


def _snippet(data: object) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else repr(data)
    return text[:_SNIPPET]


def loads(body: bytes) -> Any:
    """Decode a JSON body, raising ResponseValidationError when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ResponseValidationError(
            f"response body is not valid JSON: {exc}", body=_snippet(body)
        ) from None


def structure(data: object, cls: type[T]) -> T:
    """Structure decoded JSON into ``cls``, raising ResponseValidationError on a bad shape."""
    try:
        return _converter.structure(data, cls)
    except Exception as exc:  # cattrs, KeyError, TypeError, ...: all mean "bad shape"
        raise ResponseValidationError(
            f"response is not a valid {cls.__name__}: {type(exc).__name__}: {exc}",
            body=_snippet(data),
        ) from None


def structure_session(data: object) -> Session:
    """Structure a decoded SessionResponse."""
    return structure(data, Session)


def structure_session_page(data: object) -> Page[Session]:
    """Structure a decoded page of SessionResponse items."""
    return structure(data, Page[Session])


def dumps_create_request(request: CreateSessionRequest) -> bytes:
    """Encode a create request as compact JSON bytes, leaving unset fields out."""
    payload = _converter.unstructure(request)
    return json.dumps(payload, separators=(",", ":")).encode()
