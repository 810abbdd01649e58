"""DevinClient end to end, over real sockets against FakeDevinServer."""

from __future__ import annotations

import asyncio
import gc
import math
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from fakes import KEY, FakeTime
from pytest_aiohttp import AiohttpServer

from devin_async import (
    CREATE_TAG_PREFIX,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AwaitTimeoutError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    CreateOutcomeUnknownError,
    CreateSessionRequest,
    DevinClient,
    DevinMode,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    Session,
    SessionSecret,
    SessionStatus,
    StatusDetail,
    UnprocessableEntityError,
    await_session,
    is_settled_or_awaiting_approval,
)
from devin_async.testing import (
    ERRORS,
    EXITS,
    FINISHES,
    SUSPENDS,
    WAITS_FOR_APPROVAL,
    WAITS_FOR_USER,
    FakeDevinServer,
    FaultKind,
    Step,
)
from devin_async.testing import sessions as fake_sessions


def client_tasks(tasks: set[asyncio.Task[object]]) -> list[asyncio.Task[object]]:
    """Drop the fake server's own connection handlers, which share the test's loop."""
    return [t for t in tasks if not t.get_coro().__qualname__.startswith("RequestHandler.")]  # type: ignore[union-attr]


async def spin_until(condition: Callable[[], bool], spins: int = 100_000) -> None:
    """Let the loop run (no timer) until ``condition()`` holds; fail after ``spins`` turns."""
    for _ in range(spins):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def make_client(server: FakeDevinServer, **kwargs: object) -> DevinClient:
    options: dict[str, object] = {"org_id": server.org_id, "base_url": server.url}
    options.update(kwargs)
    return DevinClient(KEY, **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------- configuration


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="DEVIN_API_KEY"):
        DevinClient()


def test_configuration_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVIN_API_KEY", KEY)
    monkeypatch.setenv("DEVIN_ORG_ID", "org-env")
    monkeypatch.setenv("DEVIN_BASE_URL", "http://127.0.0.1:9/")
    client = DevinClient()
    assert (client.org_id, client.base_url) == ("org-env", "http://127.0.0.1:9")


def test_defaults_to_the_production_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIN_ORG_ID", raising=False)
    monkeypatch.delenv("DEVIN_BASE_URL", raising=False)
    client = DevinClient(KEY)
    assert client.base_url == "https://api.devin.ai"
    assert client.org_id is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "http://api.devin.ai"},
        {"base_url": "http://10.0.0.8:8080"},
        {"org_id": "org-x/../../enterprise"},
        {"timeout": 0},
        {"max_retries": -1},
        {"poll_interval": -1.0},
        # Regression (each failed before the fix: accepted, then a foreign error later).
        {"timeout": math.inf},
        {"timeout": math.nan},
        {"timeout": "60"},
        {"timeout": None},
        {"timeout": True},
        {"max_retries": None},
        {"max_retries": 2.5},
        {"max_retries": True},
        {"max_poll_interval": math.inf},
        {"requests_per_second": "10"},
        {"requests_per_second": True},
        {"base_url": 123},
        {"org_id": 5},
        {"hooks": 5},
        {"hooks": ["not callable"]},
        {"session": "not a ClientSession"},
        {"exactly_once_create": "no"},
    ],
    ids=[
        "http-remote",
        "http-private",
        "org-traversal",
        "zero-timeout",
        "neg-retries",
        "neg-poll",
        "inf-timeout",
        "nan-timeout",
        "str-timeout",
        "none-timeout",
        "bool-timeout",
        "none-retries",
        "float-retries",
        "bool-retries",
        "inf-poll-cap",
        "str-rate",
        "bool-rate",
        "int-base-url",
        "int-org",
        "int-hooks",
        "uncallable-hook",
        "str-session",
        "str-exactly-once",
    ],
)
def test_unsafe_or_invalid_settings_are_refused(kwargs: dict[str, object]) -> None:
    # Regression: each of the new cases failed before the fix, accepted or with a
    # foreign TypeError/AttributeError.
    name, value = next(iter(kwargs.items()))
    expected = "http" if name == "base_url" and isinstance(value, str) else name
    with pytest.raises(ConfigurationError, match=expected):
        DevinClient(KEY, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    ["", " cog_x", "cog_x\r\nX-Evil: 1", "cog_\x01x", "cog_\x7fx", "cog_é", "cog_a b", 42],
    ids=["empty", "space", "crlf", "control", "delete", "non-ascii", "inner-space", "not-str"],
)
def test_unusable_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DevinClient(key, base_url="http://127.0.0.1:9")
    if isinstance(key, str) and key.strip():
        assert key.strip() not in str(info.value)  # never echoed, not even a bad key


