"""No object reachable from an error we raise holds the API key or a session secret.

aiohttp's ``ClientResponseError`` (a bad status line, a bad or oversized header, bad
chunking) keeps the request's ``request_info``, whose headers carry the Authorization
header; any error of ours that chains to it (``__cause__`` or ``__context__``) lets a
logger, an error tracker or ``repr`` reach the key. Each failure the transport maps is
provoked here over a real socket on 127.0.0.1, through ``Transport.send`` and through
``DevinClient`` (retries included), and the whole graph of the error is walked.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fakes import FakeTime
from leaks import chain, leaks

from devin_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    CreateSessionRequest,
    DevinClient,
    DevinError,
    InternalServerError,
    RateLimitError,
    ResponseValidationError,
    SessionSecret,
    UnprocessableEntityError,
)
from devin_async._protocol import Request
from devin_async._transport import Transport

KEY = "cog_graph_key_7b1f9e"
SECRET = "s3cr3t-graph-value-55"
NEEDLES = (KEY, SECRET, "Bearer ")
PATH = "/v3/organizations/org-g/sessions/devin-abc"
TIMEOUT = 0.5  # small, bounded: only the "silent" server waits for it

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _send(data: bytes) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return reply


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up and closes


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    return None


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    # SO_LINGER with a zero timeout: close() sends a RST instead of a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _status(status: int, body: bytes, *extra: bytes) -> Reply:
    head = [f"HTTP/1.1 {status} Whatever".encode(), b"Content-Type: application/json"]
    head += [*extra, f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    return _send(b"\r\n".join(head) + b"\r\n\r\n" + body)


# name -> (what the server does after reading the request, the error we must raise)
FAILURES: dict[str, tuple[Reply, type[DevinError]]] = {
    "bad-status-line": (_send(b"HTTP/1.1 abc OK\r\n\r\n"), APIConnectionError),
    "not-http": (_send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), APIConnectionError),
    "bad-header": (
        _send(b"HTTP/1.1 200 OK\r\nNo colon in this line\r\nContent-Length: 0\r\n\r\n"),
        APIConnectionError,
    ),
    "oversized-header": (
        _send(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"),
        APIConnectionError,
    ),
    "bad-chunking": (
        _send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        APIConnectionError,
    ),
    "bad-gzip": (
        _send(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"),
        APIConnectionError,
    ),
    "truncated-body": (
        _send(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cut'),
        APIConnectionError,
    ),
    "hang-up": (_hang_up, APIConnectionError),
    "reset": (_reset, APIConnectionError),
    "timeout": (_silent, APITimeoutError),
    "oversized-body": (
        _send(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000),
        ResponseValidationError,
    ),
}

STATUSES: dict[str, tuple[Reply, type[APIStatusError]]] = {
    "500": (_status(500, b'{"detail":"boom"}', b"X-Request-Id: r-500"), InternalServerError),
    "422": (
        _status(422, b'{"detail":[{"loc":["body","prompt"],"msg":"bad","type":"t"}]}'),
        UnprocessableEntityError,
    ),
    "429": (_status(429, b'{"detail":"slow"}', b"Retry-After: 0"), RateLimitError),
}


class RawServer:
    """An HTTP-ish server on 127.0.0.1 that reads a request, then does ``reply``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    await reader.readexactly(int(value))
            self.requests += 1
            await self.reply(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], Awaitable[RawServer]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> RawServer:
        raw = RawServer(reply)
        raw.server = await asyncio.start_server(raw._handle, "127.0.0.1", 0)
        servers.append(raw.server)
        return raw

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # closed now: nothing listens there


def _assert_clean(err: BaseException) -> None:
    assert leaks(err, *NEEDLES) == []
    for linked in chain(err):
        # No aiohttp (or tenacity) object is reachable at all: the next aiohttp release
        # could put the headers somewhere this walk does not look.
        assert not type(linked).__module__.startswith(("aiohttp", "tenacity")), linked
    assert type(err).__name__ in repr(err)


def _transport(base_url: str) -> Transport:
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}
    return Transport(base_url, headers, timeout=TIMEOUT, max_response_bytes=1000)


