"""The msgspec way gives what the cattrs way gives, for a session body and a session dict.

The cattrs way is ``loads(body)`` (msgspec or the stdlib into plain values), then the
cattrs-generated structuring function. ``decode_session`` (straight from bytes) and
``structure_session`` (a decoded dict, through ``msgspec.convert``) must each return an
equal ``Session`` with values of the same classes (enum members, tuples, ``int`` kept
``int``), or raise the same ``ResponseValidationError``, for every body: the shared
fixtures, the benchmark payload, hand-picked edge cases of the JSON parser, and
hypothesis-generated bodies mixing good values, wrong types, missing and unknown keys.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devin_async import DevinClient, PullRequest, ResponseValidationError, Session, SessionStatus
from devin_async._convert import (
    _invalid_response,
    _session_by_cattrs,
    _wire,
    decode_session,
    loads,
    structure_session,
)
from devin_async._protocol import Request, Response
from devin_async.testing import MockTransport, mock_response

FIELDS = [a.name for a in attrs.fields(Session)]


def _by_cattrs(data: object) -> Session:
    try:
        session: Session = _session_by_cattrs(data, Session)
    except Exception as exc:
        raise _invalid_response(data, Session, exc) from None
    return session


def _outcome(decode: Any, value: object) -> object:
    try:
        return decode(value)
    except ResponseValidationError as exc:
        return ("raised", str(exc), exc.body)


def _usual(body: bytes) -> object:
    return _outcome(lambda b: _by_cattrs(loads(b)), body)


def _fast(body: bytes) -> object:
    return _outcome(decode_session, body)


def _typed(value: object) -> object:
    """Return ``value`` with the class of every part: 1 and 1.0, a str and a member differ."""
    if attrs.has(type(value)):
        return (type(value), tuple(_typed(v) for v in attrs.astuple(value, recurse=False)))
    if isinstance(value, tuple | list):
        return (type(value), tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return (type(value), tuple((_typed(k), _typed(v)) for k, v in value.items()))
    return (type(value), repr(value))


def _same(body: bytes) -> None:
    usual = _typed(_usual(body))
    assert _typed(_fast(body)) == usual, body
    try:
        data = loads(body)
    except ResponseValidationError:
        return
    assert _typed(_outcome(structure_session, data)) == usual, data


def test_the_shared_sessions_decode_the_same(session_json: dict[str, Any]) -> None:
    from benchmarks._payload import BODY

    minimal = {k: session_json[k] for k in FIELDS[:7]}
    for data in (session_json, minimal, {**session_json, "status": "not-yet-known"}):
        _same(json.dumps(data).encode())
    _same(BODY)
    session = decode_session(BODY)
    assert session.status is SessionStatus.RUNNING
    assert session == structure_session(json.loads(BODY))


# Each of these is parsed differently by one of msgspec's typed decoding, its untyped
# decoding and the stdlib, or is refused by one of them only.
EDGES = [
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":3}',  # an integer acus_consumed stays an integer
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":1e400}',  # only the stdlib takes it (as inf)
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":0.5,"extra":"\xff"}',  # bad UTF-8 in an unknown key
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":0.5,"extra":1}',  # an unknown key is ignored
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":0.5,"status":1}',  # a duplicate key: the last counts
    b'{"session_id":"a","url":"u","status":1,"org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":0.5,"status":"exit"}',
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1.0,'
    b'"updated_at":2,"acus_consumed":0.5}',  # a float timestamp
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":true,'
    b'"updated_at":2,"acus_consumed":false}',
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":'
    b'100000000000000000000000,"updated_at":2,"acus_consumed":0.5}',  # beyond 64 bits
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":0.5,"structured_output":{"x":NaN}}',  # stdlib only
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":0.5,"pull_requests":[{"pr_url":"p","x":1}]}',
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":0.5,"pull_requests":[null],"tags":"ab"}',
    b'\xef\xbb\xbf{"session_id":"a","url":"u","status":"exit","org_id":"o",'
    b'"created_at":1,"updated_at":2,"acus_consumed":0.5}',  # a BOM: the stdlib's
    '{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    '"updated_at":2,"acus_consumed":0.5}'.encode("utf-16"),
    b'{"session_id":"a","url":"u","status":"exit","org_id":"o","created_at":1,'
    b'"updated_at":2,"acus_consumed":0.5,"structured_output":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"session_id":null}',
    b"[]",
    b"not json",
    b"",
]


@pytest.mark.parametrize("body", EDGES)
def test_parser_edge_cases_decode_the_same(body: bytes) -> None:
    _same(body)


def test_bad_utf8_in_an_unknown_key_is_refused() -> None:
    # msgspec skips a key its Struct lacks without checking the text: taken as it is,
    # this body would become a Session although it is not JSON.
    with pytest.raises(ResponseValidationError, match="not valid JSON"):
        decode_session(EDGES[2])


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
_GOOD = {
    "status": st.sampled_from(["running", "exit", "brand_new", "SUSPENDED"]),
    "status_detail": st.sampled_from([None, "working", "brand_new"]),
    "category": st.sampled_from([None, "bug_fixing", "brand_new"]),
    "origin": st.sampled_from([None, "api", "brand_new"]),
    "created_at": st.integers(),
    "updated_at": st.integers(),
    "acus_consumed": st.integers() | st.floats(allow_nan=False),
    "tags": st.lists(st.text(), max_size=3),
    "pull_requests": st.lists(
        st.fixed_dictionaries({"pr_url": st.text()}, optional={"pr_state": st.none() | st.text()}),
        max_size=2,
    ),
    "child_session_ids": st.none() | st.lists(st.text(), max_size=2),
    "is_archived": st.booleans(),
    "structured_output": st.none() | st.dictionaries(st.text(), _JSON_VALUES, max_size=3),
}


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    data: dict[str, Any] = {}
    for name in FIELDS:
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        good = _GOOD.get(name, st.text() if FIELDS.index(name) < 7 else st.none() | st.text())
        data[name] = draw(good if draw(st.integers(0, 5)) else _JSON_VALUES)
    if draw(st.booleans()):
        data.update(draw(st.dictionaries(st.text(max_size=3), _JSON_VALUES, max_size=2)))
    return json.dumps(data, ensure_ascii=draw(st.booleans())).encode()


@settings(
    max_examples=400, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(_bodies())
def test_generated_bodies_decode_the_same(body: bytes) -> None:
    _same(body)


@attrs.frozen(kw_only=True)
class _ByName:
    a: int


@attrs.frozen
class _Made:
    a: tuple[int, ...] = attrs.Factory(tuple)


@pytest.mark.parametrize(
    "tp", [dict[str, int], list[int], _ByName, _Made, frozenset[str]], ids=repr
)
def test_types_without_an_exact_msgspec_type_are_refused(tp: Any) -> None:
    with pytest.raises(TypeError):
        _wire(tp)


async def test_get_session_takes_the_fast_way_and_the_usual_one() -> None:
    good = {**dict.fromkeys(FIELDS[:4], "x"), **dict.fromkeys(FIELDS[4:7], 1)}

    def answer(request: Request) -> Response:
        if request.session_id == "devin-1":
            return mock_response(json=good)
        return mock_response(content=EDGES[2])

    async with DevinClient("test-key", org_id="org-x", transport=MockTransport(answer)) as client:
        assert (await client.get_session("1")).created_at == 1
        with pytest.raises(ResponseValidationError, match="not valid JSON"):
            await client.get_session("2")


def test_a_nullable_model_field_is_fixed_unless_null() -> None:
    wire, fix = _wire(PullRequest | None)
    assert fix is not None
    assert fix(None) is None
    assert fix(msgspec.convert({"pr_url": "p"}, wire)) == PullRequest("p")


def test_a_session_dict_is_tried_by_msgspec_first() -> None:
    # Only msgspec takes a tuple as an array: a tuple of tags shows which way was taken.
    data = {**dict.fromkeys(FIELDS[:4], "x"), **dict.fromkeys(FIELDS[4:7], 1), "tags": ("t",)}
    data["status"] = "running"  # a new value would be refused by msgspec: see below
    assert structure_session(data).tags == ("t",)
    with pytest.raises(ResponseValidationError, match="tags: expected an array"):
        _by_cattrs(data)


def test_a_new_enum_value_is_kept_as_its_string_the_cattrs_way() -> None:
    # msgspec takes only the members an enum knows; a new value is left to cattrs, which
    # keeps it as a plain string (the tuple of tags shows which way was taken).
    data = {**dict.fromkeys(FIELDS[:4], "x"), **dict.fromkeys(FIELDS[4:7], 1), "tags": ("t",)}
    data["status"] = "hibernating"
    with pytest.raises(ResponseValidationError, match="tags: expected an array"):
        structure_session(data)
    body = json.dumps({**data, "tags": ["t"], "status_detail": "pondering"}).encode()
    session = decode_session(body)
    assert (session.status, session.status_detail) == ("hibernating", "pondering")
    assert type(session.status) is str
    assert type(session.status_detail) is str
    known = decode_session(body.replace(b"hibernating", b"running"))
    assert known.status is SessionStatus.RUNNING
