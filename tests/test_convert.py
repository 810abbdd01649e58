"""The converter: wire JSON <-> models, strict JSON types, open enums, omitted unset fields."""

from __future__ import annotations

import json
import math
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import attrs
import pytest

from devin_async._convert import (
    dumps_create_request,
    dumps_wait_state,
    loads,
    loads_wait_state,
    structure,
    structure_attachments,
    structure_message_page,
    structure_session,
    structure_session_page,
    structure_tags,
)
from devin_async._errors import ResponseValidationError
from devin_async._models import (
    AdvancedMode,
    Attachment,
    CreateSessionRequest,
    DevinMode,
    Message,
    MessageSource,
    Page,
    PullRequest,
    Session,
    SessionCategory,
    SessionOrigin,
    SessionSecret,
    SessionStatus,
    StatusDetail,
    WaitState,
)

# SessionResponse.required of the spec, minus tags/pull_requests, which the model defaults
# to empty rather than failing a whole response over.
REQUIRED = ["session_id", "url", "status", "org_id", "created_at", "updated_at", "acus_consumed"]
NULLABLE = [
    "status_detail",
    "category",
    "subcategory",
    "origin",
    "child_session_ids",
    "parent_session_id",
    "playbook_id",
    "service_user_id",
    "user_id",
    "title",
    "structured_output",
]
ENUM_FIELDS: list[tuple[str, type[StrEnum]]] = [
    ("status", SessionStatus),
    ("status_detail", StatusDetail),
    ("category", SessionCategory),
    ("origin", SessionOrigin),
]


def _with(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**payload, **changes}


# ------------------------------------------------------------------ structuring sessions


def test_full_session_response_structures(session_json: dict[str, Any]) -> None:
    session = structure_session(session_json)

    assert session == Session(
        session_id="devin-0123456789abcdef",
        url="https://app.devin.ai/sessions/0123456789abcdef",
        status=SessionStatus.RUNNING,
        org_id="org-abc",
        created_at=1_700_000_000,
        updated_at=1_700_000_100,
        acus_consumed=1.25,
        tags=("backend", "urgent"),
        pull_requests=(
            PullRequest("https://github.com/o/r/pull/1", "open"),
            PullRequest("https://github.com/o/r/pull/2", None),
        ),
        status_detail=StatusDetail.WORKING,
        category=SessionCategory.BUG_FIXING,
        subcategory="Crash fixes",
        origin=SessionOrigin.API,
        child_session_ids=("devin-child1", "devin-child2"),
        parent_session_id="devin-parent",
        is_archived=True,
        playbook_id="playbook-1",
        service_user_id="service-user-1",
        user_id="user-1",
        title="Fix the crash",
        structured_output={"result": "ok", "score": 3, "nested": {"items": [1, 2]}},
    )


def test_every_session_field_is_in_the_payload(session_json: dict[str, Any]) -> None:
    # The fixture is the spec's SessionResponse; the model names its fields the same.
    assert set(attrs.fields_dict(Session)) == set(session_json)


def test_minimal_session_uses_defaults(session_json: dict[str, Any]) -> None:
    session = structure_session({key: session_json[key] for key in REQUIRED})
    assert session.tags == ()
    assert session.pull_requests == ()
    assert session.is_archived is False
    assert all(getattr(session, name) is None for name in NULLABLE)


def test_null_optional_fields_become_none(session_json: dict[str, Any]) -> None:
    session = structure_session(_with(session_json, **dict.fromkeys(NULLABLE)))
    assert all(getattr(session, name) is None for name in NULLABLE)


@pytest.mark.parametrize(
    ("field", "member"),
    [(field, member) for field, enum in ENUM_FIELDS for member in enum],
    ids=lambda x: str(x),
)
def test_known_enum_values_become_members(
    session_json: dict[str, Any], field: str, member: StrEnum
) -> None:
    value = getattr(structure_session(_with(session_json, **{field: member.value})), field)
    assert value is member


