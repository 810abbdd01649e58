"""Property-based fuzzing of everything that parses outside input.

Response bodies (random bytes, random JSON, schema-shaped sessions and pages with random
mutations, truncated and oversized bodies), error responses of any status with any body
and headers, Retry-After values, saved WaitStates and cursor pagination. The property is
always the same: the outcome is a model or one of our exceptions (``DevinError``;
``ValueError`` for ``loads_wait_state``, as documented), never another exception or a
hang. Where the right answer is known, it is checked too: a schema-valid session decodes
to exactly its fields, and a mutation is refused exactly when the model forbids it.

Every test runs a fixed number of derandomized examples (the ``FUZZ`` settings below),
so CI sees the same inputs on every run and no example database is written.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from pytest_aiohttp import AiohttpServer

from devin_async import (
    APIStatusError,
    Attachment,
    DevinClient,
    DevinError,
    Message,
    MessageSource,
    Page,
    Pager,
    PullRequest,
    RateLimitError,
    ResponseValidationError,
    Session,
    SessionCategory,
    SessionOrigin,
    SessionStatus,
    StatusDetail,
    UnprocessableEntityError,
    ValidationDetail,
    WaitState,
    dumps_wait_state,
    loads_wait_state,
)
from devin_async._convert import (
    loads,
    structure_attachments,
    structure_message_page,
    structure_session,
    structure_session_page,
    structure_tags,
)
from devin_async._protocol import Request, Response, parse_retry_after, status_error

# Derandomized: the same examples on every run (CI is deterministic); no database, so
# nothing is written next to the tests. deadline=None: a busy CI machine is not a bug.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NOW = 1_700_000_000.0  # a fixed "now", Unix seconds
GET = Request("GET", "/v3/organizations/org-1/sessions/devin-1")
URL = "https://api.devin.ai" + GET.path

# ------------------------------------------------------------------ strategies: JSON

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Values a careless server sends where another type belongs.
confusable: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, False, 0, 1, -1, 1.5, "", "1", "true", [], {}, ["x"]]
)
any_value = confusable | json_values


def mostly(good: st.SearchStrategy[Any], junk: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` three times in four, else ``junk``: most cases valid, many invalid."""
    # Not one_of(good, good, good, junk): Hypothesis draws each distinct branch equally.
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: junk if n == 0 else good)


def open_enum(values: list[str]) -> st.SearchStrategy[str]:
    """Known values of an open enum, or any string (a value the server adds tomorrow)."""
    return st.sampled_from(values) | st.text(max_size=12)


def values_of(enum: Any) -> list[str]:
    return [member.value for member in enum]


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


texts = st.text(max_size=16)
ints = st.integers(min_value=-(2**63), max_value=2**63)
numbers = ints | st.floats(allow_nan=False, allow_infinity=False)

pull_requests = st.fixed_dictionaries(
    {"pr_url": texts}, optional={"pr_state": nullable(texts), "extra": json_values}
)

# SessionResponse per the spec: its required keys, and any subset of the optional ones.
session_dicts = st.fixed_dictionaries(
    {
        "session_id": texts,
        "url": texts,
        "status": open_enum(values_of(SessionStatus)),
        "tags": st.lists(texts, max_size=4),
        "org_id": texts,
        "created_at": ints,
        "updated_at": ints,
        "acus_consumed": numbers,
        "pull_requests": st.lists(pull_requests, max_size=3),
    },
    optional={
        "status_detail": nullable(open_enum(values_of(StatusDetail))),
        "category": nullable(open_enum(values_of(SessionCategory))),
        "subcategory": nullable(texts),
        "origin": nullable(open_enum(values_of(SessionOrigin))),
        "child_session_ids": nullable(st.lists(texts, max_size=3)),
        "parent_session_id": nullable(texts),
        "is_archived": st.booleans(),
        "playbook_id": nullable(texts),
        "service_user_id": nullable(texts),
        "user_id": nullable(texts),
        "title": nullable(texts),
        "structured_output": nullable(st.dictionaries(texts, json_values, max_size=4)),
        "a_field_added_tomorrow": json_values,
    },
)
message_dicts = st.fixed_dictionaries(
    {
        "event_id": texts,
        "message": texts,
        "source": open_enum(values_of(MessageSource)),
        "created_at": ints,
    }
)
attachment_dicts = st.fixed_dictionaries(
    {
        "attachment_id": texts,
        "name": texts,
        "source": open_enum(values_of(MessageSource)),
        "url": texts,
    },
    optional={"content_type": nullable(texts)},
)


