"""The aiohttp transport: mocked at the session level, and once over real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from pytest_aiohttp import AiohttpServer
from yarl import URL

from devin_async._errors import APIConnectionError, APITimeoutError, ClientClosedError
from devin_async._protocol import Request
from devin_async._transport import Transport, user_agent

BASE = "https://api.devin.ai"
PATH = "/v3/organizations/org-1/sessions/devin-1"
HEADERS = {"Authorization": "Bearer cog_test_key", "Accept": "application/json"}
GET = Request("GET", PATH)
POST = Request("POST", "/v3/organizations/org-1/sessions", body=b'{"prompt":"p"}', idempotent=False)


def sent_calls(mock: aioresponses, method: str, url: str) -> list[Any]:
    calls: list[Any] = mock.requests.get((method, URL(url)), [])
    return calls


@pytest.fixture
async def transport() -> Any:
    transport = Transport(BASE, HEADERS, timeout=10.0)
    yield transport
    await transport.aclose()


# ------------------------------------------------------------------ round trips (mocked)


async def test_get_returns_status_headers_and_body(
    mock_http: aioresponses, transport: Transport
) -> None:
    mock_http.get(
        BASE + PATH, status=200, body=b'{"session_id":"devin-1"}', headers={"X-Request-Id": "r-1"}
    )
    response = await transport.send(GET)
    assert response.status == 200
    assert response.body == b'{"session_id":"devin-1"}'
    assert response.headers["x-request-id"] == "r-1"  # case-insensitive, as aiohttp gives it
    assert response.headers["Content-Type"] == "application/json"


async def test_error_status_is_returned_not_raised(
    mock_http: aioresponses, transport: Transport
) -> None:
    mock_http.get(BASE + PATH, status=503, body=b"busy")
    response = await transport.send(GET)
    assert (response.status, response.body) == (503, b"busy")


async def test_query_pairs_are_encoded_as_repeated_keys(
    mock_http: aioresponses, transport: Transport
) -> None:
    url = BASE + "/v3/enterprise/sessions?session_ids=devin-a&session_ids=devin-b&first=2"
    mock_http.get(url, body=b"{}")
    request = Request(
        "GET",
        "/v3/enterprise/sessions",
        query=(("session_ids", "devin-a"), ("session_ids", "devin-b"), ("first", "2")),
    )
    assert (await transport.send(request)).status == 200
    ((method, sent_url),) = mock_http.requests
    assert method == "GET"
    assert sent_url.query.getall("session_ids") == ["devin-a", "devin-b"]
    assert sent_url.query["first"] == "2"


async def test_post_sends_json_body_and_content_type(
    mock_http: aioresponses, transport: Transport
) -> None:
    url = BASE + "/v3/organizations/org-1/sessions"
    mock_http.post(url, body=b"{}")
    await transport.send(POST)
    (call,) = sent_calls(mock_http, "POST", url)
    assert call.kwargs["data"] == b'{"prompt":"p"}'
    assert call.kwargs["headers"]["Content-Type"] == "application/json"
    assert call.kwargs["headers"]["Authorization"] == "Bearer cog_test_key"


async def test_get_sends_authorization_and_no_content_type(
    mock_http: aioresponses, transport: Transport
) -> None:
    mock_http.get(BASE + PATH, body=b"{}")
    await transport.send(GET)
    (call,) = sent_calls(mock_http, "GET", BASE + PATH)
    assert call.kwargs["headers"] == HEADERS
    assert call.kwargs["data"] is None


async def test_redirects_are_not_followed(mock_http: aioresponses, transport: Transport) -> None:
    elsewhere = "https://evil.example/steal"
    mock_http.get(BASE + PATH, status=302, headers={"Location": elsewhere})
    mock_http.get(elsewhere, body=b"{}")
    response = await transport.send(GET)
    assert response.status == 302
    assert response.headers["Location"] == elsewhere
    assert sent_calls(mock_http, "GET", elsewhere) == []
    (call,) = sent_calls(mock_http, "GET", BASE + PATH)
    assert call.kwargs["allow_redirects"] is False


async def test_timeout_is_always_explicit(mock_http: aioresponses, transport: Transport) -> None:
    mock_http.get(BASE + PATH, body=b"{}")
    await transport.send(GET)
    (call,) = sent_calls(mock_http, "GET", BASE + PATH)
    assert call.kwargs["timeout"].total == 10.0


def test_url_joins_base_and_path() -> None:
    assert Transport(BASE, HEADERS, 1.0).url(GET) == BASE + PATH


def test_user_agent_names_the_stack() -> None:
    agent = user_agent("1.2.3")
    assert agent.startswith("devin-async/1.2.3 aiohttp/")
    assert " python/" in agent


# ------------------------------------------------------------------ error mapping (mocked)


def _refused() -> Exception:
    key = SimpleNamespace(host="api.devin.ai", port=443, ssl=True)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))  # type: ignore[arg-type]


ERRORS: list[tuple[str, Callable[[], Exception], type[APIConnectionError], bool]] = [
    ("connector-refused", _refused, APIConnectionError, False),
    ("server-disconnected", aiohttp.ServerDisconnectedError, APIConnectionError, True),
    ("connection-reset", lambda: aiohttp.ClientOSError(104, "reset"), APIConnectionError, True),
    ("payload-error", lambda: aiohttp.ClientPayloadError("cut"), APIConnectionError, True),
    ("os-error", lambda: ConnectionResetError(104, "reset"), APIConnectionError, True),
    ("asyncio-timeout", asyncio.TimeoutError, APITimeoutError, True),
    ("socket-read-timeout", aiohttp.SocketTimeoutError, APITimeoutError, True),
    ("connection-timeout", aiohttp.ConnectionTimeoutError, APITimeoutError, False),
]


@pytest.mark.parametrize(
    ("make_error", "expected", "request_sent"),
    [(make, cls, sent) for _, make, cls, sent in ERRORS],
    ids=[name for name, *_ in ERRORS],
)
async def test_aiohttp_errors_are_translated(
    mock_http: aioresponses,
    transport: Transport,
    make_error: Callable[[], Exception],
    expected: type[APIConnectionError],
    request_sent: bool,
) -> None:
    original = make_error()
    mock_http.get(BASE + PATH, exception=original)
    with pytest.raises(APIConnectionError) as info:
        await transport.send(GET)
    err = info.value
    assert type(err) is expected
    assert err.request_sent is request_sent
    assert (err.method, err.url) == ("GET", BASE + PATH)
    # Never chained: aiohttp errors keep the request headers; the message names it.
    assert err.__cause__ is None
    assert err.__context__ is None
    if isinstance(err, APITimeoutError):
        assert "timed out" in str(err)
    elif isinstance(original, aiohttp.ClientConnectorError):
        assert f"cannot connect for GET {BASE}{PATH}: ConnectionRefusedError" in str(err)
    else:
        assert f"GET {BASE}{PATH} failed: {type(original).__name__}" in str(err)
    assert "cog_test_key" not in str(err)


async def test_unexpected_exception_is_not_swallowed(
    mock_http: aioresponses, transport: Transport
) -> None:
    mock_http.get(BASE + PATH, exception=KeyError("bug"))
    with pytest.raises(KeyError):
        await transport.send(GET)


# ------------------------------------------------------------------ lifecycle


@pytest.fixture
def recorded_sessions(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Every ClientSession the code under test creates (aiohttp discourages subclassing)."""
    instances: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def recording(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = real(*args, **kwargs)
        instances.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", recording)
    return instances


async def test_owned_session_is_created_lazily_and_closed(
    mock_http: aioresponses, recorded_sessions: list[aiohttp.ClientSession]
) -> None:
    transport = Transport(BASE, HEADERS, 10.0)
    assert recorded_sessions == []
    mock_http.get(BASE + PATH, body=b"{}")
    mock_http.get(BASE + PATH, body=b"{}")
    await transport.send(GET)
    await transport.send(GET)
    (owned,) = recorded_sessions  # one session, reused
    assert not owned.closed
    await transport.aclose()
    assert owned.closed
    assert transport.closed


async def test_closing_an_unused_transport_creates_nothing(
    recorded_sessions: list[aiohttp.ClientSession],
) -> None:
    transport = Transport(BASE, HEADERS, 10.0)
    await transport.aclose()
    assert recorded_sessions == []
    assert transport.closed


async def test_borrowed_session_is_used_and_left_open(mock_http: aioresponses) -> None:
    async with aiohttp.ClientSession() as borrowed:
        transport = Transport(BASE, HEADERS, 10.0, session=borrowed)
        mock_http.get(BASE + PATH, body=b"{}")
        assert (await transport.send(GET)).status == 200
        await transport.aclose()
        assert not borrowed.closed
        assert transport.closed


async def test_send_after_aclose_raises_client_closed(transport: Transport) -> None:
    await transport.aclose()
    with pytest.raises(ClientClosedError, match="closed"):
        await transport.send(GET)


async def test_aclose_is_idempotent(
    mock_http: aioresponses, recorded_sessions: list[aiohttp.ClientSession]
) -> None:
    transport = Transport(BASE, HEADERS, 10.0)
    mock_http.get(BASE + PATH, body=b"{}")
    await transport.send(GET)
    await transport.aclose()
    await transport.aclose()
    assert transport.closed
    assert all(s.closed for s in recorded_sessions)


# ------------------------------------------------------------------ real sockets


async def test_round_trip_against_a_real_server(aiohttp_server: AiohttpServer) -> None:
    seen: list[dict[str, Any]] = []

    async def sessions(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "ids": request.query.getall("session_ids"),
                "authorization": request.headers.get("Authorization"),
                "content_type": request.headers.get("Content-Type"),
                "body": await request.read(),
            }
        )
        return web.json_response({"ok": True}, status=201, headers={"X-Request-Id": "r-9"})

    async def moved(request: web.Request) -> web.Response:
        seen.append({"path": request.path})
        raise web.HTTPFound("/v3/sessions")

    app = web.Application()
    app.router.add_post("/v3/sessions", sessions)
    app.router.add_get("/v3/sessions", sessions)
    app.router.add_get("/v3/moved", moved)
    server = await aiohttp_server(app)
    transport = Transport(f"http://{server.host}:{server.port}", HEADERS, 5.0)
    try:
        post = Request(
            "POST",
            "/v3/sessions",
            query=(("session_ids", "devin-a"), ("session_ids", "devin-b")),
            body=b'{"prompt":"p"}',
            idempotent=False,
        )
        response = await transport.send(post)
        redirect = await transport.send(Request("GET", "/v3/moved"))
    finally:
        await transport.aclose()

    assert response.status == 201
    assert response.body == b'{"ok": true}'
    assert response.headers["x-request-id"] == "r-9"
    assert seen[0] == {
        "method": "POST",
        "path": "/v3/sessions",
        "ids": ["devin-a", "devin-b"],
        "authorization": "Bearer cog_test_key",
        "content_type": "application/json",
        "body": b'{"prompt":"p"}',
    }
    assert redirect.status == 302
    assert seen[1:] == [{"path": "/v3/moved"}]  # the Location was never requested