@pytest.mark.parametrize(("field", "enum"), ENUM_FIELDS, ids=[f for f, _ in ENUM_FIELDS])
def test_unknown_enum_value_is_kept_as_plain_string(
    session_json: dict[str, Any], field: str, enum: type[StrEnum]
) -> None:
    value = getattr(structure_session(_with(session_json, **{field: "some_new_state"})), field)
    assert type(value) is str
    assert value == "some_new_state"
    assert value not in set(enum)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status_detail", "user_usage_limit_exceeded"),
        ("status_detail", "contract_expired"),
        ("origin", "scheduled"),
    ],
    ids=lambda x: str(x),
)
def test_values_seen_in_the_field_but_undocumented_decode_as_text(
    session_json: dict[str, Any], field: str, value: str
) -> None:
    # Third-party code reports these (API reference section 11); they have no constant.
    assert getattr(structure_session(_with(session_json, **{field: value})), field) == value


def test_unknown_keys_are_ignored(session_json: dict[str, Any]) -> None:
    payload = _with(session_json, is_advanced=True, future_field={"x": [1]}, another=None)
    assert structure_session(payload) == structure_session(session_json)


def test_integer_is_a_valid_number(session_json: dict[str, Any]) -> None:
    assert structure_session(_with(session_json, acus_consumed=3)).acus_consumed == 3


@pytest.mark.parametrize("key", REQUIRED)
def test_missing_required_key_is_a_validation_error(session_json: dict[str, Any], key: str) -> None:
    payload = {k: v for k, v in session_json.items() if k != key}
    with pytest.raises(ResponseValidationError) as info:
        structure_session(payload)
    assert type(info.value) is ResponseValidationError
    assert "Session" in str(info.value)


WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("int-for-string", "session_id", 123),
    ("int-for-url", "url", 1),
    ("null-for-required-string", "org_id", None),
    ("int-for-optional-string", "title", 5),
    ("bool-for-int", "created_at", True),
    ("float-for-int", "updated_at", 1.5),
    ("string-for-int", "created_at", "1700000000"),
    ("string-for-number", "acus_consumed", "1.5"),
    ("bool-for-number", "acus_consumed", False),
    ("int-for-bool", "is_archived", 1),
    ("string-for-bool", "is_archived", "true"),
    ("int-for-enum", "status", 1),
    ("null-for-required-enum", "status", None),
    ("list-for-optional-enum", "status_detail", ["working"]),
    ("int-in-string-array", "tags", ["a", 1]),
    # Regression: cattrs turned a string into a tuple of its characters, ("a", "b", "c").
    ("string-for-array", "tags", "abc"),
    ("string-for-optional-array", "child_session_ids", "ab"),
    ("object-for-array", "tags", {"a": 1}),
    ("null-for-array", "tags", None),
    ("string-for-object-array", "pull_requests", "x"),
    ("int-in-nested-object", "pull_requests", [{"pr_url": 1, "pr_state": None}]),
    ("missing-nested-key", "pull_requests", [{"pr_state": "open"}]),
    ("list-for-object", "structured_output", [["a", 1]]),
    ("string-for-object", "structured_output", "{}"),
]


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for _, f, v in WRONG_TYPES], ids=[i for i, _, _ in WRONG_TYPES]
)
def test_wrong_json_type_is_a_validation_error(
    session_json: dict[str, Any], field: str, value: Any
) -> None:
    with pytest.raises(ResponseValidationError) as info:
        structure_session(_with(session_json, **{field: value}))
    assert type(info.value) is ResponseValidationError
    # Nothing of cattrs leaks, not even as the cause or context.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert info.value.body


@pytest.mark.parametrize(
    "data", [None, [], "session", 42, True], ids=["null", "array", "string", "int", "bool"]
)
def test_non_object_is_a_validation_error(data: object) -> None:
    with pytest.raises(ResponseValidationError):
        structure_session(data)


def test_structure_error_carries_a_bounded_snippet(session_json: dict[str, Any]) -> None:
    payload = _with(session_json, created_at="x", title="t" * 10_000)
    with pytest.raises(ResponseValidationError) as info:
        structure_session(payload)
    assert info.value.body.startswith("{")
    assert 0 < len(info.value.body) < 1_000