# ------------------------------------------------------------------ oracles
#
# What the models accept, field by field, written from the spec's JSON types (not from
# the decoder): a mutation is expected to be refused exactly when its field says no.


def is_str(v: object) -> bool:
    return isinstance(v, str)


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_bool(v: object) -> bool:
    return isinstance(v, bool)


def is_object(v: object) -> bool:
    return isinstance(v, dict)


def maybe(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or check(v)


def array_of(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def has_fields(
    required: dict[str, Callable[[object], bool]],
    optional: dict[str, Callable[[object], bool]] | None = None,
) -> Callable[[object], bool]:
    def check(v: object) -> bool:
        if not isinstance(v, dict) or not all(k in v and ok(v[k]) for k, ok in required.items()):
            return False
        return all(k not in v or ok(v[k]) for k, ok in (optional or {}).items())

    return check


is_pull_request = has_fields({"pr_url": is_str}, {"pr_state": maybe(is_str)})

# Required by the model (the spec also requires tags and pull_requests; the model
# defaults them to empty, which is more lenient and never refuses a valid body).
SESSION_REQUIRED: dict[str, Callable[[object], bool]] = {
    "session_id": is_str,
    "url": is_str,
    "status": is_str,
    "org_id": is_str,
    "created_at": is_int,
    "updated_at": is_int,
    "acus_consumed": is_number,
}
SESSION_OPTIONAL: dict[str, Callable[[object], bool]] = {
    "tags": array_of(is_str),
    "pull_requests": array_of(is_pull_request),
    "status_detail": maybe(is_str),
    "category": maybe(is_str),
    "subcategory": maybe(is_str),
    "origin": maybe(is_str),
    "child_session_ids": maybe(array_of(is_str)),
    "parent_session_id": maybe(is_str),
    "is_archived": is_bool,
    "playbook_id": maybe(is_str),
    "service_user_id": maybe(is_str),
    "user_id": maybe(is_str),
    "title": maybe(is_str),
    "structured_output": maybe(is_object),
}
is_session = has_fields(SESSION_REQUIRED, SESSION_OPTIONAL)
is_message = has_fields(
    {"event_id": is_str, "message": is_str, "source": is_str, "created_at": is_int}
)
is_attachment = has_fields(
    {"attachment_id": is_str, "name": is_str, "source": is_str, "url": is_str},
    {"content_type": maybe(is_str)},
)


def is_page_of(item: Callable[[object], bool]) -> Callable[[object], bool]:
    return has_fields(
        {"items": array_of(item)},
        {"end_cursor": maybe(is_str), "has_next_page": is_bool, "total": maybe(is_int)},
    )


def is_attachment_list(v: object) -> bool:
    """A bare array of attachments, or one under ``items`` (the docs show both)."""
    if isinstance(v, dict) and "items" in v:
        v = v["items"]
    return array_of(is_attachment)(v)


def expected_session(d: dict[str, Any]) -> Session:
    """The Session a schema-valid SessionResponse must decode to."""
    children = d.get("child_session_ids")
    return Session(
        session_id=d["session_id"],
        url=d["url"],
        status=d["status"],
        org_id=d["org_id"],
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        acus_consumed=d["acus_consumed"],
        tags=tuple(d["tags"]),
        pull_requests=tuple(
            PullRequest(p["pr_url"], p.get("pr_state")) for p in d["pull_requests"]
        ),
        status_detail=d.get("status_detail"),
        category=d.get("category"),
        subcategory=d.get("subcategory"),
        origin=d.get("origin"),
        child_session_ids=None if children is None else tuple(children),
        parent_session_id=d.get("parent_session_id"),
        is_archived=d.get("is_archived", False),
        playbook_id=d.get("playbook_id"),
        service_user_id=d.get("service_user_id"),
        user_id=d.get("user_id"),
        title=d.get("title"),
        structured_output=d.get("structured_output"),
    )


def outcome(decode: Callable[[Any], object], data: object) -> object:
    """Decode ``data``; return the model, or the DevinError. Anything else propagates."""
    try:
        return decode(data)
    except DevinError as exc:
        error = exc
    assert isinstance(error, ResponseValidationError), error
    assert isinstance(error.body, str)
    assert len(error.body) <= 200
    return error


def dumps(data: object) -> bytes:
    return json.dumps(data).encode()


DECODERS: dict[str, tuple[Callable[[Any], object], Callable[[object], bool]]] = {
    "session": (structure_session, is_session),
    "session page": (structure_session_page, is_page_of(is_session)),
    "message page": (structure_message_page, is_page_of(is_message)),
    "attachments": (structure_attachments, lambda v: is_attachment_list(v)),
    "tags": (structure_tags, has_fields({"tags": array_of(is_str)})),
}
MODEL_TYPES: dict[str, Callable[[object], bool]] = {
    "session": lambda r: isinstance(r, Session),
    "session page": lambda r: isinstance(r, Page) and all(isinstance(s, Session) for s in r.items),
    "message page": lambda r: isinstance(r, Page) and all(isinstance(m, Message) for m in r.items),
    "attachments": lambda r: isinstance(r, tuple) and all(isinstance(a, Attachment) for a in r),
    "tags": lambda r: isinstance(r, tuple) and all(isinstance(t, str) for t in r),
}


# ------------------------------------------------------------------ sessions


@FUZZ
@given(session_dicts)
def test_a_schema_valid_session_decodes_to_exactly_its_fields(data: dict[str, Any]) -> None:
    expected = expected_session(data)
    assert structure_session(data) == expected
    assert structure_session(loads(dumps(data))) == expected


@st.composite
def mutated_sessions(draw: st.DrawFn) -> tuple[object, bool]:
    """A schema-valid session with one mutation, and whether the model must accept it."""
    data: dict[str, Any] = draw(session_dicts)
    kind = draw(st.sampled_from(["drop", "replace", "add", "retype"]))
    if kind == "retype":
        other = draw(json_scalars | st.lists(json_values, max_size=3))
        return other, False
    if kind == "add":
        key = draw(st.text(max_size=8).filter(lambda k: k not in SESSION_REQUIRED))
        data[key] = draw(any_value)
    else:
        key = draw(st.sampled_from(sorted(SESSION_REQUIRED | SESSION_OPTIONAL)))
        if kind == "drop":
            data.pop(key, None)
        else:
            data[key] = draw(any_value)
    return data, is_session(data)


@FUZZ
@given(mutated_sessions())
def test_a_mutated_session_is_refused_exactly_when_the_model_forbids_it(
    case: tuple[object, bool],
) -> None:
    data, valid = case
    event("accepted" if valid else "refused")
    for decoded in (
        outcome(structure_session, data),
        outcome(lambda d: structure_session(loads(dumps(d))), data),
    ):
        assert isinstance(decoded, Session) is valid, decoded
    page = outcome(structure_session_page, {"items": [data], "has_next_page": False})
    assert isinstance(page, Page) is valid, page


# ------------------------------------------------------------------ envelopes


def envelopes(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Page envelopes: mostly well-formed, each member sometimes replaced by junk."""
    return st.fixed_dictionaries(
        {"items": mostly(st.lists(mostly(item, any_value), max_size=3), any_value)},
        optional={
            "end_cursor": mostly(nullable(texts), any_value),
            "has_next_page": mostly(st.booleans(), any_value),
            "total": mostly(nullable(ints), any_value),
        },
    )


@FUZZ
@given(envelopes(session_dicts))
def test_session_page_envelopes(data: dict[str, Any]) -> None:
    page = outcome(structure_session_page, data)
    event("page" if isinstance(page, Page) else "refused")
    assert isinstance(page, Page) is is_page_of(is_session)(data), page
    if isinstance(page, Page):
        assert page.items == tuple(expected_session(s) for s in data["items"])
        assert page.end_cursor == data.get("end_cursor")
        assert page.has_next_page is data.get("has_next_page", False)


@FUZZ
@given(envelopes(message_dicts))
def test_message_page_envelopes(data: dict[str, Any]) -> None:
    page = outcome(structure_message_page, data)
    assert isinstance(page, Page) is is_page_of(is_message)(data), page
    if isinstance(page, Page):
        assert [m.event_id for m in page.items] == [m["event_id"] for m in data["items"]]


@FUZZ
@given(st.lists(attachment_dicts | any_value, max_size=3) | any_value, st.booleans())
def test_attachment_lists_bare_or_enveloped(items: object, enveloped: bool) -> None:
    data = {"items": items} if enveloped else items
    result = outcome(structure_attachments, data)
    assert isinstance(result, tuple) is is_attachment_list(data), result


@FUZZ
@given(st.fixed_dictionaries({}, optional={"tags": st.lists(texts | any_value) | any_value}))
def test_tag_objects(data: dict[str, Any]) -> None:
    result = outcome(structure_tags, data)
    assert isinstance(result, tuple) is has_fields({"tags": array_of(is_str)})(data), result
    if isinstance(result, tuple):
        assert list(result) == data["tags"]


@FUZZ
@given(json_values | st.lists(json_values, max_size=3), st.sampled_from(sorted(DECODERS)))
@example({"items": []}, "attachments")
def test_arbitrary_json_is_a_model_or_a_validation_error(data: object, name: str) -> None:
    decode, valid = DECODERS[name]
    result = outcome(decode, data)
    if valid(data):
        assert MODEL_TYPES[name](result), result
    else:
        assert isinstance(result, ResponseValidationError)


# ------------------------------------------------------------------ bytes


def decode_body(name: str) -> Callable[[bytes], object]:
    decode = DECODERS[name][0]
    return lambda body: decode(loads(body))


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(sorted(DECODERS)))
@example(b"\xef\xbb\xbf{}", "session")  # a UTF-8 byte order mark
@example(b"\xff\xfe{\x00}\x00", "session")  # UTF-16
@example(b'{"items": [], "total": ' + b"9" * 5000 + b"}", "session page")  # int too long
@example(b"[" * 100_000, "attachments")
@example(b'{"tags": ["\\ud800"]}', "tags")  # a lone surrogate, escaped
def test_random_bytes_are_a_model_or_a_validation_error(body: bytes, name: str) -> None:
    result = outcome(decode_body(name), body)
    assert MODEL_TYPES[name](result) or isinstance(result, ResponseValidationError)


@FUZZ
@given(session_dicts, st.data())
def test_every_truncation_of_a_session_body_is_refused(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    body = dumps(data)
    cut = draw.draw(st.integers(min_value=0, max_value=len(body) - 1), label="cut")
    with pytest.raises(ResponseValidationError, match="not valid JSON"):
        loads(body[:cut])


@FUZZ
@given(session_dicts, st.data())
def test_corrupted_session_bodies_are_a_session_or_a_validation_error(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    body = bytearray(dumps(data))
    for _ in range(draw.draw(st.integers(min_value=1, max_value=4), label="edits")):
        at = draw.draw(st.integers(min_value=0, max_value=max(len(body) - 1, 0)), label="at")
        byte = draw.draw(st.integers(min_value=0, max_value=255), label="byte")
        action = draw.draw(st.sampled_from(["replace", "insert", "delete"]), label="action")
        if action == "insert":
            body.insert(at, byte)
        elif body and action == "replace":
            body[at] = byte
        elif body:
            del body[at]
    result = outcome(decode_body("session"), bytes(body))
    assert isinstance(result, Session | ResponseValidationError)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_a_session_in_any_json_encoding_decodes(
    session_json: dict[str, Any], encoding: str
) -> None:
    body = json.dumps(session_json, ensure_ascii=False).encode(encoding)
    assert structure_session(loads(body)) == expected_session(session_json)


def test_a_full_page_and_a_huge_field_decode(session_json: dict[str, Any]) -> None:
    # The transport caps a body at 16 MiB; anything under it decodes whole. A page of 200
    # sessions is the largest the API sends.
    page = {"items": [session_json] * 200, "end_cursor": "c", "has_next_page": True}
    body = dumps(page)
    assert 150_000 < len(body) < 16 * 1024 * 1024
    assert len(structure_session_page(loads(body)).items) == 200
    huge = dumps({**session_json, "title": "t" * (5 * 1024 * 1024)})
    assert structure_session(loads(huge)).title == "t" * (5 * 1024 * 1024)


# ------------------------------------------------------------------ recursion at the edge


def max_loadable_depth(wrap: Callable[[str], str]) -> int:
    """Return the deepest nesting ``loads`` accepts in ``wrap`` from this stack depth."""
    low, high = 1, 5000
    while low < high:
        mid = (low + high + 1) // 2
        try:
            loads(wrap("[" * mid + "]" * mid).encode())
        except ResponseValidationError:
            high = mid - 1
        else:
            low = mid
    return low


def deeper(frames: int, call: Callable[[], object]) -> object:
    return call() if frames == 0 else deeper(frames - 1, call)


BAD_SESSION = '{{"session_id": "devin-1", "status": 5, "x": {}}}'


@pytest.mark.parametrize(
    ("name", "wrap"),
    [
        ("session", lambda deep: BAD_SESSION.format(deep)),
        ("session page", lambda deep: '{"items": [' + BAD_SESSION.format(deep) + "]}"),
        ("message page", lambda deep: '{"items": ' + deep + "}"),
        ("attachments", lambda deep: deep),
        ("tags", lambda deep: '{"tags": ' + deep + "}"),
    ],
)
def test_deepest_loadable_json_is_refused_at_any_stack_depth(
    name: str, wrap: Callable[[str], str]
) -> None:
    depth = max_loadable_depth(wrap)
    data = loads(wrap("[" * depth + "]" * depth).encode())
    decode = DECODERS[name][0]
    result = deeper(50, lambda: outcome(decode, data))
    assert isinstance(result, ResponseValidationError)


# ------------------------------------------------------------------ error responses

header_names = st.sampled_from(
    ["Retry-After", "X-Request-Id", "Request-Id", "x-amzn-RequestId", "CF-Ray", "Content-Type"]
) | st.text(min_size=1, max_size=10)
http_dates = st.builds(
    lambda moment, offset: email.utils.format_datetime(
        moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    ),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
retry_after_values = (
    st.integers(min_value=0, max_value=10**6).map(str)
    | st.floats().map(repr)
    | http_dates
    | st.text(max_size=30)
)
detail_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "loc": st.lists(st.text(max_size=6) | ints, max_size=3) | any_value,
            "msg": st.text(max_size=200) | any_value,
            "type": texts | any_value,
        },
    )
    | any_value,
    max_size=3,
)
error_json = st.one_of(
    json_values,
    st.fixed_dictionaries({"detail": st.text(max_size=500) | detail_items | any_value}),
    st.fixed_dictionaries(
        {"title": texts | any_value, "status": ints},
        optional={
            "type": texts,
            "detail": nullable(texts) | any_value,
            "instance": nullable(texts),
            "errors": nullable(detail_items) | any_value,
        },
    ),
)
error_bodies = st.binary(max_size=200) | error_json.map(dumps)


@settings(FUZZ, max_examples=300)
@given(
    st.integers(min_value=300, max_value=599),
    error_bodies,
    st.lists(st.tuples(header_names, texts | retry_after_values), max_size=4),
)
@example(400, dumps({"detail": "x" * 10_000}), [])
@example(422, dumps({"detail": [{"loc": ["body", i], "msg": "m" * 99} for i in range(50)]}), [])
@example(429, b"", [("Retry-After", "1e400"), ("retry-after", "5")])
def test_any_error_response_becomes_a_status_error(
    status: int, body: bytes, headers: list[tuple[str, str]]
) -> None:
    response = Response(status, CIMultiDictProxy(CIMultiDict(headers)), body)
    error = status_error(GET, response, URL, now=NOW)
    assert isinstance(error, APIStatusError)
    assert error.status_code == status
    assert (error.method, error.url) == ("GET", URL)
    prefix = f"GET {GET.path} -> HTTP {status}"
    assert str(error).startswith(prefix)
    assert len(str(error)) <= len(prefix) + 2 + 300  # the summary is bounded
    assert error.request_id is None or isinstance(error.request_id, str)
    if status == 422:
        assert isinstance(error, UnprocessableEntityError)
        assert all(isinstance(e, ValidationDetail) for e in error.errors)
        assert all(isinstance(e.msg, str) and isinstance(e.type, str) for e in error.errors)
    if status == 429:
        assert isinstance(error, RateLimitError)
        wait = error.retry_after
        assert wait is None or (math.isfinite(wait) and wait >= 0)


# ------------------------------------------------------------------ Retry-After


@settings(FUZZ, max_examples=300)
@given(retry_after_values, st.floats(min_value=0, max_value=4e9))
@example("1_000", NOW)
@example("\u0661\u0662", NOW)  # Arabic-Indic digits: float() reads them
@example("Mon, 01 Jan 2024 00:00:00 +2400", NOW)  # an offset of a whole day
def test_retry_after_is_none_or_a_finite_delay(value: str, now: float) -> None:
    wait = parse_retry_after(value, now)
    assert wait is None or (isinstance(wait, float) and math.isfinite(wait) and wait >= 0)


@FUZZ
@given(st.integers(min_value=0, max_value=10**9))
def test_retry_after_seconds_are_read_exactly(seconds: int) -> None:
    assert parse_retry_after(f" {seconds} ", NOW) == float(seconds)


@FUZZ
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_retry_after_dates_are_read_exactly(moment: datetime, offset: int) -> None:
    when = moment.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset)))
    wait = parse_retry_after(email.utils.format_datetime(when), NOW)
    assert wait == max(0.0, when.timestamp() - NOW)


# Dates whose fields are numbers of any size: the shape a fuzzer or a broken proxy sends.
date_like = st.builds(
    "{}, {} {} {} {}:{}:{} {}".format,
    st.sampled_from(["Mon", "Tue", "Xyz"]),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo"]),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.integers(min_value=0, max_value=10**25),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=99),
    st.sampled_from(["GMT", "+0000", "-2359", "+99999999999999999999", "EST"]),
)


@FUZZ
@given(date_like)
@example("Mon, 01 Jan 99999999999999999999 00:00:00 GMT")
def test_retry_after_dates_with_absurd_fields_are_none(value: str) -> None:
    wait = parse_retry_after(value, NOW)
    assert wait is None or (math.isfinite(wait) and wait >= 0)


async def test_a_429_with_an_absurd_retry_after_date_is_a_rate_limit_error(
    aiohttp_server: AiohttpServer,
) -> None:
    async def limited(request: web.Request) -> web.Response:
        headers = {"Retry-After": "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"}
        return web.json_response({"detail": "slow down"}, status=429, headers=headers)

    app = web.Application()
    app.router.add_get("/v3/organizations/org-1/sessions/devin-1", limited)
    server = await aiohttp_server(app)
    base_url = f"http://{server.host}:{server.port}"
    async with DevinClient("cog_test", org_id="org-1", base_url=base_url, max_retries=0) as client:
        with pytest.raises(RateLimitError) as info:
            await client.get_session("devin-1")
    assert info.value.retry_after is None


# ------------------------------------------------------------------ saved wait states

wait_states = st.builds(
    WaitState,
    session_id=st.text(max_size=20),
    status=nullable(texts),
    status_detail=nullable(texts),
    message_cursor=nullable(texts),
    last_event_id=nullable(texts),
)


@FUZZ
@given(wait_states)
def test_a_saved_wait_state_loads_back_equal(state: WaitState) -> None:
    text = dumps_wait_state(state)
    assert loads_wait_state(text) == state
    assert loads_wait_state(text.encode()) == state


@settings(FUZZ, max_examples=300)
@given(
    st.text(max_size=60)
    | st.binary(max_size=60)
    | json_values.map(json.dumps)
    | st.fixed_dictionaries(
        {"session_id": texts | any_value},
        optional={
            "status": nullable(texts) | any_value,
            "message_cursor": nullable(texts) | any_value,
        },
    ).map(json.dumps)
)
@example("[" * 100_000)
@example(b"\xff\xfe\x00")
def test_loading_any_text_as_a_wait_state_is_a_state_or_a_value_error(
    text: str | bytes,
) -> None:
    try:
        state = loads_wait_state(text)
    except ValueError as exc:
        refused = str(exc)
    else:
        assert isinstance(state, WaitState)
        assert all(value is None or isinstance(value, str) for value in attrs.astuple(state))
        return
    assert refused.startswith("not a saved WaitState")


# ------------------------------------------------------------------ pagination

# Cursors from a small alphabet and mostly "more to come", so that a server handing the
# same cursor back twice is common.
page_scripts = st.lists(
    st.tuples(
        st.lists(st.integers(), max_size=3),
        mostly(st.sampled_from(["a", "b", "c"]), st.sampled_from([None, ""])),
        mostly(st.just(True), st.just(False)),
    ),
    max_size=6,
)


def expected_listing(
    script: list[tuple[list[int], str | None, bool]], limit: int | None
) -> tuple[list[int], bool]:
    """What a Pager must yield for ``script`` (then an empty last page), and whether it
    must end with the repeated-cursor error."""
    items: list[int] = []
    if limit == 0:
        return items, False
    seen: set[str] = set()
    for page_items, cursor, has_next in [*script, ([], None, False)]:
        for item in page_items:
            items.append(item)
            if limit is not None and len(items) == limit:
                return items, False
        if not has_next or not cursor:
            return items, False
        if cursor in seen:
            return items, True
        seen.add(cursor)
    raise AssertionError("unreachable: the script ends with a last page")


@settings(FUZZ, max_examples=300)
@given(page_scripts, mostly(st.none(), st.integers(min_value=0, max_value=8)))
def test_pagination_ends_and_never_asks_for_a_cursor_twice(
    script: list[tuple[list[int], str | None, bool]], limit: int | None
) -> None:
    asked: list[str | None] = []

    async def fetch(after: str | None) -> Page[int]:
        asked.append(after)
        index = len(asked) - 1
        items, cursor, has_next = script[index] if index < len(script) else ([], None, False)
        return Page(tuple(items), end_cursor=cursor, has_next_page=has_next)

    async def collect() -> tuple[list[int], bool]:
        got: list[int] = []
        try:
            async for item in Pager(fetch, limit=limit):
                got.append(item)
        except ResponseValidationError as exc:
            if "cursor" not in str(exc):
                raise
            return got, True
        return got, False

    expected = expected_listing(script, limit)
    event("repeated cursor" if expected[1] else "ended")
    assert asyncio.run(collect()) == expected
    assert len(asked) <= len(script) + 1
    later = [cursor for cursor in asked[1:] if cursor is not None]
    assert len(later) == len(set(later))  # never the same cursor twice
