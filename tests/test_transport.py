"""The aiohttp transport: mocked at the session level, and once over real sockets."""

from __future__ import annotations

import asyncio
import gc
import http.server
import json
import logging
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from pytest_aiohttp import AiohttpServer
from yarl import URL

from devin_async import DevinClient
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


# ------------------------------------------------------------------ foreign errors of aiohttp


async def test_a_borrowed_session_closed_by_its_owner_is_a_clear_error(
    mock_http: aioresponses,
) -> None:
    borrowed = aiohttp.ClientSession()
    transport = Transport(BASE, HEADERS, 10.0, session=borrowed)
    mock_http.get(BASE + PATH, body=b"{}")
    assert (await transport.send(GET)).status == 200
    await borrowed.close()
    with pytest.raises(
        ClientClosedError, match=r"borrowed aiohttp\.ClientSession was closed by its"
    ):
        await transport.send(GET)
    assert len(sent_calls(mock_http, "GET", BASE + PATH)) == 1
    await transport.aclose()


async def test_a_borrowed_session_closed_before_first_use_is_a_clear_error() -> None:
    borrowed = aiohttp.ClientSession()
    await borrowed.close()
    transport = Transport(BASE, HEADERS, 10.0, session=borrowed)
    with pytest.raises(ClientClosedError, match="borrowed"):
        await transport.send(GET)


@pytest.mark.parametrize(
    "value",
    ["Bearer cog_test_key\r\nX-Injected: 1", "Bearer cog_test_key\x00", "Bearer cog_test_key\n"],
    ids=["crlf", "nul", "lf"],
)
async def test_a_header_value_aiohttp_refuses_is_a_connection_error_never_sent(
    aiohttp_server: AiohttpServer, value: str
) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({})

    app = web.Application()
    app.router.add_get(PATH, handler)
    server = await aiohttp_server(app)
    transport = Transport(f"http://{server.host}:{server.port}", {"Authorization": value}, 5.0)
    try:
        with pytest.raises(APIConnectionError) as info:
            await transport.send(GET)
    finally:
        await transport.aclose()
    err = info.value
    assert type(err) is APIConnectionError
    assert err.request_sent is False
    assert "ValueError" in str(err)
    assert "cog_test_key" not in str(err)
    assert (err.__cause__, err.__context__) == (None, None)
    assert seen == []


@pytest.mark.parametrize(
    ("error", "request_sent"),
    [
        (ValueError("bad value cog_test_key"), False),
        (RuntimeError("Connector is closed."), True),
        (OSError(24, "Too many open files"), True),
    ],
    ids=["value-error", "runtime-error", "os-error"],
)
async def test_other_foreign_errors_of_a_request_map_to_our_tree(
    mock_http: aioresponses, transport: Transport, error: Exception, request_sent: bool
) -> None:
    mock_http.get(BASE + PATH, exception=error)
    with pytest.raises(APIConnectionError) as info:
        await transport.send(GET)
    assert info.value.request_sent is request_sent
    assert type(error).__name__ in str(info.value)
    assert "cog_test_key" not in str(info.value)
    assert (info.value.__cause__, info.value.__context__) == (None, None)


async def test_a_value_error_message_is_never_quoted(
    mock_http: aioresponses, transport: Transport
) -> None:
    # A ValueError of a request is about a value we passed (a header, the URL): its text
    # may quote it, so only its type is shown.
    mock_http.get(BASE + PATH, exception=ValueError("header 'X-Thing: private-value'"))
    with pytest.raises(APIConnectionError) as info:
        await transport.send(GET)
    assert "private-value" not in str(info.value)