def test_structure_names_the_target_class() -> None:
    with pytest.raises(ResponseValidationError, match="PullRequest"):
        structure({"pr_state": "open"}, PullRequest)


# ------------------------------------------------------------------ loads


def test_loads_returns_decoded_json() -> None:
    assert loads(b'{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}


@pytest.mark.parametrize(
    ("body", "snippet_start"),
    [
        (b"<html>502 Bad Gateway</html>", "<html>502"),
        (b'{"a": ', '{"a": '),
        (b"", ""),
        (b'{"a": "\xff\xfe"}', '{"a": "\ufffd'),
        (b"\xff\xfe\xfd", "\ufffd"),
    ],
    ids=["html", "truncated", "empty", "invalid-utf8-in-string", "invalid-utf8"],
)
def test_loads_invalid_body_is_a_validation_error(body: bytes, snippet_start: str) -> None:
    with pytest.raises(ResponseValidationError, match="not valid JSON") as info:
        loads(body)
    assert type(info.value) is ResponseValidationError
    assert info.value.body.startswith(snippet_start)


def test_loads_snippet_is_bounded() -> None:
    body = b"x" * 100_000
    with pytest.raises(ResponseValidationError) as info:
        loads(body)
    assert 0 < len(info.value.body) < 1_000
    assert body.decode().startswith(info.value.body)


def test_loads_too_deep_nesting_is_a_validation_error() -> None:
    with pytest.raises(ResponseValidationError):
        loads(b"[" * 100_000 + b"]" * 100_000)


# ------------------------------------------------------------------ dumps_create_request


def _dumped(request: CreateSessionRequest) -> dict[str, Any]:
    body = dumps_create_request(request)
    assert isinstance(body, bytes)
    result: dict[str, Any] = json.loads(body)
    return result


def test_dumps_omits_unset_fields() -> None:
    assert dumps_create_request(CreateSessionRequest(prompt="Fix it")) == b'{"prompt":"Fix it"}'


def test_idempotency_key_is_never_sent() -> None:
    request = CreateSessionRequest(prompt="Fix it", idempotency_key="job-1")
    assert dumps_create_request(request) == b'{"prompt":"Fix it"}'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bypass_approval", False),
        ("resumable", False),
        ("structured_output_required", False),
        ("max_acu_limit", 0),
        ("title", ""),
        ("tags", []),
        ("structured_output_schema", {}),
    ],
    ids=lambda x: str(x),
)
def test_dumps_keeps_explicit_falsy_values(field: str, value: Any) -> None:
    assert _dumped(CreateSessionRequest(prompt="p", **{field: value})) == {
        "prompt": "p",
        field: value,
    }


def test_dumps_every_field() -> None:
    request = CreateSessionRequest(
        prompt="Fix it",
        title="t",
        tags=["a"],
        devin_mode=DevinMode.FAST,
        advanced_mode=AdvancedMode.ANALYZE,
        attachment_urls=["https://x/1"],
        bypass_approval=True,
        child_playbook_id="cp",
        create_as_user_id="user-1",
        knowledge_ids=["k"],
        max_acu_limit=5,
        platform="windows",
        playbook_id="p",
        repos=["o/r"],
        resumable=True,
        secret_ids=["s"],
        session_links=["https://x/2"],
        session_secrets=[SessionSecret("K", "v")],
        structured_output_required=True,
        structured_output_schema={"type": "object"},
        idempotency_key="job-1",
    )
    payload = _dumped(request)
    # Every field is sent but the idempotency key, which is the client's own.
    assert set(payload) == set(attrs.fields_dict(CreateSessionRequest)) - {"idempotency_key"}
    assert payload["devin_mode"] == "fast"
    assert payload["advanced_mode"] == "analyze"
    assert payload["tags"] == ["a"]
    assert payload["structured_output_schema"] == {"type": "object"}
    assert None not in payload.values()


def test_dumps_open_enum_string_as_is() -> None:
    assert _dumped(CreateSessionRequest(prompt="p", devin_mode="turbo"))["devin_mode"] == "turbo"