async def test_refused_port_is_a_connection_error_before_sending() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is closed now, so nothing listens there.
    transport = Transport(f"http://127.0.0.1:{port}", HEADERS, 5.0)
    try:
        with pytest.raises(APIConnectionError) as info:
            await transport.send(GET)
    finally:
        await transport.aclose()
    assert type(info.value) is APIConnectionError
    assert info.value.request_sent is False
    assert info.value.url == f"http://127.0.0.1:{port}{PATH}"


# ------------------------------------------------------------------ messages of foreign errors


@pytest.mark.parametrize(
    ("headers", "echoed"),
    [
        (HEADERS, "got Bearer cog_test_key back"),
        (HEADERS, "got cog_test_key back"),
        ({"authorization": "cog_bare_key", "Accept": "application/json"}, "got cog_bare_key"),
    ],
    ids=["bearer-value", "bare-credential", "no-scheme"],
)
async def test_a_foreign_message_never_quotes_the_credential(
    mock_http: aioresponses, headers: dict[str, str], echoed: str
) -> None:
    transport = Transport(BASE, headers, 10.0)
    mock_http.get(BASE + PATH, exception=aiohttp.ClientPayloadError(echoed))
    try:
        with pytest.raises(APIConnectionError) as info:
            await transport.send(GET)
    finally:
        await transport.aclose()
    assert "cog_" not in str(info.value)
    assert "got *** back" in str(info.value) or str(info.value).endswith("got ***")


async def test_a_long_foreign_message_is_cut(mock_http: aioresponses, transport: Transport) -> None:
    mock_http.get(BASE + PATH, exception=aiohttp.ClientPayloadError("x" * 5000))
    with pytest.raises(APIConnectionError) as info:
        await transport.send(GET)
    assert str(info.value).endswith("x" * 300 + "...")
    assert len(str(info.value)) < 500


async def test_a_foreign_error_without_a_message_is_named(
    mock_http: aioresponses, transport: Transport
) -> None:
    mock_http.get(BASE + PATH, exception=aiohttp.ClientOSError())
    with pytest.raises(APIConnectionError) as info:
        await transport.send(GET)
    assert str(info.value) == f"GET {BASE}{PATH} failed: ClientOSError"
