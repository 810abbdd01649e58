"""Model shapes: open str-enums, the create request's checks, secrets kept out of reprs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import attrs
import pytest

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

ENUMS: list[type[StrEnum]] = [
    SessionStatus,
    StatusDetail,
    SessionOrigin,
    SessionCategory,
    DevinMode,
    AdvancedMode,
]
MEMBERS = [member for enum in ENUMS for member in enum]

# Every array field of the spec's SessionCreateRequest.
LIST_FIELDS = [
    "tags",
    "attachment_urls",
    "knowledge_ids",
    "repos",
    "secret_ids",
    "session_links",
]

# https://docs.devin.ai/sdk/api/DevinApi/interfaces/SessionCreateRequest.md
SPEC_CREATE_FIELDS = {
    "prompt",
    "title",
    "tags",
    "attachment_urls",
    "bypass_approval",
    "child_playbook_id",
    "create_as_user_id",
    "devin_mode",
    "knowledge_ids",
    "max_acu_limit",
    "platform",
    "playbook_id",
    "repos",
    "resumable",
    "secret_ids",
    "session_links",
    "session_secrets",
    "structured_output_required",
    "structured_output_schema",
    "advanced_mode",
}

SECRET_VALUE = "s3cr3t-value-do-not-print"


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: f"{type(m).__name__}.{m.name}")
def test_enum_member_is_its_string(member: StrEnum) -> None:
    value = member.value
    assert member == value
    assert value == member
    assert isinstance(member, str)
    assert str(member) == value
    assert f"{member}" == value
    assert hash(member) == hash(value)  # so members and strings mix in sets and dicts


SPEC = Path(__file__).resolve().parents[1] / "spec" / "devin-v3-sessions.openapi.yaml"
# Our enum -> its schema under the spec's components.schemas.
SPEC_ENUMS: dict[type[StrEnum], str] = {
    SessionStatus: "SessionStatus",
    StatusDetail: "SessionStatusDetail",
    SessionOrigin: "SessionOrigin",
    SessionCategory: "SessionCategory",
    DevinMode: "DevinMode",
    AdvancedMode: "AdvancedMode",
}


def spec_enum(schema: str) -> set[str]:
    """Return the ``enum`` of ``components.schemas.<schema>`` in the repository's spec.

    The spec writes enums as ``enum: [a, b]`` or as a block list; a small reader keeps
    the test free of a YAML dependency.
    """
    lines = SPEC.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"    {schema}:")
    block = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith("      "):
            break  # the next schema
        block.append(line)
    at = next(i for i, line in enumerate(block) if line.strip().startswith("enum:"))
    inline = block[at].split("enum:", 1)[1].strip()
    if inline:
        return {v.strip() for v in inline.strip("[]").split(",")}
    values = set()
    for line in block[at + 1 :]:
        if not line.strip().startswith("- "):
            break
        values.add(line.strip()[2:].strip())
    return values


@pytest.mark.parametrize("enum", list(SPEC_ENUMS), ids=lambda e: e.__name__)
def test_enum_values_match_the_spec(enum: type[StrEnum]) -> None:
    # Every documented value has a named constant; unknown ones still decode (test_convert).
    assert {m.value for m in enum} == spec_enum(SPEC_ENUMS[enum])


def test_the_spec_reader_sees_grown_enums() -> None:
    assert "creating" in spec_enum("SessionStatus")
    assert {"code_review", "security", "production_investigation"} <= spec_enum("SessionCategory")
    assert "code_scan" in spec_enum("SessionOrigin")
    assert "total_session_limit_exceeded" in spec_enum("SessionStatusDetail")


def test_create_request_has_every_spec_field() -> None:
    # idempotency_key is the client's own: it is never sent (see test_convert).
    assert set(attrs.fields_dict(CreateSessionRequest)) == {*SPEC_CREATE_FIELDS, "idempotency_key"}


def test_create_request_only_prompt_is_required() -> None:
    request = CreateSessionRequest(prompt="Fix the bug")
    assert request.prompt == "Fix the bug"
    unset = {name: getattr(request, name) for name in SPEC_CREATE_FIELDS - {"prompt"}}
    assert set(unset.values()) == {None}


def test_create_request_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        CreateSessionRequest("Fix the bug")  # type: ignore[misc]


@pytest.mark.parametrize("field", LIST_FIELDS)
def test_create_request_converts_lists_to_tuples(field: str) -> None:
    request = CreateSessionRequest(prompt="p", **{field: ["a", "b"]})
    assert getattr(request, field) == ("a", "b")


@pytest.mark.parametrize(
    "iterable",
    [["a", "b"], ("a", "b"), (x for x in "ab"), {"a": 1, "b": 2}.keys()],
    ids=["list", "tuple", "generator", "dict-keys"],
)
def test_create_request_accepts_any_iterable_for_lists(iterable: Any) -> None:
    assert CreateSessionRequest(prompt="p", tags=iterable).tags == ("a", "b")


def test_create_request_converts_secret_list_to_tuple() -> None:
    secret = SessionSecret("TOKEN", "v")
    assert CreateSessionRequest(prompt="p", session_secrets=[secret]).session_secrets == (secret,)


@pytest.mark.parametrize("field", [*LIST_FIELDS, "session_secrets"])
@pytest.mark.parametrize("value", ["abc", b"abc"], ids=["str", "bytes"])
def test_create_request_rejects_bare_string_for_list(field: str, value: object) -> None:
    with pytest.raises(TypeError, match="not a single string"):
        CreateSessionRequest(prompt="p", **{field: value})


@pytest.mark.parametrize(
    "prompt", ["", " ", "\n\t", None, 42], ids=["empty", "space", "whitespace", "none", "int"]
)
def test_create_request_rejects_empty_prompt(prompt: Any) -> None:
    with pytest.raises(ValueError, match="prompt"):
        CreateSessionRequest(prompt=prompt)


def test_create_request_is_frozen() -> None:
    request = CreateSessionRequest(prompt="p")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.prompt = "q"  # type: ignore[misc]


def test_create_request_evolve_keeps_conversion() -> None:
    request = attrs.evolve(CreateSessionRequest(prompt="p"), repos=["o/r"])
    assert request.repos == ("o/r",)


def test_secret_value_is_not_in_repr() -> None:
    secret = SessionSecret("API_TOKEN", SECRET_VALUE)
    assert secret.value == SECRET_VALUE
    assert SECRET_VALUE not in repr(secret)
    assert SECRET_VALUE not in str(secret)
    assert "API_TOKEN" in repr(secret)


def test_secret_value_is_not_in_repr_of_request() -> None:
    request = CreateSessionRequest(
        prompt="p", session_secrets=[SessionSecret("API_TOKEN", SECRET_VALUE, sensitive=False)]
    )
    assert SECRET_VALUE not in repr(request)
    assert "API_TOKEN" in repr(request)


def test_secret_is_sensitive_by_default() -> None:
    assert SessionSecret("K", "v").sensitive is True


def test_session_defaults_for_optional_fields() -> None:
    session = Session(
        session_id="devin-1",
        url="https://app.devin.ai/sessions/1",
        status="running",
        org_id="org-1",
        created_at=1,
        updated_at=2,
        acus_consumed=0.0,
    )
    assert session.tags == ()
    assert session.pull_requests == ()
    assert session.status_detail is None
    assert session.is_archived is False
    assert session.status == SessionStatus.RUNNING


def test_pull_request_state_is_optional() -> None:
    assert PullRequest("https://github.com/o/r/pull/1").pr_state is None
