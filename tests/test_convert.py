"""The converter: wire JSON <-> models, strict JSON types, open enums, omitted unset fields."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import attrs
import pytest

from devin_async._convert import dumps_create_request, loads, structure, structure_session
from devin_async._errors import ResponseValidationError
from devin_async._models import (
    AdvancedMode,
    CreateSessionRequest,
    DevinMode,
    PullRequest,
    Session,
    SessionCategory,
    SessionOrigin,
    SessionSecret,
    SessionStatus,
    StatusDetail,
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
    )
    payload = _dumped(request)
    assert set(payload) == set(attrs.fields_dict(CreateSessionRequest))
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