async def test_a_bad_until_is_refused_before_any_request(
    client: DevinClient, server: FakeDevinServer
) -> None:
    # Regression (the test failed before the fix): until="x" failed only after a poll.
    with pytest.raises(TypeError, match="until"):
        await client.await_session("devin-abc", until="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="until"):
        client.watch_session("devin-abc", until=3)  # type: ignore[arg-type]
    assert server.requests == []


@pytest.mark.parametrize("ids", ["devin-abc", b"devin-abc"], ids=["str", "bytes"])
async def test_a_bare_string_of_ids_is_refused_before_any_request(
    client: DevinClient, server: FakeDevinServer, ids: Any
) -> None:
    # Regression (the test failed before the fix): "devin-abc" was waited on as 9 ids.
    with pytest.raises(TypeError, match="session_ids"):
        await client.await_sessions(ids)
    with pytest.raises(TypeError, match="session_ids"):
        client.as_completed(ids)
    assert server.requests == []


def test_repr_never_shows_the_key() -> None:
    client = DevinClient(KEY, org_id="org-test", base_url="http://127.0.0.1:9")
    assert KEY not in repr(client)
    assert "org-test" in repr(client)


# ---------------------------------------------------------------- create and get


async def test_create_sends_only_the_fields_given(
    client: DevinClient, server: FakeDevinServer
) -> None:
    session = await client.create_session(
        "Fix the flaky test",
        tags=["ci", "flaky"],
        devin_mode=DevinMode.FAST,
        resumable=False,
        session_secrets=[SessionSecret("TOKEN", "s3cr3t-value")],
    )
    assert session.session_id.startswith("devin-")
    assert session.tags[:2] == ("ci", "flaky")
    (request,) = [r for r in server.requests if r.route == "create_session"]
    assert isinstance(request.body, dict)
    marker = request.body["tags"][-1]
    assert marker.startswith(CREATE_TAG_PREFIX)
    assert session.tags[2] == marker
    assert request.body == {
        "prompt": "Fix the flaky test",
        "tags": ["ci", "flaky", marker],
        "devin_mode": "fast",
        "resumable": False,
        "session_secrets": [{"key": "TOKEN", "value": "s3cr3t-value", "sensitive": True}],
    }


async def test_create_accepts_a_request_object(
    client: DevinClient, server: FakeDevinServer
) -> None:
    request = CreateSessionRequest(prompt="hello", title="T", max_acu_limit=5)
    session = await client.create_session(request)
    assert session.title == "T"
    assert server.sessions_created == 1


async def test_create_refuses_a_request_object_with_keywords(client: DevinClient) -> None:
    with pytest.raises(ValueError, match="not both"):
        await client.create_session(CreateSessionRequest(prompt="x"), title="y")


async def test_create_refuses_an_empty_prompt(client: DevinClient, server: FakeDevinServer) -> None:
    with pytest.raises(ValueError, match="prompt"):
        await client.create_session("   ")
    assert server.requests == []


async def test_create_without_org_is_refused_before_any_request(server: FakeDevinServer) -> None:
    async with DevinClient(KEY, base_url=server.url) as client:
        with pytest.raises(ConfigurationError, match="org_id"):
            await client.create_session("hello")
    assert server.requests == []


async def test_get_accepts_ids_with_and_without_prefix(
    client: DevinClient, server: FakeDevinServer
) -> None:
    created = await client.create_session("hello")
    bare = created.session_id.removeprefix("devin-")
    first = await client.get_session(created.session_id)
    second = await client.get_session(bare)
    assert first.session_id == second.session_id == created.session_id
    paths = [r.path for r in server.requests if r.route == "get_session"]
    assert paths == [f"/v3/organizations/org-test/sessions/{created.session_id}"] * 2


async def test_enterprise_scope_reads_without_an_org(
    client: DevinClient, server: FakeDevinServer
) -> None:
    created = await client.create_session("hello")
    async with DevinClient(KEY, base_url=server.url) as enterprise:
        session = await enterprise.get_session(created.session_id)
    assert session.session_id == created.session_id
    assert server.requests[-1].path == f"/v3/enterprise/sessions/{created.session_id}"


@pytest.mark.parametrize(
    "bad_id",
    ["", "devin-", "../etc", "a/b", "a?x=1", "a#b", "a%2Fb", "a b", "devin-\u0430bc"],
    ids=[
        "empty",
        "bare-prefix",
        "traversal",
        "slash",
        "query",
        "fragment",
        "pct",
        "space",
        "unicode",
    ],
)
async def test_bad_ids_make_no_request(
    client: DevinClient, server: FakeDevinServer, bad_id: str
) -> None:
    with pytest.raises(ValueError, match="session id"):
        await client.get_session(bad_id)
    with pytest.raises(ValueError, match="session id"):
        await client.await_session(bad_id)
    assert server.requests == []


async def test_unknown_enum_values_are_kept(client: DevinClient, server: FakeDevinServer) -> None:
    created = await client.create_session("hello")
    server.set_state(created.session_id, "hibernating", "dreaming")
    session = await client.get_session(created.session_id)
    assert session.status == "hibernating"
    assert session.status_detail == "dreaming"


async def test_extra_fields_and_new_enum_values_from_a_newer_server(
    aiohttp_server: AiohttpServer,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "session_id": "devin-abc",
                "url": "https://app.devin.ai/sessions/devin-abc",
                "status": "running",
                "status_detail": "thinking_very_hard",
                "origin": "smoke_signal",
                "tags": [],
                "org_id": "org-test",
                "created_at": 1,
                "updated_at": 2,
                "acus_consumed": 0.5,
                "pull_requests": [{"pr_url": "https://x/pr/1", "pr_state": "open", "new": 1}],
                "brand_new_field": {"nested": [1, 2]},
            }
        )

    app = web.Application()
    app.router.add_get("/v3/organizations/org-test/sessions/devin-abc", handler)
    srv = await aiohttp_server(app, host="127.0.0.1")
    async with DevinClient(KEY, org_id="org-test", base_url=str(srv.make_url(""))) as client:
        session = await client.get_session("abc")
    assert session.status is SessionStatus.RUNNING
    assert session.status_detail == "thinking_very_hard"
    assert session.origin == "smoke_signal"
    assert session.pull_requests[0].pr_state == "open"