def test_dumps_sends_every_secret_key() -> None:
    request = CreateSessionRequest(
        prompt="p",
        session_secrets=[SessionSecret("A", "1"), SessionSecret("B", "2", sensitive=False)],
    )
    assert _dumped(request)["session_secrets"] == [
        {"key": "A", "value": "1", "sensitive": True},
        {"key": "B", "value": "2", "sensitive": False},
    ]


def test_dumps_is_compact() -> None:
    body = dumps_create_request(CreateSessionRequest(prompt="p", tags=["a", "b"]))
    assert b" " not in body


# ------------------------------------------------------------------ generated structure functions


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"created_at": True}, "created_at: expected integer, got bool"),
        ({"acus_consumed": "1"}, "acus_consumed: expected number, got str"),
        ({"tags": ["a", 1]}, r"tags\[1\]: expected string, got int"),
        ({"pull_requests": [{"pr_url": "u"}, {"pr_url": 1}]}, r"pull_requests\[1\]\.pr_url"),
        ({"pull_requests": [{}]}, r"pull_requests\[0\]\.pr_url: missing required field"),
        ({"status": None}, "status: expected a SessionStatus string, got NoneType"),
        ({"structured_output": [1]}, "structured_output: expected an object, got list"),
        ({"structured_output": {1: "x"}}, "structured_output: expected string, got int"),
    ],
    ids=["bool-int", "str-number", "item", "nested", "nested-missing", "enum", "object", "key"],
)
def test_validation_error_names_the_field(
    session_json: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(
        ResponseValidationError, match=f"^response is not a valid Session: {message}"
    ):
        structure_session(_with(session_json, **changes))


def test_missing_required_key_is_named(session_json: dict[str, Any]) -> None:
    payload = {k: v for k, v in session_json.items() if k != "url"}
    with pytest.raises(ResponseValidationError, match="Session: url: missing required field"):
        structure_session(payload)


def test_structure_through_the_converter_matches_the_fast_path(
    session_json: dict[str, Any],
) -> None:
    assert structure(session_json, Session) == structure_session(session_json)


def test_any_mapping_is_an_object(session_json: dict[str, Any]) -> None:
    assert structure_session(MappingProxyType(session_json)) == structure_session(session_json)


def test_str_and_int_subclasses_are_accepted(session_json: dict[str, Any]) -> None:
    session = structure_session(
        _with(session_json, title=SessionStatus.EXIT, created_at=_Count.ONE)
    )
    assert session.title == "exit"
    assert session.created_at == 1


def test_session_page_structures(session_json: dict[str, Any]) -> None:
    page = structure_session_page({"items": [session_json], "end_cursor": "c", "total": 1})
    assert page == Page(items=(structure_session(session_json),), end_cursor="c", total=1)
    assert page.has_next_page is False


def test_session_page_error_names_the_item(session_json: dict[str, Any]) -> None:
    bad = _with(session_json, created_at="x")
    with pytest.raises(ResponseValidationError, match=r"Page: items\[1\]\.created_at") as info:
        structure_session_page({"items": [session_json, bad]})
    assert info.value.__cause__ is None


class _Count(IntEnum):
    ONE = 1


T = TypeVar("T")


@attrs.frozen
class _Box(Generic[T]):
    value: T
    many: tuple[T, ...] = ()


@attrs.frozen(kw_only=True)
class _Shapes:
    number: float
    grid: tuple[tuple[int, ...], ...] = ()
    index: dict[str, tuple[int, ...]] | None = None
    loose: dict[Any, Any] = attrs.Factory(dict)
    items: list[int] = attrs.Factory(list)
    anything: Any = None
    box: _Box[str] | None = None
    free: tuple[Any, ...] = ()
    nested: tuple[_Box[int], ...] = ()


def _shapes(data: object) -> _Shapes:
    return structure(data, _Shapes)


def test_every_supported_shape_structures() -> None:
    data = {
        "number": 2,
        "grid": [[1, 2], []],
        "index": {"a": [1]},
        "loose": {"k": [None]},
        "items": [3],
        "anything": {"x": 1},
        "box": {"value": "v", "many": ["w"]},
        "free": [1, "x", None],
        "nested": [{"value": 1}],
    }
    assert _shapes(data) == _Shapes(
        number=2,
        grid=((1, 2), ()),
        index={"a": (1,)},
        loose={"k": [None]},
        items=[3],
        anything={"x": 1},
        box=_Box("v", ("w",)),
        free=(1, "x", None),
        nested=(_Box(1),),
    )


def test_defaults_and_factories_are_used() -> None:
    first, second = _shapes({"number": 1.5}), _shapes({"number": 1.5})
    assert first == _Shapes(number=1.5)
    assert first.items == []
    assert first.items is not second.items


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"number": True}, "number: expected number, got bool"),
        ({"number": 1, "grid": [[1], [2, True]]}, r"grid\[1\]\[1\]: expected integer, got bool"),
        ({"number": 1, "index": {"a": [1], "b": ["x"]}}, r"index\.b\[0\]: expected integer"),
        ({"number": 1, "index": {"a": [1], 2: [1]}}, "index: expected string, got int"),
        ({"number": 1, "items": [True]}, "items: expected integer, got bool"),
        ({"number": 1, "box": {"value": 1}}, "box.value: expected string, got int"),
        ({"number": 1, "box": []}, "box: expected an object, got list"),
        ({"number": 1, "nested": [{"value": "x"}]}, r"nested\[0\]\.value: expected integer"),
        ({"number": 1, "nested": [{}]}, r"nested\[0\]\.value: missing required field"),
        ([], "expected an object, got list"),
        ("number", "expected an object, got str"),
    ],
    ids=[
        "bool",
        "nested-array",
        "object-value",
        "object-key",
        "list",
        "generic",
        "generic-not-object",
        "items",
        "items-missing",
        "root",
        "root-string",
    ],
)
def test_validation_error_names_the_path(data: object, message: str) -> None:
    with pytest.raises(
        ResponseValidationError, match=f"^response is not a valid _Shapes: {message}"
    ):
        _shapes(data)


