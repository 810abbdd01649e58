"""The one cattrs converter: wire JSON <-> models. Nothing else knows JSON shapes.

Hooks enforce JSON types strictly (a number is never silently turned into a string),
keep enum values open, and omit unset request fields. Every failure to structure is
reported as ``ResponseValidationError`` naming the field (``created_at: expected
integer, got bool``); no cattrs exception leaves this module.
"""

from __future__ import annotations

import json
import linecache
import reprlib
import types
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._errors import ResponseValidationError
from ._models import (
    Attachment,
    CreateSessionRequest,
    Message,
    Page,
    PullRequest,
    Session,
    SessionSecret,
    WaitState,
)

__all__ = [
    "dumps_create_request",
    "dumps_wait_state",
    "loads_wait_state",
    "session_row",
    "session_rows",
    "structure",
    "structure_attachments",
    "structure_message_page",
    "structure_session",
    "structure_session_page",
    "structure_tags",
]

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

# ------------------------------------------------------------------ response models
#
# Why generated code: cattrs' own structure functions call one hook per field and per
# array item, and each hook re-checks types through a closure, which made structuring a
# SessionResponse much slower than pydantic (benchmarks/bench_decode.py). For the
# response models one flat function per class is generated here from its attrs fields
# instead, with the same strict JSON rules inlined, and registered on the converter as
# that class's hook: ``_converter.structure`` still dispatches to it, nested classes are
# looked up through the converter, and any type the generator does not know is
# delegated to cattrs.
#
# The rules, as in the hooks above: str, int (never bool), float (int accepted, never
# bool), bool; ``X | None``; ``tuple[X, ...]`` from a JSON array only; open enums
# ``E | str`` (known values become members, others stay plain strings);
# ``dict[str, X]`` from a JSON object. Missing optional keys take the attrs default;
# unknown keys are ignored. A new response model joins the loop at the end of this
# section (nested classes before the classes that hold them).