# ---------------------------------------------------------------- errors


async def test_bad_key_raises_authentication_error_without_the_key(
    server: FakeDevinServer,
) -> None:
    wrong = "cog_wrong_key_987654321"
    async with DevinClient(wrong, org_id=server.org_id, base_url=server.url) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_session("devin-abc")
    exc = info.value
    assert exc.status_code == 401
    assert exc.request_id
    for text in (str(exc), repr(exc), repr(exc.body), repr(dict(exc.headers)), exc.url):
        assert wrong not in text
        assert KEY not in text


async def test_forbidden_key_raises_permission_denied(server: FakeDevinServer) -> None:
    server.forbidden_keys.add(KEY)
    async with make_client(server) as client:
        with pytest.raises(PermissionDeniedError) as info:
            await client.get_session("devin-abc")
    assert info.value.status_code == 403


async def test_unknown_session_raises_not_found_once(
    client: DevinClient, server: FakeDevinServer
) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.get_session("devin-doesnotexist")
    assert info.value.method == "GET"
    assert info.value.url.endswith("/sessions/devin-doesnotexist")
    assert server.count(route="get_session") == 1  # a 404 is never retried


async def test_invalid_body_raises_unprocessable_with_details(
    client: DevinClient, server: FakeDevinServer
) -> None:
    with pytest.raises(UnprocessableEntityError) as info:
        await client.create_session("hello", max_acu_limit="lots")  # type: ignore[arg-type]
    assert info.value.errors
    assert info.value.errors[0].loc == ("body", "max_acu_limit")
    assert "max_acu_limit" in str(info.value)
    assert server.sessions_created == 0


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (409, ConflictError),
        (418, APIStatusError),
    ],
    ids=["400", "409", "418"],
)
async def test_client_errors_map_to_classes_and_are_not_retried(
    client: DevinClient, server: FakeDevinServer, status: int, error: type[APIStatusError]
) -> None:
    server.inject("status", status=status, times=5, route="get_session")
    with pytest.raises(error) as info:
        await client.get_session("devin-abc")
    assert info.value.status_code == status
    assert server.count(route="get_session") == 1


async def test_server_errors_are_retried_then_raised(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    created = await client.create_session("hello")
    server.inject("status", status=502, times=10, route="get_session")
    with pytest.raises(InternalServerError) as info:
        await client.get_session(created.session_id)
    assert info.value.status_code == 502
    assert server.count(route="get_session") == 4  # 1 + max_retries
    assert len(sleep.delays) == 3


async def test_transient_get_failures_recover(client: DevinClient, server: FakeDevinServer) -> None:
    created = await client.create_session("hello")
    server.inject("status", status=503, times=1, route="get_session")
    server.inject("drop", times=1, route="get_session")
    server.inject("malformed", times=1, route="get_session")
    with pytest.raises(ResponseValidationError):
        # A 2xx that is not JSON is not retried by a plain get (only by waits).
        await client.get_session(created.session_id)
    session = await client.get_session(created.session_id)
    assert session.session_id == created.session_id


async def test_dropped_get_is_retried(client: DevinClient, server: FakeDevinServer) -> None:
    created = await client.create_session("hello")
    server.inject("drop", times=2, route="get_session")
    session = await client.get_session(created.session_id)
    assert session.session_id == created.session_id
    assert server.count(route="get_session") == 3


async def test_refused_connection_raises_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = FakeTime()
    async with DevinClient(
        KEY, org_id="org-test", base_url=f"http://127.0.0.1:{port}", sleep=sleep, clock=sleep.clock
    ) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.create_session("hello")
    assert info.value.request_sent is False
    assert len(sleep.delays) == 3  # refused before sending: safe to retry a create


async def test_slow_response_raises_timeout(server: FakeDevinServer) -> None:
    created_id = None
    async with make_client(server, timeout=0.2, max_retries=0) as client:
        created_id = (await client.create_session("hello")).session_id
        server.inject("slow", delay=1.0, times=1, route="get_session")
        with pytest.raises(APITimeoutError):
            await client.get_session(created_id)


# ---------------------------------------------------------------- retry rules for create


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("status", {"status": 500}),
        ("status", {"status": 503}),
        ("drop", {}),
        ("slow", {"delay": 1.0}),
    ],
    ids=["500", "503", "dropped", "timed-out"],
)
async def test_ambiguous_create_is_never_sent_twice_without_the_marker(
    server: FakeDevinServer, kind: FaultKind, options: dict[str, Any]
) -> None:
    server.inject(kind, times=1, route="create_session", when="after", **options)
    async with make_client(server, timeout=0.3, exactly_once_create=False) as client:
        with pytest.raises((InternalServerError, APIConnectionError)) as info:
            await client.create_session("hello")
    if isinstance(info.value, APIConnectionError):
        assert info.value.request_sent is True
    assert server.count(route="create_session") == 1
    assert server.count(route="list_sessions") == 0
    assert server.sessions_created == 1
    (session,) = server.sessions.values()
    assert not any(t.startswith(CREATE_TAG_PREFIX) for t in session.tags)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("status", {"status": 500}),
        ("status", {"status": 502}),
        ("drop", {}),
        ("slow", {"delay": 1.0}),
    ],
    ids=["500", "502", "dropped", "timed-out"],
)
async def test_ambiguous_create_that_landed_returns_that_session(
    server: FakeDevinServer, kind: FaultKind, options: dict[str, Any]
) -> None:
    server.inject(kind, times=1, route="create_session", when="after", **options)
    async with make_client(server, timeout=0.3) as client:
        session = await client.create_session("hello", tags=["mine"])
    assert server.count(route="create_session") == 1  # looked up, not sent again
    assert server.count(route="list_sessions") == 1
    assert server.sessions_created == 1
    assert list(server.sessions) == [session.session_id]
    assert session.tags[0] == "mine"