@attrs.frozen
class _AllRequired:
    a: str
    derived: int = attrs.field(init=False, default=0)


@attrs.frozen
class _NoneRequired:
    a: str = "x"


def test_generics_and_simple_classes_structure() -> None:
    assert structure({"value": 1, "many": [2]}, _Box[int]) == _Box(1, (2,))
    with pytest.raises(ResponseValidationError, match="_Box: value: expected integer, got str"):
        structure({"value": "1"}, _Box[int])
    assert structure({"a": "y", "derived": 5}, _AllRequired) == _AllRequired("y")
    assert structure({}, _NoneRequired) == _NoneRequired()


@pytest.mark.parametrize(
    "data", [[], "a", 1, None, True], ids=["list", "str", "int", "null", "bool"]
)
def test_a_class_without_required_fields_still_needs_an_object(data: object) -> None:
    with pytest.raises(ResponseValidationError, match="_NoneRequired: expected an object"):
        structure(data, _NoneRequired)


@attrs.frozen
class _SelfDefault:
    a: int
    b: int = attrs.Factory(lambda self: self.a + 1, takes_self=True)


def test_a_class_with_factory_defaults_keeps_cattrs_function() -> None:
    assert structure({"a": 1}, _SelfDefault) == _SelfDefault(1, 2)
    assert structure({"a": 1, "b": 5}, _SelfDefault) == _SelfDefault(1, 5)
    with pytest.raises(ResponseValidationError, match="_SelfDefault: b: expected integer, got str"):
        structure({"a": 1, "b": "5"}, _SelfDefault)


@attrs.frozen
class _Checked:
    a: int = attrs.field(validator=attrs.validators.gt(0))


def test_a_class_refusing_its_fields_is_a_validation_error() -> None:
    with pytest.raises(ResponseValidationError, match="_Checked: ValueError: 'a' must be > 0"):
        structure({"a": 0}, _Checked)


@pytest.mark.parametrize(
    ("data", "tp", "expected"),
    [
        (["a"], tuple[str, ...], ("a",)),
        ("some_new_state", SessionStatus | str, "some_new_state"),
        ("exit", SessionStatus | str | None, SessionStatus.EXIT),
        (None, SessionStatus | str | None, None),
        (1.5, float, 1.5),
    ],
    ids=["array", "open-enum", "open-enum-member", "open-enum-null", "number"],
)
def test_converter_hooks_for_other_types(data: object, tp: Any, expected: object) -> None:
    assert structure(data, tp) == expected