async def _transport_error(base_url: str, request: Request) -> DevinError:
    transport = _transport(base_url)
    try:
        with pytest.raises(DevinError) as info:
            await transport.send(request)
    finally:
        await transport.aclose()
    return info.value


GET = Request("GET", PATH)
POST = Request(
    "POST",
    "/v3/organizations/org-g/sessions",
    body=b'{"prompt":"p","session_secrets":[{"key":"K","value":"' + SECRET.encode() + b'"}]}',
    idempotent=False,
)


@pytest.mark.parametrize("request_", [GET, POST], ids=["GET", "POST"])
@pytest.mark.parametrize("name", sorted(FAILURES))
async def test_transport_errors_hold_no_secret(
    serve: Callable[[Reply], Awaitable[RawServer]], name: str, request_: Request
) -> None:
    reply, expected = FAILURES[name]
    server = await serve(reply)
    err = await _transport_error(server.url, request_)
    assert type(err) is expected
    assert server.requests >= 1  # aiohttp itself retries a GET on a dropped connection
    _assert_clean(err)
    if isinstance(err, APIConnectionError):
        # Still informative: which request, and what went wrong.
        assert f"{request_.method} {server.url}{request_.path}" in str(err)
        assert len(str(err)) > len(f"{request_.method} {server.url}{request_.path}") + 10


async def test_a_refused_connection_holds_no_secret() -> None:
    err = await _transport_error(_refused_url(), GET)
    assert type(err) is APIConnectionError
    assert isinstance(err, APIConnectionError)
    assert err.request_sent is False
    _assert_clean(err)


def _client(base_url: str, **kwargs: Any) -> DevinClient:
    time = FakeTime()
    return DevinClient(
        KEY,
        org_id="org-g",
        base_url=base_url,
        timeout=TIMEOUT,
        max_retries=2,
        sleep=time,
        clock=time.clock,
        **kwargs,
    )


def _create() -> CreateSessionRequest:
    return CreateSessionRequest(prompt="p", session_secrets=[SessionSecret("K", SECRET)])


CLIENT_FAILURES = sorted(set(FAILURES) - {"oversized-body"})


@pytest.mark.parametrize("name", CLIENT_FAILURES)
async def test_get_session_errors_hold_no_secret(
    serve: Callable[[Reply], Awaitable[RawServer]], name: str
) -> None:
    server = await serve(FAILURES[name][0])
    async with _client(server.url) as client:
        with pytest.raises(DevinError) as info:
            await client.get_session("devin-abc")
    assert isinstance(info.value, FAILURES[name][1])
    assert server.requests >= 3  # retried, through tenacity
    _assert_clean(info.value)


@pytest.mark.parametrize("exactly_once", [True, False], ids=["tagged", "untagged"])
@pytest.mark.parametrize("name", CLIENT_FAILURES)
async def test_create_session_errors_hold_no_secret(
    serve: Callable[[Reply], Awaitable[RawServer]], name: str, exactly_once: bool
) -> None:
    server = await serve(FAILURES[name][0])
    async with _client(server.url, exactly_once_create=exactly_once, create_grace=0.1) as client:
        with pytest.raises(DevinError) as info:
            await client.create_session(_create())
    assert server.requests >= 1
    _assert_clean(info.value)


async def test_client_refused_connection_holds_no_secret() -> None:
    async with _client(_refused_url()) as client:
        with pytest.raises(APIConnectionError) as got:
            await client.get_session("devin-abc")
        _assert_clean(got.value)
        with pytest.raises(DevinError) as created:
            await client.create_session(_create())
        _assert_clean(created.value)


@pytest.mark.parametrize("status", sorted(STATUSES))
async def test_status_errors_hold_no_secret(
    serve: Callable[[Reply], Awaitable[RawServer]], status: str
) -> None:
    reply, expected = STATUSES[status]
    server = await serve(reply)
    async with _client(server.url) as client:
        with pytest.raises(APIStatusError) as got:
            await client.get_session("devin-abc")
        assert type(got.value) is expected
        _assert_clean(got.value)
        with pytest.raises(DevinError) as created:
            await client.create_session(_create())
        _assert_clean(created.value)