async def test_ambiguous_create_that_did_not_land_is_sent_again(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.inject("status", status=503, times=1, route="create_session", when="before")
    session = await client.create_session("hello")
    assert server.count(route="create_session") == 2
    assert server.count(route="list_sessions") == 1
    assert server.sessions_created == 1
    assert list(server.sessions) == [session.session_id]


@pytest.mark.parametrize("status", [503, 500])
async def test_create_that_keeps_failing_ambiguously_raises_the_last_error(
    client: DevinClient, server: FakeDevinServer, status: int
) -> None:
    server.inject("status", status=status, times=None, route="create_session", when="before")
    with pytest.raises(InternalServerError):
        await client.create_session("hello")
    assert server.count(route="create_session") == 4  # 1 + max_retries, each after a lookup
    lookups = server.count(route="list_sessions")
    if status == 503:
        assert lookups == 4  # one before each resend, and a last look before giving up
    else:
        assert lookups >= 4 * 5  # after a 500 each look watches for the grace window
    assert server.sessions_created == 0


async def test_create_that_got_a_429_is_retried(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    server.inject("rate_limit", retry_after="2", times=1, route="create_session")
    session = await client.create_session("hello")
    assert server.count(route="create_session") == 2
    assert server.sessions_created == 1
    assert session.session_id in server.sessions
    assert sleep.delays[0] >= 2.0  # Retry-After in seconds is the floor


# ---------------------------------------------------------------- x-should-retry


@pytest.mark.parametrize("route", ["get_session", "list_sessions"])
async def test_a_5xx_the_server_says_not_to_retry_is_raised_at_once(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime, route: str
) -> None:
    server.inject("status", status=500, times=5, route=route, should_retry=False)
    call = client.get_session("devin-abc") if route == "get_session" else None
    with pytest.raises(InternalServerError) as info:
        await (call or client.list_sessions().collect())
    assert info.value.should_retry is False
    assert server.count(route=route) == 1
    assert sleep.delays == []


@pytest.mark.parametrize("status", [400, 409])
async def test_a_4xx_the_server_says_to_retry_is_retried(
    client: DevinClient, server: FakeDevinServer, status: int
) -> None:
    created = await client.create_session("hello")
    server.inject("status", status=status, times=1, route="get_session", should_retry=True)
    assert (await client.get_session(created.session_id)).session_id == created.session_id
    assert server.count(route="get_session") == 2


async def test_a_create_the_server_says_to_retry_is_sent_again(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.inject("status", status=409, times=1, route="create_session", should_retry=True)
    session = await client.create_session("hello")
    assert server.count(route="create_session") == 2
    assert list(server.sessions) == [session.session_id]


async def test_a_create_the_server_says_not_to_retry_is_neither_looked_up_nor_resent(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.inject("status", status=503, times=1, route="create_session", should_retry=False)
    with pytest.raises(InternalServerError) as info:
        await client.create_session("hello")
    assert info.value.should_retry is False
    assert server.count(route="create_session") == 1
    assert server.count(route="list_sessions") == 0


@pytest.mark.parametrize("when", ["before", "after"])
async def test_an_unanswered_create_is_never_resent_even_when_told_to_retry(
    server: FakeDevinServer, sleep: FakeTime, when: Literal["before", "after"]
) -> None:
    # A 504 is a gateway that gave up waiting for the server: whatever it says, the
    # create may be running, so it is looked up over the grace window, never resent.
    server.inject(
        "status", status=504, times=5, route="create_session", when=when, should_retry=True
    )
    async with make_client(server, sleep=sleep, clock=sleep.clock) as client:
        if when == "after":
            session = await client.create_session("hello")
            assert list(server.sessions) == [session.session_id]
        else:
            with pytest.raises(CreateOutcomeUnknownError):
                await client.create_session("hello")
            assert server.sessions == {}
    assert server.count(route="create_session") == 1
    assert server.count(route="list_sessions") >= 1


@pytest.mark.parametrize("route", ["create_session", "send_message"])
async def test_an_unanswered_post_without_a_marker_is_not_resent_when_told_to_retry(
    server: FakeDevinServer, sleep: FakeTime, route: str
) -> None:
    async with make_client(
        server, sleep=sleep, clock=sleep.clock, exactly_once_create=False
    ) as client:
        created = await client.create_session("hello")
        server.reset_log()
        server.inject("status", status=504, times=5, route=route, should_retry=True)
        call = (
            client.create_session("again")
            if route == "create_session"
            else client.send_message(created.session_id, "more")
        )
        with pytest.raises(InternalServerError) as info:
            await call
    assert info.value.should_retry is True
    assert server.count(route=route) == 1
    assert sleep.delays == []


async def test_retry_after_as_an_http_date_is_honoured(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    when = "Wed, 21 Oct 2099 07:28:00 GMT"  # far beyond the cap: raised at once
    server.inject("rate_limit", retry_after=when, times=1, route="create_session")
    with pytest.raises(RateLimitError) as info:
        await client.create_session("hello")
    assert info.value.retry_after is not None
    assert info.value.retry_after > 60.0
    assert sleep.delays == []
    assert server.count(route="create_session") == 1


async def test_retry_after_http_date_in_range_is_waited(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.inject("rate_limit", retry_after=when, times=1, route="get_session")
    created = await client.create_session("hello")
    await client.get_session(created.session_id)
    assert 20.0 <= sleep.delays[0] <= 31.0


async def test_rate_limit_exhausted_raises_rate_limit_error(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.inject("rate_limit", retry_after="1", times=10, route="get_session")
    with pytest.raises(RateLimitError) as info:
        await client.get_session("devin-abc")
    assert info.value.retry_after == 1.0
    assert server.count(route="get_session") == 4


# ---------------------------------------------------------------- await


@pytest.mark.parametrize(
    ("timeline", "status", "detail"),
    [
        (FINISHES, SessionStatus.RUNNING, StatusDetail.FINISHED),
        (WAITS_FOR_USER, SessionStatus.RUNNING, StatusDetail.WAITING_FOR_USER),
        (ERRORS, SessionStatus.ERROR, None),
        (SUSPENDS, SessionStatus.SUSPENDED, StatusDetail.INACTIVITY),
        (EXITS, SessionStatus.EXIT, None),
    ],
    ids=["finished", "waiting-for-user", "error", "suspended", "exit"],
)
async def test_await_returns_the_settled_state(
    client: DevinClient,
    server: FakeDevinServer,
    sleep: FakeTime,
    timeline: list[Step],
    status: SessionStatus,
    detail: StatusDetail | None,
) -> None:
    server.queue_timeline(timeline)
    created = await client.create_session("hello")
    settled = await client.await_session(created.session_id, poll_interval=2, max_poll_interval=2)
    assert settled.status == status
    if detail is not None:
        assert settled.status_detail == detail
    assert server.count(route="get_session") == 3  # every timeline settles on its third read
    assert sleep.delays == [2.0, 2.0]  # virtual seconds between the three polls


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        ("new", None),
        ("claimed", None),
        ("resuming", None),
        ("running", "working"),
        ("running", "waiting_for_approval"),
        ("running", None),
        ("something_new", "also_new"),
    ],
    ids=["new", "claimed", "resuming", "working", "approval", "no-detail", "unknown"],
)
async def test_non_settled_states_keep_waiting(
    client: DevinClient, server: FakeDevinServer, status: str, detail: str | None
) -> None:
    server.queue_timeline([Step(status, detail, reads=3), Step("exit")])
    created = await client.create_session("hello")
    settled = await client.await_session(created.session_id, poll_interval=2)
    assert settled.status == "exit"
    assert server.count(route="get_session") == 4  # three reads of the unsettled state


async def test_approval_predicate_stops_at_waiting_for_approval(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.queue_timeline(WAITS_FOR_APPROVAL)
    created = await client.create_session("hello")
    session = await await_session(
        client, created.session_id, until=is_settled_or_awaiting_approval, poll_interval=2
    )
    assert session.status_detail == StatusDetail.WAITING_FOR_APPROVAL


async def test_custom_until_predicate(client: DevinClient, server: FakeDevinServer) -> None:
    created = await client.create_session("hello")
    session = await client.await_session(
        created.session_id, until=lambda s: s.status == "running", poll_interval=2
    )
    assert session.status == "running"
    assert session.status_detail == "working"


async def test_await_survives_transient_faults(
    client: DevinClient, server: FakeDevinServer
) -> None:
    created = await client.create_session("hello")
    for kind in ("drop", "malformed"):
        server.inject(kind, times=1, route="get_session")
    server.inject("status", status=503, times=1, route="get_session")
    server.inject("rate_limit", retry_after="0", times=1, route="get_session")
    settled = await client.await_session(created.session_id, poll_interval=2)
    assert settled.status_detail == "finished"
    assert server.count(route="get_session") == 4 + 3  # four failed polls, three good ones


async def test_await_ends_at_once_on_a_fatal_error(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    with pytest.raises(NotFoundError):
        await client.await_session("devin-missing", poll_interval=2)
    assert server.count(route="get_session") == 1
    assert sleep.delays == []  # ended on the first poll, no nap


async def test_await_deadline_raises_with_the_last_session(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    server.queue_timeline([Step("running", "working")])
    created = await client.create_session("hello")
    start = sleep.now
    with pytest.raises(AwaitTimeoutError) as info:
        await client.await_session(
            created.session_id, timeout=60, poll_interval=2, max_poll_interval=2
        )
    exc = info.value
    assert exc.session is not None
    assert exc.session.status_detail == "working"
    assert exc.polls == 30  # at 0, 2, ..., 58 virtual seconds
    assert exc.elapsed == pytest.approx(60.0)
    assert sleep.now - start == pytest.approx(60.0)  # it ended at the deadline, not later
    assert server.count(route="get_session") == 30
    assert exc.last_error is None
    assert isinstance(exc, TimeoutError)


async def test_await_deadline_bounds_a_slow_poll(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server slower than any timeout, on virtual time: each poll takes its whole
    # request timeout (the client's 5 s, or less) and then times out.
    transport = client._transport
    real_send = transport.send
    polls: list[tuple[float, float | None]] = []

    async def too_slow(request: Any) -> Any:
        if request.method != "GET":
            return await real_send(request)
        polls.append((sleep.now - start, request.timeout))
        await sleep(min(request.timeout or math.inf, client.timeout))
        url = client.base_url + request.path
        raise APITimeoutError(f"GET {url} timed out", method="GET", url=url, request_sent=True)

    created = await client.create_session("hello")
    monkeypatch.setattr(transport, "send", too_slow)
    start = sleep.now
    with pytest.raises(AwaitTimeoutError) as info:
        await client.await_session(
            created.session_id, timeout=10, poll_interval=2, max_poll_interval=2
        )
    # Poll at 0 (cut to the client's 5 s), then at 7 with 3 s left: cut to the deadline.
    assert polls == [(0.0, 10.0), (7.0, pytest.approx(3.0))]
    assert info.value.session is None
    assert info.value.elapsed == pytest.approx(10.0)  # not 12: the last poll was cut
    assert isinstance(info.value.last_error, APITimeoutError)


async def test_cancelling_a_wait_leaves_no_task_and_keeps_the_session(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.queue_timeline([Step("running", "working")])
    created = await client.create_session("hello")
    before = asyncio.all_tasks()
    task = asyncio.create_task(client.await_session(created.session_id, poll_interval=2))
    await spin_until(lambda: server.count(route="get_session") >= 2)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client_tasks(asyncio.all_tasks() - before) == []
    assert server.count(route="terminate_session") == 0
    assert server.sessions[created.session_id].status == "running"


async def test_300_concurrent_awaits_through_one_client(server: FakeDevinServer) -> None:
    time = FakeTime()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with make_client(server, sleep=time, clock=time.clock) as client:
            created = await asyncio.gather(
                *(client.create_session(f"task {i}") for i in range(300))
            )
            settled = await asyncio.gather(*(client.await_session(s.session_id) for s in created))
        del client
        gc.collect()
    assert [s.session_id for s in settled] == [s.session_id for s in created]
    assert all(s.status_detail == "finished" for s in settled)
    assert server.sessions_created == 300
    assert server.count(route="list_sessions") == 3 * 2  # 3 ticks of 2 lists (200 + 100)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# ---------------------------------------------------------------- lifecycle


async def test_borrowed_session_is_left_open(server: FakeDevinServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with make_client(server, session=http) as client:
            await client.create_session("hello")
        assert not http.closed
        assert client.closed


async def test_use_after_close_is_a_clear_error(server: FakeDevinServer) -> None:
    client = make_client(server)
    await client.create_session("hello")
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(ClientClosedError, match="closed"):
        await client.get_session("devin-abc")
    assert "closed" in repr(client)


async def test_client_can_be_used_without_a_context_manager(server: FakeDevinServer) -> None:
    client = make_client(server)
    try:
        session = await client.create_session("hello")
    finally:
        await client.aclose()
    assert session.status == "claimed"


# ---------------------------------------------------------------- wait options, one rule


@pytest.mark.parametrize(
    "value", [0, 0.0, -2, math.nan, math.inf, "2"], ids=["0", "0.0", "neg", "nan", "inf", "str"]
)
async def test_a_per_call_poll_interval_follows_the_clients_rule(
    client: DevinClient, server: FakeDevinServer, value: Any
) -> None:
    # One rule (WaitOptions): 0 is refused, never read as "the default".
    with pytest.raises(ConfigurationError) as setting:
        DevinClient(KEY, base_url=server.url, poll_interval=value)
    expected = str(setting.value)
    assert "poll_interval" in expected
    calls: list[Callable[[], Any]] = [
        lambda: client.await_session("devin-abc", poll_interval=value),
        lambda: await_session(client, "devin-abc", poll_interval=value),
        lambda: client.watch_session("devin-abc", poll_interval=value),
        lambda: client.as_completed(["devin-abc"], poll_interval=value),
        lambda: client.await_sessions(["devin-abc"], poll_interval=value),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="poll_interval") as info:  # noqa: PT012
            result = call()  # watch_session and as_completed refuse at the call
            if asyncio.iscoroutine(result):
                await result
        assert type(info.value) is ValueError
        assert str(info.value) == expected
    assert server.requests == []


async def test_a_per_call_poll_interval_of_none_is_the_clients(server: FakeDevinServer) -> None:
    time = FakeTime()
    async with make_client(
        server, sleep=time, clock=time.clock, poll_interval=7, max_poll_interval=7
    ) as client:
        first, second = [await client.create_session(p) for p in ("a", "b")]
        await client.await_session(first.session_id, poll_interval=None, max_poll_interval=None)
        assert time.delays == [7.0, 7.0]  # polls at 0, 7 and 14 virtual seconds
        time.delays.clear()
        results = await client.await_sessions(
            [second.session_id], poll_interval=None, max_poll_interval=None
        )
    assert results[0].ok
    assert time.delays == [7.0, 7.0]


# ---------------------------------------------------------------- since: the lag after a reply

WALL_EPOCH = 1_700_000_000.0


@pytest.fixture
def lagging(
    server: FakeDevinServer, sleep: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> FakeDevinServer:
    """The server lags 2 reads after a message; its timestamps follow the virtual clock.

    Without the clock, every message of a test falls in one wall-clock second, and the
    seconds of ``created_at`` cannot tell the prompt from the reply.
    """
    server.message_lag_reads = 2
    wall = SimpleNamespace(time=lambda: WALL_EPOCH + sleep.now, monotonic=time.monotonic)
    monkeypatch.setattr(fake_sessions, "time", wall)
    return server


# After the reply Devin works (5 reads, no message) and exits: nothing but the state
# shows it moved on, and the lag (the answer and 2 reads) is over before it exits.
ASKS_THEN_WORKS = (
    *WAITS_FOR_USER,
    Step("running", "working", reads=3),
    Step("exit"),
)


async def asked_and_replied(
    client: DevinClient, server: FakeDevinServer, steps: Sequence[Step] = ASKS_THEN_WORKS
) -> tuple[str, Session]:
    """Create a session, wait until Devin asks, reply; return its id and the reply's answer."""
    server.queue_timeline(steps)
    session_id = (await client.create_session("hello")).session_id
    asked = await client.await_session(session_id, poll_interval=2, max_poll_interval=2)
    assert asked.status_detail == "waiting_for_user"
    snapshot = await client.send_message(session_id, "Use main.")
    # The answer carries no status_detail (get/list only); polls lag, showing the question,
    # though Devin is at work again.
    assert (snapshot.status, snapshot.status_detail) == ("running", None)
    assert server.sessions[session_id].status_detail == "working"
    server.reset_log()
    return session_id, snapshot


async def test_without_since_a_wait_after_a_reply_returns_the_stale_state(
    client: DevinClient, lagging: FakeDevinServer, sleep: FakeTime
) -> None:
    # Documents the lag that since= is for.
    session_id, _ = await asked_and_replied(client, lagging)
    start = sleep.now
    stale = await client.await_session(session_id)
    assert stale.status_detail == "waiting_for_user"
    assert lagging.sessions[session_id].status_detail != "waiting_for_user"
    assert lagging.count(route="get_session") == 1
    assert sleep.now == start


async def test_await_since_a_reply_returns_the_next_settled_state(
    client: DevinClient, lagging: FakeDevinServer
) -> None:
    session_id, snapshot = await asked_and_replied(client, lagging)
    settled = await client.await_session(session_id, since=snapshot, poll_interval=2)
    assert settled.status == "exit"
    # 2 stale reads, then working (the real state: since is done), and exit on the fifth.
    assert lagging.count(route="get_session") == 5
    assert lagging.count(route="list_messages") == 2  # looked for Devin's answer while stale


async def test_await_since_does_not_settle_on_the_stale_row_when_devin_answers_in_the_lag(
    client: DevinClient, lagging: FakeDevinServer
) -> None:
    # WAITS_FOR_USER resumes to working and then finished ("All done."): the message
    # arrives on the 2nd read after the reply, while reads still show the question.
    session_id, snapshot = await asked_and_replied(client, lagging, WAITS_FOR_USER)
    settled = await client.await_session(session_id, since=snapshot, poll_interval=2)
    assert (settled.status_detail, settled.updated_at) != ("waiting_for_user", snapshot.updated_at)
    assert settled.status_detail == "finished"


async def test_watch_since_does_not_end_on_the_stale_row_when_devin_answers_in_the_lag(
    client: DevinClient, lagging: FakeDevinServer
) -> None:
    session_id, snapshot = await asked_and_replied(client, lagging, WAITS_FOR_USER)
    async with client.watch_session(session_id, since=snapshot, poll_interval=2) as watch:
        states = [s.status_detail async for s in watch]
    assert states == ["waiting_for_user", "finished"]


async def test_the_module_await_session_takes_since(
    client: DevinClient, lagging: FakeDevinServer
) -> None:
    session_id, snapshot = await asked_and_replied(client, lagging)
    settled = await await_session(client, session_id, since=snapshot, poll_interval=2)
    assert settled.status == "exit"


async def test_watch_since_a_reply_goes_on_past_the_stale_state(
    client: DevinClient, lagging: FakeDevinServer
) -> None:
    session_id, snapshot = await asked_and_replied(client, lagging)
    async with client.watch_session(session_id, since=snapshot, poll_interval=2) as watch:
        states = [(s.status, s.status_detail) async for s in watch]
    # The stale state is seen first, and is not the end.
    assert states == [("running", "waiting_for_user"), ("running", "working"), ("exit", None)]


async def test_await_sessions_since_applies_to_the_replied_session_only(
    client: DevinClient, lagging: FakeDevinServer
) -> None:
    replied, snapshot = await asked_and_replied(client, lagging)
    lagging.queue_timeline(WAITS_FOR_USER)
    other = (await client.create_session("other")).session_id
    results = await client.await_sessions([replied, other], since=[snapshot], poll_interval=2)
    assert [(r.unwrap().status, r.unwrap().status_detail) for r in results] == [
        ("exit", None),
        ("running", "waiting_for_user"),
    ]


async def test_as_completed_since_skips_the_stale_state(
    client: DevinClient, lagging: FakeDevinServer
) -> None:
    replied, snapshot = await asked_and_replied(client, lagging)
    lagging.queue_timeline(WAITS_FOR_USER)
    other = (await client.create_session("other")).session_id
    order = [
        (r.session_id, r.unwrap().status)
        async for r in client.as_completed([replied, other], since=[snapshot])
    ]
    # Without since, the replied session would come first, on its stale state.
    assert order == [(other, "running"), (replied, "exit")]


async def test_since_ends_on_devins_answer_within_one_poll(
    client: DevinClient, lagging: FakeDevinServer, sleep: FakeTime
) -> None:
    # Devin answers and asks again before the next poll: the state looks just like the
    # stale one, and only its new message shows it moved on.
    session_id, snapshot = await asked_and_replied(client, lagging)
    await sleep(3)  # Devin takes 3 virtual seconds to answer and ask again
    again = Step("running", "waiting_for_user", message="Done on main. Anything else?")
    lagging.set_timeline(session_id, [again])
    start = sleep.now
    settled = await client.await_session(session_id, since=snapshot, timeout=600)
    assert settled.status_detail == "waiting_for_user"
    assert sleep.now == start  # the first poll proved it: not the deadline
    assert lagging.count(route="get_session") == 1
    assert lagging.count(route="list_messages") == 1


async def test_since_without_an_answer_waits_to_the_deadline(
    client: DevinClient, lagging: FakeDevinServer, sleep: FakeTime
) -> None:
    # The control of the test above: the same state, and no message of Devin's.
    session_id, snapshot = await asked_and_replied(client, lagging)
    await sleep(3)
    lagging.set_timeline(session_id, [Step("running", "waiting_for_user")])
    with pytest.raises(AwaitTimeoutError) as info:
        await client.await_session(
            session_id, since=snapshot, timeout=60, poll_interval=2, max_poll_interval=2
        )
    assert info.value.polls == 30
    assert info.value.elapsed == pytest.approx(60.0)
    assert info.value.session is not None
    assert info.value.session.status_detail == "waiting_for_user"
    assert lagging.count(route="list_messages") == 30  # every poll looked for an answer


async def test_a_since_of_another_session_is_refused_before_any_request(
    client: DevinClient, server: FakeDevinServer
) -> None:
    mine, theirs = [await client.create_session(p) for p in ("mine", "theirs")]
    server.reset_log()
    with pytest.raises(ValueError, match="since"):
        await client.await_session(mine.session_id, since=theirs)
    with pytest.raises(ValueError, match="since"):
        await await_session(client, mine.session_id, since=theirs)
    with pytest.raises(ValueError, match="since"):
        await client.await_session(mine.session_id, since=mine.session_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="since"):
        client.watch_session(mine.session_id, since=theirs)
    with pytest.raises(ValueError, match="since"):
        client.as_completed([mine.session_id], since=[theirs])
    with pytest.raises(ValueError, match="since"):
        await client.await_sessions([mine.session_id], since=[mine, theirs])
    assert server.requests == []


# ---------------------------------------------------------------- Retry-After during a wait


async def test_a_long_retry_after_ends_the_wait_at_once(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    created = await client.create_session("hello")
    server.inject("rate_limit", retry_after="3600", times=1, route="get_session")
    start = sleep.now
    with pytest.raises(RateLimitError) as info:
        await client.await_session(created.session_id)
    assert info.value.retry_after == 3600.0
    assert sleep.now - start == pytest.approx(0.0)  # not 3600 s, nor the 600 s deadline
    assert server.count(route="get_session") == 1


async def test_a_long_retry_after_on_a_list_ends_those_waits(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    created = [await client.create_session(p) for p in ("a", "b")]
    server.inject("rate_limit", retry_after="3600", times=1, route="list_sessions")
    start = sleep.now
    results = await client.await_sessions([s.session_id for s in created])
    assert [type(r.error) for r in results] == [RateLimitError, RateLimitError]
    assert sleep.now - start == pytest.approx(0.0)
    assert server.count(route="list_sessions") == 1


async def test_a_retry_after_delays_the_next_poll(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    created = await client.create_session("hello")
    server.inject("rate_limit", retry_after="5", times=1, route="get_session")
    settled = await client.await_session(created.session_id, poll_interval=1, max_poll_interval=1)
    assert settled.status_detail == "finished"
    # The refused poll at 0, then 5 virtual seconds (not 1) before the next one.
    assert sleep.delays == [5.0, 1.0, 1.0]
    assert server.count(route="get_session") == 4