class _Invalid(Exception):
    """A value is not of its documented JSON type; ``path`` names the field."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason

    def under(self, prefix: str) -> _Invalid:
        """Return this error as seen from the object that holds ``prefix``."""
        return _Invalid(f"{prefix}.{self.path}" if self.path else prefix, self.reason)


def _bad(path: str, expected: str, value: object) -> _Invalid:
    return _Invalid(path, f"expected {expected}, got {type(value).__name__}")


def _missing(exc: KeyError) -> _Invalid:
    return _Invalid(str(exc.args[0]) if exc.args else "", "missing required field")


def _at(path: str, items: Iterable[object], item: object) -> str:
    """Return ``path[i]`` for the first item of ``items`` that is ``item`` (error path only).

    Checks depend only on the object, so the first occurrence is the one that failed.
    """
    index = next(i for i, each in enumerate(items) if each is item)
    return f"{path}[{index}]"


def _fallback_error(path: str, exc: Exception) -> _Invalid:
    if isinstance(exc, _Invalid):
        return exc.under(path)
    return _Invalid(path, f"{type(exc).__name__}: {exc}")


_MISSING = object()

# Conditions that are true when ``{v}`` is NOT of the JSON type. The exact-type test
# comes first so the common case costs one comparison; bool is never an int or a number.
_CHECKS: dict[object, tuple[str, str]] = {
    str: ("type({v}) is not str and not isinstance({v}, str)", "string"),
    int: ("type({v}) is not int and (type({v}) is bool or not isinstance({v}, int))", "integer"),
    float: (
        "type({v}) is not float and type({v}) is not int"
        " and (type({v}) is bool or not isinstance({v}, (int, float)))",
        "number",
    ),
    bool: ("type({v}) is not bool", "boolean"),
}


def _optional_of(tp: Any) -> Any:
    """Return X when ``tp`` is ``X | None``, else None."""
    args = get_args(tp)
    if get_origin(tp) in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return args[0] if args[1] is type(None) else args[1]
    return None


def _converts(tp: Any) -> bool:
    """Return False when structuring ``tp`` only checks the value and returns it as is."""
    if tp is Any or tp is object or tp in _CHECKS:
        return False
    inner = _optional_of(tp)
    return inner is None or _open_enum_of(tp) is not None or _converts(inner)


class _StructureFnBuilder:
    """Writes the source of one structure function; ``names`` are its globals."""

    def __init__(self) -> None:
        self.names: dict[str, object] = {
            "_Invalid": _Invalid,
            "_Mapping": Mapping,
            "_MISSING": _MISSING,
            "_at": _at,
            "_bad": _bad,
            "_fallback_error": _fallback_error,
            "_missing": _missing,
        }
        self._count = 0

    def fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def bind(self, prefix: str, value: object) -> str:
        name = self.fresh(prefix)
        self.names[name] = value
        return name

    def emit(self, v: str, tp: Any, where: str, indent: str) -> list[str]:
        """Return lines that check ``v`` against ``tp`` and convert it in place.

        ``where`` is an expression for the field path, evaluated only on failure.
        """
        if tp is Any or tp is object:
            return []
        if tp in _CHECKS:
            test, expected = _CHECKS[tp]
            return [
                f"{indent}if {test.format(v=v)}:",
                f"{indent}    raise _bad({where}, {expected!r}, {v})",
            ]
        enum = _open_enum_of(tp)
        if enum is not None:
            get = self.bind("_members", enum._value2member_map_.get)
            lines = [f"{indent}if type({v}) is str:", f"{indent}    {v} = {get}({v}, {v})"]
            if type(None) in get_args(tp):
                lines += [f"{indent}elif {v} is None:", f"{indent}    pass"]
            return [
                *lines,
                f"{indent}elif isinstance({v}, str):",
                f"{indent}    {v} = {get}({v}, {v})",
                f"{indent}else:",
                f"{indent}    raise _bad({where}, {f'a {enum.__name__} string'!r}, {v})",
            ]
        args = get_args(tp)
        inner = _optional_of(tp)
        if inner is not None:
            body = self.emit(v, inner, where, indent + "    ")
            return [f"{indent}if {v} is not None:", *body] if body else []
        if _is_array(tp):
            return self._array(v, args[0], where, indent)
        if get_origin(tp) is dict and len(args) == 2:
            return self._object(v, args[0], args[1], where, indent)
        # A nested model, or a type only cattrs knows: call its hook on the converter.
        hook = self.bind("_hook", _converter.get_structure_hook(tp))
        cls = self.bind("_type", tp)
        return [
            f"{indent}try:",
            f"{indent}    {v} = {hook}({v}, {cls})",
            f"{indent}except Exception as exc:",
            f"{indent}    raise _fallback_error({where}, exc) from None",
        ]

    def _array(self, v: str, item: Any, where: str, indent: str) -> list[str]:
        x = self.fresh("x")
        head = [
            f"{indent}if type({v}) is not list:",
            f"{indent}    raise _bad({where}, 'an array', {v})",
        ]
        check = self.emit(x, item, f"_at({where}, {v}, {x})", indent + "    ")
        if not check:
            return [*head, f"{indent}{v} = tuple({v})"]
        if not _converts(item):  # checks only: no list per array
            return [*head, f"{indent}for {x} in {v}:", *check, f"{indent}{v} = tuple({v})"]
        out = self.fresh("out")
        return [
            *head,
            f"{indent}{out} = []",
            f"{indent}for {x} in {v}:",
            *check,
            f"{indent}    {out}.append({x})",
            f"{indent}{v} = tuple({out})",
        ]

    def _object(self, v: str, key: Any, value: Any, where: str, indent: str) -> list[str]:
        k, x = self.fresh("k"), self.fresh("x")
        head = [
            f"{indent}if type({v}) is not dict and not isinstance({v}, dict):",
            f"{indent}    raise _bad({where}, 'an object', {v})",
        ]
        key_check = self.emit(k, key, where, indent + "    ")
        value_check = self.emit(x, value, f"{where} + '.' + str({k})", indent + "    ")
        if not value_check:
            loop = [f"{indent}for {k} in {v}:", *key_check] if key_check else []
            return [*head, *loop, f"{indent}{v} = dict({v})"]
        out = self.fresh("out")
        return [
            *head,
            f"{indent}{out} = {{}}",
            f"{indent}for {k}, {x} in {v}.items():",
            *key_check,
            *value_check,
            f"{indent}    {out}[{k}] = {x}",
            f"{indent}{v} = {out}",
        ]


def _field_types(tp: Any) -> tuple[type[Any], dict[str, Any]]:
    """Return the attrs class of ``tp`` and its resolved field types (``Page[Session]`` too)."""
    cls = get_origin(tp) or tp
    hints = get_type_hints(cls)
    params = getattr(cls, "__parameters__", ())
    if params and cls is not tp:
        mapping = dict(zip(params, get_args(tp), strict=True))
        for name, hint in hints.items():
            if isinstance(hint, TypeVar):
                hints[name] = mapping[hint]
            elif getattr(hint, "__parameters__", ()):
                hints[name] = hint[tuple(mapping[p] for p in hint.__parameters__)]
    return cls, hints


def _make_structure_fn(tp: Any) -> Callable[[object, object], Any]:
    """Generate the structure function of one attrs class (or generic alias of one)."""
    cls, hints = _field_types(tp)
    fields = attrs.fields(cls)
    build = _StructureFnBuilder()
    build.names["_cls"] = cls
    required = [f for f in fields if f.init and f.default is attrs.NOTHING]
    lines = [
        "    if type(o) is not dict and not isinstance(o, _Mapping):",
        "        raise _bad('', 'an object', o)",
    ]
    if required:
        lines.append("    try:")
        lines += [f"        a_{f.name} = o[{f.name!r}]" for f in required]
        lines += ["    except KeyError as exc:", "        raise _missing(exc) from None"]
    if any(f.init and f.default is not attrs.NOTHING for f in fields):
        lines.append("    get = o.get")
    for f in fields:
        if not f.init:
            continue
        v, where, tp_f = f"a_{f.name}", repr(f.name), hints[f.name]
        if f.default is attrs.NOTHING:
            lines += build.emit(v, tp_f, where, "    ")
            continue
        if f.default is None and type(None) in get_args(tp_f):
            # A missing key reads as None, which the check lets through: the default.
            lines.append(f"    {v} = get({f.name!r})")
            lines += build.emit(v, tp_f, where, "    ")
            continue
        if isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            if f.default.takes_self:
                raise TypeError(f"{cls.__name__}.{f.name}: a takes_self default")
            make = f"{build.bind('_factory', f.default.factory)}()"
        else:
            make = build.bind("_default", f.default)
        check = build.emit(v, tp_f, where, "        ")
        lines.append(f"    {v} = get({f.name!r}, _MISSING)")
        lines += [f"    if {v} is _MISSING:", f"        {v} = {make}"]
        if check:
            lines += ["    else:", *check]
    # Positional arguments where attrs allows them: cheaper than keywords.
    args = [f"a_{f.name}" for f in fields if f.init and not f.kw_only]
    args += [f"{f.alias}=a_{f.name}" for f in fields if f.init and f.kw_only]
    call = ", ".join(args)
    name = f"structure_{cls.__name__}"
    source = "\n".join([f"def {name}(o, _=None):", *lines, f"    return _cls({call})", ""])
    filename = f"<devin_async generated {name} {id(build)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), build.names)  # noqa: S102 - our own source
    fn: Callable[[object, object], Any] = build.names[name]  # type: ignore[assignment]
    return fn


def _register_structure_fn(tp: Any) -> None:
    fn: Callable[..., Any]
    try:
        fn = _make_structure_fn(tp)
    except (TypeError, NameError):  # a field it cannot express: cattrs' own function
        fn = make_dict_structure_fn(tp, _converter)
    if isinstance(tp, type):
        _converter.register_structure_hook(tp, fn)
    else:  # generic aliases are registered by predicate
        _converter.register_structure_hook_func(lambda t: t == tp, fn)


_SESSION_PAGE = Page[Session]
_MESSAGE_PAGE = Page[Message]

# Nested classes first, so their hooks are found when the outer ones are generated.
for _tp in (PullRequest, Session, _SESSION_PAGE, Message, _MESSAGE_PAGE, Attachment, WaitState):
    _register_structure_fn(_tp)


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
    SessionSecret, make_dict_unstructure_fn(SessionSecret, _converter)
)


# A bounded repr: a snippet never walks (or recurses through) a whole large body.
_REPR = reprlib.Repr()  # keyword arguments to Repr() need Python 3.12
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist = 4, 8, 8
_REPR.maxstring = _REPR.maxother = _SNIPPET


def _snippet(data: object) -> str:
    if isinstance(data, bytes):
        return data[:_SNIPPET].decode("utf-8", "replace")
    return _REPR.repr(data)[:_SNIPPET]


_decode_json = json.JSONDecoder().decode


def loads(body: bytes) -> Any:
    """Decode a JSON body, raising ResponseValidationError when it is not JSON."""
    try:
        # JSON over HTTP is UTF-8 (RFC 8259 section 8.1): decoding it first is cheaper
        # than json.loads(bytes), which sniffs for UTF-16/32 on every call.
        return _decode_json(body.decode())
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError
        pass
    try:
        return json.loads(body)  # a BOM or UTF-16/32: whatever the stdlib accepts
    except (ValueError, RecursionError) as exc:
        raise ResponseValidationError(
            f"response body is not valid JSON: {exc}", body=_snippet(body)
        ) from None


def _invalid_response(data: object, cls: Any, exc: Exception) -> ResponseValidationError:
    name = getattr(get_origin(cls) or cls, "__name__", str(cls))
    reason = str(exc) if isinstance(exc, _Invalid) else f"{type(exc).__name__}: {exc}"
    return ResponseValidationError(f"response is not a valid {name}: {reason}", body=_snippet(data))


def structure(data: object, cls: type[T]) -> T:
    """Structure decoded JSON into ``cls``, raising ResponseValidationError on a bad shape."""
    try:
        return _converter.structure(data, cls)
    except Exception as exc:  # cattrs, KeyError, TypeError, ...: all mean "bad shape"
        raise _invalid_response(data, cls, exc) from None


# The hot paths call their hooks directly rather than through the converter's dispatch.
_structure_session_hook = _converter.get_structure_hook(Session)
_structure_session_page_hook = _converter.get_structure_hook(_SESSION_PAGE)


def structure_session(data: object) -> Session:
    """Structure a decoded SessionResponse."""
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
        raise _invalid_response(data, Page, exc) from None
    return page


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


def dumps_create_request(request: CreateSessionRequest) -> bytes:
    """Encode a create request as compact JSON bytes, leaving unset fields out."""
    payload = _converter.unstructure(request)
    return json.dumps(payload, separators=(",", ":")).encode()