async def test_cancellation_is_never_converted(
    mock_http: aioresponses, transport: Transport
) -> None:
    mock_http.get(BASE + PATH, exception=asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await transport.send(GET)


# ------------------------------------------------------------------ one event loop per client


class _Keepalive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the connection stays in the client's pool
    body = b"{}"
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def threaded_server(session_json: dict[str, Any]) -> Iterator[tuple[str, type[_Keepalive]]]:
    """A keep-alive HTTP server in a thread: it outlives every event loop of a test."""
    handler = type("Handler", (_Keepalive,), {"body": json.dumps(session_json).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def leftovers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[list[str]]:
    """Every warning, unraisable exception and asyncio error log line of the test."""
    found: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: found.append(repr(u.exc_value)))
    caplog.set_level(logging.WARNING, logger="asyncio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
        gc.collect()
    found += [f"{w.category.__name__}: {w.message}" for w in caught]
    found += [r.getMessage() for r in caplog.records if r.name == "asyncio"]


def test_a_transport_reused_from_a_second_asyncio_run_says_so_cleanly(
    threaded_server: tuple[str, type[_Keepalive]], leftovers: list[str]
) -> None:
    url, handler = threaded_server
    transport = Transport(url, HEADERS, 5.0)
    assert asyncio.run(transport.send(GET)).status == 200
    with pytest.raises(ClientClosedError, match="bound to the event loop it first ran in"):
        asyncio.run(transport.send(GET))
    with pytest.raises(ClientClosedError, match="bound to the event loop"):
        asyncio.run(transport.send(GET))  # still refused, still clean
    asyncio.run(transport.aclose())
    assert transport.closed
    assert handler.requests == 1
    del transport
    gc.collect()
    assert leftovers == []


def test_a_client_reused_from_a_second_asyncio_run_says_so_cleanly(
    threaded_server: tuple[str, type[_Keepalive]], leftovers: list[str], session_json: Any
) -> None:
    url, handler = threaded_server
    client = DevinClient("cog_test_key", org_id="org-abc", base_url=url)
    session = asyncio.run(client.get_session(session_json["session_id"]))
    assert session.session_id == session_json["session_id"]
    with pytest.raises(ClientClosedError) as info:
        asyncio.run(client.get_session(session_json["session_id"]))
    message = str(info.value)
    assert "bound to the event loop it first ran in" in message
    assert "asyncio.run" in message
    assert "async with" in message
    assert handler.requests == 1  # the second loop sent nothing, and did not retry
    del client
    gc.collect()
    assert leftovers == []


def test_a_transport_used_from_another_loop_while_the_first_is_open(
    threaded_server: tuple[str, type[_Keepalive]], leftovers: list[str]
) -> None:
    url, handler = threaded_server
    transport = Transport(url, HEADERS, 5.0)
    first = asyncio.new_event_loop()
    try:
        assert first.run_until_complete(transport.send(GET)).status == 200
        with pytest.raises(ClientClosedError, match="bound to the event loop"):
            asyncio.run(transport.send(GET))
        assert (first.run_until_complete(transport.send(GET))).status == 200  # still fine there
        first.run_until_complete(transport.aclose())
    finally:
        first.run_until_complete(first.shutdown_asyncgens())
        first.close()
    assert handler.requests == 2
    gc.collect()
    assert leftovers == []


def test_a_transport_dropped_without_aclose_is_closed_when_its_loop_ends(
    threaded_server: tuple[str, type[_Keepalive]], leftovers: list[str]
) -> None:
    url, _ = threaded_server
    seen: list[aiohttp.ClientSession] = []

    async def use_and_forget() -> None:
        transport = Transport(url, HEADERS, 5.0)
        await transport.send(GET)
        assert transport._session is not None
        seen.append(transport._session)

    asyncio.run(use_and_forget())
    assert seen[0].closed
    gc.collect()
    assert leftovers == []


def test_aclose_from_another_loop_leaves_the_session_to_its_own_loop(
    threaded_server: tuple[str, type[_Keepalive]], leftovers: list[str]
) -> None:
    url, _ = threaded_server
    transport = Transport(url, HEADERS, 5.0)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(transport.send(GET))
        owned = transport._session
        assert owned is not None
        asyncio.run(transport.aclose())  # cannot close it from here, and does not try
        assert transport.closed
        assert not owned.closed
    finally:
        first.run_until_complete(first.shutdown_asyncgens())  # its loop closes it
        first.close()
    assert owned.closed
    gc.collect()
    assert leftovers == []


def test_a_send_after_its_loop_shut_down_its_generators_is_a_clear_error(
    threaded_server: tuple[str, type[_Keepalive]], leftovers: list[str]
) -> None:
    url, _ = threaded_server
    transport = Transport(url, HEADERS, 5.0)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(transport.send(GET))
        loop.run_until_complete(loop.shutdown_asyncgens())
        with pytest.raises(ClientClosedError, match="closed when its event loop shut down"):
            loop.run_until_complete(transport.send(GET))
        loop.run_until_complete(transport.aclose())
    finally:
        loop.close()
    gc.collect()
    assert leftovers == []


async def test_a_body_that_arrives_in_pieces_is_read_whole(aiohttp_server: AiohttpServer) -> None:
    async def pieces(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b'{"a": "')
        await asyncio.sleep(0.05)  # the client's first read returns only the first piece
        await response.write(b'bc"}')
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get(PATH, pieces)
    server = await aiohttp_server(app)
    transport = Transport(f"http://{server.host}:{server.port}", HEADERS, 5.0)
    try:
        response = await transport.send(GET)
    finally:
        await transport.aclose()
    assert response.body == b'{"a": "bc"}'
