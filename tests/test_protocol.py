"""Sans-I/O protocol: ids, URLs, request building, Retry-After and error decoding."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable
from typing import Any

import pytest
from multidict import CIMultiDict

from devin_async._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    ValidationDetail,
)
from devin_async._models import CreateSessionRequest, SessionCategory, SessionOrigin, SessionStatus
from devin_async._protocol import (
    Request,
    Response,
    Scope,
    archive_session,
    check_base_url,
    check_org_id,
    check_page_size,
    check_strings,
    check_tags,
    create_session,
    encode_query,
    get_session,
    get_tags,
    list_attachments,
    list_messages,
    list_sessions,
    normalize_session_id,
    parse_retry_after,
    poll_sessions,
    request_id_of,
    send_message,
    session_filters,
    set_tags,
    status_error,
    terminate_session,
)

NOW = 1_700_000_000.0  # a fixed "now", Unix seconds
URL = "https://api.devin.ai/v3/organizations/org-1/sessions/devin-1"
GET = Request("GET", "/v3/organizations/org-1/sessions/devin-1")


def _response(status: int, body: object = b"", **headers: str) -> Response:
    # aiohttp hands the protocol case-insensitive headers; so does this helper.
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, CIMultiDict(headers), raw)


# ------------------------------------------------------------------ session ids


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("devin-abc", "devin-abc"),
        ("abc", "devin-abc"),
        ("0123456789abcdef", "devin-0123456789abcdef"),
        ("devin-0123456789abcdef", "devin-0123456789abcdef"),
        ("a_b-c.d", "devin-a_b-c.d"),
    ],
    ids=["prefixed", "bare", "bare-hex", "prefixed-hex", "punctuation"],
)
def test_normalize_session_id_accepts(given: str, expected: str) -> None:
    assert normalize_session_id(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "",
        "devin-",
        "/",
        "a/b",
        "devin-a/../b",
        "a?b",
        "a#b",
        "a%2F",
        " a",
        "a ",
        "a b",
        "a\n",
        "a\tb",
        "..",
        "a..b",
        "devin-..",
        "a\\b",
        "devin-\u0430bc",  # Cyrillic a
        "\uff41bc",  # fullwidth a
        "a\u0663",  # Arabic-Indic digit three
        "a\u200bb",  # zero-width space
    ],
    ids=[
        "empty",
        "prefix-only",
        "slash",
        "inner-slash",
        "traversal",
        "query",
        "fragment",
        "percent",
        "leading-space",
        "trailing-space",
        "inner-space",
        "trailing-newline",
        "tab",
        "dot-dot",
        "inner-dot-dot",
        "prefixed-dot-dot",
        "backslash",
        "cyrillic-lookalike",
        "fullwidth-lookalike",
        "non-ascii-digit",
        "zero-width-space",
    ],
)
def test_normalize_session_id_rejects(given: str) -> None:
    with pytest.raises(ValueError, match="invalid session id"):
        normalize_session_id(given)


@pytest.mark.parametrize("given", [None, 123, b"devin-abc"], ids=["none", "int", "bytes"])
def test_normalize_session_id_rejects_non_str(given: Any) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        normalize_session_id(given)


# ------------------------------------------------------------------ base URL and org id


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://api.devin.ai", "https://api.devin.ai"),
        ("https://api.devin.ai/", "https://api.devin.ai"),
        ("https://proxy.example.com/devin//", "https://proxy.example.com/devin"),
        ("https://api.devin.ai:8443", "https://api.devin.ai:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.1.2.3", "http://127.1.2.3"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://localhost", "http://localhost"),
        ("http://LOCALHOST:9000", "http://LOCALHOST:9000"),
        ("http://devin.localhost:9000", "http://devin.localhost:9000"),
    ],
    ids=[
        "https",
        "https-trailing-slash",
        "https-path-slashes",
        "https-port",
        "http-ipv4-loopback",
        "http-loopback-trailing-slash",
        "http-loopback-range",
        "http-ipv6-loopback",
        "http-localhost",
        "http-localhost-uppercase",
        "http-localhost-subdomain",
    ],
)
def test_check_base_url_accepts(given: str, expected: str) -> None:
    assert check_base_url(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "http://example.com",
        "http://api.devin.ai",
        "http://10.0.0.1",
        "http://[::2]",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "ftp://api.devin.ai",
        "file:///etc/passwd",
        "api.devin.ai",
        "https://",
        "",
        "https://user:pass@api.devin.ai",
        "https://token@api.devin.ai",
        "https://api.devin.ai?x=1",
        "https://api.devin.ai#frag",
        # Regression: an empty query or fragment made every request path a query string.
        "https://api.devin.ai?",
        "https://api.devin.ai/#",
        "https://@api.devin.ai",
        # Regression: a non-numeric port only failed at send time, and was retried.
        "https://api.devin.ai:abc",
    ],
    ids=[
        "http-remote",
        "http-devin",
        "http-private-ip",
        "http-ipv6-non-loopback",
        "http-localhost-lookalike",
        "http-loopback-lookalike",
        "ftp",
        "file",
        "no-scheme",
        "no-host",
        "empty",
        "credentials",
        "username",
        "query",
        "fragment",
        "empty-query",
        "empty-fragment",
        "empty-userinfo",
        "bad-port",
    ],
)
def test_check_base_url_refuses(given: str) -> None:
    with pytest.raises(ConfigurationError):
        check_base_url(given)


def test_check_base_url_error_explains_plain_http() -> None:
    with pytest.raises(ConfigurationError, match="plain http"):
        check_base_url("http://example.com")


def test_check_base_url_error_does_not_echo_credentials() -> None:
    with pytest.raises(ConfigurationError) as info:
        check_base_url("https://user:hunter2@api.devin.ai")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("given", ["org-1", "org_ABC-123", "a"], ids=["dash", "mixed", "short"])
def test_check_org_id_accepts(given: str) -> None:
    assert check_org_id(given) == given


@pytest.mark.parametrize(
    "given",
    ["", "org/1", "../org", "org 1", "org-1\n", "org?x", "org#x", "org%2F", "org.1", "\uff4frg"],
    ids=[
        "empty",
        "slash",
        "traversal",
        "space",
        "newline",
        "query",
        "fragment",
        "percent",
        "dot",
        "fullwidth",
    ],
)
def test_check_org_id_refuses(given: str) -> None:
    with pytest.raises(ConfigurationError, match="org_id"):
        check_org_id(given)


# ------------------------------------------------------------------ scopes and requests


@pytest.mark.parametrize(
    ("org_id", "path"),
    [("org-1", "/v3/organizations/org-1/sessions"), (None, "/v3/enterprise/sessions")],
    ids=["organization", "enterprise"],
)
def test_scope_sessions_path(org_id: str | None, path: str) -> None:
    assert Scope(org_id).sessions_path == path


@pytest.mark.parametrize(
    ("org_id", "session_id", "path"),
    [
        ("org-1", "abc", "/v3/organizations/org-1/sessions/devin-abc"),
        ("org-1", "devin-abc", "/v3/organizations/org-1/sessions/devin-abc"),
        (None, "abc", "/v3/enterprise/sessions/devin-abc"),
    ],
    ids=["org-bare-id", "org-prefixed-id", "enterprise"],
)
def test_get_session_request(org_id: str | None, session_id: str, path: str) -> None:
    request = get_session(Scope(org_id), session_id)
    expected = Request("GET", path, query=(), body=None, idempotent=True, session_id="devin-abc")
    assert request == expected


def test_get_session_rejects_unsafe_id_before_building() -> None:
    with pytest.raises(ValueError, match="invalid session id"):
        get_session(Scope("org-1"), "../other")


def test_create_session_request() -> None:
    request = create_session(Scope("org-1"), CreateSessionRequest(prompt="Fix it", tags=["a"]))
    assert request.method == "POST"
    assert request.path == "/v3/organizations/org-1/sessions"
    assert request.idempotent is False
    assert request.query == ()
    assert request.body is not None
    assert json.loads(request.body) == {"prompt": "Fix it", "tags": ["a"]}


def test_create_session_without_org_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="org_id"):
        create_session(Scope(None), CreateSessionRequest(prompt="Fix it"))


# ------------------------------------------------------------------ Retry-After


def _http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 3 ", 3.0),
        ("120", 120.0),
        (_http_date(30), 30.0),
        (_http_date(0), 0.0),
        (_http_date(-30), 0.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        ("Mon, 99 Foo 2024 99:99:99 GMT", None),
        ("-1", None),
        ("-0.5", None),
        ("inf", None),
        ("-inf", None),
        ("nan", None),
        ("1e400", None),
        (None, None),
    ],
    ids=[
        "seconds",
        "zero",
        "fractional",
        "padded",
        "large",
        "date-future",
        "date-now",
        "date-past",
        "date-epoch",
        "garbage",
        "empty",
        "bad-date",
        "negative",
        "negative-fraction",
        "inf",
        "minus-inf",
        "nan",
        "overflow",
        "absent",
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_date_without_zone_is_ignored() -> None:
    # "-0000" means "zone unknown" (RFC 5322): there is no safe offset to apply.
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 -0000", NOW) is None


# ------------------------------------------------------------------ status errors


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (599, InternalServerError),
        (418, APIStatusError),
        (301, APIStatusError),
    ],
    ids=lambda x: str(x) if isinstance(x, int) else x.__name__,
)
def test_status_error_class_and_data(status: int, cls: type[APIStatusError]) -> None:
    response = _response(status, {"detail": "went wrong"}, **{"X-Request-Id": "req-42"})
    err = status_error(GET, response, URL, now=NOW)
    assert type(err) is cls
    assert err.status_code == status
    assert err.body == {"detail": "went wrong"}
    assert err.request_id == "req-42"
    assert err.method == "GET"
    assert err.url == URL
    assert err.headers["x-request-id"] == "req-42"
    assert str(err) == f"GET {GET.path} -> HTTP {status}: went wrong"


def test_status_error_without_body_has_a_bare_message() -> None:
    err = status_error(GET, _response(500), URL, now=NOW)
    assert str(err) == f"GET {GET.path} -> HTTP 500"
    assert err.body == ""
    assert err.request_id is None


def test_status_error_keeps_non_json_body_as_text() -> None:
    err = status_error(GET, _response(502, b"<html>Bad\nGateway</html>\n"), URL, now=NOW)
    assert err.body == "<html>Bad\nGateway</html>\n"
    assert str(err).endswith(": <html>Bad Gateway</html>")


def test_status_error_message_is_bounded() -> None:
    err = status_error(GET, _response(400, {"detail": "x" * 10_000}), URL, now=NOW)
    assert len(str(err)) < 500


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Request-Id": "a"}, "a"),
        ({"Request-Id": "b"}, "b"),
        ({"x-amzn-RequestId": "c"}, "c"),
        ({"CF-Ray": "d"}, "d"),
        ({"CF-Ray": "d", "X-Request-Id": "a"}, "a"),
        ({"X-Request-Id": ""}, None),
        ({}, None),
    ],
    ids=["x-request-id", "request-id", "amzn", "cf-ray", "preference", "empty", "absent"],
)
def test_request_id_of(headers: dict[str, str], expected: str | None) -> None:
    assert request_id_of(CIMultiDict(headers)) == expected


def test_422_with_fastapi_detail_list() -> None:
    body = {
        "detail": [
            {"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"},
            {"loc": ["body", "tags", 0], "msg": "Input should be a valid string", "type": "s"},
        ]
    }
    err = status_error(Request("POST", "/v3/x"), _response(422, body), URL, now=NOW)
    assert isinstance(err, UnprocessableEntityError)
    assert err.errors == (
        ValidationDetail(loc=("body", "prompt"), msg="Field required", type="missing"),
        ValidationDetail(loc=("body", "tags", 0), msg="Input should be a valid string", type="s"),
    )
    assert "body.prompt: Field required" in str(err)
    assert "body.tags.0: Input should be a valid string" in str(err)


def test_422_with_problem_json_errors() -> None:
    body = {
        "type": "about:blank",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "Request validation failed",
        "instance": "/v3/organizations/org-1/sessions",
        "errors": [{"loc": ["body", "max_acu_limit"], "msg": "must be >= 1", "type": "ge"}],
    }
    err = status_error(Request("POST", "/v3/x"), _response(422, body), URL, now=NOW)
    assert isinstance(err, UnprocessableEntityError)
    assert err.errors == (
        ValidationDetail(loc=("body", "max_acu_limit"), msg="must be >= 1", type="ge"),
    )
    assert str(err).endswith("HTTP 422: Request validation failed")


def test_422_with_problem_json_errors_and_no_detail_summarises_errors() -> None:
    body = {"title": "Unprocessable", "status": 422, "errors": [{"loc": ["q"], "msg": "bad"}]}
    err = status_error(GET, _response(422, body), URL, now=NOW)
    assert isinstance(err, UnprocessableEntityError)
    assert err.errors == (ValidationDetail(loc=("q",), msg="bad", type=""),)
    assert str(err).endswith(": q: bad")


def test_422_with_string_detail() -> None:
    err = status_error(GET, _response(422, {"detail": "prompt is too long"}), URL, now=NOW)
    assert isinstance(err, UnprocessableEntityError)
    assert err.errors == ()
    assert str(err).endswith(": prompt is too long")


def test_422_tolerates_malformed_detail_items() -> None:
    body = {"detail": ["oops", {"loc": "body", "msg": 3}, {"loc": [None, "x", 1.5]}]}
    err = status_error(GET, _response(422, body), URL, now=NOW)
    assert isinstance(err, UnprocessableEntityError)
    assert err.errors == (
        ValidationDetail(loc=(), msg="3", type=""),
        ValidationDetail(loc=("x",), msg="", type=""),
    )


def test_problem_json_title_is_the_summary_without_detail() -> None:
    body = {"type": "about:blank", "title": "Forbidden", "status": 403, "detail": None}
    err = status_error(GET, _response(403, body), URL, now=NOW)
    assert isinstance(err, PermissionDeniedError)
    assert str(err).endswith("HTTP 403: Forbidden")


@pytest.mark.parametrize(
    "body", [[1, 2], {"unrelated": 1}, 42], ids=["array", "no-known-keys", "number"]
)
def test_unrecognised_error_body_keeps_bare_message(body: object) -> None:
    err = status_error(GET, _response(400, body), URL, now=NOW)
    assert str(err) == f"GET {GET.path} -> HTTP 400"
    assert err.body == body


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (_http_date(12), 12.0), (None, None), ("later", None)],
    ids=["seconds", "http-date", "absent", "garbage"],
)
def test_429_parses_retry_after(header: str | None, expected: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    err = status_error(GET, _response(429, {"detail": "slow down"}, **headers), URL, now=NOW)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == expected


def test_429_reads_retry_after_case_insensitively() -> None:
    err = status_error(GET, _response(429, **{"retry-after": "4"}), URL, now=NOW)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 4.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, NotFoundError), (500, InternalServerError), (302, APIStatusError)],
    ids=["404", "500", "redirect"],
)
def test_status_error_carries_status_and_url(status: int, cls: type[APIStatusError]) -> None:
    err = status_error(GET, _response(status, {"detail": "x"}), URL)
    assert type(err) is cls
    assert err.status_code == status
    assert err.url == URL


# ------------------------------------------------------------------ query encoding


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ()),
        ({"first": 200}, (("first", "200"),)),
        ({"after": "cursor-1"}, (("after", "cursor-1"),)),
        ({"after": None, "first": 5}, (("first", "5"),)),
        ({"is_archived": True}, (("is_archived", "true"),)),
        ({"is_archived": False}, (("is_archived", "false"),)),
        ({"acus": 1.5}, (("acus", "1.5"),)),
        ({"status": SessionStatus.RUNNING}, (("status", "running"),)),
        (
            {"session_ids": ["devin-b", "devin-a", "devin-b"]},
            (("session_ids", "devin-b"), ("session_ids", "devin-a"), ("session_ids", "devin-b")),
        ),
        ({"tags": ("x", "y")}, (("tags", "x"), ("tags", "y"))),
        ({"flags": [True, 0, "z"]}, (("flags", "true"), ("flags", "0"), ("flags", "z"))),
        ({"tags": []}, ()),
        (
            {"tags": ["a"], "first": 2, "after": None, "user": "u"},
            (("tags", "a"), ("first", "2"), ("user", "u")),
        ),
    ],
    ids=[
        "empty",
        "int",
        "str",
        "none-skipped",
        "true",
        "false",
        "float",
        "str-enum",
        "list-repeats-in-order",
        "tuple",
        "mixed-list",
        "empty-list",
        "keeps-key-order",
    ],
)
def test_encode_query(params: dict[str, object], expected: tuple[tuple[str, str], ...]) -> None:
    assert encode_query(params) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"filter": {"a": 1}},
        {"obj": _Opaque()},
        {"tags": ["a", None]},
        {"tags": [["nested"]]},
        {"raw": b"bytes"},
    ],
    ids=["dict", "object", "none-in-list", "nested-list", "bytes"],
)
def test_encode_query_rejects_values_it_cannot_encode(params: dict[str, object]) -> None:
    (name,) = params
    with pytest.raises(TypeError, match=repr(name)):
        encode_query(params)


@pytest.mark.parametrize(
    ("org_id", "path"),
    [("org-1", "/v3/organizations/org-1/sessions"), (None, "/v3/enterprise/sessions")],
    ids=["organization", "enterprise"],
)
def test_list_sessions_request(org_id: str | None, path: str) -> None:
    params = {"session_ids": ["devin-a", "devin-b"], "first": 200, "after": None}
    request = list_sessions(Scope(org_id), params)
    assert request == Request(
        "GET",
        path,
        query=(("session_ids", "devin-a"), ("session_ids", "devin-b"), ("first", "200")),
        body=None,
        idempotent=True,
    )


def test_list_sessions_without_filters_has_no_query() -> None:
    assert list_sessions(Scope("org-1"), {}).query == ()


def test_list_sessions_refuses_an_unencodable_filter() -> None:
    with pytest.raises(TypeError):
        list_sessions(Scope("org-1"), {"tags": {"a": "b"}})


# ------------------------------------------------------------------ list filters and checks


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, {}),
        ({"tags": None, "playbook_id": None, "is_archived": None}, {}),
        ({"tags": ("b", "a")}, {"tags": ["b", "a"]}),
        ({"tags": []}, {"tags": []}),
        (
            {"origins": [SessionOrigin.API, "slack"], "session_ids": ["devin-1"]},
            {"origins": ["api", "slack"], "session_ids": ["devin-1"]},
        ),
        (
            {"user_ids": ["u"], "service_user_ids": ["s"], "repo_names": ["o/r"], "org_ids": ["o"]},
            {"user_ids": ["u"], "service_user_ids": ["s"], "repo_names": ["o/r"], "org_ids": ["o"]},
        ),
        ({"category": SessionCategory.BUG_FIXING}, {"category": "bug_fixing"}),
        ({"playbook_id": "p", "schedule_id": "s"}, {"playbook_id": "p", "schedule_id": "s"}),
        ({"is_archived": False}, {"is_archived": False}),
        (
            {"created_after": 0, "created_before": 2, "updated_after": 3, "updated_before": 4},
            {"created_after": 0, "created_before": 2, "updated_after": 3, "updated_before": 4},
        ),
    ],
    ids=[
        "nothing",
        "all-none",
        "tuple-to-list",
        "empty-list",
        "enum-items",
        "other-arrays",
        "enum-category",
        "strings",
        "false-is-kept",
        "timestamps-zero-kept",
    ],
)
def test_session_filters(filters: dict[str, object], expected: dict[str, object]) -> None:
    params = session_filters(**filters)
    assert params == expected
    if "category" in params:
        assert type(params["category"]) is str  # plain text on the wire, not an enum repr


@pytest.mark.parametrize(
    ("filters", "match"),
    [
        ({"tags": "ci"}, "tags"),
        ({"session_ids": "devin-1"}, "session_ids"),
        ({"org_ids": "org-1"}, "org_ids"),
        ({"repo_names": ["o/r", 1]}, "repo_names"),
        ({"user_ids": [None]}, "user_ids"),
        ({"created_after": True}, "created_after"),
        ({"updated_before": "100"}, "updated_before"),
        ({"created_before": 1.5}, "created_before"),
        ({"is_archived": "true"}, "is_archived"),
        ({"is_archived": 1}, "is_archived"),
    ],
    ids=[
        "bare-string-tags",
        "bare-string-ids",
        "bare-string-orgs",
        "int-in-array",
        "none-in-array",
        "bool-timestamp",
        "string-timestamp",
        "float-timestamp",
        "string-bool",
        "int-bool",
    ],
)
def test_session_filters_refuse(filters: dict[str, object], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        session_filters(**filters)


@pytest.mark.parametrize("first", [1, 100, 200], ids=["min", "default", "max"])
def test_check_page_size_accepts(first: int) -> None:
    assert check_page_size(first) == first


@pytest.mark.parametrize(
    "first",
    [0, 201, -1, True, False, 10.0, "10", None],
    ids=["zero", "201", "negative", "true", "false", "float", "string", "none"],
)
def test_check_page_size_refuses(first: Any) -> None:
    with pytest.raises(ValueError, match="first must be an integer from 1 to 200"):
        check_page_size(first)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["a"], ["a"]),
        (("a", "b"), ["a", "b"]),
        ([], []),
        (["a", "a"], ["a", "a"]),  # duplicates are the server's business
        ([f"t{i}" for i in range(50)], [f"t{i}" for i in range(50)]),
    ],
    ids=["one", "tuple", "none", "duplicates", "fifty"],
)
def test_check_tags_accepts(tags: Any, expected: list[str]) -> None:
    assert check_tags(tags) == expected


@pytest.mark.parametrize(
    ("tags", "error"),
    [
        ([f"t{i}" for i in range(51)], ValueError),
        ("abc", TypeError),
        (["a", 1], TypeError),
        ([None], TypeError),
        (b"ab", TypeError),
    ],
    ids=["fifty-one", "bare-string", "int", "none", "bytes"],
)
def test_check_tags_refuses(tags: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"50 tags|list of strings"):
        check_tags(tags)


def test_check_strings_names_the_argument() -> None:
    with pytest.raises(TypeError, match=r"^attachment_urls must be a list of strings"):
        check_strings("attachment_urls", "https://x/a")
    assert check_strings("x", ("a",)) == ["a"]


def test_check_strings_does_not_empty_an_iterator() -> None:
    given = iter(["a", "b"])
    try:
        result = check_strings("tags", given)  # type: ignore[arg-type]
    except TypeError:
        return  # refusing an iterator would be as good as reading it once
    assert result == ["a", "b"]


# ------------------------------------------------------------------ session sub-resources

ORG, ENTERPRISE = Scope("org-1"), Scope(None)
Build = Callable[[Scope], Request]


@pytest.mark.parametrize(
    ("build", "method", "suffix", "query", "body", "idempotent"),
    [
        (
            lambda s: list_messages(s, "abc", 50, None),
            "GET",
            "/messages",
            (("first", "50"),),
            None,
            True,
        ),
        (
            lambda s: list_messages(s, "devin-abc", 1, "Y3Vyc29yOjE="),
            "GET",
            "/messages",
            (("first", "1"), ("after", "Y3Vyc29yOjE=")),
            None,
            True,
        ),
        (
            lambda s: send_message(s, "abc", "hi", None, None),
            "POST",
            "/messages",
            (),
            {"message": "hi"},
            False,
        ),
        (
            lambda s: send_message(s, "abc", "hi", "user-2", ("https://x/a",)),
            "POST",
            "/messages",
            (),
            {"message": "hi", "message_as_user_id": "user-2", "attachment_urls": ["https://x/a"]},
            False,
        ),
        (
            lambda s: send_message(s, "abc", "hi", None, []),
            "POST",
            "/messages",
            (),
            {"message": "hi", "attachment_urls": []},
            False,
        ),
        (lambda s: get_tags(s, "abc"), "GET", "/tags", (), None, True),
        (
            lambda s: set_tags(s, "abc", ["a", "b"], replace=False),
            "POST",
            "/tags",
            (),
            {"tags": ["a", "b"]},
            False,
        ),
        (
            lambda s: set_tags(s, "abc", ("a",), replace=True),
            "PUT",
            "/tags",
            (),
            {"tags": ["a"]},
            True,
        ),
        (lambda s: set_tags(s, "abc", [], replace=True), "PUT", "/tags", (), {"tags": []}, True),
        (lambda s: list_attachments(s, "abc"), "GET", "/attachments", (), None, True),
    ],
    ids=[
        "list-messages",
        "list-messages-after",
        "send-message",
        "send-message-all-fields",
        "send-message-no-attachments",
        "get-tags",
        "append-tags",
        "replace-tags",
        "clear-tags",
        "list-attachments",
    ],
)
@pytest.mark.parametrize(
    ("scope", "base"),
    [
        (ORG, "/v3/organizations/org-1/sessions/devin-abc"),
        (ENTERPRISE, "/v3/enterprise/sessions/devin-abc"),
    ],
    ids=["organization", "enterprise"],
)
def test_session_sub_resource_requests(
    scope: Scope,
    base: str,
    build: Build,
    method: str,
    suffix: str,
    query: tuple[tuple[str, str], ...],
    body: object,
    idempotent: bool,
) -> None:
    request = build(scope)
    assert (request.method, request.path, request.query) == (method, base + suffix, query)
    assert (json.loads(request.body) if request.body is not None else None) == body
    assert request.idempotent is idempotent
    if request.body is not None:
        assert b": " not in request.body  # compact JSON
        assert b", " not in request.body


@pytest.mark.parametrize(
    ("build", "method", "suffix", "query"),
    [
        (lambda s: terminate_session(s, "abc", False), "DELETE", "", ()),
        (lambda s: terminate_session(s, "abc", True), "DELETE", "", (("archive", "true"),)),
        (lambda s: archive_session(s, "abc"), "POST", "/archive", ()),
    ],
    ids=["terminate", "terminate-and-archive", "archive"],
)
def test_org_only_requests(
    build: Build, method: str, suffix: str, query: tuple[tuple[str, str], ...]
) -> None:
    request = build(ORG)
    assert request == Request(
        method,
        "/v3/organizations/org-1/sessions/devin-abc" + suffix,
        query=query,
        body=None,
        idempotent=True,  # stopping or archiving twice is stopping or archiving once
        session_id="devin-abc",
    )
    with pytest.raises(ConfigurationError, match="needs an org_id"):
        build(ENTERPRISE)


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda s: send_message(s, "abc", "", None, None), ValueError),
        (lambda s: send_message(s, "abc", " \t\n", None, None), ValueError),
        (lambda s: send_message(s, "abc", None, None, None), ValueError),
        (lambda s: send_message(s, "abc", "hi", None, "https://x/a"), TypeError),
        (lambda s: send_message(s, "a/b", "hi", None, None), ValueError),
        (lambda s: set_tags(s, "abc", ["t"] * 51, replace=False), ValueError),
        (lambda s: set_tags(s, "abc", "tag", replace=True), TypeError),
        (lambda s: get_tags(s, "../x"), ValueError),
        (lambda s: list_messages(s, "a?b", 1, None), ValueError),
        (lambda s: list_attachments(s, ""), ValueError),
        (lambda s: terminate_session(s, "a#b", False), ValueError),
        (lambda s: archive_session(s, "a b"), ValueError),
    ],
    ids=[
        "empty-message",
        "blank-message",
        "none-message",
        "bare-string-attachments",
        "send-bad-id",
        "too-many-tags",
        "bare-string-tags",
        "tags-bad-id",
        "messages-bad-id",
        "attachments-empty-id",
        "terminate-bad-id",
        "archive-bad-id",
    ],
)
def test_sub_resource_builders_refuse_bad_input(build: Build, error: type[Exception]) -> None:
    with pytest.raises(error):
        build(ORG)


def test_session_filters_normalise_session_ids_like_every_other_id() -> None:
    assert session_filters(session_ids=["abc", "devin-def"]) == {
        "session_ids": ["devin-abc", "devin-def"]
    }
    with pytest.raises(ValueError, match="session id"):
        session_filters(session_ids=["../x"])


def test_poll_sessions_sends_ids_as_repeated_keys_with_a_full_page() -> None:
    request = poll_sessions(Scope("org-1"), ["devin-a", "devin-b"], None, None)
    assert request.method == "GET"
    assert request.path == "/v3/organizations/org-1/sessions"
    assert request.query == (
        ("session_ids", "devin-a"),
        ("session_ids", "devin-b"),
        ("first", "200"),
    )
    later = poll_sessions(Scope("org-1"), ["devin-a"], None, "cur", timeout=1.5)
    assert later.query[-1] == ("after", "cur")
    assert later.timeout == 1.5


def test_poll_sessions_by_watermark_sends_updated_after_and_no_ids() -> None:
    request = poll_sessions(Scope("org-1"), None, 1_700_000_000, None)
    assert request.query == (("updated_after", "1700000000"), ("first", "200"))


# ------------------------------------------------------------------ echoed secrets


@pytest.mark.parametrize(
    ("request_body", "error_body", "shown"),
    [
        (
            b'{"prompt":"p","session_secrets":[{"key":"K","value":"hunter22"}]}',
            b'{"detail":[{"loc":["body"],"msg":"no hunter22","type":"x","input":{"hunter22":1}}]}',
            "no **********",
        ),
        (
            b'{"prompt":"p","session_secrets":[{"key":"K","value":"hunter22"}]}',
            b"<html>proxy saw hunter22</html>",
            "<html>proxy saw **********</html>",
        ),
        (b'{"session_secrets": oops', b'{"detail":"hunter22"}', "hunter22"),  # not JSON
        (b'{"session_secrets":["x",{"key":"K"}]}', b'{"detail":"hunter22"}', "hunter22"),
        (b'["session_secrets"]', b'{"detail":"hunter22"}', "hunter22"),  # not an object
        (None, b'{"detail":"hunter22"}', "hunter22"),
    ],
    ids=["fastapi-echo", "text-echo", "bad-request-json", "no-values", "array", "no-body"],
)
def test_status_error_redacts_secret_values_the_request_carried(
    request_body: bytes | None, error_body: bytes, shown: str
) -> None:
    request = Request("POST", "/v3/organizations/o/sessions", body=request_body, idempotent=False)
    err = status_error(request, Response(422, CIMultiDict(), error_body), URL, now=NOW)
    assert str(err).endswith(shown)
    if "**********" in shown:
        assert "hunter22" not in repr(err.body)


def test_a_str_subclass_id_is_normalized_as_a_plain_str() -> None:
    class Loud(str):
        def __hash__(self) -> int:
            raise AssertionError("the id's own hash must not be used")

    normalized = normalize_session_id(Loud("abc"))
    assert normalized == "devin-abc"
    assert type(normalized) is str
    with pytest.raises(ValueError, match="invalid session id"):
        normalize_session_id(Loud("a/b"))


def test_get_session_of_a_str_subclass_builds_from_a_plain_str() -> None:
    class Loud(str):
        def __hash__(self) -> int:
            raise AssertionError("the id's own hash must not be used")

    request = get_session(Scope("org-1"), Loud("abc"))
    assert request == get_session(Scope("org-1"), "abc")
    assert type(request.session_id) is str
    assert type(request.path) is str
    with pytest.raises(TypeError, match="must be a str"):
        get_session(Scope("org-1"), 7)  # type: ignore[arg-type]