@pytest.mark.parametrize(
    ("data", "tp"),
    [("abc", tuple[str, ...]), (1, SessionStatus | str), (True, int), (1, str), (1, bool)],
    ids=["string-for-array", "int-for-enum", "bool-for-int", "int-for-str", "int-for-bool"],
)
def test_converter_hooks_for_other_types_are_strict(data: object, tp: Any) -> None:
    with pytest.raises(ResponseValidationError):
        structure(data, tp)


@pytest.mark.parametrize(
    "body",
    ['\ufeff{"a": "é"}'.encode(), '{"a": "é"}'.encode("utf-16"), '{"a": "é"}'.encode("utf-32")],
    ids=["utf-8-bom", "utf-16", "utf-32"],
)
def test_loads_accepts_what_the_stdlib_accepts(body: bytes) -> None:
    # msgspec takes UTF-8 only; anything else falls back to json.loads(bytes).
    assert loads(body) == {"a": "é"}


def test_loads_falls_back_to_the_stdlib_for_what_msgspec_refuses() -> None:
    # NaN, Infinity and a number out of float range are not JSON, but the stdlib reads them.
    data = loads(b'{"nan": NaN, "inf": -Infinity, "big": 1e400, "int": 123456789012345678901234}')
    assert math.isnan(data["nan"])
    assert data["inf"] == -math.inf
    assert data["big"] == math.inf
    assert data["int"] == 123456789012345678901234


def test_loads_gives_the_same_values_as_the_stdlib() -> None:
    document = {"title": "naïve 🚀 \u0000", "n": [-0.5e-7, 2**63, 1.0, 0], "o": {"": None}}
    body = json.dumps(document).encode()
    assert loads(body) == json.loads(body)


# ------------------------------------------------------------------ tags


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tags": []}, ()),
        ({"tags": ["a", "b"]}, ("a", "b")),
        ({"tags": ["a"], "session_id": "devin-1"}, ("a",)),
    ],
    ids=["empty", "two", "extra-keys"],
)
def test_structure_tags(data: object, expected: tuple[str, ...]) -> None:
    assert structure_tags(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        ["a"],
        None,
        "a",
        {},
        {"tag": ["a"]},
        {"tags": None},
        {"tags": "ab"},
        {"tags": ["a", 1]},
        {"tags": {"a": 1}},
    ],
    ids=[
        "bare-array",
        "null",
        "string",
        "empty-object",
        "misspelt-key",
        "null-tags",
        "string-tags",
        "int-tag",
        "object-tags",
    ],
)
def test_structure_tags_bad_shapes(data: object) -> None:
    with pytest.raises(ResponseValidationError, match="not a valid"):
        structure_tags(data)


# ------------------------------------------------------------------ attachments

ATTACHMENT = {
    "attachment_id": "att-1",
    "name": "report.pdf",
    "source": "devin",
    "url": "https://files.example/report.pdf",
    "content_type": "application/pdf",
}
# A user's upload with no content type, from a source this version does not know.
OTHER = {"attachment_id": "att-2", "name": "a.txt", "source": "slack-bot", "url": "u"}
ATTACHMENTS = (
    Attachment(
        "att-1",
        "report.pdf",
        MessageSource.DEVIN,
        ATTACHMENT["url"],
        content_type="application/pdf",
    ),
    Attachment("att-2", "a.txt", "slack-bot", "u", content_type=None),
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([ATTACHMENT, OTHER], ATTACHMENTS),
        ({"items": [ATTACHMENT, OTHER], "total": 2}, ATTACHMENTS),
        ([], ()),
        ({"items": []}, ()),
    ],
    ids=["bare-array", "items-envelope", "empty-array", "empty-envelope"],
)
def test_structure_attachments(data: object, expected: tuple[Attachment, ...]) -> None:
    attachments = structure_attachments(data)
    assert attachments == expected
    assert all(isinstance(a, Attachment) for a in attachments)
    if attachments:
        assert attachments[0].source is MessageSource.DEVIN
        assert type(attachments[1].source) is str


