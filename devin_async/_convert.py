"""The one cattrs converter: wire JSON <-> models. Nothing else knows JSON shapes.

cattrs generates every structuring and unstructuring function; this module only
registers hooks on its one converter, and each rule is written once, in its hook:

- JSON scalars are strict: a string is never an integer, a boolean never an integer or
  a number, and an integer is accepted as a number.
- ``tuple[X, ...]`` comes from a JSON array only and ``dict[str, X]`` from an object only.
- Enums are open: in ``E | str`` a known value becomes the member, any other string stays
  a plain ``str``.
- Unset request fields are omitted, never sent as null.

Hooks that only check a value return it as is, so the generated functions do one call
per field. Structuring stops at the first bad value; only then does ``_explain`` walk
the input again, with cattrs' detailed validation for the classes, to name the field.
Every failure is a ``ResponseValidationError`` whose message names the field
(``created_at: expected integer, got bool``); no cattrs exception leaves this module.

Bodies are parsed by msgspec into plain JSON values (the stdlib takes what msgspec
refuses), and cattrs structures those values. Sessions, the hot model, are tried by
msgspec first, into a Struct derived from the model whose types take exactly what the
hooks take: a session dict through ``msgspec.convert``, a session body
(``decode_session``) straight from bytes. What msgspec refuses goes the cattrs way, so
both give the same session or the same error.

Error bodies (``{"detail": ...}``, FastAPI's field errors, RFC 9457 problem details) are
shaped here too, tolerantly: ``error_summary`` never raises.
"""

from __future__ import annotations

import functools
import json
import reprlib
import types
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
import msgspec
import msgspec.structs
from cattrs.errors import AttributeValidationNote, ClassValidationError
from cattrs.gen import (
    make_dict_structure_fn,
    make_dict_structure_fn_from_attrs,
    make_dict_unstructure_fn,
    override,
)

from ._errors import ResponseValidationError, ValidationDetail
from ._models import (
    Attachment,
    CreateSessionRequest,
    InsightsGeneration,
    Message,
    Page,
    SendMessageRequest,
    Session,
    SessionInsights,
    SessionSecret,
    TagsRequest,
    UploadedAttachment,
    WaitState,
)

__all__ = [
    "dumps_create_request",
    "dumps_message_request",
    "dumps_tags_request",
    "dumps_wait_state",
    "error_summary",
    "loads",
    "loads_error_body",
    "loads_wait_state",
    "session_row",
    "session_rows",
    "structure",
    "structure_attachments",
    "structure_insights",
    "structure_insights_generation",
    "structure_message_page",
    "structure_session",
    "structure_session_page",
    "structure_tags",
    "structure_uploaded",
    "unstructure",
]

T = TypeVar("T")
Hook = Callable[[Any, Any], Any]

_SNIPPET = 200

_converter = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)