@pytest.mark.parametrize(
    "data",
    [
        None,
        "x",
        {"attachments": [ATTACHMENT]},
        {"items": None},
        {"items": "x"},
        [None],
        [{k: v for k, v in ATTACHMENT.items() if k != "name"}],
        [{**ATTACHMENT, "url": 1}],
        [{**ATTACHMENT, "source": None}],
        {"items": [{**ATTACHMENT, "content_type": 5}]},
    ],
    ids=[
        "null",
        "string",
        "other-envelope-key",
        "null-items",
        "string-items",
        "null-item",
        "missing-name",
        "int-url",
        "null-source",
        "int-content-type-in-envelope",
    ],
)
def test_structure_attachments_bad_shapes(data: object) -> None:
    with pytest.raises(ResponseValidationError, match="not a valid"):
        structure_attachments(data)


# ------------------------------------------------------------------ message pages


def test_message_page_keeps_an_unknown_source_as_text() -> None:
    page = structure_message_page(
        {
            "items": [
                {"event_id": "e1", "message": "Fix it", "source": "user", "created_at": 1},
                {"event_id": "e2", "message": "On it.", "source": "devin", "created_at": 2},
                {"event_id": "e3", "message": "Build ok", "source": "ci-bot", "created_at": 3},
            ],
            "end_cursor": "c3",
            "has_next_page": True,
            "total": 9,
        }
    )
    assert page == Page(
        (
            Message("e1", "Fix it", MessageSource.USER, 1),
            Message("e2", "On it.", MessageSource.DEVIN, 2),
            Message("e3", "Build ok", "ci-bot", 3),
        ),
        end_cursor="c3",
        has_next_page=True,
        total=9,
    )
    assert page.items[0].source is MessageSource.USER
    assert type(page.items[2].source) is str


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"items": [{"message": "m", "source": "user", "created_at": 1}]}, "event_id"),
        (
            {"items": [{"event_id": "e", "message": "m", "source": "user", "created_at": "1"}]},
            "created_at",
        ),
        (
            {"items": [{"event_id": "e", "message": None, "source": "user", "created_at": 1}]},
            "message",
        ),
        ({"items": "none"}, "items"),
        ([], "object"),
    ],
    ids=["missing-event-id", "string-created-at", "null-message", "string-items", "bare-array"],
)
def test_message_page_bad_shapes(data: object, where: str) -> None:
    with pytest.raises(ResponseValidationError, match=where):
        structure_message_page(data)


# ------------------------------------------------------------------ saved wait states


def test_wait_state_round_trips_through_text_and_bytes() -> None:
    state = WaitState("devin-1", status="running", status_detail="working", last_event_id="e3")
    text = dumps_wait_state(state)
    assert json.loads(text)["session_id"] == "devin-1"
    assert " " not in text
    assert loads_wait_state(text) == state
    assert loads_wait_state(text.encode()) == state
    assert loads_wait_state(dumps_wait_state(WaitState("devin-2"))) == WaitState("devin-2")


def test_wait_state_from_a_newer_version_loads() -> None:
    text = '{"session_id": "devin-1", "message_cursor": "c", "saved_by": "2.0"}'
    assert loads_wait_state(text) == WaitState("devin-1", message_cursor="c")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        "null",
        "42",
        '"devin-1"',
        '{"status": "running"}',
        '{"session_id": 1}',
        '{"session_id": "devin-1", "last_event_id": []}',
        b"\xff\xfe\x00",
        '{"session_id": "devin-1"',
    ],
    ids=[
        "empty",
        "not-json",
        "array",
        "null",
        "number",
        "bare-id",
        "no-session-id",
        "int-session-id",
        "array-event-id",
        "bad-bytes",
        "truncated",
    ],
)
def test_loads_wait_state_of_garbage_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="not a saved WaitState"):
        loads_wait_state(text)


def test_loads_wait_state_of_deeply_nested_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a saved WaitState"):
        loads_wait_state("[" * 100_000)