class _Invalid(Exception):
    """A value is not of its documented JSON type; ``path`` names the field."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason

    def under(self, step: str) -> _Invalid:
        """Return this error as seen from the value that holds it at ``step``.

        ``step`` is a field name or key, an index ``[i]``, or "" (an object's key).
        """
        if not step:
            return self
        if not self.path:
            return _Invalid(step, self.reason)
        joint = "" if self.path.startswith("[") else "."
        return _Invalid(f"{step}{joint}{self.path}", self.reason)


def _bad(expected: str, value: object) -> _Invalid:
    return _Invalid("", f"expected {expected}, got {type(value).__name__}")


def _optional_of(tp: Any) -> Any:
    """Return X when ``tp`` is ``X | None``, else None."""
    args = get_args(tp)
    if get_origin(tp) in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return args[0] if args[1] is type(None) else args[1]
    return None


# ------------------------------------------------------------------ JSON scalars

# What each scalar accepts. bool is a subclass of int, but JSON true is never a count,
# a timestamp or a number.
_SCALARS: dict[object, tuple[str, tuple[type, ...]]] = {
    str: ("string", (str,)),
    int: ("integer", (int,)),
    float: ("number", (int, float)),
    bool: ("boolean", (bool,)),
}


def _is_json(value: object, classes: tuple[type, ...]) -> bool:
    return isinstance(value, classes) and (bool in classes or not isinstance(value, bool))


def _is_scalar(tp: Any) -> bool:
    """Return True for str, int, float, bool, and each of them ``| None``."""
    return tp in _SCALARS or _optional_of(tp) in _SCALARS


def _exact_types(tp: Any) -> frozenset[type]:
    """Return the classes a scalar ``tp`` takes as they are, without a closer look."""
    inner = _optional_of(tp)
    classes = _SCALARS[tp if inner is None else inner][1]
    return frozenset(classes if inner is None else (*classes, type(None)))


def _scalar_hook(tp: Any) -> Hook:
    inner = _optional_of(tp)
    expected, classes = _SCALARS[tp if inner is None else inner]
    exact = _exact_types(tp)

    def hook(value: object, _: object) -> object:
        # The exact type first: one set lookup in the common case; subclasses after.
        if type(value) in exact or _is_json(value, classes):
            return value
        raise _bad(expected, value)

    return hook


# ------------------------------------------------------------------ open enums


def _open_enum_of(tp: object) -> type[StrEnum] | None:
    """Return E when ``tp`` is ``E | str`` or ``E | str | None`` for a StrEnum E."""
    if not isinstance(tp, types.UnionType):
        return None
    args = get_args(tp)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, StrEnum)]
    return enums[0] if len(enums) == 1 and str in args else None


def _open_enum_hook(tp: Any) -> Hook:
    enum = _open_enum_of(tp)
    assert enum is not None
    member = enum._value2member_map_.get
    nullable = type(None) in get_args(tp)

    def hook(value: object, _: object) -> object:
        if type(value) is str or isinstance(value, str):
            return member(value, value)
        if value is None and nullable:
            return None
        raise _bad(f"a {enum.__name__} string", value)

    return hook


# ------------------------------------------------------------------ containers


def _is_array(tp: object) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_object(tp: object) -> bool:
    return get_origin(tp) is dict and len(get_args(tp)) == 2


def _is_free(tp: object) -> bool:
    """Return True for a type any JSON value is (``Any``): nothing to check or convert."""
    return tp is Any or tp is object


def _container_of(tp: Any, test: Callable[[Any], bool]) -> Any:
    """Return ``tp``, or C for ``tp = C | None``, when ``test`` holds for it; else None."""
    inner = _optional_of(tp)
    return tp if test(tp) else inner if inner is not None and test(inner) else None


def _exact_items(tp: Any) -> frozenset[type] | None:
    """Return the classes a container's scalar items are taken in as they are, else None.

    With them, an array or object is checked with one set of its items' classes rather
    than a call per item.
    """
    return _exact_types(tp) if tp in _SCALARS else None


def _array_hook(tp: Any) -> Hook:
    """Structure ``tuple[X, ...]`` (or ``tuple[X, ...] | None``) from a JSON array only."""
    nullable = _optional_of(tp) is not None
    item = get_args(_container_of(tp, _is_array))[0]
    structure_item = _converter.get_structure_hook(item)
    exact = _exact_items(item)

    def hook(value: object, _: object) -> tuple[Any, ...] | None:
        # Only a JSON array: cattrs would turn "abc" into ("a", "b", "c").
        if type(value) is list:
            if exact is not None and set(map(type, value)) <= exact:
                return tuple(value)
            return tuple([structure_item(v, item) for v in value])
        if value is None and nullable:
            return None
        raise _bad("an array", value)

    return hook


def _object_hook(tp: Any) -> Hook:
    """Structure ``dict[K, V]`` (or ``dict[K, V] | None``) from a JSON object only."""
    nullable = _optional_of(tp) is not None
    key, item = get_args(_container_of(tp, _is_object))
    structure_key = _converter.get_structure_hook(key)
    structure_item = _converter.get_structure_hook(item)
    exact_keys, free = _exact_items(key), _is_free(item)

    def hook(value: object, _: object) -> dict[Any, Any] | None:
        if isinstance(value, dict):
            if not free:
                return {structure_key(k, key): structure_item(v, item) for k, v in value.items()}
            if exact_keys is None or not set(map(type, value)) <= exact_keys:
                for k in value:
                    structure_key(k, key)
            return dict(value)
        if value is None and nullable:
            return None
        raise _bad("an object", value)

    return hook


def _is_nullable(tp: Any) -> bool:
    """Return True for ``X | None`` where X has no hook of its own that takes None."""
    inner = _optional_of(tp)
    return inner is not None and not (inner in _SCALARS or _is_array(inner) or _is_object(inner))


def _nullable_hook(tp: Any) -> Hook:
    inner = _optional_of(tp)
    structure_inner = _converter.get_structure_hook(inner)

    def hook(value: object, _: object) -> object:
        return None if value is None else structure_inner(value, inner)

    return hook


# ------------------------------------------------------------------ models


def _is_model(tp: Any) -> bool:
    return attrs.has(get_origin(tp) or tp)


def _model_hook(tp: Any) -> Hook:
    """Structure an attrs class (or ``Page[Session]``) with cattrs' generated function.

    cattrs passes a field that has a default as a keyword, behind an ``in`` test; here
    every field is made required, so cattrs passes each by position (a session costs
    about half as much). An object that lacks some keys is first filled with the
    defaults in JSON form, which the field hooks turn back into the attrs defaults
    (``[]`` into ``()``); one that seems complete is tried as it is first. A JSON value
    that is not an object fails at its first field. A class with a factory default
    keeps cattrs' function as cattrs makes it.
    """
    cls = get_origin(tp) or tp
    fields = [a for a in attrs.fields(attrs.resolve_types(cls)) if a.init]
    if any(isinstance(a.default, attrs.Factory) for a in fields):  # type: ignore[arg-type]
        return make_dict_structure_fn(tp, _converter)
    defaults = {
        a.name: _converter.unstructure(a.default) for a in fields if a.default is not attrs.NOTHING
    }
    names = [p.__name__ for p in getattr(cls, "__parameters__", ())]
    typevars = dict(zip(names, get_args(tp), strict=False))  # Page[Session]: {"T": Session}
    fn: Hook = make_dict_structure_fn_from_attrs(
        [a.evolve(default=attrs.NOTHING) for a in fields], cls, _converter, typevars
    )
    if fields and not defaults:
        return fn
    size = len(fields) or 1  # an empty list is not an object, even for a class without fields

    def hook(value: Mapping[str, Any], _: object) -> Any:
        if len(value) >= size:
            try:
                return fn(value, tp)
            except KeyError:  # an absent key (or a bad value, which fails again below)
                pass
        return fn({**defaults, **value}, tp)

    return hook


for _scalar in _SCALARS:
    _converter.register_structure_hook(_scalar, _scalar_hook(_scalar))
for _predicate, _factory in (
    (_is_scalar, _scalar_hook),
    (lambda tp: _open_enum_of(tp) is not None, _open_enum_hook),
    (lambda tp: _container_of(tp, _is_array) is not None, _array_hook),
    (lambda tp: _container_of(tp, _is_object) is not None, _object_hook),
    (_is_nullable, _nullable_hook),
    (_is_model, _model_hook),
):
    _converter.register_structure_hook_factory(_predicate, _factory)


# ------------------------------------------------------------------ naming the bad field


def _as_invalid(exc: BaseException) -> _Invalid:
    return exc if isinstance(exc, _Invalid) else _Invalid("", f"{type(exc).__name__}: {exc}")


@functools.cache
def _detailed(tp: Any) -> Hook:
    """cattrs' structure function of a class with detailed validation (the error path only)."""
    return make_dict_structure_fn(tp, _converter, _cattrs_detailed_validation=True)


def _why(value: object, tp: Any) -> _Invalid | None:
    """Return why ``value`` does not structure as ``tp``, naming the bad field, or None."""
    try:
        _converter.structure(value, tp)
    except Exception as exc:
        return _locate(value, tp) or _as_invalid(exc)
    return None


def _locate(value: object, tp: Any) -> _Invalid | None:
    """Return the failure of the first bad part of ``value`` (class, array, object), if any."""
    if attrs.has(get_origin(tp) or tp):
        return _locate_field(value, tp)
    inner = _optional_of(tp)
    if inner is not None:
        return _locate(value, inner)
    args = get_args(tp)
    parts: Iterable[tuple[str, object, Any]]
    if _is_array(tp) and type(value) is list:
        parts = ((f"[{i}]", item, args[0]) for i, item in enumerate(value))
    elif _is_object(tp) and isinstance(value, dict):
        keys = (("", k, args[0]) for k in value)
        parts = (*keys, *((str(k), v, args[1]) for k, v in value.items()))
    else:
        return None
    for step, part, part_tp in parts:
        failure = _why(part, part_tp)
        if failure is not None:
            return failure.under(step)
    return None


def _locate_field(value: object, tp: Any) -> _Invalid | None:
    """Name the first bad field of a class instance, through cattrs' detailed validation."""
    if not isinstance(value, Mapping):
        return _bad("an object", value)
    try:
        _detailed(tp)(value, tp)
    except ClassValidationError as group:
        for exc in group.exceptions:
            for note in getattr(exc, "__notes__", ()):
                if not isinstance(note, AttributeValidationNote):
                    continue
                if isinstance(exc, KeyError) and note.name not in value:
                    return _Invalid(note.name, "missing required field")
                return (_locate(value[note.name], note.type) or _as_invalid(exc)).under(note.name)
        return _as_invalid(group.exceptions[0])  # the class itself refused its fields
    return None


# ------------------------------------------------------------------ the msgspec way

# A session is first tried by msgspec, into a Struct derived from the model (``_wire``):
# its field types take exactly the JSON the hooks above take (the scalars of
# ``_SCALARS``, arrays only, objects only), except that an open enum takes only its
# known values, as members: a new value is refused, so it is kept as its string the
# cattrs way. The Struct then becomes the model through its ``__init__``. A session
# dict goes through ``msgspec.convert``; a session body is decoded straight from bytes,
# into a Struct that also refuses any key the model lacks, since msgspec skips an
# unknown key without checking its text. Whatever msgspec refuses (a bad value, an
# unknown key in a body, a body only the stdlib parses) goes the cattrs way, which
# returns or raises as always: the msgspec way only ever gives what the cattrs way gives
# for the same JSON.

Fix = Callable[[Any], Any]


def _fixed_nullable(fix: Fix) -> Fix:
    return lambda value: None if value is None else fix(value)


def _fixed_array(fix: Fix) -> Fix:
    return lambda value: tuple(map(fix, value))


def _wire(tp: Any, *, forbid: bool = True) -> tuple[Any, Fix | None]:
    """Return the msgspec type taking exactly the JSON ``tp``'s hook takes, and the fix.

    The fix turns a value of that type into ``tp``'s (None: it is as it is). With
    ``forbid``, an object with a key its model lacks is refused.

    Raises:
        TypeError: ``tp`` has no such type here.
    """
    if tp in _SCALARS:
        return Union[_SCALARS[tp][1]], None  # noqa: UP007 - built from the tuple
    enum = _open_enum_of(tp)
    if enum is not None:
        return (enum | None if type(None) in get_args(tp) else enum), None
    inner = _optional_of(tp)
    if inner is not None:
        wire, fix = _wire(inner, forbid=forbid)
        return Union[wire, None], None if fix is None else _fixed_nullable(fix)  # noqa: UP007
    if _is_array(tp):
        wire, fix = _wire(get_args(tp)[0], forbid=forbid)
        return tuple[wire, ...], None if fix is None else _fixed_array(fix)  # type: ignore[valid-type]
    if _is_object(tp) and get_args(tp)[0] is str and _is_free(get_args(tp)[1]):
        return dict[str, Any], None
    if attrs.has(tp):
        return _wire_model(tp, forbid=forbid)
    raise TypeError(f"no msgspec type takes exactly what {tp!r} takes")


def _wire_model(cls: type[Any], *, forbid: bool = True) -> tuple[Any, Fix]:
    """Return a Struct with the fields of the attrs class ``cls``, and its fix into ``cls``."""
    fields = attrs.fields(attrs.resolve_types(cls))
    if any(not a.init or a.kw_only or isinstance(a.default, attrs.Factory) for a in fields):  # type: ignore[arg-type]
        raise TypeError(f"{cls.__name__} is not built from its fields by position")
    wires = [_wire(a.type, forbid=forbid) for a in fields]
    struct = msgspec.defstruct(
        f"{cls.__name__}Wire",
        [
            (a.name, wire) if a.default is attrs.NOTHING else (a.name, wire, a.default)
            for a, (wire, _) in zip(fields, wires, strict=True)
        ],
        forbid_unknown_fields=forbid,
        frozen=True,
    )
    fixes = [(i, fix) for i, (_, fix) in enumerate(wires) if fix is not None]
    astuple = msgspec.structs.astuple
    if not fixes:
        return struct, lambda value: cls(*astuple(value))

    def fix(value: Any) -> Any:
        values = list(astuple(value))
        for i, fix_one in fixes:
            values[i] = fix_one(values[i])
        return cls(*values)

    return struct, fix


def _msgspec_first(cls: type[T]) -> Hook:
    """Return a hook structuring ``cls`` by ``msgspec.convert``, by cattrs what it refuses."""
    struct, fix = _wire_model(cls, forbid=False)
    by_cattrs = _converter.get_structure_hook(cls)
    convert = msgspec.convert

    def hook(value: object, tp: object) -> T:
        try:
            return fix(convert(value, struct))  # type: ignore[no-any-return]
        except Exception:  # refused: cattrs returns the same or names the bad field
            return by_cattrs(value, tp)  # type: ignore[no-any-return]

    return hook


# The cattrs way is kept for the tests that hold the msgspec way to it.
_session_by_cattrs = _converter.get_structure_hook(Session)
_converter.register_structure_hook_func(lambda tp: tp is Session, _msgspec_first(Session))


# ------------------------------------------------------------------ requests and unstructuring

# Unset request fields are omitted, never sent as null; secrets always carry all keys.
# The idempotency key is the client's own: only the marker tag derived from it is sent.
_converter.register_unstructure_hook(
    CreateSessionRequest,
    make_dict_unstructure_fn(
        CreateSessionRequest,
        _converter,
        _cattrs_omit_if_default=True,
        idempotency_key=override(omit=True),
    ),
)
_converter.register_unstructure_hook(
    SendMessageRequest,
    make_dict_unstructure_fn(SendMessageRequest, _converter, _cattrs_omit_if_default=True),
)
for _request in (SessionSecret, TagsRequest):
    _converter.register_unstructure_hook(_request, make_dict_unstructure_fn(_request, _converter))


def unstructure(obj: object) -> Any:
    """Return a model as JSON-ready data: dicts, lists, enums as their values."""
    return _converter.unstructure(obj)


def _dumps(obj: object) -> bytes:
    return json.dumps(_converter.unstructure(obj), separators=(",", ":")).encode()


def dumps_create_request(request: CreateSessionRequest) -> bytes:
    """Encode a create request as compact JSON bytes, leaving unset fields out."""
    return _dumps(request)


def dumps_message_request(
    message: str, message_as_user_id: str | None, attachment_urls: Iterable[str] | None
) -> bytes:
    """Encode a SendMessageRequest as compact JSON bytes, leaving unset fields out."""
    request = SendMessageRequest(
        message=message, message_as_user_id=message_as_user_id, attachment_urls=attachment_urls
    )
    return _dumps(request)


def dumps_tags_request(tags: Iterable[str]) -> bytes:
    """Encode a TagsRequest (``{"tags": [...]}``) as compact JSON bytes."""
    return _dumps(TagsRequest(tuple(tags)))


# ------------------------------------------------------------------ decoding responses

# A bounded repr: a snippet never walks (or recurses through) a whole large body.
_REPR = reprlib.Repr()  # keyword arguments to Repr() need Python 3.12
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist = 4, 8, 8
_REPR.maxstring = _REPR.maxother = _SNIPPET


def _snippet(data: object) -> str:
    if isinstance(data, bytes):
        return data[:_SNIPPET].decode("utf-8", "replace")
    return _REPR.repr(data)[:_SNIPPET]


# msgspec parses JSON faster than the stdlib (benchmarks/bench_decode.py,
# "bytes -> model") into the same plain values; what it refuses (NaN, a BOM, UTF-16/32,
# a number out of range) gets whatever the stdlib makes of it.
_decode_json = msgspec.json.Decoder().decode


def loads(body: bytes) -> Any:
    """Decode a JSON body, raising ResponseValidationError when it is not JSON."""
    try:
        return _decode_json(body)
    except (msgspec.MsgspecError, RecursionError):
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ResponseValidationError(
            f"response body is not valid JSON: {exc}", body=_snippet(body)
        ) from None


def _invalid_response(data: object, cls: Any, exc: Exception) -> ResponseValidationError:
    name = getattr(get_origin(cls) or cls, "__name__", str(cls))
    reason = _locate(data, cls) or _as_invalid(exc)
    return ResponseValidationError(f"response is not a valid {name}: {reason}", body=_snippet(data))


def structure(data: object, cls: type[T]) -> T:
    """Structure decoded JSON into ``cls``, raising ResponseValidationError on a bad shape."""
    try:
        return _converter.structure(data, cls)
    except Exception as exc:  # cattrs, KeyError, TypeError, ...: all mean "bad shape"
        raise _invalid_response(data, cls, exc) from None


_SESSION_PAGE = Page[Session]
_MESSAGE_PAGE = Page[Message]

# The hot paths call their hooks directly rather than through the converter's dispatch.
_structure_session_hook = _converter.get_structure_hook(Session)
_structure_session_page_hook = _converter.get_structure_hook(_SESSION_PAGE)


def structure_session(data: object) -> Session:
    """Structure a decoded SessionResponse (JSON values, as ``loads`` returns them).

    msgspec tries it first; values JSON cannot hold (a tuple, a set) may be taken as
    the arrays they stand for.
    """
    try:
        session: Session = _structure_session_hook(data, Session)
    except Exception as exc:
        raise _invalid_response(data, Session, exc) from None
    return session


def structure_session_page(data: object) -> Page[Session]:
    """Structure a decoded page of SessionResponse items."""
    try:
        page: Page[Session] = _structure_session_page_hook(data, _SESSION_PAGE)
    except Exception as exc:
        raise _invalid_response(data, _SESSION_PAGE, exc) from None
    return page


# ------------------------------------------------------------------ straight from bytes


def _bytes_loader(cls: type[T], slow: Callable[[bytes], T]) -> Callable[[bytes], T]:
    """Return what decodes a body into ``cls`` straight from bytes, ``slow`` for the rest."""
    struct, fix = _wire_model(cls)
    decode = msgspec.json.Decoder(struct).decode

    def load(body: bytes) -> T:
        try:
            value: T = fix(decode(body))
        except Exception:  # refused or not built: the usual way returns or names why
            return slow(body)
        return value

    return load


decode_session = _bytes_loader(Session, lambda body: structure_session(loads(body)))
"""Decode a SessionResponse body, raising ResponseValidationError when it is not one."""


def session_row(data: object) -> dict[str, Any]:
    """Check that decoded JSON is a session object with an id, without structuring it.

    Waits compare a row's raw state first and structure only the rows that changed.
    """
    if isinstance(data, dict) and isinstance(data.get("session_id"), str):
        return data
    raise ResponseValidationError("response is not a valid Session", body=_snippet(data))


def session_rows(data: object) -> tuple[list[dict[str, Any]], str | None, bool]:
    """Check a decoded page of sessions; return its rows (unstructured), cursor, and more.

    Raises:
        ResponseValidationError: not a page, or an item that is not a session with an id.
    """
    if isinstance(data, dict):
        items, cursor, more = data.get("items"), data.get("end_cursor"), data.get("has_next_page")
        if (
            isinstance(items, list)
            and (cursor is None or isinstance(cursor, str))
            and isinstance(more, bool | None)
            and all(isinstance(r, dict) and isinstance(r.get("session_id"), str) for r in items)
        ):
            return items, cursor, bool(more)
    raise ResponseValidationError("response is not a valid page of sessions", body=_snippet(data))


def structure_message_page(data: object) -> Page[Message]:
    """Structure a decoded page of SessionMessage items."""
    return structure(data, _MESSAGE_PAGE)


def structure_tags(data: object) -> tuple[str, ...]:
    """Structure a SessionTagsResponse (``{"tags": [...]}``) into its tags."""
    if not isinstance(data, dict) or "tags" not in data:
        raise ResponseValidationError("response is not a valid tags object", body=_snippet(data))
    return structure(data["tags"], tuple[str, ...])


def structure_attachments(data: object) -> tuple[Attachment, ...]:
    """Structure a list of SessionAttachment: a bare array, or ``{"items": [...]}``.

    The API reference shows a bare array, the Common Flows guide an ``items`` envelope
    (https://docs.devin.ai/api-reference/common-flows.md); both are accepted.
    """
    if isinstance(data, dict) and "items" in data:
        data = data["items"]
    return structure(data, tuple[Attachment, ...])


def dumps_wait_state(state: WaitState) -> str:
    """Encode a WaitState as a small JSON object (store it, then ``loads_wait_state``)."""
    return json.dumps(_converter.unstructure(state), separators=(",", ":"))


def loads_wait_state(text: str | bytes) -> WaitState:
    """Decode a WaitState saved by ``dumps_wait_state``.

    Raises:
        ValueError: the text is not a saved WaitState.
    """
    try:
        return structure(json.loads(text), WaitState)
    except (ValueError, RecursionError, ResponseValidationError) as exc:
        raise ValueError(f"not a saved WaitState: {exc}") from None


# ------------------------------------------------------------------ error bodies

# Field errors are read leniently: the message of an error response must never fail.
# A missing part is empty, a location keeps its string and integer steps, and any other
# msg or type is shown as text; an item that is not an object is skipped.
_DETAIL_DEFAULTS: dict[str, object] = {"loc": [], "msg": "", "type": ""}


def _loose_loc(value: object, _: object) -> tuple[str | int, ...]:
    return tuple(p for p in value if isinstance(p, str | int)) if isinstance(value, list) else ()


def _loose_text(value: object, _: object) -> str:
    return str(value)


_converter.register_structure_hook(
    ValidationDetail,
    make_dict_structure_fn(
        ValidationDetail,
        _converter,
        loc=override(struct_hook=_loose_loc),
        msg=override(struct_hook=_loose_text),
        type=override(struct_hook=_loose_text),
    ),
)
_structure_detail = _converter.get_structure_hook(ValidationDetail)


def _details(items: object) -> tuple[ValidationDetail, ...]:
    """Return the field errors of a ``detail`` or ``errors`` list; other values have none."""
    if not isinstance(items, list):
        return ()
    out = []
    for item in items:
        if isinstance(item, dict):
            try:
                out.append(_structure_detail({**_DETAIL_DEFAULTS, **item}, ValidationDetail))
            except Exception:  # noqa: S112 - a malformed item is left out
                continue
    return tuple(out)


def loads_error_body(body: bytes) -> object:
    """Decode an error response body: its JSON, or its text when it is not JSON."""
    try:
        return loads(body)
    except ResponseValidationError:
        return body.decode("utf-8", "replace")


def error_summary(body: object) -> tuple[str, tuple[ValidationDetail, ...]]:
    """Return a one-line summary and the field errors of a decoded error body.

    Handles ``{"detail": str}``, FastAPI's ``{"detail": [{loc, msg, type}]}`` and RFC 9457
    problem details (``title``, ``detail``, ``errors``); never raises.
    """
    if isinstance(body, str):
        return body.strip().replace("\n", " "), ()
    if not isinstance(body, dict):
        return "", ()
    detail = body.get("detail")
    errors = _details(body.get("errors")) or _details(detail)
    if isinstance(detail, str) and detail:
        text = detail
    elif errors:
        text = "; ".join(
            f"{'.'.join(str(p) for p in e.loc)}: {e.msg}" if e.loc else e.msg for e in errors
        )
    else:
        title = body.get("title")
        text = title if isinstance(title, str) else ""
    return text, errors


def structure_uploaded(data: object) -> UploadedAttachment:
    """Structure the upload answer (``AttachmentResponse``).

    Its ``url`` is kept as the server wrote it (the spec gives it no format): it is only
    handed back to the API, in ``attachment_urls``.
    """
    return structure(data, UploadedAttachment)


# ------------------------------------------------------------------ insights


def structure_insights(data: object) -> SessionInsights:
    """Structure a decoded SessionInsightsResponse (``analysis`` None until it is done)."""
    return structure(data, SessionInsights)


def structure_insights_generation(data: object) -> InsightsGeneration:
    """Structure a decoded SessionInsightsGenerateResponse."""
    return structure(data, InsightsGeneration)
